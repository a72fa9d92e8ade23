import { describe, it, expect } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { ClusterTick, EngineEndpoint, WeightingPolicy } from '../../../src/balancing/engine/types.js';

const PID: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu' };
const QUARTER = { newcomerShare: 0.25 };
const key = (i: number): string => `10.0.0.${i + 1}:80`;
const eps = (n: number, health?: (i: number) => EngineEndpoint['health']): EngineEndpoint[] =>
  Array.from({ length: n }, (_, i) => ({ key: key(i), weight: 1, ...(health?.(i) !== undefined ? { health: health(i) } : {}) }));
const cluster = (engine: WeightEngine, now: number): ClusterTick => engine.tick(now).clusters.get('svc') as ClusterTick;
const share = (t: ClusterTick, i: number): number => (t.weights.get(key(i)) as number) / [...t.weights.values()].reduce((a, b) => a + b, 0);
const rules = (t: ClusterTick, i: number): readonly string[] => t.explanations.get(key(i))?.rules ?? [];

/** Each endpoint's cpu follows its share of the load (equal capacities, 50% busy on average). */
function load(engine: WeightEngine, t: ClusterTick, n: number, now: number): void {
  for (let i = 0; i < n; i++) engine.observeSample('svc', key(i), { at: now - 100, cpu: (n / 2) * share(t, i) });
}

/** An engine whose `n`-endpoint cluster has served a few ticks under load. */
function running(safety?: { newcomerShare: number }, n = 4): { engine: WeightEngine; t: ClusterTick } {
  const engine = new WeightEngine();
  engine.setCluster('svc', eps(n), PID, safety);
  let t = cluster(engine, 1_000);
  for (let now = 2_000; now <= 5_000; now += 1_000) {
    load(engine, t, n, now);
    t = cluster(engine, now);
  }
  return { engine, t };
}

describe('WeightEngine: newcomers (an endpoint added while its cluster serves)', () => {
  it('start at newcomerShare of their fair share and, warm, earn the rest through the controller', () => {
    const { engine } = running(QUARTER);
    engine.setCluster('svc', eps(5), PID, QUARTER);
    let t = cluster(engine, 6_000);
    expect(rules(t, 4)).toContain('probation');
    // A quarter of the others' weight: 1/(4 × 4 + 1) of the cluster.
    expect(share(t, 4)).toBeCloseTo(1 / 17, 2);
    let earnedAt: number | undefined;
    for (let now = 7_000; now <= 30_000 && earnedAt === undefined; now += 1_000) {
      load(engine, t, 5, now);
      t = cluster(engine, now);
      if (share(t, 4) > 0.18) earnedAt = now;
    }
    expect(earnedAt).toBeDefined();
    expect(earnedAt as number).toBeLessThanOrEqual(18_000);
  });

  it('start at a quarter by default, and whole with newcomerShare 1', () => {
    const quarter = running().engine;
    quarter.setCluster('svc', eps(5), PID);
    expect(share(cluster(quarter, 6_000), 4)).toBeCloseTo(1 / 17, 2);
    const { engine } = running({ newcomerShare: 1 });
    engine.setCluster('svc', eps(5), PID, { newcomerShare: 1 });
    const t = cluster(engine, 6_000);
    expect(rules(t, 4)).toContain('joined');
    expect(rules(t, 4)).not.toContain('probation');
    expect(share(t, 4)).toBeGreaterThan(0.15);
  });

  it('listed not ready first (a pod before its readiness), stay newcomers until they first serve', () => {
    const { engine } = running(QUARTER);
    engine.setCluster('svc', eps(5, (i) => (i === 4 ? 'UNHEALTHY' : undefined)), PID, QUARTER);
    let t = cluster(engine, 6_000);
    for (let now = 7_000; now <= 9_000; now += 1_000) {
      load(engine, t, 4, now);
      t = cluster(engine, now);
    }
    engine.setCluster('svc', eps(5), PID, QUARTER);
    t = cluster(engine, 10_000);
    expect(rules(t, 4)).toContain('probation');
    expect(share(t, 4)).toBeCloseTo(1 / 17, 2);
    // Once it has served, out and back in again is a return from UNHEALTHY: its whole share.
    load(engine, t, 5, 11_000);
    cluster(engine, 11_000);
    engine.setCluster('svc', eps(5, (i) => (i === 4 ? 'UNHEALTHY' : undefined)), PID, QUARTER);
    cluster(engine, 12_000);
    engine.setCluster('svc', eps(5), PID, QUARTER);
    t = cluster(engine, 13_000);
    expect(rules(t, 4)).toContain('joined');
    expect(rules(t, 4)).not.toContain('probation');
  });

  it('whose probes failed before they first served come back at the smaller of newcomerShare and probation', () => {
    // A pod listed (and probed) before its process is up: its probes fail, then pass. It has never
    // served, so it is as cold as any newcomer: probation's quarter must not hand it more than the
    // newcomerShare its cluster set.
    const TENTH = { newcomerShare: 0.1 };
    const { engine, t: before } = running(TENTH);
    engine.setCluster('svc', eps(5), PID, TENTH);
    for (let k = 1; k <= 3; k++) engine.observeProbe('svc', key(4), { ok: false, at: 5_000 + 100 * k });
    let t = before;
    for (let now = 6_000; now <= 11_000; now += 1_000) {
      load(engine, t, 4, now);
      t = cluster(engine, now);
      expect(rules(t, 4), `${now}`).toContain('probe-unhealthy');
    }
    // Out for the 5 s back-off (retry at 10.3 s), then three successes: back after the tick of 11 s.
    for (let k = 1; k <= 3; k++) engine.observeProbe('svc', key(4), { ok: true, at: 11_000 + 100 * k });
    load(engine, t, 4, 12_000);
    t = cluster(engine, 12_000);
    expect(rules(t, 4)).toContain('probation');
    // A tenth of the others' weight: 0.1 / 4.1 of the cluster, not a quarter's 0.25 / 4.25.
    expect(share(t, 4)).toBeCloseTo(0.1 / 4.1, 2);
  });

  it('re-weighted before they serve, are newcomers still', () => {
    const { engine } = running(QUARTER);
    engine.setCluster('svc', eps(5), PID, QUARTER);
    engine.setCluster('svc', [...eps(4), { key: key(4), weight: 2 }], PID, QUARTER);
    const t = cluster(engine, 6_000);
    expect(rules(t, 4)).toContain('probation');
    expect(share(t, 4)).toBeCloseTo(2 / 18, 2);
  });

  it('are not the endpoints of a first tick, of a cluster rebuilt after a restart, or of a static policy', () => {
    const { engine } = running(QUARTER);
    // A restart: the cluster rebuilt from its export, with an endpoint the export does not know.
    const exported = engine.exportClusterState('svc');
    if (exported === undefined) throw new Error('no export');
    const restarted = new WeightEngine();
    restarted.setCluster('svc', eps(5), PID, QUARTER);
    expect(restarted.importClusterState('svc', exported, 6_000)).toBe(4);
    const first = cluster(restarted, 6_000);
    for (let i = 0; i < 5; i++) expect(rules(first, i), key(i)).not.toContain('probation');
    // Added before the cluster's first tick: one of its first endpoint set.
    const early = new WeightEngine();
    early.setCluster('svc', eps(2), PID, QUARTER);
    early.setCluster('svc', eps(3), PID, QUARTER);
    expect(rules(cluster(early, 1_000), 2)).toContain('joined');
    // Static weights have nothing to earn a share back with: a newcomer joins whole.
    const fixed = new WeightEngine();
    fixed.setCluster('svc', eps(2), { kind: 'static' }, QUARTER);
    cluster(fixed, 1_000);
    fixed.setCluster('svc', eps(3), { kind: 'static' }, QUARTER);
    expect(share(cluster(fixed, 2_000), 2)).toBeCloseTo(1 / 3, 4);
  });

  it('after a hand-over, are not the endpoints the importer last saw before it ticked the cluster again', () => {
    // The last owner served endpoint 4 for a while, then it was drained: its export leaves it out.
    const drained = eps(5, (i) => (i === 4 ? 'DRAINING' : undefined));
    const owner = running(QUARTER, 5).engine;
    owner.setCluster('svc', drained, PID, QUARTER);
    cluster(owner, 6_000);
    const exported = owner.exportClusterState('svc');
    if (exported === undefined) throw new Error('no export');
    // Two successors: one that never ticked the cluster, one that owned it before endpoint 4 was added.
    const fresh = new WeightEngine();
    fresh.setCluster('svc', drained, PID, QUARTER);
    const stale = new WeightEngine();
    stale.setCluster('svc', eps(4), PID, QUARTER);
    cluster(stale, 500);
    stale.setCluster('svc', drained, PID, QUARTER);
    const undrainedShare = (engine: WeightEngine): { share: number; rules: readonly string[] } => {
      expect(engine.importClusterState('svc', exported, 7_000)).toBe(4);
      cluster(engine, 7_000);
      engine.setCluster('svc', eps(5), PID, QUARTER);
      const after = cluster(engine, 8_000);
      return { share: share(after, 4), rules: rules(after, 4) };
    };
    const expected = undrainedShare(fresh);
    // Back from a drain: its whole share, as the last owner would have given it.
    expect(expected.rules).toContain('joined');
    const got = undrainedShare(stale);
    expect(got.rules).not.toContain('probation');
    expect(got.share).toBeCloseTo(expected.share, 3);
  });

  it('newcomerShare outside (0, 1] is refused', () => {
    const engine = new WeightEngine();
    for (const newcomerShare of [0, -0.5, 1.5, Number.NaN]) expect(() => engine.setCluster('svc', eps(2), PID, { newcomerShare })).toThrow(/newcomerShare/);
  });
});

describe('WeightEngine.forgetNewcomers (a cluster taken over with no state to import)', () => {
  it('gives the endpoints marked since this engine last ticked the cluster their whole share', () => {
    const { engine } = running(QUARTER);
    engine.setCluster('svc', eps(5, (i) => (i === 4 ? 'UNHEALTHY' : undefined)), PID, QUARTER);
    cluster(engine, 6_000);
    engine.forgetNewcomers('svc');
    engine.forgetNewcomers('no-such-cluster');
    engine.setCluster('svc', eps(5), PID, QUARTER);
    const t = cluster(engine, 7_000);
    expect(rules(t, 4)).toContain('joined');
    expect(rules(t, 4)).not.toContain('probation');
  });
});
