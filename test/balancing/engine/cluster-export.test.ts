import { describe, expect, it } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { ExportedClusterState } from '../../../src/balancing/engine/index.js';
import { SAFETY_DEFAULTS, type ClusterTick, type EngineEndpoint, type WeightingPolicy } from '../../../src/balancing/engine/types.js';

const PID: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu' };
const BLEND: WeightingPolicy = { kind: 'blend', parts: { pid: 0.5, ewma: 0.5 } };
const CAPACITY = [1, 2, 4];
const endpoints: EngineEndpoint[] = CAPACITY.map((_, i) => ({ key: `10.0.0.${i + 1}:80`, weight: 1 }));

/** Utilization of each endpoint for the published weights: its share of 6 units of load over its capacity. */
function feed(engine: WeightEngine, weights: ReadonlyMap<string, number> | undefined, at: number): void {
  const w = endpoints.map((e) => weights?.get(e.key) ?? 1);
  const sum = w.reduce((a, b) => a + b, 0);
  endpoints.forEach((e, i) => {
    const cpu = ((w[i] as number) / sum) * 3 / (CAPACITY[i] as number);
    engine.observeSample('svc', e.key, { at, cpu, latencyMs: 10 + 40 * cpu });
  });
}

function tick(engine: WeightEngine, now: number): ClusterTick {
  return engine.tick(now).clusters.get('svc') as ClusterTick;
}

/** Runs an owner for `ticks` ticks of 1 s and returns it with its last published weights. */
function runOwner(policy: WeightingPolicy, ticks: number): { engine: WeightEngine; last: ReadonlyMap<string, number>; now: number } {
  const engine = new WeightEngine();
  engine.setCluster('svc', endpoints, policy);
  let last: ReadonlyMap<string, number> | undefined;
  let now = 0;
  for (let t = 0; t < ticks; t++) {
    now = t * 1_000;
    feed(engine, last, now - 100);
    last = tick(engine, now).weights;
  }
  return { engine, last: last as ReadonlyMap<string, number>, now };
}

/** max/min over endpoints of new/old: the step limit bounds it by maxStepRatio² (each side moves at most once). */
function spread(before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>): number {
  const q = [...before].map(([k, v]) => (after.get(k) as number) / v);
  return Math.max(...q) / Math.min(...q);
}

describe('WeightEngine: exportClusterState / importClusterState', () => {
  it('is undefined for an unknown cluster or one that never ticked, and plain JSON after a tick', () => {
    const engine = new WeightEngine();
    expect(engine.exportClusterState('svc')).toBeUndefined();
    engine.setCluster('svc', endpoints, PID);
    expect(engine.exportClusterState('svc')).toBeUndefined();
    tick(engine, 0);
    const state = engine.exportClusterState('svc') as ExportedClusterState;
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
    expect(Object.keys(state.endpoints)).toEqual(endpoints.map((e) => e.key));
  });

  for (const [name, policy] of [['pid', PID], ['blend', BLEND]] as const) {
    it(`a successor (${name}) continues within the step limit of the last published weights; one from scratch does not`, () => {
      const { engine: owner, last, now } = runOwner(policy, 40);
      // The owner converged far from the static 1:1:1, toward 1:2:4.
      expect((last.get('10.0.0.3:80') as number) / (last.get('10.0.0.1:80') as number)).toBeGreaterThan(2);
      const state = JSON.parse(JSON.stringify(owner.exportClusterState('svc'))) as ExportedClusterState;

      const successor = new WeightEngine();
      successor.setCluster('svc', endpoints, policy);
      expect(successor.importClusterState('svc', state)).toBe(3);
      const scratch = new WeightEngine();
      scratch.setCluster('svc', endpoints, policy);
      // The hand-over took 4 s: the first tick still moves at most one step.
      for (const e of [owner, successor, scratch]) feed(e, last, now + 4_000);
      const next = tick(successor, now + 4_100);
      const ownerNext = tick(owner, now + 4_100);
      expect(spread(last, next.weights)).toBeLessThanOrEqual(SAFETY_DEFAULTS.maxStepRatio ** 2 * 1.001);
      expect(spread(last, tick(scratch, now + 4_100).weights)).toBeGreaterThan(SAFETY_DEFAULTS.maxStepRatio ** 2);
      // And it steers like the owner would have: every weight within 5% of the owner's.
      for (const [k, v] of ownerNext.weights) expect(Math.abs((next.weights.get(k) as number) / v - 1)).toBeLessThan(0.05);
    });
  }

  it('ignores endpoints it does not know and rejects another format version', () => {
    const { engine: owner } = runOwner(PID, 5);
    const state = owner.exportClusterState('svc') as ExportedClusterState;
    const successor = new WeightEngine();
    successor.setCluster('svc', endpoints.slice(0, 2), PID);
    expect(successor.importClusterState('svc', state)).toBe(2);
    expect(successor.importClusterState('other', state)).toBe(0);
    expect(() => successor.importClusterState('svc', { ...state, version: 2 as 1 })).toThrow(/version 2/);
  });

  it('skips a malformed endpoint entry instead of half applying it', () => {
    const { engine: owner, last } = runOwner(PID, 10);
    const state = owner.exportClusterState('svc') as ExportedClusterState;
    const bad = { ...state, endpoints: { ...state.endpoints, '10.0.0.1:80': { ...state.endpoints['10.0.0.1:80'], w: -1 } } } as ExportedClusterState;
    const successor = new WeightEngine();
    successor.setCluster('svc', endpoints, PID);
    expect(successor.importClusterState('svc', bad)).toBe(2);
    expect(tick(successor, 20_000).weights.size).toBe(last.size);
  });
});

describe('a hand-over from a replica whose clock runs ahead', () => {
  const four: EngineEndpoint[] = [1, 2, 3, 4].map((i) => ({ key: `10.0.0.${i}:80`, weight: 1 }));
  const bad = (four[3] as EngineEndpoint).key;

  /** The old owner ticks on a clock `skew` ms ahead; the successor imports (with its own now) and sees one endpoint fail every request. */
  function handOver(skew: number): { taken: number; health: string | undefined } {
    const T = 1_000_000;
    const owner = new WeightEngine();
    owner.setCluster('svc', four, PID);
    for (let t = 0; t < 10; t++) {
      const now = T + skew + t * 1000;
      for (const ep of four) owner.observeSample('svc', ep.key, { at: now - 100, cpu: 0.5, rps: 100, errors: 0 });
      tick(owner, now);
    }
    const next = new WeightEngine();
    next.setCluster('svc', four, PID);
    next.importClusterState('svc', owner.exportClusterState('svc') as ExportedClusterState, T + 10_000);
    let taken = 0;
    let last: ClusterTick | undefined;
    for (let t = 10; t < 20; t++) {
      const now = T + t * 1000;
      for (const ep of four) {
        const failing = ep.key === bad;
        if (next.observeSample('svc', ep.key, { at: now - 100, cpu: failing ? 0.05 : 0.5, rps: 100, errors: failing ? 100 : 0 })) taken++;
      }
      last = tick(next, now);
    }
    return { taken, health: last?.health.get(bad) };
  }

  it('takes no exported time later than its own now: its own samples count and a failing endpoint is ejected (0 of 40 taken before)', () => {
    expect(handOver(0)).toEqual({ taken: 40, health: 'UNHEALTHY' });
    expect(handOver(600_000)).toEqual({ taken: 40, health: 'UNHEALTHY' });
  });
});
