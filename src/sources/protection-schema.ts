import { Type, type Static } from '@sinclair/typebox';
import { OUTLIER_DETECTION_DEFAULTS, RETRY_ON, RETRY_POLICY_DEFAULTS } from '../catalog/protection.js';
import { StringEnum } from './string-enum.js';

/**
 * Config-file schema of a cluster's Envoy-side protection (outlierDetection, retryPolicy,
 * healthCheck, clientSideWeightedRoundRobin) and the checks a schema cannot express. Ranges are
 * Envoy's own (percentages 0..100, durations > 0 where Envoy requires it), so fulcrum refuses
 * what every proxy would NACK; upper bounds on counts and durations are sanity limits.
 */

const DAY_MS = 86_400_000;
/** A duration Envoy requires to be > 0. */
const PositiveMs = Type.Integer({ minimum: 1, maximum: DAY_MS });
const NonNegativeMs = Type.Integer({ minimum: 0, maximum: DAY_MS });
const Percent = Type.Integer({ minimum: 0, maximum: 100 });
const Count = Type.Integer({ minimum: 0, maximum: 1_000_000 });

export const OutlierDetectionSchema = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    consecutive5xx: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
    consecutiveGatewayFailure: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
    intervalMs: Type.Optional(PositiveMs),
    baseEjectionTimeMs: Type.Optional(PositiveMs),
    maxEjectionTimeMs: Type.Optional(PositiveMs),
    maxEjectionPercent: Type.Optional(Percent),
    successRate: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean()),
          minimumHosts: Type.Optional(Count),
          requestVolume: Type.Optional(Count),
          stdevFactor: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
        },
        { additionalProperties: false },
      ),
    ),
    failurePercentage: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean()),
          threshold: Type.Optional(Percent),
          minimumHosts: Type.Optional(Count),
          requestVolume: Type.Optional(Count),
        },
        { additionalProperties: false },
      ),
    ),
    splitExternalLocalOriginErrors: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const RetryPolicySchema = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    // 0 retries is the same as enabled: false.
    numRetries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
    retryOn: Type.Optional(Type.Array(StringEnum(RETRY_ON), { minItems: 1, uniqueItems: true })),
    retriableStatusCodes: Type.Optional(Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { minItems: 1, maxItems: 50, uniqueItems: true })),
    perTryTimeoutMs: Type.Optional(PositiveMs),
    hostSelectionMaxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    budgetPercent: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    minRetryConcurrency: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    backOff: Type.Optional(
      Type.Object(
        // Envoy requires base_interval ≥ 1 ms.
        { baseIntervalMs: PositiveMs, maxIntervalMs: Type.Optional(PositiveMs) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const HealthCheckSchema = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    kind: StringEnum(['http', 'tcp', 'grpc'] as const),
    path: Type.Optional(Type.String({ maxLength: 1024, pattern: '^[^\\x00-\\x1f\\x7f]*$' })),
    intervalMs: Type.Optional(PositiveMs),
    timeoutMs: Type.Optional(PositiveMs),
    unhealthyThreshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000 })),
    healthyThreshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000 })),
    noTrafficIntervalMs: Type.Optional(PositiveMs),
  },
  { additionalProperties: false },
);

export const ClientSideWeightedRoundRobinSchema = Type.Object(
  {
    enableOobLoadReport: Type.Optional(Type.Boolean()),
    oobReportingPeriodMs: Type.Optional(NonNegativeMs),
    blackoutPeriodMs: Type.Optional(NonNegativeMs),
    weightExpirationPeriodMs: Type.Optional(NonNegativeMs),
    weightUpdatePeriodMs: Type.Optional(NonNegativeMs),
    errorUtilizationPenalty: Type.Optional(Type.Number({ minimum: 0, maximum: 1_000_000 })),
  },
  { additionalProperties: false },
);

/** The cluster keys this file adds to the config file's cluster entry. */
export const protectionProperties = {
  outlierDetection: Type.Optional(OutlierDetectionSchema),
  retryPolicy: Type.Optional(RetryPolicySchema),
  healthCheck: Type.Optional(HealthCheckSchema),
  clientSideWeightedRoundRobin: Type.Optional(ClientSideWeightedRoundRobinSchema),
};

export interface ProtectionEntry {
  readonly lbPolicy?: string;
  readonly http2?: boolean;
  readonly localityWeighted?: boolean;
  readonly weighting?: { readonly policy: string };
  readonly outlierDetection?: Static<typeof OutlierDetectionSchema>;
  readonly retryPolicy?: Static<typeof RetryPolicySchema>;
  readonly healthCheck?: Static<typeof HealthCheckSchema>;
  readonly clientSideWeightedRoundRobin?: Static<typeof ClientSideWeightedRoundRobinSchema>;
}

interface Problem {
  readonly path: string;
  readonly message: string;
}

const CSWRR = 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN';

/** What the schema cannot say about one cluster entry at JSON pointer `at`. */
export function checkProtection(c: ProtectionEntry, at: string): Problem[] {
  const problems: Problem[] = [];
  const add = (path: string, message: string) => problems.push({ path: `${at}/${path}`, message });
  const policy = c.lbPolicy ?? 'ROUND_ROBIN';
  if (c.clientSideWeightedRoundRobin && policy !== CSWRR) add('clientSideWeightedRoundRobin', `only valid with lbPolicy ${CSWRR} (is ${policy})`);
  if (policy === CSWRR) {
    // Envoy computes the host weights from ORCA reports and ignores the EDS weights fulcrum would publish.
    if (c.weighting && c.weighting.policy !== 'static')
      add('weighting/policy', `${CSWRR} weighs hosts in Envoy; fulcrum's weighting must be static (is ${c.weighting.policy})`);
    if (c.localityWeighted) add('localityWeighted', `not supported with lbPolicy ${CSWRR}`);
  }

  const od = c.outlierDetection;
  if (od?.maxEjectionTimeMs !== undefined && od.maxEjectionTimeMs < (od.baseEjectionTimeMs ?? OUTLIER_DETECTION_DEFAULTS.baseEjectionTimeMs))
    add('outlierDetection/maxEjectionTimeMs', 'must not be less than baseEjectionTimeMs');

  const r = c.retryPolicy;
  if (r) {
    const retryOn = r.retryOn ?? RETRY_POLICY_DEFAULTS.retryOn;
    if (r.retriableStatusCodes && !retryOn.includes('retriable-status-codes'))
      add('retryPolicy/retriableStatusCodes', "only used when retryOn includes 'retriable-status-codes'");
    const b = r.backOff;
    if (b?.maxIntervalMs !== undefined && b.maxIntervalMs < b.baseIntervalMs) add('retryPolicy/backOff/maxIntervalMs', 'must not be less than baseIntervalMs');
  }

  const hc = c.healthCheck;
  if (hc) {
    if (hc.kind === 'grpc' && c.http2 !== true) add('healthCheck/kind', 'gRPC health checks need an HTTP/2 cluster (http2: true)');
    if (hc.kind === 'tcp' && hc.path !== undefined) add('healthCheck/path', 'only valid with kind http or grpc');
    if (hc.kind === 'http' && hc.path !== undefined && !hc.path.startsWith('/')) add('healthCheck/path', "an HTTP path starts with '/'");
  }
  return problems;
}
