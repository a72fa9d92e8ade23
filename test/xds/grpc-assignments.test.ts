import { describe, expect, it } from 'vitest';
import { endpointOfLocality, endpointSubZone } from '../../src/catalog/endpoint-localities.js';
import type { Catalog, Cluster, Endpoint } from '../../src/catalog/types.js';
import type { EndpointOverride, WeightOverrides } from '../../src/catalog/weight-overrides.js';
import { DEFAULT_GRPC_GROUP, clientFormOf, formGroupKey, groupOfKey } from '../../src/xds/client-form.js';
import { envoyType, TYPE } from '../../src/xds/envoy-api.js';
import { GRPC_MAX_LOCALITY_WEIGHT_SUM, splitsForGrpc } from '../../src/xds/grpc-assignments.js';
import { DEFAULT_GROUP, type ResourceSet } from '../../src/xds/resource-set.js';
import { Translator } from '../../src/xds/translator.js';
import { expectSameTranslation } from '../support/same-translation.js';

const endpoint = (port: number, extra: Partial<Endpoint> = {}): Endpoint => ({
  address: '10.0.0.1', port, weight: 1, priority: 0, health: 'HEALTHY',
  locality: { region: 'eu', zone: 'a', subZone: '' }, ...extra,
});

const cluster = (name: string, extra: Partial<Cluster> = {}): Cluster => ({
  name, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: true, weighting: { kind: 'static' }, endpoints: [endpoint(1), endpoint(2)], ...extra,
});

const ADAPTIVE = { kind: 'pid' as const, setpoint: 'mean' as const } as Cluster['weighting'];

interface Locality {
  locality?: { region?: string; zone?: string; sub_zone?: string };
  priority?: number;
  load_balancing_weight?: { value?: number };
  lb_endpoints?: { load_balancing_weight?: { value?: number }; endpoint?: { address?: { socket_address?: { port_value?: number } } } }[];
}

function localities(set: ResourceSet | undefined, name: string): Locality[] {
  const r = set?.get(TYPE.endpoint)?.get(name);
  if (!r) throw new Error(`EDS ${name} missing`);
  const t = envoyType('envoy.config.endpoint.v3.ClusterLoadAssignment');
  return (t.toObject(t.decode(r.bytes), { defaults: false }) as { endpoints?: Locality[] }).endpoints ?? [];
}

/** Per locality: its sub-zone, priority, weight and endpoint ports. */
const shape = (ls: Locality[]) => ls.map((l) => ({ subZone: l.locality?.sub_zone ?? '', priority: l.priority ?? 0, weight: l.load_balancing_weight?.value, ports: (l.lb_endpoints ?? []).map((e) => e.endpoint?.address?.socket_address?.port_value) }));

const overrides = (name: string, byPort: Record<number, number>): WeightOverrides =>
  new Map([[name, new Map<string, EndpointOverride>(Object.entries(byPort).map(([port, weight]) => [`10.0.0.1:${port}`, { weight }]))]]);

describe('the form of the resources proxyless gRPC clients are sent', () => {
  it('tells gRPC clients by their user agent; every other client gets Envoy\'s form', () => {
    expect(clientFormOf('gRPC Go/1.85.0')).toBe('grpc');
    expect(clientFormOf('gRPC Node Pure JS/1.14.1')).toBe('grpc');
    expect(clientFormOf('gRPC Java')).toBe('grpc');
    expect(clientFormOf('envoy/1.40.0')).toBe('envoy');
    expect(clientFormOf('')).toBe('envoy');
    expect(clientFormOf('grpcurl/1.9')).toBe('envoy');
    expect(groupOfKey(formGroupKey('edge', 'grpc'))).toEqual({ group: 'edge', form: 'grpc' });
    expect(groupOfKey('edge')).toEqual({ group: 'edge', form: 'envoy' });
  });

  it('splits the clusters whose endpoint weights gRPC would otherwise drop, and only those', () => {
    expect(splitsForGrpc(cluster('adaptive', { weighting: ADAPTIVE }))).toBe(true);
    expect(splitsForGrpc(cluster('weighted', { endpoints: [endpoint(1, { weight: 1 }), endpoint(2, { weight: 3 })] }))).toBe(true);
    expect(splitsForGrpc(cluster('random', { lbPolicy: 'RANDOM', weighting: ADAPTIVE }))).toBe(true);
    expect(splitsForGrpc(cluster('lr', { lbPolicy: 'LEAST_REQUEST', weighting: ADAPTIVE }))).toBe(true);
    // Equal static weights: nothing to carry. Ring hash and Maglev weigh endpoints on the ring; client-side WRR weighs them itself.
    expect(splitsForGrpc(cluster('even'))).toBe(false);
    expect(splitsForGrpc(cluster('ring', { lbPolicy: 'RING_HASH', weighting: ADAPTIVE, ringHash: { virtualNodesPerHost: 100, hashFunction: 'XX_HASH' } }))).toBe(false);
    expect(splitsForGrpc(cluster('maglev', { lbPolicy: 'MAGLEV', weighting: ADAPTIVE, maglev: { tableSize: 65537 } }))).toBe(false);
    expect(splitsForGrpc(cluster('cswrr', { lbPolicy: 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN', weighting: ADAPTIVE }))).toBe(false);
  });

  it('names an endpoint in its sub-zone and reads it back; other sub-zones name none', () => {
    const e = endpoint(8080, { address: '2001:db8::1', locality: { region: 'eu', zone: 'a', subZone: 'rack@1' } });
    const subZone = endpointSubZone(e);
    expect(subZone).toBe('rack@1@2001:db8::1:8080');
    expect(endpointOfLocality({ region: 'eu', zone: 'a', subZone })).toEqual({ locality: e.locality, key: '2001:db8::1:8080' });
    expect(endpointOfLocality({ region: 'eu', zone: 'a', subZone: 'rack' })).toBeUndefined();
    expect(endpointOfLocality({ region: 'eu', zone: 'a', subZone: 'a@b' })).toBeUndefined();
  });

  const catalog: Catalog = {
    clusters: [
      cluster('web', {
        weighting: ADAPTIVE,
        endpoints: [
          endpoint(1, { weight: 2 }),
          endpoint(2, { weight: 6 }),
          endpoint(3, { weight: 4, locality: { region: 'eu', zone: 'b', subZone: 's' } }),
          endpoint(4, { weight: 5, priority: 1 }),
        ],
      }),
      cluster('even'),
      cluster('ring', { lbPolicy: 'RING_HASH', ringHash: { virtualNodesPerHost: 100, hashFunction: 'XX_HASH' }, endpoints: [endpoint(1, { weight: 1 }), endpoint(2, { weight: 3 })] }),
    ],
    listeners: [],
    nodeGroups: [{ nodeCluster: 'edge', listeners: [], clusters: ['web'] }],
  };

  it('sends gRPC clients every endpoint of a split cluster as a locality of its own, weighted as the endpoint; Envoy\'s form is unchanged', () => {
    const t = new Translator();
    const envoyOnly = t.translate(catalog, overrides('web', { 1: 10, 2: 30 }));
    expect(envoyOnly.has(DEFAULT_GRPC_GROUP)).toBe(false);
    const out = t.translate(catalog, overrides('web', { 1: 10, 2: 30 }), undefined, { grpc: true });
    expect(out.get(DEFAULT_GROUP)?.get(TYPE.endpoint)?.get('web')).toBe(envoyOnly.get(DEFAULT_GROUP)?.get(TYPE.endpoint)?.get('web'));
    expect(shape(localities(out.get(DEFAULT_GROUP), 'web'))).toEqual([
      { subZone: '', priority: 0, weight: 40, ports: [1, 2] },
      { subZone: 's', priority: 0, weight: 4, ports: [3] },
      { subZone: '', priority: 1, weight: 5, ports: [4] },
    ]);
    const grpc = out.get(DEFAULT_GRPC_GROUP);
    expect(shape(localities(grpc, 'web'))).toEqual([
      { subZone: '@10.0.0.1:1', priority: 0, weight: 10, ports: [1] },
      { subZone: '@10.0.0.1:2', priority: 0, weight: 30, ports: [2] },
      { subZone: 's@10.0.0.1:3', priority: 0, weight: 4, ports: [3] },
      { subZone: '@10.0.0.1:4', priority: 1, weight: 5, ports: [4] },
    ]);
    expect(localities(grpc, 'web').map((l) => l.locality?.zone)).toEqual(['a', 'a', 'b', 'a']);
    // Not split: the very resource Envoy gets.
    for (const name of ['even', 'ring']) expect(grpc?.get(TYPE.endpoint)?.get(name)).toBe(out.get(DEFAULT_GROUP)?.get(TYPE.endpoint)?.get(name));
    // Everything else is shared.
    expect(grpc?.get(TYPE.cluster)).toBe(out.get(DEFAULT_GROUP)?.get(TYPE.cluster));
    // Node groups get their gRPC form too, selected the same way.
    const edge = out.get(formGroupKey('edge', 'grpc'));
    expect([...(edge?.get(TYPE.endpoint)?.keys() ?? [])]).toEqual(['web']);
    expect(edge?.get(TYPE.endpoint)?.get('web')).toBe(grpc?.get(TYPE.endpoint)?.get('web'));
  });

  it('keeps each priority\'s locality weights within 2^31 − 1, where grpc-js-xds\'s locality pick wraps around, in proportion', () => {
    const huge = cluster('huge', { endpoints: Array.from({ length: 3_000 }, (_, i) => endpoint(i + 1, { weight: i === 0 ? 1 : 1_000_000 })) });
    const out = new Translator().translate({ clusters: [huge], listeners: [], nodeGroups: [] }, undefined, undefined, { grpc: true });
    const weights = localities(out.get(DEFAULT_GRPC_GROUP), 'huge').map((l) => l.load_balancing_weight?.value ?? 0);
    const sum = weights.reduce((a, b) => a + b, 0);
    expect(sum).toBeLessThanOrEqual(GRPC_MAX_LOCALITY_WEIGHT_SUM);
    expect(sum).toBeGreaterThan(GRPC_MAX_LOCALITY_WEIGHT_SUM * 0.99);
    expect(weights[0]).toBe(1);
    expect(new Set(weights.slice(1)).size).toBe(1);
    // Envoy's form keeps its own limit, 2^32 − 1.
    const envoySum = localities(out.get(DEFAULT_GROUP), 'huge').reduce((a, l) => a + (l.load_balancing_weight?.value ?? 0), 0);
    expect(envoySum).toBeGreaterThan(GRPC_MAX_LOCALITY_WEIGHT_SUM);
  });

  it('follows weight changes, creations and deletions incrementally with the bytes a whole translation gives', () => {
    const t = new Translator();
    t.translate(catalog, overrides('web', { 1: 10 }), undefined, { grpc: true });
    const steps: [Catalog, WeightOverrides][] = [
      [catalog, overrides('web', { 1: 20, 2: 7 })],
      [{ ...catalog, clusters: [...catalog.clusters, cluster('new', { weighting: ADAPTIVE })] }, overrides('web', { 1: 20, 2: 7 })],
      [{ ...catalog, clusters: [catalog.clusters[1] as Cluster, catalog.clusters[0] as Cluster] }, overrides('web', { 3: 9 })],
    ];
    for (const [c, w] of steps) {
      const incremental = t.translate(c, w, undefined, { grpc: true });
      const whole = new Translator().translate(c, w, undefined, { grpc: true });
      expectSameTranslation(incremental, whole);
    }
  });

  it('encodes big clusters\' gRPC form ahead in slices, and translate uses it', async () => {
    const big = cluster('big', { weighting: ADAPTIVE, endpoints: Array.from({ length: 1_200 }, (_, i) => endpoint(1_000 + i)) });
    const c: Catalog = { clusters: [big], listeners: [], nodeGroups: [] };
    const t = new Translator();
    t.translate(c, undefined, undefined, { grpc: true });
    const w = overrides('big', { 1_000: 50 });
    const pending = t.bigPending(c, w, { grpc: true });
    expect(pending.map((x) => x.name)).toEqual(['big']);
    let turns = 0;
    await t.prepare(pending, w, async () => void turns++, { grpc: true });
    expect(turns).toBeGreaterThan(2);
    expect(t.bigPending(c, w, { grpc: true })).toEqual([]);
    const out = t.translate(c, w, undefined, { grpc: true });
    const ls = localities(out.get(DEFAULT_GRPC_GROUP), 'big');
    expect(ls).toHaveLength(1_200);
    expect(ls[0]?.load_balancing_weight?.value).toBe(50);
  });

  it('counts a split cluster\'s endpoints twice towards encoding a publication ahead with gRPC\'s form on, and encodes ahead only the forms not known', async () => {
    const fleet = (clusters: number): Catalog => ({ clusters: Array.from({ length: clusters }, (_, c) => cluster(`c${c}`, { weighting: ADAPTIVE, endpoints: Array.from({ length: 100 }, (_, i) => endpoint(1_000 * c + i)) })), listeners: [], nodeGroups: [] });
    const tickOf = (f: Catalog): WeightOverrides => new Map(f.clusters.map((c) => [c.name, new Map<string, EndpointOverride>([[`10.0.0.1:${c.endpoints[0]?.port ?? 0}`, { weight: 9 }]])]));
    // 4,000 endpoints: in one go for Envoys alone (under BIG_PUBLICATION_ENDPOINTS), 8,000 entries with gRPC's form on.
    const small = fleet(40);
    const envoys = new Translator();
    envoys.translate(small);
    expect(envoys.bigPending(small, tickOf(small))).toEqual([]);
    const t = new Translator();
    t.translate(small, undefined, undefined, { grpc: true });
    expect(t.bigPending(small, tickOf(small), { grpc: true })).toHaveLength(40);
    // The first gRPC client finds every Envoy form encoded: 4,000 gRPC entries go in one go, and of
    // 6,000 only gRPC's form is encoded ahead (a turn per ELEMENTS_PER_PIECE endpoints: 6).
    const first = new Translator();
    first.translate(small, tickOf(small));
    expect(first.bigPending(small, tickOf(small), { grpc: true })).toEqual([]);
    const big = fleet(60);
    const tick = tickOf(big);
    const before = first.translate(big, tick);
    const pending = first.bigPending(big, tick, { grpc: true });
    expect(pending).toHaveLength(60);
    let turns = 0;
    await first.prepare(pending, tick, async () => void turns++, { grpc: true });
    expect(turns).toBeLessThanOrEqual(6);
    const out = first.translate(big, tick, undefined, { grpc: true });
    expect(out.get(DEFAULT_GROUP)?.get(TYPE.endpoint)?.get('c0')).toBe(before.get(DEFAULT_GROUP)?.get(TYPE.endpoint)?.get('c0'));
    expect(localities(out.get(DEFAULT_GRPC_GROUP), 'c7')).toHaveLength(100);
  });

  it('keeps the sum of a priority\'s locality weights within a uint32, as gRPC demands, when every endpoint is its own locality', () => {
    // 5,000 endpoints at the largest weight a config takes: 5e9 in all, past 2^32 − 1.
    const heavy = cluster('heavy', { endpoints: Array.from({ length: 5_000 }, (_, i) => endpoint(10_000 + i, { weight: 1_000_000 - (i % 2) })) });
    const out = new Translator().translate({ clusters: [heavy], listeners: [], nodeGroups: [] }, undefined, undefined, { grpc: true });
    const ls = localities(out.get(DEFAULT_GRPC_GROUP), 'heavy');
    expect(ls).toHaveLength(5_000);
    const weights = ls.map((l) => l.load_balancing_weight?.value ?? 0);
    expect(Math.min(...weights)).toBeGreaterThanOrEqual(1);
    expect(weights.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(2 ** 32 - 1);
  });
});
