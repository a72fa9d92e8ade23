import { describe, expect, it } from 'vitest';
import { OUTLIER_DETECTION_DEFAULTS, resolveOutlierDetection, resolveRetryPolicy } from '../../src/catalog/protection.js';
import type { Catalog, Cluster } from '../../src/catalog/types.js';
import { envoyType, TYPE, type XdsTypeUrl } from '../../src/xds/envoy-api.js';
import { MESSAGE_OF } from '../../src/xds/resource.js';
import { DEFAULT_GROUP, translate } from '../../src/xds/translator.js';

/** Protection settings → Envoy Cluster and RouteAction fields, decoded from the encoded bytes. */

const base: Cluster = {
  name: 'c', lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' },
  endpoints: [{ address: '10.0.0.1', port: 80, weight: 1, priority: 0, health: 'HEALTHY', locality: { region: '', zone: '', subZone: '' } }],
};

type Decoded = Record<string, unknown>;

function emitted(cluster: Cluster): { cluster: Decoded; route: Decoded } {
  const catalog: Catalog = {
    clusters: [cluster],
    listeners: [{ name: 'l', kind: 'socket', address: '0.0.0.0', port: 1, routes: [{ domain: '*', prefix: '/', cluster: cluster.name }] }],
    nodeGroups: [],
  };
  const set = translate(catalog).get(DEFAULT_GROUP);
  const decode = (type: XdsTypeUrl, name: string): Decoded => {
    const r = set?.get(type)?.get(name);
    if (!r) throw new Error(`${type} ${name} missing`);
    const t = envoyType(MESSAGE_OF[type]);
    return t.toObject(t.decode(r.bytes), { enums: String, longs: Number, defaults: false }) as Decoded;
  };
  const rc = decode(TYPE.route, 'l') as { virtual_hosts: { routes: { route: Decoded }[] }[] };
  return { cluster: decode(TYPE.cluster, cluster.name), route: rc.virtual_hosts[0]?.routes[0]?.route ?? {} };
}

function decodeAny(any: unknown): Decoded {
  const a = any as { type_url: string; value: Uint8Array };
  const t = envoyType(a.type_url.replace('type.googleapis.com/', ''));
  return t.toObject(t.decode(a.value), { enums: String, longs: Number, defaults: false }) as Decoded;
}

describe('protection translation', () => {
  it('protects a cluster that says nothing: outlier detection, retries with previous_hosts, a retry budget', () => {
    const { cluster, route } = emitted(base);
    expect(cluster.outlier_detection).toEqual({
      consecutive_5xx: { value: 5 },
      enforcing_consecutive_5xx: { value: 100 },
      enforcing_consecutive_gateway_failure: { value: 0 },
      interval: { seconds: 5, nanos: 0 },
      base_ejection_time: { seconds: 10, nanos: 0 },
      max_ejection_time: { seconds: 300, nanos: 0 },
      max_ejection_percent: { value: 50 },
      enforcing_success_rate: { value: 100 },
      success_rate_minimum_hosts: { value: 5 },
      success_rate_request_volume: { value: 100 },
      success_rate_stdev_factor: { value: 1900 },
      enforcing_failure_percentage: { value: 0 },
      failure_percentage_threshold: { value: 85 },
      failure_percentage_minimum_hosts: { value: 5 },
      failure_percentage_request_volume: { value: 50 },
    });
    expect(cluster.circuit_breakers).toEqual({ thresholds: [{ retry_budget: { budget_percent: { value: 20 }, min_retry_concurrency: { value: 10 } } }] });
    expect(cluster.health_checks).toBeUndefined();
    const retry = route.retry_policy as Decoded & { retry_host_predicate: { name: string; typed_config: unknown }[] };
    expect(retry).toMatchObject({
      retry_on: 'connect-failure,refused-stream,reset-before-request,unavailable,cancelled,retriable-status-codes',
      num_retries: { value: 2 },
      host_selection_retry_max_attempts: 5,
      retriable_status_codes: [503],
    });
    expect(retry.retry_host_predicate[0]?.name).toBe('envoy.retry_host_predicates.previous_hosts');
    expect((retry.retry_host_predicate[0]?.typed_config as { type_url: string }).type_url).toBe(
      'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate',
    );
  });

  it('turns each part off on request, and retries off with numRetries 0', () => {
    const off = emitted({ ...base, outlierDetection: { enabled: false }, retryPolicy: { enabled: false } });
    expect(off.cluster.outlier_detection).toBeUndefined();
    expect(off.cluster.circuit_breakers).toBeUndefined();
    expect(off.route.retry_policy).toBeUndefined();
    expect(emitted({ ...base, retryPolicy: { numRetries: 0 } }).route.retry_policy).toBeUndefined();
  });

  it('emits the operator\'s settings: rules on and off, stdev factor in thousandths, back-off, per-try timeout', () => {
    const { cluster, route } = emitted({
      ...base,
      outlierDetection: {
        consecutive5xx: 0, consecutiveGatewayFailure: 3, intervalMs: 1_500, baseEjectionTimeMs: 400_000, maxEjectionPercent: 34,
        successRate: { enabled: false, stdevFactor: 1.2 }, failurePercentage: { enabled: true, threshold: 40 }, splitExternalLocalOriginErrors: true,
      },
      retryPolicy: { numRetries: 3, retryOn: ['5xx', 'reset'], perTryTimeoutMs: 250, backOff: { baseIntervalMs: 10, maxIntervalMs: 100 }, budgetPercent: 12.5, minRetryConcurrency: 2 },
    });
    expect(cluster.outlier_detection).toMatchObject({
      enforcing_consecutive_5xx: { value: 0 },
      consecutive_gateway_failure: { value: 3 },
      enforcing_consecutive_gateway_failure: { value: 100 },
      interval: { seconds: 1, nanos: 500_000_000 },
      base_ejection_time: { seconds: 400, nanos: 0 },
      // Like Envoy: no explicit cap → the larger of the default cap and the base time.
      max_ejection_time: { seconds: 400, nanos: 0 },
      max_ejection_percent: { value: 34 },
      enforcing_success_rate: { value: 0 },
      success_rate_stdev_factor: { value: 1200 },
      enforcing_failure_percentage: { value: 100 },
      failure_percentage_threshold: { value: 40 },
      split_external_local_origin_errors: true,
    });
    expect((cluster.outlier_detection as Decoded).consecutive_5xx).toBeUndefined();
    expect(cluster.circuit_breakers).toEqual({ thresholds: [{ retry_budget: { budget_percent: { value: 12.5 }, min_retry_concurrency: { value: 2 } } }] });
    expect(route.retry_policy).toMatchObject({
      retry_on: '5xx,reset',
      num_retries: { value: 3 },
      per_try_timeout: { seconds: 0, nanos: 250_000_000 },
      retry_back_off: { base_interval: { seconds: 0, nanos: 10_000_000 }, max_interval: { seconds: 0, nanos: 100_000_000 } },
    });
    // Status codes only matter with retriable-status-codes.
    expect((route.retry_policy as Decoded).retriable_status_codes).toBeUndefined();
  });

  it('emits active health checks of each kind', () => {
    const http = emitted({ ...base, http2: true, healthCheck: { kind: 'http', path: '/healthz', noTrafficIntervalMs: 2_000 } }).cluster;
    expect(http.health_checks).toEqual([
      {
        timeout: { seconds: 1, nanos: 0 }, interval: { seconds: 5, nanos: 0 }, unhealthy_threshold: { value: 3 }, healthy_threshold: { value: 2 },
        no_traffic_interval: { seconds: 2, nanos: 0 }, http_health_check: { path: '/healthz', codec_client_type: 'HTTP2' },
      },
    ]);
    const grpc = emitted({ ...base, http2: true, healthCheck: { kind: 'grpc', path: 'pkg.Svc', intervalMs: 700 } }).cluster;
    expect(grpc.health_checks).toMatchObject([{ interval: { seconds: 0, nanos: 700_000_000 }, grpc_health_check: { service_name: 'pkg.Svc' } }]);
    const tcp = emitted({ ...base, healthCheck: { kind: 'tcp', unhealthyThreshold: 1, healthyThreshold: 4 } }).cluster;
    expect(tcp.health_checks).toMatchObject([{ unhealthy_threshold: { value: 1 }, healthy_threshold: { value: 4 }, tcp_health_check: {} }]);
    expect(emitted({ ...base, healthCheck: { kind: 'tcp', enabled: false } }).cluster.health_checks).toBeUndefined();
  });

  it('emits client-side WRR as load_balancing_policy with a round-robin fallback, not lb_policy', () => {
    const { cluster } = emitted({
      ...base,
      lbPolicy: 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN',
      clientSideWeightedRoundRobin: { enableOobLoadReport: false, blackoutPeriodMs: 2_000, weightUpdatePeriodMs: 250, weightExpirationPeriodMs: 60_000, oobReportingPeriodMs: 5_000, errorUtilizationPenalty: 1.5 },
    });
    expect(cluster.lb_policy).toBeUndefined();
    const policies = (cluster.load_balancing_policy as { policies: { typed_extension_config: { name: string; typed_config: unknown } }[] }).policies;
    expect(policies.map((p) => p.typed_extension_config.name)).toEqual([
      'envoy.load_balancing_policies.client_side_weighted_round_robin',
      'envoy.load_balancing_policies.round_robin',
    ]);
    expect(decodeAny(policies[0]?.typed_extension_config.typed_config)).toEqual({
      enable_oob_load_report: { value: false },
      oob_reporting_period: { seconds: 5, nanos: 0 },
      blackout_period: { seconds: 2, nanos: 0 },
      weight_expiration_period: { seconds: 60, nanos: 0 },
      weight_update_period: { seconds: 0, nanos: 250_000_000 },
      error_utilization_penalty: { value: 1.5 },
    });
  });

  it('emits LEAST_REQUEST as load_balancing_policy: least request, then wrr_locality around round robin, then round robin', () => {
    type Policies = { policies: { typed_extension_config: { name: string; typed_config: unknown } }[] };
    const names = (p: Policies): string[] => p.policies.map((x) => x.typed_extension_config.name);
    const { cluster } = emitted({ ...base, lbPolicy: 'LEAST_REQUEST', leastRequest: { choiceCount: 3 } });
    expect(cluster.lb_policy).toBeUndefined();
    expect(cluster.least_request_lb_config).toBeUndefined();
    const policy = cluster.load_balancing_policy as Policies;
    expect(names(policy)).toEqual([
      'envoy.load_balancing_policies.least_request',
      'envoy.load_balancing_policies.wrr_locality',
      'envoy.load_balancing_policies.round_robin',
    ]);
    expect(decodeAny(policy.policies[0]?.typed_extension_config.typed_config)).toEqual({ choice_count: { value: 3 } });
    const wrr = decodeAny(policy.policies[1]?.typed_extension_config.typed_config) as { endpoint_picking_policy: Policies };
    expect(names(wrr.endpoint_picking_policy)).toEqual(['envoy.load_balancing_policies.round_robin']);
    // Locality weighting goes into the typed policy, which has its own: Envoy rejects a
    // load_balancing_policy beside common_lb_config's locality_weighted_lb_config.
    const weighted = emitted({ ...base, lbPolicy: 'LEAST_REQUEST', leastRequest: { choiceCount: 2 }, localityWeighted: true }).cluster;
    const first = (weighted.load_balancing_policy as Policies).policies[0]?.typed_extension_config.typed_config;
    expect(decodeAny(first)).toEqual({ choice_count: { value: 2 }, locality_lb_config: { locality_weighted_lb_config: {} } });
    expect(weighted.common_lb_config).toBeUndefined();
  });

  describe('slowStart', () => {
    type Policies = { policies: { typed_extension_config: { name: string; typed_config: unknown } }[] };
    const first = (c: Decoded): Decoded => decodeAny((c.load_balancing_policy as Policies).policies[0]?.typed_extension_config.typed_config);
    const names = (c: Decoded): string[] => (c.load_balancing_policy as Policies).policies.map((x) => x.typed_extension_config.name);

    it('turns ROUND_ROBIN into a typed round robin carrying slow_start_config, aggression as a runtime double keyed by cluster', () => {
      const { cluster } = emitted({ ...base, slowStart: { windowMs: 15_500, aggression: 2, minWeightPercent: 5 } });
      expect(cluster.lb_policy).toBeUndefined();
      expect(names(cluster)).toEqual(['envoy.load_balancing_policies.round_robin']);
      expect(first(cluster)).toEqual({
        slow_start_config: {
          slow_start_window: { seconds: 15, nanos: 500_000_000 },
          aggression: { default_value: 2, runtime_key: 'fulcrum.slow_start.c.aggression' },
          min_weight_percent: { value: 5 },
        },
      });
      // Without slowStart, ROUND_ROBIN stays the legacy enum (what gRPC wraps in wrr_locality).
      expect(emitted(base).cluster.lb_policy).toBe('ROUND_ROBIN');
    });

    it('leaves aggression and minWeightPercent to Envoy when unset, and carries locality weighting into the typed policy', () => {
      const { cluster } = emitted({ ...base, slowStart: { windowMs: 10_000 }, localityWeighted: true });
      expect(first(cluster)).toEqual({
        slow_start_config: { slow_start_window: { seconds: 10, nanos: 0 } },
        locality_lb_config: { locality_weighted_lb_config: {} },
      });
      expect(cluster.common_lb_config).toBeUndefined();
    });

    it('goes into LEAST_REQUEST\'s policy beside choice_count, the round-robin fallbacks unchanged', () => {
      const { cluster } = emitted({ ...base, lbPolicy: 'LEAST_REQUEST', leastRequest: { choiceCount: 3 }, slowStart: { windowMs: 20_000, minWeightPercent: 0 } });
      expect(names(cluster)).toEqual([
        'envoy.load_balancing_policies.least_request',
        'envoy.load_balancing_policies.wrr_locality',
        'envoy.load_balancing_policies.round_robin',
      ]);
      // A 0 percent is sent as a present Percent (absent, Envoy's default would be 10).
      expect(first(cluster)).toEqual({
        choice_count: { value: 3 },
        slow_start_config: { slow_start_window: { seconds: 20, nanos: 0 }, min_weight_percent: { value: 0 } },
      });
    });
  });
});

describe('protection defaults', () => {
  it('merge partial settings over the defaults, nested blocks included', () => {
    const od = resolveOutlierDetection({ successRate: { minimumHosts: 3 } });
    expect(od?.successRate).toEqual({ ...OUTLIER_DETECTION_DEFAULTS.successRate, minimumHosts: 3 });
    expect(od?.consecutive5xx).toBe(5);
    expect(resolveRetryPolicy({ numRetries: 1 })?.retryOn).toContain('connect-failure');
    expect(resolveRetryPolicy({ enabled: false, numRetries: 3 })).toBeUndefined();
  });
});
