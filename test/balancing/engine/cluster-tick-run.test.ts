import { describe, expect, it } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { ClusterTick, EngineEndpoint, WeightingPolicy } from '../../../src/balancing/engine/types.js';

const N = 60;
const key = (i: number): string => `10.0.0.${i + 1}:80`;
const eps = (n: number, shift = 0): EngineEndpoint[] =>
  Array.from({ length: n }, (_, i) => ({ key: key(i), weight: 1 + ((i + shift) % 3), locality: `z${i % 2}` }));
const POLICIES: WeightingPolicy[] = [
  { kind: 'pid', setpoint: 'mean', metric: 'cpu' },
  { kind: 'pid', setpoint: 0.6, metric: 'cpu-latency' },
  { kind: 'blend', parts: { pid: 0.5, ewma: 0.3, static: 0.2 }, metric: 'cpu' },
  { kind: 'static' },
];

/** Uneven CPU, some errors and a few failing probes: every stage has work. */
function feed(en: WeightEngine, t: number): void {
  for (let i = 0; i < N; i++) {
    const at = t * 1000 - 100;
    en.observeSample('svc', key(i), { at, cpu: 0.2 + ((i * 7 + t * 3) % 10) / 15, latencyMs: 5 + ((i * 13 + t) % 40), rps: 100, errors: i % 11 === 5 ? 30 : 0 });
    if (i % 13 === 2) en.observeProbe('svc', key(i), { at, ok: (t + i) % 3 !== 0 });
  }
}

const plain = (t: ClusterTick | undefined): unknown =>
  t === undefined ? undefined : [[...t.weights], [...t.health], t.changed, t.failStatic, t.setpoint, [...t.explanations]];

/** Runs a started cluster tick to completion; `between` runs between two steps. Returns the steps taken. */
function complete(run: { step(): boolean }, between: (step: number) => void = () => undefined): number {
  let steps = 1;
  while (!run.step()) between(steps++);
  return steps;
}

describe('WeightEngine.startClusterTick: one cluster in steps', () => {
  it.each(POLICIES)('gives exactly the whole tick, explanations included, at any chunk (%o)', (policy) => {
    for (const chunk of [1, 7, 25]) {
      const whole = new WeightEngine();
      const split = new WeightEngine();
      for (const en of [whole, split]) en.setCluster('svc', eps(N), policy);
      for (let t = 1; t <= 12; t++) {
        for (const en of [whole, split]) feed(en, t);
        const expected = whole.tickClusters(t * 1000, ['svc']).clusters.get('svc');
        const run = split.startClusterTick(t * 1000, 'svc', chunk);
        const steps = complete(run);
        expect(steps).toBeGreaterThan(N / chunk);
        expect(plain(run.result)).toEqual(plain(expected));
      }
    }
  });

  it('a cluster no larger than the chunk is one step, and an unknown one completes at once without a result', () => {
    const en = new WeightEngine();
    en.setCluster('svc', eps(N), POLICIES[0] as WeightingPolicy);
    feed(en, 1);
    expect(complete(en.startClusterTick(1000, 'svc', N))).toBe(1);
    const unknown = en.startClusterTick(1000, 'nope', 5);
    expect(unknown.step()).toBe(true);
    expect(unknown.result).toBeUndefined();
  });

  it('samples, probes and a new endpoint set arriving mid-tick count after it, in order, as if they came just after', () => {
    const policy = POLICIES[0] as WeightingPolicy;
    const after = new WeightEngine();
    const split = new WeightEngine();
    for (const en of [after, split]) en.setCluster('svc', eps(N), policy);
    for (const en of [after, split]) feed(en, 1);
    // The reference: the whole tick, then the same calls.
    const mid = (en: WeightEngine): void => {
      feed(en, 2);
      en.setCluster('svc', eps(N + 3, 1), policy);
      en.observeSample('svc', key(N + 1), { at: 1950, cpu: 0.9 });
    };
    const expected = after.tickClusters(1000, ['svc']).clusters.get('svc');
    mid(after);
    const run = split.startClusterTick(1000, 'svc', 10);
    complete(run, (step) => {
      if (step === 3) mid(split);
    });
    expect(plain(run.result)).toEqual(plain(expected));
    // What followed the tick is the same in both: the next ticks agree, over the new endpoint set.
    for (let t = 2; t <= 4; t++) {
      const a = after.tickClusters(t * 1000, ['svc']).clusters.get('svc');
      const b = split.tickClusters(t * 1000, ['svc']).clusters.get('svc');
      expect(a?.weights.size).toBe(N + 3);
      expect(plain(b)).toEqual(plain(a));
    }
  });

  it('another tick, or an export, first completes the tick in flight; a run nobody drives stops deferring past a bound', () => {
    const policy = POLICIES[0] as WeightingPolicy;
    const ref = new WeightEngine();
    const en = new WeightEngine();
    for (const e of [ref, en]) e.setCluster('svc', eps(N), policy);
    for (const e of [ref, en]) feed(e, 1);
    const expected = plain(ref.tickClusters(1000, ['svc']).clusters.get('svc'));
    const run = en.startClusterTick(1000, 'svc', 5);
    run.step();
    expect(run.complete).toBe(false);
    // A whole tick meanwhile: the run completes first (its result is the one expected), then the new tick runs.
    const next = en.tick(2000).clusters.get('svc');
    expect(run.complete).toBe(true);
    expect(plain(run.result)).toEqual(expected);
    expect(plain(next)).toEqual(plain(ref.tick(2000).clusters.get('svc')));

    const abandoned = en.startClusterTick(3000, 'svc', 5);
    abandoned.step();
    expect(en.exportClusterState('svc')).toBeDefined();
    expect(abandoned.complete).toBe(true);

    const forgotten = en.startClusterTick(4000, 'svc', 5);
    forgotten.step();
    let t = 5;
    while (!forgotten.complete && t < 100) feed(en, t++);
    // 4 × 60 + 1,000 deferred observations at most: about 19 feeds of 65.
    expect(forgotten.complete).toBe(true);
    expect(t).toBeLessThan(30);
  });
});
