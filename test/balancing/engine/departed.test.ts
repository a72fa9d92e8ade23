/**
 * An endpoint removed and re-added under the same key (a pod deleted and recreated at the same
 * address, a config file edit, an admin PUT) keeps its back-off (departed.ts): still ejected until
 * its back-off ends, then probation; a relapse keeps doubling; the probes' back-off likewise; only
 * within the memory's bounds in time and size, and within the cluster's maxEjectedRatio.
 */
import { describe, it, expect } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import { MAX_DEPARTED } from '../../../src/balancing/engine/departed.js';
import type { ClusterTick, EjectionSettings, EngineEndpoint, WeightingPolicy } from '../../../src/balancing/engine/types.js';

const POLICY: WeightingPolicy = { kind: 'ewma' };
const key = (i: number): string => `10.0.0.${i}:80`;

/** A cluster of pool endpoints fed one report per second each: 100 rps, all failing for those in `failing`. */
class Cluster {
  readonly engine: WeightEngine;
  members: number[];
  readonly failing = new Set<number>();
  /** Operator health by pool number. */
  readonly declared = new Map<number, EngineEndpoint['health']>();
  now = 0;
  last: ClusterTick | undefined;

  constructor(
    n: number,
    private readonly ejection: Partial<EjectionSettings> = {},
    health: ConstructorParameters<typeof WeightEngine>[0] = {},
  ) {
    this.engine = new WeightEngine(health);
    this.members = Array.from({ length: n }, (_, i) => i);
    this.write();
  }

  /** Lists `members` (pool numbers) as the cluster's endpoints. */
  set(members: number[]): void {
    this.members = members;
    this.write();
  }

  private write(): void {
    const eps = this.members.map((i): EngineEndpoint => {
      const health = this.declared.get(i);
      return { key: key(i), weight: 1, ...(health !== undefined ? { health } : {}) };
    });
    this.engine.setCluster('svc', eps, POLICY, undefined, this.ejection);
  }

  /** One second on: every member reports, then the engine ticks. */
  step(): ClusterTick {
    this.now += 1_000;
    for (const i of this.members) {
      const errors = this.failing.has(i) ? 100 : 0;
      this.engine.observeSample('svc', key(i), { at: this.now - 100, rps: 100, errors, latencyMs: 10 });
    }
    this.last = this.engine.tick(this.now).clusters.get('svc') as ClusterTick;
    return this.last;
  }

  /** Steps until `done` holds of a tick (at most `max` steps); the steps taken. */
  until(done: (t: ClusterTick) => boolean, max = 400): number {
    for (let k = 1; k <= max; k++) if (done(this.step())) return k;
    throw new Error(`not within ${max} s`);
  }

  health(i: number): string | undefined {
    return this.last?.health.get(key(i));
  }

  rules(i: number): readonly string[] {
    return this.last?.explanations.get(key(i))?.rules ?? [];
  }

  share(i: number): number {
    const t = this.last as ClusterTick;
    return (t.weights.get(key(i)) as number) / [...t.weights.values()].reduce((a, b) => a + b, 0);
  }
}

const out = (c: Cluster, i: number) => (t: ClusterTick): boolean => t.health.get(key(i)) === 'UNHEALTHY' && c.rules(i).includes('ejected');
const back = (i: number) => (t: ClusterTick): boolean => t.health.get(key(i)) === 'HEALTHY';

/** How long (s) endpoint i stays ejected from its next ejection on, failing throughout. */
function nextEjection(c: Cluster, i: number): number {
  c.failing.add(i);
  c.until(out(c, i));
  const ejectedAt = c.now;
  c.until(back(i));
  return (c.now - ejectedAt) / 1_000;
}

/** Endpoint i serves clean traffic until it has come back (off probation), then a few more seconds. */
function recover(c: Cluster, i: number): void {
  c.failing.delete(i);
  c.until(back(i));
  for (let k = 0; k < 15; k++) c.step();
}

describe('a failing endpoint removed and re-added keeps its back-off', () => {
  it('re-added within its back-off: still ejected (UNHEALTHY) until it ends, then on probation, as if it had never left', () => {
    const [c, twin] = [new Cluster(4), new Cluster(4)];
    for (const x of [c, twin]) {
      x.step();
      x.failing.add(3);
      x.until(out(x, 3));
    }
    const until = c.last?.explanations.get(key(3))?.ejection?.until as number;
    expect(until).toBe(c.now + 10_000);
    // Its pod goes, the others serve on; it is listed again (and reports, cleanly) 3 s later.
    c.set([0, 1, 2]);
    for (let k = 0; k < 3; k++) [c, twin].forEach((x) => x.step());
    for (const x of [c, twin]) x.failing.delete(3);
    c.set([0, 1, 2, 3]);
    while (c.now + 1_000 < until) {
      c.step();
      twin.step();
      expect(c.health(3), `${c.now}`).toBe('UNHEALTHY');
      expect(c.rules(3)).toContain('ejected');
      expect(c.last?.explanations.get(key(3))?.ejection).toMatchObject({ until, count: 1 });
    }
    c.step();
    twin.step();
    expect(c.now).toBe(until);
    expect(c.health(3)).toBe('HEALTHY');
    expect(c.rules(3)).toContain('probation');
    // Probation's quarter (then the step limit's 1.25): what the twin that never left gets.
    expect(c.last?.explanations.get(key(3))?.weight).toBeCloseTo(0.25 * 1.25, 9);
    expect(c.share(3)).toBeCloseTo(twin.share(3), 9);
  });

  it('a relapse after a comeback keeps doubling across removals', () => {
    const c = new Cluster(4);
    c.step();
    expect(nextEjection(c, 3)).toBe(10);
    for (const doubled of [20, 40]) {
      recover(c, 3);
      // Out and in again (a restarted pod at the same address), then it fails again: a relapse.
      c.set([0, 1, 2]);
      c.step();
      c.set([0, 1, 2, 3]);
      expect(nextEjection(c, 3)).toBe(doubled);
    }
  });

  it('released before it left: remembered while a relapse would still double (maxEjectionMs from its release), then a plain newcomer', () => {
    const ejection = { maxEjectionMs: 30_000 };
    /** The next ejection's length after it left `leftAfter` s after its release and came back `away` s later. */
    const relapse = (away: number): number => {
      const c = new Cluster(4, ejection);
      c.step();
      expect(nextEjection(c, 3)).toBe(10);
      c.failing.delete(3);
      // Released at c.now; back (off probation) within the next 5 s.
      for (let k = 0; k < 5; k++) c.step();
      c.set([0, 1, 2]);
      for (let k = 0; k < away; k++) c.step();
      c.set([0, 1, 2, 3]);
      return nextEjection(c, 3);
    };
    // Released at R, left at R + 5 s: remembered until R + 30 s.
    expect(relapse(24)).toBe(20);
    expect(relapse(25)).toBe(10);
  });

  it('left while ejected: remembered for maxEjectionMs after it left, released on probation if its back-off ended meanwhile', () => {
    const ejection = { maxEjectionMs: 30_000 };
    /** Its next ejection, back `away` s after it left, failing on: whether on its first tick back, its count. */
    const nextAfter = (away: number): { first: boolean; count: number } => {
      const c = new Cluster(4, ejection);
      c.step();
      c.failing.add(3);
      c.until(out(c, 3));
      c.set([0, 1, 2]);
      for (let k = 0; k < away; k++) c.step();
      c.set([0, 1, 2, 3]);
      const first = c.until(out(c, 3)) === 1;
      return { first, count: c.last?.explanations.get(key(3))?.ejection?.count as number };
    };
    // Its 10 s back-off over while away: released (on probation), judged on its first report as a
    // newcomer is, its history kept.
    expect(nextAfter(29)).toEqual({ first: true, count: 2 });
    expect(nextAfter(30)).toEqual({ first: true, count: 1 });
  });

  it('a resumed ejection counts against maxEjectedRatio: beyond it the endpoint is released and serves on probation', () => {
    // Three endpoints: at most one ejected. 2 is ejected and leaves; 1 fails and takes the room.
    const c = new Cluster(3);
    c.step();
    c.failing.add(2);
    c.until(out(c, 2));
    c.set([0, 1]);
    c.failing.delete(2);
    c.failing.add(1);
    c.until(out(c, 1));
    c.set([0, 1, 2]);
    c.step();
    expect(c.rules(1)).toContain('ejected');
    expect(c.health(2)).toBe('HEALTHY');
    expect(c.rules(2)).toContain('probation');
    expect([...c.last!.health.values()].filter((h) => h === 'UNHEALTHY')).toHaveLength(1);
  });

  it('a resumed ejection never takes out the last endpoint that could serve', () => {
    const c = new Cluster(2);
    c.step();
    c.failing.add(1);
    c.until(out(c, 1));
    c.set([0]);
    c.step();
    // The other one drained meanwhile: 1 would be the only one left to serve.
    c.declared.set(0, 'DRAINING');
    c.set([0, 1]);
    c.step();
    expect(c.failing.has(1)).toBe(true);
    expect(c.rules(1)).not.toContain('ejected');
    expect(c.rules(1)).not.toContain('fail-static');
    expect(c.health(1)).toBe('HEALTHY');
  });

  it('the probes\' back-off comes back too: down until its retry, then RECOVERING', () => {
    const c = new Cluster(4, {}, { health: { baseBackoffMs: 20_000 } });
    c.step();
    for (let k = 1; k <= 3; k++) c.engine.observeProbe('svc', key(3), { ok: false, at: c.now + 100 * k });
    c.step();
    expect(c.rules(3)).toContain('probe-unhealthy');
    const retryAt = c.now - 1_000 + 300 + 20_000;
    c.set([0, 1, 2]);
    c.step();
    c.set([0, 1, 2, 3]);
    while (c.now + 1_000 < retryAt) {
      c.step();
      expect(c.health(3), `${c.now}`).toBe('UNHEALTHY');
      expect(c.last?.explanations.get(key(3))?.healthState).toBe('UNAVAILABLE');
    }
    c.step();
    expect(c.last?.explanations.get(key(3))?.healthState).toBe('RECOVERING');
    expect(c.health(3)).toBe('UNHEALTHY');
  });

  it('nothing else comes back: its estimators and samples start over', () => {
    const c = new Cluster(4);
    for (let k = 0; k < 5; k++) c.step();
    c.failing.add(3);
    c.until(out(c, 3));
    c.set([0, 1, 2]);
    c.step();
    c.set([0, 1, 2, 3]);
    // Not fed from now on: what it shows of measurements at its release is what it kept, if anything.
    c.members = [0, 1, 2];
    c.until(back(3));
    const x = c.last?.explanations.get(key(3));
    expect(x?.rules).toContain('probation');
    expect(x?.ewma?.samples).toBe(0);
    expect(x?.sampleAgeMs).toBeUndefined();
    expect(x?.inputs.rps).toBeUndefined();
  });

  it('forgets the probes\' verdicts with its probe taken off', () => {
    const c = new Cluster(4);
    c.step();
    for (let k = 1; k <= 3; k++) c.engine.observeProbe('svc', key(3), { ok: false, at: c.now + 100 * k });
    c.step();
    c.set([0, 1, 2]);
    expect(c.engine.departedKeys('svc')).toEqual([key(3)]);
    c.engine.forgetProbes('svc');
    expect(c.engine.departedKeys('svc')).toEqual([]);
    c.set([0, 1, 2, 3]);
    c.step();
    expect(c.health(3)).toBe('HEALTHY');
  });
});

describe('the memory is bounded', () => {
  it(`at most ${MAX_DEPARTED} keys per cluster under 100,000 distinct keys churned, the oldest out first`, () => {
    const engine = new WeightEngine();
    const stay = { key: '10.9.0.1:80', weight: 1 };
    const churner = (k: number): EngineEndpoint => ({ key: `10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}:81`, weight: 1 });
    engine.setCluster('svc', [stay], POLICY);
    engine.tick(1_000);
    // Each key probed down and removed: one at a time for the first 20,000, then 10,000 at once (a source replacing its list).
    const downAndOut = (ks: number[]): void => {
      engine.setCluster('svc', [stay, ...ks.map(churner)], POLICY);
      for (const k of ks) for (let p = 1; p <= 3; p++) engine.observeProbe('svc', churner(k).key, { ok: false, at: 1_000 + p });
      engine.setCluster('svc', [stay], POLICY);
      expect(engine.departedKeys('svc').length).toBeLessThanOrEqual(MAX_DEPARTED);
    };
    for (let k = 0; k < 20_000; k++) downAndOut([k]);
    for (let from = 20_000; from < 100_000; from += 10_000) downAndOut(Array.from({ length: 10_000 }, (_, j) => from + j));
    const kept = engine.departedKeys('svc');
    expect(kept).toHaveLength(MAX_DEPARTED);
    // All of the last batch (taken in key order, so the same whatever order the source listed them).
    const last = new Set(Array.from({ length: 10_000 }, (_, j) => churner(90_000 + j).key));
    expect(kept.every((k) => last.has(k))).toBe(true);
    expect(kept).toEqual([...last].sort().slice(-MAX_DEPARTED));
    // The newest are remembered (still down), the oldest forgotten (a plain newcomer).
    const newest = kept.at(-1) as string;
    engine.setCluster('svc', [stay, { key: newest, weight: 1 }, churner(0), churner(19_999)], POLICY);
    const t = engine.tick(2_000).clusters.get('svc') as ClusterTick;
    expect(t.explanations.get(newest)?.rules).toContain('probe-unhealthy');
    expect(t.health.get(churner(0).key)).toBe('HEALTHY');
    expect(t.health.get(churner(19_999).key)).toBe('HEALTHY');
  });
});
