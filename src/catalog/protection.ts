/**
 * Envoy-side protection of a cluster: passive outlier detection, route retries (with a retry
 * budget) and optional active health checks, plus the settings of Envoy's ORCA-driven
 * client-side weighted round robin. The domain keeps what the operator wrote (every field
 * optional); `resolve*` fill in fulcrum's defaults, so a default can improve without rewriting
 * stored clusters, and a cluster that says nothing is protected all the same.
 *
 * Why these defaults (a dead backend kept 17–25% of requests for a minute with none of this):
 * - Outlier detection ON. 5 consecutive 5xx (Envoy's default; connect failures count, since
 *   local-origin errors are not split) ejects a refused port after a handful of requests. The
 *   interval is 5 s (Envoy: 10 s) and the first ejection 10 s (Envoy: 30 s), so a revived backend
 *   is back within ~15 s; each further ejection lasts one base time longer, capped at 300 s, so a
 *   flapping one stays out longer and longer. At most 50% of a cluster is ejected (Envoy's 10%
 *   ejects nothing in a cluster of fewer than 10 hosts, and 50% never empties one). Success-rate
 *   detection keeps Envoy's defaults (≥ 5 hosts, ≥ 100 requests, 1.9 stdev); failure-percentage
 *   detection (an absolute threshold, which could eject healthy hosts during a fleet-wide
 *   incident) is off unless asked for.
 * - Retries ON, Istio's default policy plus `reset-before-request`: 2 retries on connect-failure,
 *   refused-stream, a reset before the request was sent (a pooled connection the backend just
 *   closed), gRPC unavailable/cancelled and HTTP 503, never on the host that just failed
 *   (previous_hosts, 5 selection attempts). These are failures where the request was not (or, for
 *   503, said not to be) processed, so they are safe for non-idempotent requests; `5xx`, `reset`
 *   and `gateway-error` may repeat a request that had effects, and are the operator's call.
 *   A retry budget of 20% of the cluster's active requests keeps retries from amplifying an
 *   overload; at least 10 concurrent retries are always allowed (with Envoy's 3, a quiet cluster
 *   lost ~1% of requests to retry overflow while retry back-off held its few retries).
 * - Active health checks OFF: fulcrum's own probes already gate endpoint health for every proxy
 *   at once; Envoy's checks multiply probe traffic by the number of proxies.
 */

export interface SuccessRateSpec {
  readonly enabled?: boolean;
  readonly minimumHosts?: number;
  readonly requestVolume?: number;
  /** Ejects a host whose success rate is below mean − stdevFactor × stdev (Envoy's factor / 1000). */
  readonly stdevFactor?: number;
}

export interface FailurePercentageSpec {
  readonly enabled?: boolean;
  /** Ejects a host whose failure percentage reaches this (0..100). */
  readonly threshold?: number;
  readonly minimumHosts?: number;
  readonly requestVolume?: number;
}

export interface OutlierDetectionSpec {
  readonly enabled?: boolean;
  /** Consecutive 5xx (and, unless split, local-origin failures) that eject a host; 0 turns the rule off. */
  readonly consecutive5xx?: number;
  /** Consecutive 502/503/504 (and local-origin failures) that eject a host; 0 (default) turns the rule off. */
  readonly consecutiveGatewayFailure?: number;
  readonly intervalMs?: number;
  readonly baseEjectionTimeMs?: number;
  readonly maxEjectionTimeMs?: number;
  readonly maxEjectionPercent?: number;
  readonly successRate?: SuccessRateSpec;
  readonly failurePercentage?: FailurePercentageSpec;
  readonly splitExternalLocalOriginErrors?: boolean;
}

/** Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on` conditions. */
export const RETRY_ON = [
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'envoy-ratelimited', 'retriable-4xx',
  'refused-stream', 'retriable-status-codes', 'retriable-headers', 'http3-post-connect-failure',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
] as const;
export type RetryOn = (typeof RETRY_ON)[number];

export interface RetryPolicySpec {
  readonly enabled?: boolean;
  readonly numRetries?: number;
  readonly retryOn?: readonly RetryOn[];
  /** Used with `retriable-status-codes` in retryOn. */
  readonly retriableStatusCodes?: readonly number[];
  readonly perTryTimeoutMs?: number;
  /** How many hosts Envoy may pick before settling on one it already tried. */
  readonly hostSelectionMaxAttempts?: number;
  /** Retry budget: concurrent retries allowed, as a percentage of the cluster's active requests. */
  readonly budgetPercent?: number;
  /** Concurrent retries always allowed, whatever the budget says. */
  readonly minRetryConcurrency?: number;
  readonly backOff?: { readonly baseIntervalMs: number; readonly maxIntervalMs?: number };
}

export interface HealthCheckSpec {
  readonly enabled?: boolean;
  readonly kind: 'http' | 'tcp' | 'grpc';
  /** HTTP path (http, default '/') or gRPC service name (grpc, default '' = the whole server). */
  readonly path?: string;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  readonly unhealthyThreshold?: number;
  readonly healthyThreshold?: number;
  /** Interval while the cluster carries no traffic (Envoy's default: 60 s). */
  readonly noTrafficIntervalMs?: number;
}

/** Envoy's `client_side_weighted_round_robin` settings; absent fields take Envoy's defaults. */
export interface ClientSideWeightedRoundRobinSpec {
  readonly enableOobLoadReport?: boolean;
  readonly oobReportingPeriodMs?: number;
  readonly blackoutPeriodMs?: number;
  readonly weightExpirationPeriodMs?: number;
  readonly weightUpdatePeriodMs?: number;
  readonly errorUtilizationPenalty?: number;
}

export interface ResolvedOutlierDetection {
  readonly consecutive5xx: number;
  readonly consecutiveGatewayFailure: number;
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionTimeMs: number;
  readonly maxEjectionPercent: number;
  readonly successRate: Required<SuccessRateSpec>;
  readonly failurePercentage: Required<FailurePercentageSpec>;
  readonly splitExternalLocalOriginErrors: boolean;
}

export interface ResolvedRetryPolicy {
  readonly numRetries: number;
  readonly retryOn: readonly RetryOn[];
  readonly retriableStatusCodes: readonly number[];
  readonly perTryTimeoutMs?: number;
  readonly hostSelectionMaxAttempts: number;
  readonly budgetPercent: number;
  readonly minRetryConcurrency: number;
  readonly backOff?: { readonly baseIntervalMs: number; readonly maxIntervalMs?: number };
}

export type ResolvedHealthCheck = Required<Omit<HealthCheckSpec, 'enabled' | 'noTrafficIntervalMs'>> & Pick<HealthCheckSpec, 'noTrafficIntervalMs'>;

export const OUTLIER_DETECTION_DEFAULTS: ResolvedOutlierDetection = {
  consecutive5xx: 5,
  consecutiveGatewayFailure: 0,
  intervalMs: 5_000,
  baseEjectionTimeMs: 10_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 50,
  successRate: { enabled: true, minimumHosts: 5, requestVolume: 100, stdevFactor: 1.9 },
  failurePercentage: { enabled: false, threshold: 85, minimumHosts: 5, requestVolume: 50 },
  splitExternalLocalOriginErrors: false,
};

export const RETRY_POLICY_DEFAULTS: ResolvedRetryPolicy = {
  numRetries: 2,
  retryOn: ['connect-failure', 'refused-stream', 'reset-before-request', 'unavailable', 'cancelled', 'retriable-status-codes'],
  retriableStatusCodes: [503],
  hostSelectionMaxAttempts: 5,
  budgetPercent: 20,
  minRetryConcurrency: 10,
};

export const HEALTH_CHECK_DEFAULTS = { intervalMs: 5_000, timeoutMs: 1_000, unhealthyThreshold: 3, healthyThreshold: 2 } as const;

/** fulcrum's own probes (src/signals/prober.ts): with 3 failures to go out, a dead endpoint leaves in ~6 s. */
export const PROBE_DEFAULTS = { intervalMs: 2_000, timeoutMs: 1_000 } as const;

/** The outlier detection to emit, or undefined when the operator turned it off. */
export function resolveOutlierDetection(spec: OutlierDetectionSpec | undefined): ResolvedOutlierDetection | undefined {
  if (spec?.enabled === false) return undefined;
  const d = OUTLIER_DETECTION_DEFAULTS;
  const { enabled: _e, successRate, failurePercentage, ...rest } = spec ?? {};
  const base = rest.baseEjectionTimeMs ?? d.baseEjectionTimeMs;
  return {
    ...d,
    // Like Envoy: without an explicit cap, the cap is the default or the base time, whichever is larger.
    maxEjectionTimeMs: Math.max(d.maxEjectionTimeMs, base),
    ...rest,
    successRate: { ...d.successRate, ...successRate },
    failurePercentage: { ...d.failurePercentage, ...failurePercentage },
  };
}

/** The retry policy to emit on routes to the cluster (and its budget), or undefined when off. */
export function resolveRetryPolicy(spec: RetryPolicySpec | undefined): ResolvedRetryPolicy | undefined {
  if (spec?.enabled === false || spec?.numRetries === 0) return undefined;
  const { enabled: _e, ...rest } = spec ?? {};
  return { ...RETRY_POLICY_DEFAULTS, ...rest };
}

/** The active health check to emit, or undefined (the default: fulcrum probes instead). */
export function resolveHealthCheck(spec: HealthCheckSpec | undefined): ResolvedHealthCheck | undefined {
  if (!spec || spec.enabled === false) return undefined;
  const { enabled: _e, ...rest } = spec;
  return { ...HEALTH_CHECK_DEFAULTS, path: spec.kind === 'http' ? '/' : '', ...rest };
}
