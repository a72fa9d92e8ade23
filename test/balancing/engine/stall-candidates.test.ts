/**
 * ClusterState.stallCandidates (87c4c95) gates the stall rule: while it is 0 a tick reads no
 * endpoint's flow, so an undercount leaves a stalled endpoint in rotation. It is kept as samples
 * arrive (noteFlow) and recounted when a cluster is installed; this property holds it to the
 * truth (the endpoints whose flow mayStall) after samples in and out of order, endpoint sets
 * changed whole or prepared in steps with samples arriving meanwhile, error-window changes (every
 * state rebuilt from its predecessor), ticks, and an HA export imported back.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import { mayStall } from '../../../src/balancing/engine/tick/stall.js';
import type { ClusterState } from '../../../src/balancing/engine/state.js';
import type { WeightingPolicy } from '../../../src/balancing/engine/types.js';

const KEYS = Array.from({ length: 6 }, (_, i) => `10.0.0.${i}:80`);
const POLICY: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu' };

type Op =
  | { readonly k: 'sample'; readonly i: number; readonly rps: number; readonly successes: number; readonly inflight: number; readonly skew: number }
  | { readonly k: 'set'; readonly mask: number; readonly errorWindowMs: number; readonly reversed: boolean }
  | { readonly k: 'prepare'; readonly mask: number; readonly errorWindowMs: number; readonly samples: number }
  | { readonly k: 'tick' }
  | { readonly k: 'handover' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    k: fc.constant('sample' as const),
    i: fc.integer({ min: 0, max: KEYS.length - 1 }),
    rps: fc.integer({ min: 0, max: 20 }),
    successes: fc.integer({ min: 0, max: 2 }),
    inflight: fc.integer({ min: 0, max: 40 }),
    skew: fc.integer({ min: -500, max: 500 }),
  }),
  fc.record({ k: fc.constant('set' as const), mask: fc.integer({ min: 1, max: 63 }), errorWindowMs: fc.constantFrom(10_000, 7000), reversed: fc.boolean() }),
  fc.record({ k: fc.constant('prepare' as const), mask: fc.integer({ min: 1, max: 63 }), errorWindowMs: fc.constantFrom(10_000, 7000), samples: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ k: fc.constant('tick' as const) }),
  fc.record({ k: fc.constant('handover' as const) }),
);

const endpointsOf = (mask: number, reversed: boolean): { key: string; weight: number }[] => {
  const keys = KEYS.filter((_, i) => ((mask >> i) & 1) === 1);
  return (reversed ? keys.reverse() : keys).map((key) => ({ key, weight: 1 }));
};

/** A prepared endpoint set committed after its steps, `samples` of them with a stalled flow for every endpoint arriving in between. */
function prepareAndCommit(en: WeightEngine, o: Extract<Op, { k: 'prepare' }>, now: number): void {
  const steps = en.prepareCluster('svc', endpointsOf(o.mask, false), POLICY, { ejection: { errorWindowMs: o.errorWindowMs }, chunk: 1 });
  let r = steps.next();
  for (let n = 1; r.done !== true; n++) {
    if (n <= o.samples) for (const key of KEYS) en.observeSample('svc', key, { at: now + n, cpu: 0.5, rps: 5, errors: 0, successes: 0, inflight: 10 + n });
    r = steps.next();
  }
  en.commitCluster(r.value);
}

function apply(en: WeightEngine, o: Op, now: number): void {
  if (o.k === 'sample') en.observeSample('svc', KEYS[o.i] as string, { at: now + o.skew, cpu: 0.5, rps: o.rps, errors: 0, successes: o.successes, inflight: o.inflight });
  else if (o.k === 'set') en.setCluster('svc', endpointsOf(o.mask, o.reversed), POLICY, undefined, { errorWindowMs: o.errorWindowMs });
  else if (o.k === 'prepare') prepareAndCommit(en, o, now);
  else if (o.k === 'tick') en.tick(now);
  else {
    const state = en.exportClusterState('svc');
    if (state !== undefined) en.importClusterState('svc', state, now);
  }
}

/** The engine's cluster state (private: what the count is kept in). */
const clusterOf = (en: WeightEngine): ClusterState => (en as unknown as { readonly clusters: ReadonlyMap<string, ClusterState> }).clusters.get('svc') as ClusterState;

it('stallCandidates is the number of endpoints whose flow could show a stall, whatever happened to the cluster', () => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), (ops) => {
      const en = new WeightEngine();
      en.setCluster('svc', endpointsOf(63, false), POLICY);
      let now = 1000;
      for (const o of ops) {
        now += 300;
        apply(en, o, now);
        const c = clusterOf(en);
        expect(c.stallCandidates).toBe(c.order.filter((e) => mayStall(e.flow, e.flowPrevInflight)).length);
      }
    }),
    { seed: 5, numRuns: 300 },
  );
});
