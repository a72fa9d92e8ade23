import { describe, expect, it } from 'vitest';
import type { Catalog, Cluster } from '../../src/catalog/types.js';
import { envoyType, TYPE, type XdsTypeUrl } from '../../src/xds/envoy-api.js';
import { MESSAGE_OF } from '../../src/xds/resource.js';
import { DEFAULT_GROUP, type ResourceSet } from '../../src/xds/resource-set.js';
import { translate, Translator } from '../../src/xds/translator.js';

const endpoint = (port: number, extra: Partial<Cluster['endpoints'][number]> = {}) => ({
  address: '10.0.0.1', port, weight: 1, priority: 0, health: 'HEALTHY' as const,
  locality: { region: 'eu', zone: 'a', subZone: '' }, ...extra,
});

// Route retries are on by default; this fixture's route expectations are about grouping, so they are off here.
const noRetries = { retryPolicy: { enabled: false } };

const catalog: Catalog = {
  clusters: [
    { name: 'rr', ...noRetries, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1500, http2: true, weighting: { kind: 'static' as const }, endpoints: [endpoint(1, { weight: 3 }), endpoint(2, { priority: 1, locality: { region: 'us', zone: 'b', subZone: 'x' }, health: 'DRAINING' })] },
    { name: 'lr', ...noRetries, lbPolicy: 'LEAST_REQUEST', leastRequest: { choiceCount: 4 }, connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' as const }, endpoints: [] },
    { name: 'rh', ...noRetries, lbPolicy: 'RING_HASH', ringHash: { virtualNodesPerHost: 160, hashFunction: 'XX_HASH' }, connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' as const }, endpoints: [endpoint(1), endpoint(2), endpoint(3)] },
    { name: 'mg', lbPolicy: 'MAGLEV', maglev: { tableSize: 65537 }, connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' as const }, endpoints: [] },
  ],
  listeners: [
    {
      name: 'ingress', kind: 'socket', address: '0.0.0.0', port: 10000,
      routes: [
        { domain: '*', prefix: '/s', cluster: 'rh', hashPolicy: { header: 'x-user' } },
        { domain: 'api.example.com', prefix: '/', cluster: 'lr', hashPolicy: { cookie: { name: 'sid', ttlSeconds: 30 } }, timeoutMs: 2500 },
        { domain: '*', prefix: '/', cluster: 'rr' },
      ],
    },
    { name: 'greeter', kind: 'api', address: '', port: 0, routes: [{ domain: '*', prefix: '/', cluster: 'rr' }] },
  ],
  nodeGroups: [{ nodeCluster: 'edge', listeners: ['greeter'], clusters: ['mg'] }],
};

function decode(set: ResourceSet | undefined, type: XdsTypeUrl, name: string): Record<string, unknown> {
  const r = set?.get(type)?.get(name);
  if (!r) throw new Error(`${type} ${name} missing`);
  const t = envoyType(MESSAGE_OF[type]);
  return t.toObject(t.decode(r.bytes), { enums: String, longs: Number, defaults: false }) as Record<string, unknown>;
}

function decodeAny(any: unknown): Record<string, unknown> {
  const a = any as { type_url: string; value: Uint8Array };
  const t = envoyType(a.type_url.replace('type.googleapis.com/', ''));
  return t.toObject(t.decode(a.value), { enums: String, longs: Number, defaults: false }) as Record<string, unknown>;
}

/** The hash_policy of each route of a route configuration's first virtual host. */
function hashPolicies(set: ResourceSet | undefined, name: string): unknown[] {
  const [vhost] = decode(set, TYPE.route, name).virtual_hosts as { routes: { route: { hash_policy?: unknown } }[] }[];
  return (vhost?.routes ?? []).map((r) => r.route.hash_policy);
}

describe('translator', () => {
  const groups = translate(catalog);
  const all = groups.get(DEFAULT_GROUP);

  it('LEAST_REQUEST with adaptive weights: active_request_bias 2 (the requests in flight weigh more against the weight); static weights keep Envoy\'s 1', () => {
    const lrOf = (weighting: Cluster['weighting']): unknown => {
      const c: Cluster = { name: 'lr2', lbPolicy: 'LEAST_REQUEST', connectTimeoutMs: 1000, http2: false, weighting, endpoints: [] };
      const out = decode(translate({ ...catalog, clusters: [c], listeners: [], nodeGroups: [] }).get(DEFAULT_GROUP), TYPE.cluster, 'lr2') as { load_balancing_policy: { policies: { typed_extension_config: { typed_config: unknown } }[] } };
      return decodeAny(out.load_balancing_policy.policies[0]?.typed_extension_config.typed_config);
    };
    expect(lrOf({ kind: 'pid', setpoint: 'mean' })).toEqual({ active_request_bias: { default_value: 2, runtime_key: 'fulcrum.least_request.active_request_bias' } });
    expect(lrOf({ kind: 'static' })).toEqual({});
  });

  it('emits EDS-over-ADS clusters with their LB policy and its config', () => {
    expect(decode(all, TYPE.cluster, 'rr')).toMatchObject({
      name: 'rr', type: 'EDS', lb_policy: 'ROUND_ROBIN', connect_timeout: { seconds: 1, nanos: 500_000_000 },
      eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
    });
    // LEAST_REQUEST as an extension policy (translate-protection.test.ts has its entries).
    const lr = decode(all, TYPE.cluster, 'lr') as { lb_policy?: string; load_balancing_policy: { policies: { typed_extension_config: { typed_config: unknown } }[] } };
    expect(lr.lb_policy).toBeUndefined();
    expect(decodeAny(lr.load_balancing_policy.policies[0]?.typed_extension_config.typed_config)).toEqual({ choice_count: { value: 4 } });
    // 160 virtual nodes × 3 hosts = 480 → next power of two.
    expect(decode(all, TYPE.cluster, 'rh')).toMatchObject({
      lb_policy: 'RING_HASH',
      ring_hash_lb_config: { minimum_ring_size: { value: 512 }, maximum_ring_size: { value: 8_388_608 }, hash_function: 'XX_HASH' },
    });
    // MAGLEV as an extension policy: Envoy takes Maglev, gRPC (no Maglev) its ring-hash fallback.
    const mg = decode(all, TYPE.cluster, 'mg') as { lb_policy?: string; maglev_lb_config?: unknown; load_balancing_policy: { policies: { typed_extension_config: { typed_config: unknown } }[] } };
    expect([mg.lb_policy, mg.maglev_lb_config]).toEqual([undefined, undefined]);
    expect(mg.load_balancing_policy.policies.map((p) => decodeAny(p.typed_extension_config.typed_config))).toEqual([
      { table_size: { value: 65537 } },
      { hash_function: 'XX_HASH' }, // ring sizes: gRPC's defaults (grpc-js-xds 1.14 NACKs a minimum_ring_size here)
    ]);
  });

  it('turns on locality-weighted balancing where asked, except for hash policies', () => {
    const tiered: Catalog = {
      clusters: [
        { name: 't', lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' as const }, localityWeighted: true, endpoints: [endpoint(1)] },
        { name: 'h', lbPolicy: 'MAGLEV', maglev: { tableSize: 65537 }, connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' as const }, localityWeighted: true, endpoints: [endpoint(1)] },
      ],
      listeners: [], nodeGroups: [],
    };
    const set = translate(tiered).get(DEFAULT_GROUP);
    expect(decode(set, TYPE.cluster, 't')).toMatchObject({ common_lb_config: { locality_weighted_lb_config: {} } });
    expect(decode(set, TYPE.cluster, 'h')).not.toHaveProperty('common_lb_config');
    expect(decode(all, TYPE.cluster, 'rr')).not.toHaveProperty('common_lb_config');
  });

  it('asks Envoy to apply updates of adaptively weighted clusters at once (no update_merge_window), beside any policy', () => {
    const base = { connectTimeoutMs: 1000, http2: false, endpoints: [endpoint(1)] };
    const pid = { kind: 'pid' as const, setpoint: 'mean' as const };
    const set = translate({
      clusters: [
        { name: 'lr', lbPolicy: 'LEAST_REQUEST', weighting: pid, ...base },
        { name: 'tiered', lbPolicy: 'ROUND_ROBIN', localityWeighted: true, weighting: pid, ...base },
        { name: 'fixed', lbPolicy: 'LEAST_REQUEST', weighting: { kind: 'static' as const }, ...base },
      ],
      listeners: [], nodeGroups: [],
    }).get(DEFAULT_GROUP);
    // Held back a second after each weight push, Envoy's own ejection of a dead host came late
    // (translate-clusters.ts clusterResource).
    const none = { seconds: 0, nanos: 0 };
    expect(decode(set, TYPE.cluster, 'lr').common_lb_config).toEqual({ update_merge_window: none });
    expect(decode(set, TYPE.cluster, 'tiered').common_lb_config).toEqual({ locality_weighted_lb_config: {}, update_merge_window: none });
    // Static weights change only when an operator writes them: Envoy's default stays.
    expect(decode(set, TYPE.cluster, 'fixed')).not.toHaveProperty('common_lb_config');
  });

  it('turns on HTTP/2 upstream only where asked', () => {
    const rr = decode(all, TYPE.cluster, 'rr') as { typed_extension_protocol_options: Record<string, unknown> };
    const opts = decodeAny(rr.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']);
    expect(opts).toEqual({ explicit_http_config: { http2_protocol_options: {} } });
    expect(decode(all, TYPE.cluster, 'lr')).not.toHaveProperty('typed_extension_protocol_options');
  });

  it('groups endpoints by priority and locality, with weights and health', () => {
    expect(decode(all, TYPE.endpoint, 'rr')).toEqual({
      cluster_name: 'rr',
      endpoints: [
        {
          locality: { region: 'eu', zone: 'a' },
          load_balancing_weight: { value: 3 },
          lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 1 } } }, health_status: 'HEALTHY', load_balancing_weight: { value: 3 } }],
        },
        {
          locality: { region: 'us', zone: 'b', sub_zone: 'x' },
          priority: 1,
          load_balancing_weight: { value: 1 },
          lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 2 } } }, health_status: 'DRAINING', load_balancing_weight: { value: 1 } }],
        },
      ],
    });
    expect(decode(all, TYPE.endpoint, 'lr')).toEqual({ cluster_name: 'lr' });
  });

  it('renumbers priorities consecutively and weights localities for proxyless gRPC', () => {
    const gappy: Catalog = {
      clusters: [
        { name: 'p', lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' as const }, endpoints: [endpoint(1, { priority: 5, weight: 2 }), endpoint(2, { priority: 2, weight: 7 })] },
        { name: 'h', lbPolicy: 'RING_HASH', ringHash: { virtualNodesPerHost: 10, hashFunction: 'XX_HASH' }, connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' as const }, endpoints: [endpoint(1, { weight: 5 })] },
      ],
      listeners: [], nodeGroups: [],
    };
    const set = translate(gappy).get(DEFAULT_GROUP);
    const p = decode(set, TYPE.endpoint, 'p') as { endpoints: { priority?: number; load_balancing_weight: { value: number } }[] };
    expect(p.endpoints.map((l) => [l.priority ?? 0, l.load_balancing_weight.value])).toEqual([[0, 7], [1, 2]]);
    const h = decode(set, TYPE.endpoint, 'h') as { endpoints: { load_balancing_weight: { value: number } }[] };
    expect(h.endpoints[0]?.load_balancing_weight.value).toBe(5); // ring hash too (gRPC A113 normalises per locality)
  });

  it('applies adaptive weight overrides and keeps every locality sum within uint32', () => {
    const huge: Catalog = {
      ...catalog,
      clusters: [{ name: 'big', lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' as const }, endpoints: [endpoint(1), endpoint(2), endpoint(3)] }],
      listeners: [], nodeGroups: [],
    };
    const weights = new Map([['big', new Map([['10.0.0.1:1', { weight: 4e9 }], ['10.0.0.1:2', { weight: 2e9 }], ['10.0.0.1:3', { weight: 0.2 }]])]]);
    const cla = decode(translate(huge, weights).get(DEFAULT_GROUP), TYPE.endpoint, 'big') as {
      endpoints: { lb_endpoints: { load_balancing_weight: { value: number } }[] }[];
    };
    const ws = cla.endpoints[0]?.lb_endpoints.map((e) => e.load_balancing_weight.value) ?? [];
    expect(ws.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(0xffff_ffff);
    expect(ws[2]).toBe(1);
    const health = cla.endpoints[0]?.lb_endpoints.map((e) => (e as unknown as { health_status: string }).health_status);
    expect(health).toEqual(['HEALTHY', 'HEALTHY', 'HEALTHY']);
    expect((ws[0] ?? 0) / (ws[1] ?? 1)).toBeCloseTo(2, 5);
  });

  it('probe health takes a HEALTHY, UNKNOWN or DEGRADED endpoint out, never lifts an operator\'s DRAINING, UNHEALTHY or TIMEOUT; UNHEALTHY and TIMEOUT are left out; with none routable the best tier goes UNKNOWN', () => {
    const states = ['HEALTHY', 'UNKNOWN', 'DEGRADED', 'DRAINING', 'UNHEALTHY', 'TIMEOUT'] as const;
    const probed: Catalog = {
      ...catalog,
      clusters: [{ name: 'p', lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' as const }, endpoints: states.map((health, i) => endpoint(i + 1, { health })) }],
      listeners: [], nodeGroups: [],
    };
    type Sent = { endpoints: { lb_endpoints: { health_status?: string; endpoint: { address: { socket_address: { port_value: number } } } }[] }[] };
    const sent = (failing: number[]): [number, string | undefined][] => {
      const weights = new Map([['p', new Map(failing.map((port) => [`10.0.0.1:${port}`, { health: 'UNHEALTHY' as const }]))]]);
      const cla = decode(translate(probed, weights).get(DEFAULT_GROUP), TYPE.endpoint, 'p') as Sent;
      return (cla.endpoints[0]?.lb_endpoints ?? []).map((e) => [e.endpoint.address.socket_address.port_value, e.health_status]);
    };
    // Left out, not sent UNHEALTHY or TIMEOUT: Envoy counts those against its panic threshold.
    expect(sent([])).toEqual([[1, 'HEALTHY'], [2, 'UNKNOWN'], [3, 'DEGRADED'], [4, 'DRAINING']]);
    // None routable (HEALTHY or UNKNOWN, all proxyless gRPC uses; it has no panic mode): the best
    // tier there is goes UNKNOWN, DEGRADED before DRAINING before those taken out, the rest as before.
    expect(sent([1, 2])).toEqual([[3, 'UNKNOWN'], [4, 'DRAINING']]);
    // A probe never lifts DRAINING: the draining endpoint is the best left (a terminating pod still serving).
    expect(sent([1, 2, 3])).toEqual([[4, 'UNKNOWN']]);
    expect(sent([1, 2, 3, 4, 5, 6])).toEqual([[4, 'UNKNOWN']]);
    // Every endpoint out: all sent UNKNOWN, never an empty assignment.
    const allOut: Catalog = { ...probed, clusters: probed.clusters.map((c) => ({ ...c, endpoints: c.endpoints.filter((e) => e.health !== 'DRAINING') })) };
    const weights = new Map([['p', new Map([1, 2, 3, 5, 6].map((port) => [`10.0.0.1:${port}`, { health: 'UNHEALTHY' as const }]))]]);
    const cla = decode(translate(allOut, weights).get(DEFAULT_GROUP), TYPE.endpoint, 'p') as Sent;
    expect((cla.endpoints[0]?.lb_endpoints ?? []).map((e) => [e.endpoint.address.socket_address.port_value, e.health_status])).toEqual([[1, 'UNKNOWN'], [2, 'UNKNOWN'], [3, 'UNKNOWN'], [5, 'UNKNOWN'], [6, 'UNKNOWN']]);
  });

  it('across priorities an endpoint the engine took out is sent UNHEALTHY: Envoy spills over by each priority\'s healthy share', () => {
    const two: Catalog = {
      ...catalog,
      clusters: [{ name: 'p', lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' as const }, endpoints: [endpoint(1), endpoint(2, { priority: 1 }), endpoint(3, { priority: 1 })] }],
      listeners: [], nodeGroups: [],
    };
    type Sent = { endpoints: { priority?: number; lb_endpoints: { health_status?: string; endpoint: { address: { socket_address: { port_value: number } } } }[] }[] };
    const sent = (out: string[]): [number, number, string | undefined][] => {
      const weights = new Map([['p', new Map(out.map((k) => [k, { health: 'UNHEALTHY' as const }]))]]);
      const cla = decode(translate(two, weights).get(DEFAULT_GROUP), TYPE.endpoint, 'p') as Sent;
      return cla.endpoints.flatMap((l) => l.lb_endpoints.map((e): [number, number, string | undefined] => [l.priority ?? 0, e.endpoint.address.socket_address.port_value, e.health_status]));
    };
    // Left out, a host counts in no priority's share (test/e2e/priority-spillover-envoy.test.ts).
    expect(sent(['10.0.0.1:1'])).toEqual([[0, 1, 'UNHEALTHY'], [1, 2, 'HEALTHY'], [1, 3, 'HEALTHY']]);
    expect(sent(['10.0.0.1:2'])).toEqual([[0, 1, 'HEALTHY'], [1, 2, 'UNHEALTHY'], [1, 3, 'HEALTHY']]);
    // Never an empty assignment (the engine fails static first; this is the translator's own floor),
    // nor one a gRPC client can use none of: with none that may serve, sent UNKNOWN.
    expect(sent(['10.0.0.1:1', '10.0.0.1:2', '10.0.0.1:3'])).toEqual([[0, 1, 'UNKNOWN'], [1, 2, 'UNKNOWN'], [1, 3, 'UNKNOWN']]);
  });

  describe('ring hash across localities: endpoint weights rescaled to one sum per locality', () => {
    type Cla = { endpoints: { priority?: number; load_balancing_weight: { value: number }; lb_endpoints: { load_balancing_weight: { value: number } }[] }[] };
    const zone = (z: string) => ({ locality: { region: 'r', zone: z, subZone: '' } });
    const ringHash = (name: string, endpoints: Cluster['endpoints'], lbPolicy: Cluster['lbPolicy'] = 'RING_HASH'): Cluster => ({
      name, lbPolicy, connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' as const }, endpoints,
      ...(lbPolicy === 'RING_HASH' ? { ringHash: { virtualNodesPerHost: 10, hashFunction: 'XX_HASH' as const } } : { maglev: { tableSize: 65537 } }),
    });
    const emit = (clusters: Cluster[], weights?: Parameters<typeof translate>[1]) => {
      const set = translate({ clusters, listeners: [], nodeGroups: [] }, weights).get(DEFAULT_GROUP);
      return (name: string) => ({ cluster: decode(set, TYPE.cluster, name), cla: decode(set, TYPE.endpoint, name) as Cla });
    };
    /** Each endpoint's share of priority 0 under a client's rule, in EDS order. */
    const shares = (cla: Cla, rule: 'normalised' | 'multiplied'): number[] => {
      const ls = cla.endpoints.filter((l) => (l.priority ?? 0) === 0);
      const lwSum = ls.reduce((a, l) => a + l.load_balancing_weight.value, 0);
      const raw = ls.flatMap((l) => {
        const ws = l.lb_endpoints.map((e) => e.load_balancing_weight.value);
        const s = ws.reduce((a, b) => a + b, 0);
        // grpc-go (A113) and Envoy under locality_weighted_lb_config vs @grpc/grpc-js-xds 1.14.
        return ws.map((w) => (rule === 'normalised' ? (l.load_balancing_weight.value / lwSum) * (w / s) : l.load_balancing_weight.value * w));
      });
      const total = raw.reduce((a, b) => a + b, 0);
      return raw.map((x) => x / total);
    };
    const intended = (ws: number[]) => ws.map((w) => w / ws.reduce((a, b) => a + b, 0));

    it('gives every client each endpoint a share by its weight, and asks Envoy to weigh localities', () => {
      const { cluster, cla } = emit([
        ringHash('h', [endpoint(1, { weight: 2, ...zone('a') }), endpoint(2, { weight: 3, ...zone('b') }), endpoint(3, { weight: 3, ...zone('b') }), endpoint(4, { weight: 9, priority: 1, ...zone('a') })]),
      ])('h');
      expect(cluster).toMatchObject({ common_lb_config: { locality_weighted_lb_config: {} } });
      // Locality weights stay the endpoint-weight sums; 6 = lcm(2, 6) is the common sum: exact.
      expect(cla.endpoints.map((l) => [l.priority ?? 0, l.load_balancing_weight.value, l.lb_endpoints.map((e) => e.load_balancing_weight.value)])).toEqual([
        [0, 2, [6]],
        [0, 6, [3, 3]],
        [1, 9, [9]], // a priority with one locality keeps its weights
      ]);
      for (const rule of ['normalised', 'multiplied'] as const) {
        shares(cla, rule).forEach((x, i) => expect(x, rule).toBeCloseTo(intended([2, 3, 3])[i] ?? NaN, 12));
      }
    });

    const zoned = (weights: number[], zones: string[]) => weights.map((w, i) => endpoint(i + 1, { weight: w, ...zone(zones[i] ?? '') }));
    const withinUint32 = (cla: Cla) => {
      for (const l of cla.endpoints) {
        expect(l.lb_endpoints.reduce((a, e) => a + e.load_balancing_weight.value, 0)).toBeLessThanOrEqual(0xffff_ffff);
        expect(Math.min(...l.lb_endpoints.map((e) => e.load_balancing_weight.value))).toBeGreaterThanOrEqual(1);
      }
      expect(cla.endpoints.reduce((a, l) => a + l.load_balancing_weight.value, 0)).toBeLessThanOrEqual(0xffff_ffff);
    };

    it('keeps ratios within 1e-4 and every locality within uint32 when no exact common sum fits', () => {
      // Sums 100010, 999955 and 4e9: their lcm is far past uint32, so the weights are rounded.
      const weights = [100_003, 7, 999_937, 13, 5, 4_000_000_000];
      const { cla } = emit([ringHash('h', zoned(weights, ['a', 'a', 'b', 'b', 'b', 'c']))])('h');
      withinUint32(cla);
      const want = intended(weights);
      for (const rule of ['normalised', 'multiplied'] as const) {
        shares(cla, rule).forEach((x, i) => expect(Math.abs(x / (want[i] ?? NaN) - 1), `${rule} endpoint ${i}`).toBeLessThan(1e-4));
      }
    });

    it('lets the uint32 limit win where a locality spans more than uint32 / 1e4 between its weights', () => {
      const weights = [1, 4_000_000_000, 3, 7];
      const { cla } = emit([ringHash('h', zoned(weights, ['a', 'a', 'b', 'b']))])('h');
      withinUint32(cla);
      // The big weight still gets its share; the tiny one is only as exact as a uint32 sum allows.
      expect(shares(cla, 'multiplied')[1]).toBeCloseTo(intended(weights)[1] ?? NaN, 6);
      expect(shares(cla, 'normalised')[1]).toBeCloseTo(intended(weights)[1] ?? NaN, 6);
    });

    it('fits adaptive weights past uint32 per locality before rescaling', () => {
      const weights = new Map([['h', new Map([['10.0.0.1:1', { weight: 4e9 }], ['10.0.0.1:2', { weight: 2e9 }], ['10.0.0.1:3', { weight: 5 }]])]]);
      const { cla } = emit([ringHash('h', [endpoint(1, zone('a')), endpoint(2, zone('a')), endpoint(3, zone('b'))])], weights)('h');
      const ws = cla.endpoints.map((l) => l.lb_endpoints.map((e) => e.load_balancing_weight.value));
      for (const g of ws) expect(g.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(0xffff_ffff);
      expect((ws[0]?.[0] ?? 0) / (ws[0]?.[1] ?? 1)).toBeCloseTo(2, 4);
      expect(shares(cla, 'multiplied')[2]).toBeCloseTo(shares(cla, 'normalised')[2] ?? NaN, 12);
    });

    it('leaves single-locality ring hash and MAGLEV as they were', () => {
      const out = emit([
        ringHash('one', [endpoint(1, { weight: 2 }), endpoint(2, { weight: 7 })]),
        ringHash('mg1', [endpoint(1, { weight: 2 }), endpoint(2, { weight: 7 })], 'MAGLEV'),
      ]);
      for (const name of ['one', 'mg1']) {
        const { cluster, cla } = out(name);
        expect(cluster).not.toHaveProperty('common_lb_config');
        expect(cla.endpoints.map((l) => [l.load_balancing_weight.value, l.lb_endpoints.map((e) => e.load_balancing_weight.value)])).toEqual([[9, [2, 7]]]);
      }
    });

    it('rescales MAGLEV across localities too, with locality weighting in both of its policies (gRPC takes the ring hash)', () => {
      const { cluster, cla } = emit([ringHash('mg', zoned([2, 3, 3], ['a', 'b', 'b']), 'MAGLEV')])('mg');
      const policies = (cluster.load_balancing_policy as { policies: { typed_extension_config: { typed_config: unknown } }[] }).policies;
      expect(cluster).not.toHaveProperty('common_lb_config');
      for (const p of policies) expect(decodeAny(p.typed_extension_config.typed_config)).toMatchObject({ locality_weighted_lb_config: {} });
      expect(cla.endpoints.map((l) => [l.load_balancing_weight.value, l.lb_endpoints.map((e) => e.load_balancing_weight.value)])).toEqual([[2, [6]], [6, [3, 3]]]);
      for (const rule of ['normalised', 'multiplied'] as const) {
        shares(cla, rule).forEach((x, i) => expect(x, rule).toBeCloseTo(intended([2, 3, 3])[i] ?? NaN, 12));
      }
    });
  });

  it('emits listeners with an HTTP connection manager over RDS, and api_listeners for proxyless gRPC', () => {
    const l = decode(all, TYPE.listener, 'ingress') as { address: unknown; filter_chains: { filters: { name: string; typed_config: unknown }[] }[] };
    expect(l.address).toEqual({ socket_address: { address: '0.0.0.0', port_value: 10000 } });
    const hcm = decodeAny(l.filter_chains[0]?.filters[0]?.typed_config);
    expect(hcm).toMatchObject({
      stat_prefix: 'ingress',
      rds: { route_config_name: 'ingress', config_source: { ads: {}, resource_api_version: 'V3' } },
      http_filters: [{ name: 'envoy.filters.http.router' }],
    });
    const api = decode(all, TYPE.listener, 'greeter') as { api_listener: { api_listener: unknown } };
    expect(decodeAny(api.api_listener.api_listener)).toMatchObject({ rds: { route_config_name: 'greeter' } });
  });

  it('builds one virtual host per domain, keeping route order and hash policies', () => {
    expect(decode(all, TYPE.route, 'ingress')).toEqual({
      name: 'ingress',
      virtual_hosts: [
        {
          name: 'any', domains: ['*'],
          routes: [
            { match: { prefix: '/s' }, route: { cluster: 'rh', hash_policy: [{ header: { header_name: 'x-user' } }] } },
            { match: { prefix: '/' }, route: { cluster: 'rr' } },
          ],
        },
        {
          name: 'vh1-api.example.com', domains: ['api.example.com'],
          routes: [{ match: { prefix: '/' }, route: { cluster: 'lr', timeout: { seconds: 2, nanos: 500_000_000 }, hash_policy: [{ cookie: { name: 'sid', ttl: { seconds: 30 } } }] } }],
        },
      ],
    });
  });

  // The review's finding: the file put `auto`'s affinity key on its routes, the API did not; both now get it here.
  it('a route to a cluster with its own hash policy (auto session affinity) hashes on it, unless the route names one', () => {
    const sticky: Cluster = { ...catalog.clusters[2]!, name: 'sticky', routeHashPolicy: { cookie: { name: 'sid' } } };
    const routes = [{ domain: '*', prefix: '/own', cluster: 'sticky', hashPolicy: { header: 'x-own' } }, { domain: '*', prefix: '/', cluster: 'sticky' }];
    const set = translate({ clusters: [sticky], listeners: [{ name: 'front', kind: 'socket', address: '0.0.0.0', port: 1, routes }], nodeGroups: [] }).get(DEFAULT_GROUP);
    expect(hashPolicies(set, 'front')).toEqual([[{ header: { header_name: 'x-own' } }], [{ cookie: { name: 'sid' } }]]);
  });

  it('a listener kept as it was is built again when a routed cluster\'s hash policy changes', () => {
    const t = new Translator();
    expect(hashPolicies(t.translate(catalog).get(DEFAULT_GROUP), 'ingress')[1]).toBeUndefined();
    const rr = { ...catalog.clusters[0]!, routeHashPolicy: { header: 'x-user' } };
    const next = t.translate({ ...catalog, clusters: [rr, ...catalog.clusters.slice(1)] }).get(DEFAULT_GROUP);
    expect(hashPolicies(next, 'ingress')[1]).toEqual([{ header: { header_name: 'x-user' } }]);
  });

  it('gives a node group only its listeners and the clusters they use', () => {
    const edge = groups.get('edge');
    expect([...(edge?.get(TYPE.listener)?.keys() ?? [])]).toEqual(['greeter']);
    expect([...(edge?.get(TYPE.route)?.keys() ?? [])]).toEqual(['greeter']);
    expect([...(edge?.get(TYPE.cluster)?.keys() ?? [])].sort()).toEqual(['mg', 'rr']);
    expect([...(edge?.get(TYPE.endpoint)?.keys() ?? [])].sort()).toEqual(['mg', 'rr']);
    // The same encoded object is shared, not re-encoded per group.
    expect(edge?.get(TYPE.cluster)?.get('rr')).toBe(all?.get(TYPE.cluster)?.get('rr'));
  });

  it('is deterministic: same catalog, same bytes and hashes', () => {
    const again = translate(catalog).get(DEFAULT_GROUP);
    for (const type of [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route]) {
      for (const [name, r] of all?.get(type) ?? []) expect(again?.get(type)?.get(name)?.hash).toBe(r.hash);
    }
  });

  it('the memoizing Translator re-encodes only what changed, and forgets what is gone', () => {
    const translator = new Translator();
    const first = translator.translate(catalog).get(DEFAULT_GROUP);
    // A reloaded catalog with equal content (new objects, as the store gives): nothing re-encoded.
    const reloaded = translator.translate(structuredClone(catalog)).get(DEFAULT_GROUP);
    for (const type of [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route]) {
      for (const [name, r] of first?.get(type) ?? []) expect(reloaded?.get(type)?.get(name), `${type} ${name}`).toBe(r);
    }
    // One weight: that cluster's assignment only, with the same bytes a fresh translation gives.
    const weights = new Map([['rh', new Map([['10.0.0.1:2', { weight: 7 }]])]]);
    const weighted = translator.translate(catalog, weights).get(DEFAULT_GROUP);
    expect(weighted?.get(TYPE.endpoint)?.get('rh')).not.toBe(first?.get(TYPE.endpoint)?.get('rh'));
    expect(weighted?.get(TYPE.endpoint)?.get('rh')?.hash).toBe(translate(catalog, weights).get(DEFAULT_GROUP)?.get(TYPE.endpoint)?.get('rh')?.hash);
    expect(weighted?.get(TYPE.endpoint)?.get('rr')).toBe(first?.get(TYPE.endpoint)?.get('rr'));
    expect(weighted?.get(TYPE.cluster)?.get('rh')).toBe(first?.get(TYPE.cluster)?.get('rh'));
    // The next tick's overrides: new maps with the same entries are not a change; another health is.
    const again = translator.translate(catalog, new Map([['rh', new Map([['10.0.0.1:2', { weight: 7 }]])]])).get(DEFAULT_GROUP);
    expect(again?.get(TYPE.endpoint)?.get('rh')).toBe(weighted?.get(TYPE.endpoint)?.get('rh'));
    const unhealthy = new Map([['rh', new Map([['10.0.0.1:2', { weight: 7, health: 'UNHEALTHY' as const }]])]]);
    expect(translator.translate(catalog, unhealthy).get(DEFAULT_GROUP)?.get(TYPE.endpoint)?.get('rh')).not.toBe(weighted?.get(TYPE.endpoint)?.get('rh'));
    translator.translate(catalog, weights);
    // A changed cluster setting re-encodes its Cluster; a removed cluster is not served from memory.
    const edited: Catalog = { ...catalog, clusters: catalog.clusters.filter((c) => c.name !== 'mg').map((c) => (c.name === 'lr' ? { ...c, connectTimeoutMs: 2000 } : c)) };
    const after = translator.translate(edited, weights).get(DEFAULT_GROUP);
    expect(decode(after, TYPE.cluster, 'lr')).toMatchObject({ connect_timeout: { seconds: 2 } });
    expect(after?.get(TYPE.cluster)?.has('mg')).toBe(false);
    expect(translator.translate(catalog, weights).get(DEFAULT_GROUP)?.get(TYPE.cluster)?.get('mg')?.hash).toBe(first?.get(TYPE.cluster)?.get('mg')?.hash);
  });

  it('an endpoint write (a new cluster object) re-encodes its assignment, and its Cluster only when the Cluster differs', () => {
    const translator = new Translator();
    const first = translator.translate(catalog).get(DEFAULT_GROUP);
    const withEndpoints = (name: string, endpoints: Cluster['endpoints']): Catalog => ({
      ...catalog,
      clusters: catalog.clusters.map((c) => (c.name === name ? { ...c, endpoints } : c)),
    });
    const rr = catalog.clusters[0] as Cluster;
    // One endpoint's weight (as the store's endpoint patch gives it): same Cluster object, new assignment.
    const reweighted = translator.translate(withEndpoints('rr', [endpoint(1, { weight: 9 }), ...rr.endpoints.slice(1)])).get(DEFAULT_GROUP);
    expect(reweighted?.get(TYPE.cluster)?.get('rr')).toBe(first?.get(TYPE.cluster)?.get('rr'));
    expect(reweighted?.get(TYPE.endpoint)?.get('rr')).not.toBe(first?.get(TYPE.endpoint)?.get('rr'));
    // A ring-hash cluster's ring size follows its endpoint count: 3 → 9 endpoints is a new Cluster,
    // with the bytes a fresh translation gives.
    const grown = withEndpoints('rh', [1, 2, 3, 4, 5, 6, 7, 8, 9].map((p) => endpoint(p)));
    const rh = translator.translate(grown).get(DEFAULT_GROUP)?.get(TYPE.cluster)?.get('rh');
    expect(rh).not.toBe(first?.get(TYPE.cluster)?.get('rh'));
    expect(rh?.hash).toBe(translate(grown).get(DEFAULT_GROUP)?.get(TYPE.cluster)?.get('rh')?.hash);
    expect(decode(translator.translate(grown).get(DEFAULT_GROUP), TYPE.cluster, 'rh')).toMatchObject({ ring_hash_lb_config: { minimum_ring_size: { value: 2048 } } });
  });
});
