/**
 * Envoy-side protection from Service annotations (pure; used by mapping.ts). Like the other
 * annotations, a value fulcrum does not understand is reported as a warning and the default is
 * kept: a typo must not take protection away from a Service, nor fail the whole discovery.
 *
 * - `fulcrum.io/outlier-detection`: `on` (default) | `off`.
 * - `fulcrum.io/retries`: the number of retries, 0..10; 0 turns retries off (default 2).
 * - `fulcrum.io/retry-on`: comma-separated Envoy retry conditions, e.g. `connect-failure,5xx`.
 * - `fulcrum.io/health-check`: `off` (default) | `tcp` | `http` | `http:/path` | `grpc` |
 *   `grpc:service` (gRPC needs an HTTP/2 port: appProtocol h2c, grpc or http2).
 * Finer settings (ejection times, budgets, thresholds) belong in the config file or the admin API.
 */
import { RETRY_ON, type HealthCheckSpec, type OutlierDetectionSpec, type RetryOn, type RetryPolicySpec } from '../../catalog/protection.js';
import { hasControl } from '../envoy-rules.js';

export const OUTLIER_DETECTION_ANNOTATION = 'fulcrum.io/outlier-detection';
export const RETRIES_ANNOTATION = 'fulcrum.io/retries';
export const RETRY_ON_ANNOTATION = 'fulcrum.io/retry-on';
export const HEALTH_CHECK_ANNOTATION = 'fulcrum.io/health-check';

export interface AnnotatedProtection {
  readonly outlierDetection?: OutlierDetectionSpec;
  readonly retryPolicy?: RetryPolicySpec;
  readonly healthCheck?: HealthCheckSpec;
}

type Annotations = Readonly<Record<string, string>>;

function outlierDetectionOf(a: Annotations, warn: (m: string) => void): OutlierDetectionSpec | undefined {
  const raw = a[OUTLIER_DETECTION_ANNOTATION];
  if (raw === undefined) return undefined;
  const v = raw.trim().toLowerCase();
  if (v === 'off' || v === 'false') return { enabled: false };
  if (v !== 'on' && v !== 'true') warn(`annotation ${OUTLIER_DETECTION_ANNOTATION}=${JSON.stringify(raw)} is not on or off; using on`);
  return undefined;
}

function retryPolicyOf(a: Annotations, warn: (m: string) => void): RetryPolicySpec | undefined {
  const out: { numRetries?: number; retryOn?: RetryOn[] } = {};
  const count = a[RETRIES_ANNOTATION];
  if (count !== undefined) {
    const n = Number(count.trim());
    if (/^\d+$/.test(count.trim()) && n <= 10) out.numRetries = n;
    else warn(`annotation ${RETRIES_ANNOTATION}=${JSON.stringify(count)} is not a whole number from 0 to 10; using the default`);
  }
  const on = a[RETRY_ON_ANNOTATION];
  if (on !== undefined) {
    const wanted = [...new Set(on.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== ''))];
    const unknown = wanted.filter((w) => !(RETRY_ON as readonly string[]).includes(w));
    if (wanted.length > 0 && unknown.length === 0) out.retryOn = wanted as RetryOn[];
    else warn(`annotation ${RETRY_ON_ANNOTATION}=${JSON.stringify(on)} needs conditions from ${RETRY_ON.join(', ')}; using the default`);
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function healthCheckOf(a: Annotations, http2: boolean, warn: (m: string) => void): HealthCheckSpec | undefined {
  const raw = a[HEALTH_CHECK_ANNOTATION];
  if (raw === undefined) return undefined;
  const v = raw.trim();
  const colon = v.indexOf(':');
  const kind = (colon < 0 ? v : v.slice(0, colon)).toLowerCase();
  const arg = colon < 0 ? undefined : v.slice(colon + 1);
  if (kind === 'off') return undefined;
  if (kind === 'tcp' && arg === undefined) return { kind: 'tcp' };
  // An annotation value is one line; a path with spaces or no leading '/' is a typo. A control
  // character is refused as the config file refuses it: Envoy NACKs the whole CDS update for it.
  if (kind === 'http' && (arg === undefined || (/^\/\S*$/.test(arg) && !hasControl(arg)))) return { kind: 'http', ...(arg ? { path: arg } : {}) };
  if (kind === 'grpc' && http2) return { kind: 'grpc', ...(arg ? { path: arg } : {}) };
  const why = kind === 'grpc' ? 'gRPC health checks need an HTTP/2 port (appProtocol h2c, grpc or http2)' : 'expected off, tcp, http[:/path] or grpc[:service]';
  warn(`annotation ${HEALTH_CHECK_ANNOTATION}=${JSON.stringify(raw)}: ${why}; no Envoy health check`);
  return undefined;
}

/** The protection keys of one cluster from its Service's annotations (absent keys: fulcrum's defaults). */
export function protectionOf(a: Annotations, http2: boolean, warn: (message: string) => void): AnnotatedProtection {
  const outlierDetection = outlierDetectionOf(a, warn);
  const retryPolicy = retryPolicyOf(a, warn);
  const healthCheck = healthCheckOf(a, http2, warn);
  return { ...(outlierDetection ? { outlierDetection } : {}), ...(retryPolicy ? { retryPolicy } : {}), ...(healthCheck ? { healthCheck } : {}) };
}
