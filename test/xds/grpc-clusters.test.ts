import { describe, expect, it } from 'vitest';
import type { Catalog, Cluster, Endpoint } from '../../src/catalog/types.js';
import { DEFAULT_GRPC_GROUP, formGroupKey } from '../../src/xds/client-form.js';
import { envoyType, TYPE } from '../../src/xds/envoy-api.js';
import { DEFAULT_GROUP, type ResourceSet } from '../../src/xds/resource-set.js';
import { Translator } from '../../src/xds/translator.js';
import { expectSameTranslation } from '../support/same-translation.js';

/** The Cluster resource gRPC clients get where it differs from Envoy's (src/xds/grpc-clusters.ts). */

const endpoint = (port: number): Endpoint => ({
  address: '10.0.0.1', port, weight: port, priority: 0, health: 'HEALTHY', locality: { region: 'eu', zone: 'a', subZone: '' },
});

const cluster = (name: string, extra: Partial<Cluster> = {}): Cluster => ({
  name, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: true, weighting: { kind: 'static' }, endpoints: [endpoint(1), endpoint(3)], ...extra,
});

const SLOW = { windowMs: 10_000 };

function decoded(set: ResourceSet | undefined, name: string): Record<string, unknown> {
  const r = set?.get(TYPE.cluster)?.get(name);
  if (!r) throw new Error(`CDS ${name} missing`);
  const t = envoyType('envoy.config.cluster.v3.Cluster');
  return t.toObject(t.decode(r.bytes), { enums: String, defaults: false }) as Record<string, unknown>;
}

const catalog: Catalog = {
  clusters: [cluster('rr-slow', { slowStart: SLOW }), cluster('lr-slow', { lbPolicy: 'LEAST_REQUEST', leastRequest: { choiceCount: 2 }, slowStart: SLOW }), cluster('plain')],
  listeners: [],
  nodeGroups: [{ nodeCluster: 'edge', listeners: [], clusters: ['rr-slow'] }],
};

describe('gRPC\'s form of a Cluster', () => {
  it('ROUND_ROBIN with slow start: Envoy gets the typed RoundRobin, gRPC the cluster without it (lb_policy ROUND_ROBIN, which it wraps in wrr_locality)', () => {
    const out = new Translator().translate(catalog, undefined, undefined, { grpc: true });
    const envoy = decoded(out.get(DEFAULT_GROUP), 'rr-slow');
    expect(JSON.stringify(envoy.load_balancing_policy)).toContain('envoy.load_balancing_policies.round_robin');
    const grpc = decoded(out.get(DEFAULT_GRPC_GROUP), 'rr-slow');
    expect(grpc.load_balancing_policy).toBeUndefined();
    expect(grpc.lb_policy ?? 'ROUND_ROBIN').toBe('ROUND_ROBIN');
    expect(decoded(out.get(DEFAULT_GROUP), 'plain')).toEqual({ ...grpc, name: 'plain' });
    // Node groups get it too.
    expect(out.get(formGroupKey('edge', 'grpc'))?.get(TYPE.cluster)?.get('rr-slow')).toBe(out.get(DEFAULT_GRPC_GROUP)?.get(TYPE.cluster)?.get('rr-slow'));
    // LEAST_REQUEST keeps its policy list (grpc-js takes the round-robin fallback, grpc-go least
    // request), and every other cluster is the very resource Envoy gets.
    for (const name of ['lr-slow', 'plain']) expect(out.get(DEFAULT_GRPC_GROUP)?.get(TYPE.cluster)?.get(name)).toBe(out.get(DEFAULT_GROUP)?.get(TYPE.cluster)?.get(name));
    // Without gRPC's form, nothing more is built.
    expect(new Translator().translate(catalog).has(DEFAULT_GRPC_GROUP)).toBe(false);
  });

  it('shares Envoy\'s CDS map while no cluster differs, and keeps gRPC\'s through a translation that changed no Cluster (a weight tick)', () => {
    const t = new Translator();
    const plainOnly = t.translate({ ...catalog, clusters: [cluster('plain')] }, undefined, undefined, { grpc: true });
    expect(plainOnly.get(DEFAULT_GRPC_GROUP)?.get(TYPE.cluster)).toBe(plainOnly.get(DEFAULT_GROUP)?.get(TYPE.cluster));
    const before = t.translate(catalog, undefined, undefined, { grpc: true });
    const tick = t.translate(catalog, new Map([['rr-slow', new Map([['10.0.0.1:1', { weight: 7 }]])]]), undefined, { grpc: true });
    expect(tick.get(DEFAULT_GRPC_GROUP)?.get(TYPE.cluster)).toBe(before.get(DEFAULT_GRPC_GROUP)?.get(TYPE.cluster));
    expect(tick.get(DEFAULT_GRPC_GROUP)?.get(TYPE.endpoint)?.get('rr-slow')).not.toBe(before.get(DEFAULT_GRPC_GROUP)?.get(TYPE.endpoint)?.get('rr-slow'));
  });

  it('follows slow start turned on and off, creations, deletions and moves incrementally with the bytes a whole translation gives', () => {
    const t = new Translator();
    t.translate(catalog, undefined, undefined, { grpc: true });
    const [rr, lr, plain] = catalog.clusters as [Cluster, Cluster, Cluster];
    const steps: Catalog[] = [
      { ...catalog, clusters: [rr, lr, cluster('plain', { slowStart: SLOW })] },
      { ...catalog, clusters: [cluster('rr-slow'), lr, plain] },
      { ...catalog, clusters: [plain, rr, cluster('new', { slowStart: { windowMs: 5_000, aggression: 2 } })] },
      { ...catalog, clusters: [rr, plain] },
    ];
    for (const c of steps) {
      const incremental = t.translate(c, undefined, undefined, { grpc: true });
      const whole = new Translator().translate(c, undefined, undefined, { grpc: true });
      expectSameTranslation(incremental, whole);
    }
  });
});
