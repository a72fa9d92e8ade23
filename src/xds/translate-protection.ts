import {
  resolveHealthCheck,
  resolveOutlierDetection,
  resolveRetryPolicy,
  type ClientSideWeightedRoundRobinSpec,
  type ResolvedRetryPolicy,
} from '../catalog/protection.js';
import type { Cluster, SlowStartConfig } from '../catalog/types.js';
import { anyOf } from './envoy-api.js';
import { duration } from './proto-values.js';

/**
 * A cluster's Envoy-side protection (src/catalog/protection.ts) → the fields of Envoy's `Cluster`
 * (outlier_detection, circuit_breakers.retry_budget, health_checks, load_balancing_policy) and of
 * the `RouteAction`s that target it (retry_policy).
 */

const CSWRR = 'envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin';
const ROUND_ROBIN = 'envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin';
const LEAST_REQUEST = 'envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest';
const RANDOM = 'envoy.extensions.load_balancing_policies.random.v3.Random';
const WRR_LOCALITY = 'envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality';
const MAGLEV = 'envoy.extensions.load_balancing_policies.maglev.v3.Maglev';
const RING_HASH = 'envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash';
const PREVIOUS_HOSTS = 'envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate';

const u32 = (value: number): { value: number } => ({ value });
/** Envoy's enforcing_* percentages: a rule is on (100) or off (0). */
const enforcing = (on: boolean): { value: number } => u32(on ? 100 : 0);

/** The cluster fields protection adds, to spread into the emitted Cluster. */
export function clusterProtection(c: Cluster): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const od = resolveOutlierDetection(c.outlierDetection);
  if (od) {
    out.outlier_detection = {
      ...(od.consecutive5xx > 0 ? { consecutive_5xx: u32(od.consecutive5xx) } : {}),
      enforcing_consecutive_5xx: enforcing(od.consecutive5xx > 0),
      ...(od.consecutiveGatewayFailure > 0 ? { consecutive_gateway_failure: u32(od.consecutiveGatewayFailure) } : {}),
      enforcing_consecutive_gateway_failure: enforcing(od.consecutiveGatewayFailure > 0),
      interval: duration(od.intervalMs),
      base_ejection_time: duration(od.baseEjectionTimeMs),
      max_ejection_time: duration(od.maxEjectionTimeMs),
      max_ejection_percent: u32(od.maxEjectionPercent),
      enforcing_success_rate: enforcing(od.successRate.enabled),
      success_rate_minimum_hosts: u32(od.successRate.minimumHosts),
      success_rate_request_volume: u32(od.successRate.requestVolume),
      success_rate_stdev_factor: u32(Math.round(od.successRate.stdevFactor * 1000)),
      enforcing_failure_percentage: enforcing(od.failurePercentage.enabled),
      failure_percentage_threshold: u32(od.failurePercentage.threshold),
      failure_percentage_minimum_hosts: u32(od.failurePercentage.minimumHosts),
      failure_percentage_request_volume: u32(od.failurePercentage.requestVolume),
      ...(od.splitExternalLocalOriginErrors ? { split_external_local_origin_errors: true } : {}),
    };
  }
  const retry = resolveRetryPolicy(c.retryPolicy);
  if (retry) {
    // The budget replaces the fixed max_retries breaker (3 concurrent retries per cluster by default).
    out.circuit_breakers = {
      thresholds: [{ retry_budget: { budget_percent: { value: retry.budgetPercent }, min_retry_concurrency: u32(retry.minRetryConcurrency) } }],
    };
  }
  const hc = resolveHealthCheck(c.healthCheck);
  if (hc) {
    const check =
      hc.kind === 'http'
        ? { http_health_check: { path: hc.path, ...(c.http2 ? { codec_client_type: 'HTTP2' } : {}) } }
        : hc.kind === 'grpc'
          ? { grpc_health_check: hc.path ? { service_name: hc.path } : {} }
          : { tcp_health_check: {} };
    out.health_checks = [
      {
        timeout: duration(hc.timeoutMs),
        interval: duration(hc.intervalMs),
        unhealthy_threshold: u32(hc.unhealthyThreshold),
        healthy_threshold: u32(hc.healthyThreshold),
        ...(hc.noTrafficIntervalMs !== undefined ? { no_traffic_interval: duration(hc.noTrafficIntervalMs) } : {}),
        ...check,
      },
    ];
    // Envoy otherwise keeps a host removed from EDS for as long as its health checks pass, and an
    // endpoint fulcrum's probes or outlier detector take out is removed (translate-clusters.ts leftOut).
    out.ignore_health_on_host_removal = true;
  }
  return out;
}

function cswrrConfig(s: ClientSideWeightedRoundRobinSpec): Record<string, unknown> {
  const ms = (v: number | undefined, field: string) => (v !== undefined ? { [field]: duration(v) } : {});
  return {
    ...(s.enableOobLoadReport !== undefined ? { enable_oob_load_report: { value: s.enableOobLoadReport } } : {}),
    ...ms(s.oobReportingPeriodMs, 'oob_reporting_period'),
    ...ms(s.blackoutPeriodMs, 'blackout_period'),
    ...ms(s.weightExpirationPeriodMs, 'weight_expiration_period'),
    ...ms(s.weightUpdatePeriodMs, 'weight_update_period'),
    ...(s.errorUtilizationPenalty !== undefined ? { error_utilization_penalty: { value: s.errorUtilizationPenalty } } : {}),
  };
}

/** A load_balancing_policy entry for round robin (by default the fallback every gRPC client has). */
const roundRobinEntry = (config: Record<string, unknown> = {}): Record<string, unknown> => ({
  typed_extension_config: { name: 'envoy.load_balancing_policies.round_robin', typed_config: anyOf(ROUND_ROBIN, config) },
});

/**
 * `load_balancing_policy` for CLIENT_SIDE_WEIGHTED_ROUND_ROBIN. Clients take the first policy
 * they support: Envoy takes client-side WRR; proxyless gRPC (grpc-js without
 * GRPC_EXPERIMENTAL_XDS_WRR_LB) falls back to round robin instead of rejecting the cluster.
 */
export function clientSideWrrPolicy(s: ClientSideWeightedRoundRobinSpec = {}): Record<string, unknown> {
  return {
    policies: [
      { typed_extension_config: { name: 'envoy.load_balancing_policies.client_side_weighted_round_robin', typed_config: anyOf(CSWRR, cswrrConfig(s)) } },
      roundRobinEntry(),
    ],
  };
}

/** A typed policy's `locality_lb_config` carrying the cluster's locality weighting (see leastRequestPolicy). */
const localityLbConfig = (localityWeighted: boolean): Record<string, unknown> =>
  localityWeighted ? { locality_lb_config: { locality_weighted_lb_config: {} } } : {};

/**
 * Envoy's policy first, then what gRPC builds for `lb_policy: ROUND_ROBIN`: wrr_locality around
 * round robin (grpc-js, grpc-go), then round robin alone.
 */
function withRoundRobinFallback(name: string, typeUrl: string, config: Record<string, unknown>): Record<string, unknown> {
  const first = { typed_extension_config: { name, typed_config: anyOf(typeUrl, config) } };
  const wrrLocality = {
    typed_extension_config: {
      name: 'envoy.load_balancing_policies.wrr_locality',
      typed_config: anyOf(WRR_LOCALITY, { endpoint_picking_policy: { policies: [roundRobinEntry()] } }),
    },
  };
  return { policies: [first, wrrLocality, roundRobinEntry()] };
}

/**
 * Envoy's `slow_start_config` (RoundRobin, LeastRequest). Envoy reads `aggression` as a runtime
 * double, whose runtime_key it requires: a per-cluster key lets an operator retune one cluster's
 * ramp in Envoy's runtime without fulcrum (unset there, the default applies).
 */
function slowStartConfig(s: SlowStartConfig, cluster: string): Record<string, unknown> {
  return {
    slow_start_config: {
      slow_start_window: duration(s.windowMs),
      ...(s.aggression !== undefined ? { aggression: { default_value: s.aggression, runtime_key: `fulcrum.slow_start.${cluster}.aggression` } } : {}),
      ...(s.minWeightPercent !== undefined ? { min_weight_percent: { value: s.minWeightPercent } } : {}),
    },
  };
}

/** Where an Envoy typed policy takes slow start: the cluster's name (for the runtime key) and its settings. */
export interface SlowStartOf {
  readonly cluster: string;
  readonly slowStart: SlowStartConfig | undefined;
}

const slowStartOf = (s: SlowStartOf | undefined): Record<string, unknown> => (s?.slowStart ? slowStartConfig(s.slowStart, s.cluster) : {});

/**
 * `load_balancing_policy` for ROUND_ROBIN with slow start, which only the typed RoundRobin carries
 * (a cluster without it keeps `lb_policy: ROUND_ROBIN`). Envoy's form only: gRPC clients are sent
 * the cluster without slow start (grpc-clusters.ts says why).
 */
export function roundRobinPolicy(slowStart: SlowStartOf, localityWeighted: boolean): Record<string, unknown> {
  return { policies: [roundRobinEntry({ ...slowStartOf(slowStart), ...localityLbConfig(localityWeighted) })] };
}

/**
 * `load_balancing_policy` for LEAST_REQUEST. Clients take the first entry they support, so one
 * Cluster serves all three kinds without a NACK (the legacy `lb_policy: LEAST_REQUEST` made
 * proxyless grpc-js reject the whole Cluster):
 * - Envoy and grpc-go take least_request. Envoy weighs each host by its weight ÷ its active
 *   requests when the weights differ; `localityWeighted` carries the cluster's locality weighting
 *   into it (a typed policy has its own locality_lb_config; clusterResource leaves
 *   common_lb_config's out). grpc-go ignores endpoint weights
 *   (gRFC A48) and, without wrr_locality around it, locality weights too.
 * - grpc-js, which has no least request, takes wrr_locality around round robin: what it builds for
 *   `lb_policy: ROUND_ROBIN`. Not first: Envoy 1.40 takes wrr_locality too, and then did not
 *   pick by requests in flight (test/e2e/envoy-suite.ts).
 *
 * `activeRequestBias`: Envoy's exponent on (active requests + 1) when the weights differ (unset:
 * Envoy's 1). translate-clusters.ts sets it for adaptive clusters (ADAPTIVE_ACTIVE_REQUEST_BIAS).
 */
export function leastRequestPolicy(choiceCount: number | undefined, localityWeighted: boolean, slowStart?: SlowStartOf, activeRequestBias?: number): Record<string, unknown> {
  return withRoundRobinFallback('envoy.load_balancing_policies.least_request', LEAST_REQUEST, {
    // Unset: Envoy's default, two choices.
    ...(choiceCount !== undefined ? { choice_count: u32(choiceCount) } : {}),
    // A runtime key of fulcrum's own: nothing sets it, so the value is the default's.
    ...(activeRequestBias !== undefined ? { active_request_bias: { default_value: activeRequestBias, runtime_key: 'fulcrum.least_request.active_request_bias' } } : {}),
    ...localityLbConfig(localityWeighted),
    // grpc-go reads choice_count alone; grpc-js takes the fallback.
    ...slowStartOf(slowStart),
  });
}

/**
 * `load_balancing_policy` for RANDOM. Envoy takes random; gRPC, which has no random policy and
 * NACKed the legacy `lb_policy: RANDOM` (grpc-js "unsupported lb_policy", grpc-go "unexpected
 * lbPolicy RANDOM"), takes the round-robin fallback, as for LEAST_REQUEST.
 */
export function randomPolicy(localityWeighted: boolean): Record<string, unknown> {
  return withRoundRobinFallback('envoy.load_balancing_policies.random', RANDOM, localityLbConfig(localityWeighted));
}

/**
 * `load_balancing_policy` for MAGLEV (auto's choice for session affinity at 1000+ endpoints).
 * Clients take the first entry they support: Envoy takes Maglev; gRPC, which has no Maglev and
 * NACKed the legacy `lb_policy: MAGLEV` (grpc-go "unexpected lbPolicy MAGLEV", grpc-js
 * "unsupported lb_policy"), takes ring hash, which hashes the same route hash policy, so affinity
 * holds. `localityWeighted`: the endpoint weights are rescaled per locality (ring-hash-localities.ts)
 * and Envoy scales them back by the locality weights, as for RING_HASH (common_lb_config cannot
 * sit beside a load_balancing_policy). The ring hash entry leaves its ring sizes to gRPC's defaults
 * (1,024 up, capped at 4,096 by grpc-go): grpc-js-xds 1.14 NACKs a typed RingHash that sets
 * minimum_ring_size ("min_ring_size must be a number": it reads the UInt64Value as a Long).
 */
export function maglevPolicy(tableSize: number, localityWeighted: boolean): Record<string, unknown> {
  const localityWeighting = localityWeighted ? { locality_weighted_lb_config: {} } : {};
  const maglev = {
    typed_extension_config: {
      name: 'envoy.load_balancing_policies.maglev',
      typed_config: anyOf(MAGLEV, { table_size: { value: tableSize }, ...localityWeighting }),
    },
  };
  const ringHash = {
    typed_extension_config: {
      name: 'envoy.load_balancing_policies.ring_hash',
      typed_config: anyOf(RING_HASH, { hash_function: 'XX_HASH', ...localityWeighting }),
    },
  };
  return { policies: [maglev, ringHash] };
}

/** A route's `retry_policy` for a cluster's resolved retry settings. */
export function routeRetryPolicy(r: ResolvedRetryPolicy): Record<string, unknown> {
  const statusCodes = r.retryOn.includes('retriable-status-codes') ? r.retriableStatusCodes : [];
  return {
    retry_on: r.retryOn.join(','),
    num_retries: u32(r.numRetries),
    ...(r.perTryTimeoutMs !== undefined ? { per_try_timeout: duration(r.perTryTimeoutMs) } : {}),
    retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: anyOf(PREVIOUS_HOSTS, {}) }],
    host_selection_retry_max_attempts: r.hostSelectionMaxAttempts,
    ...(statusCodes.length > 0 ? { retriable_status_codes: [...statusCodes] } : {}),
    ...(r.backOff
      ? {
          retry_back_off: {
            base_interval: duration(r.backOff.baseIntervalMs),
            ...(r.backOff.maxIntervalMs !== undefined ? { max_interval: duration(r.backOff.maxIntervalMs) } : {}),
          },
        }
      : {}),
  };
}

/**
 * Each cluster's route retry policy, by cluster object: the stores keep an unchanged cluster the
 * same object, so a publish after one write resolves one policy, not one per cluster (a pass over
 * 1,000 clusters on every publish was a third of the translation of one endpoint write at 100k).
 */
const retryPolicyMemo = new WeakMap<Cluster, Record<string, unknown> | null>();

function retryPolicyOf(c: Cluster): Record<string, unknown> | null {
  let policy = retryPolicyMemo.get(c);
  if (policy === undefined) {
    const r = resolveRetryPolicy(c.retryPolicy);
    policy = r ? routeRetryPolicy(r) : null;
    retryPolicyMemo.set(c, policy);
  }
  return policy;
}

/** Per cluster name, the retry policy its routes carry (clusters with retries off are absent). */
export function retryPolicies(clusters: readonly Cluster[]): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  for (const c of clusters) {
    const policy = retryPolicyOf(c);
    if (policy) out.set(c.name, policy);
  }
  return out;
}
