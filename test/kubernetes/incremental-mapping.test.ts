import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, test } from 'vitest';
import type { Cluster } from '../../src/catalog/types.js';
import { IncrementalMapping } from '../../src/sources/kubernetes/incremental-mapping.js';
import { slicesToClusters, type EndpointSliceLike, type NodeTopology, type ServiceLike } from '../../src/sources/kubernetes/mapping.js';

/**
 * A world the informers could hold: Services and slices as objects, replaced (never mutated) when
 * they change, as the informers' caches do.
 */
interface World {
  services: Map<string, ServiceLike>;
  slices: Map<string, EndpointSliceLike>;
  nodes: ReadonlyMap<string, NodeTopology> | undefined;
}

const NAMES = ['a', 'b', 'c', 'd'];
const POLICIES = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RING_HASH', 'nonsense'];

const service = (name: string, variant: number): ServiceLike => ({
  metadata: {
    name,
    namespace: 'shop',
    labels: { 'fulcrum.io/balance': variant % 7 === 6 ? 'false' : 'true' },
    annotations: { 'fulcrum.io/lb-policy': POLICIES[variant % POLICIES.length] as string, ...(variant % 3 === 0 ? { 'fulcrum.io/hash-header': 'x-user' } : {}) },
  },
  spec: { ports: variant % 2 === 0 ? [{ name: 'http', port: 80 }] : [{ name: 'http', port: 80 }, { name: 'admin', port: 9901 }] },
});

const slice = (name: string, service: string, ready: readonly boolean[]): EndpointSliceLike => ({
  metadata: { name, namespace: 'shop', labels: { 'kubernetes.io/service-name': service } },
  addressType: 'IPv4',
  endpoints: ready.map((r, i) => ({ addresses: [`10.0.${NAMES.indexOf(service)}.${i + 1}`], conditions: { ready: r }, nodeName: `node-${i % 2}` })),
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'admin', port: 9901, protocol: 'TCP' }],
});

/** One event an informer could deliver. */
type Step =
  | { kind: 'service'; name: string; variant: number }
  | { kind: 'delete-service'; name: string }
  | { kind: 'slice'; name: string; ready: boolean[]; which: number }
  | { kind: 'delete-slice'; name: string; which: number }
  | { kind: 'touch'; name: string }
  | { kind: 'nodes'; region: string | undefined }
  | { kind: 'relist' };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('service' as const), name: fc.constantFrom(...NAMES), variant: fc.nat(20) }),
  fc.record({ kind: fc.constant('delete-service' as const), name: fc.constantFrom(...NAMES) }),
  fc.record({ kind: fc.constant('slice' as const), name: fc.constantFrom(...NAMES), ready: fc.array(fc.boolean(), { maxLength: 4 }), which: fc.nat(1) }),
  fc.record({ kind: fc.constant('delete-slice' as const), name: fc.constantFrom(...NAMES), which: fc.nat(1) }),
  fc.record({ kind: fc.constant('touch' as const), name: fc.constantFrom(...NAMES) }),
  fc.record({ kind: fc.constant('nodes' as const), region: fc.option(fc.constantFrom('eu', 'us'), { nil: undefined }) }),
  fc.constant({ kind: 'relist' as const }),
);

function apply(w: World, s: Step): void {
  switch (s.kind) {
    case 'service':
      w.services.set(s.name, service(s.name, s.variant));
      return;
    case 'delete-service':
      w.services.delete(s.name);
      return;
    case 'slice':
      w.slices.set(`${s.name}-${s.which}`, slice(`${s.name}-${s.which}`, s.name, s.ready));
      return;
    case 'delete-slice':
      w.slices.delete(`${s.name}-${s.which}`);
      return;
    case 'touch': {
      // The same content in new objects (a MODIFIED event that changes nothing fulcrum reads).
      const svc = w.services.get(s.name);
      if (svc) w.services.set(s.name, structuredClone(svc));
      return;
    }
    case 'nodes':
      w.nodes = s.region === undefined ? undefined : new Map([['node-0', { region: s.region, zone: `${s.region}-a` }]]);
      return;
    case 'relist':
      // 410 Gone: every object new, the same content.
      w.services = new Map([...w.services].map(([k, v]) => [k, structuredClone(v)]));
      w.slices = new Map([...w.slices].map(([k, v]) => [k, structuredClone(v)]));
      return;
  }
}

const options = (w: World) => (w.nodes ? { nodes: w.nodes } : {});

describe('IncrementalMapping', () => {
  test('gives what slicesToClusters gives after every event, keeping each unchanged cluster and an unchanged view the same object', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => {
        const w: World = { services: new Map(), slices: new Map(), nodes: undefined };
        const mapping = new IncrementalMapping();
        let before = mapping.map([], [], {});
        for (const s of steps) {
          apply(w, s);
          const view = mapping.map(w.services.values(), w.slices.values(), options(w));
          expect(view).toEqual(slicesToClusters(w.services.values(), w.slices.values(), options(w)));
          const previous = new Map(before.clusters.map((c) => [c.name, c]));
          for (const c of view.clusters) {
            const p = previous.get(c.name);
            if (p !== undefined && isDeepStrictEqual(p, c)) expect(c).toBe(p);
            // The catalog merge keeps a routed listener while its hash policies are the same objects.
            const [h, hp] = [view.hashPolicies.get(c.name), before.hashPolicies.get(c.name)];
            if (h !== undefined && isDeepStrictEqual(h, hp)) expect(h).toBe(hp);
          }
          if (isDeepStrictEqual(view, before)) expect(view).toBe(before);
          before = view;
        }
      }),
      { numRuns: 300 },
    );
  });

  test('maps only the Services whose objects changed', () => {
    const mapping = new IncrementalMapping();
    const services = [service('a', 0), service('b', 0)];
    const slices = [slice('a-0', 'a', [true, true]), slice('b-0', 'b', [true])];
    const first = mapping.map(services, slices);
    const [a, b] = ['shop/a:http', 'shop/b:http'].map((n) => first.clusters.find((c: Cluster) => c.name === n));
    const second = mapping.map(services, [slice('a-0', 'a', [true, false]), slices[1] as EndpointSliceLike]);
    expect(second).not.toBe(first);
    expect(second.clusters.find((c) => c.name === 'shop/b:http')).toBe(b);
    expect(second.clusters.find((c) => c.name === 'shop/a:http')).not.toBe(a);
    expect(second.clusters.find((c) => c.name === 'shop/a:http')?.endpoints.map((e) => e.health)).toEqual(['HEALTHY', 'UNHEALTHY']);
  });
});
