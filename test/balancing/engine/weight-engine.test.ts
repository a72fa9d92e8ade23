import { describe, it, expect } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { ClusterTick, EngineEndpoint, WeightingPolicy } from '../../../src/balancing/engine/types.js';

const PID: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu' };
const eps = (...weights: number[]): EngineEndpoint[] => weights.map((weight, i) => ({ key: `10.0.0.${i + 1}:80`, weight }));
const key = (i: number): string => `10.0.0.${i + 1}:80`;
const cluster = (engine: WeightEngine, now: number, name = 'svc'): ClusterTick => engine.tick(now).clusters.get(name) as ClusterTick;
const ints = (t: ClusterTick): number[] => [...t.weights.values()];
const share = (t: ClusterTick, i: number): number => (t.weights.get(key(i)) as number) / ints(t).reduce((a, b) => a + b, 0);

describe('WeightEngine: static policy and integer conversion', () => {
  it('publishes the static ratios as integers, all HEALTHY, changed only on the first tick', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', eps(1, 2, 3), { kind: 'static' });
    const first = cluster(engine, 1_000);
    expect(ints(first)).toEqual([33_333, 66_667, 100_000]);
    expect([...first.health.values()]).toEqual(['HEALTHY', 'HEALTHY', 'HEALTHY']);
    expect(first.changed).toBe(true);
    expect(first.failStatic).toBe(false);
    expect(cluster(engine, 2_000).changed).toBe(false);
  });

  it('tickClusters ticks only the named clusters, skipping unknown names, as tick(now) would', () => {
    const engine = new WeightEngine();
    const twin = new WeightEngine();
    for (const e of [engine, twin]) for (const name of ['a', 'b', 'c']) e.setCluster(name, eps(1, 2), PID);
    const sliced = [...engine.tickClusters(1_000, ['c', 'nope', 'a']).clusters.keys()];
    expect(sliced).toEqual(['c', 'a']);
    expect(engine.tickClusters(1_000, ['b']).clusters.get('b')?.weights).toEqual(twin.tick(1_000).clusters.get('b')?.weights);
    // b had not ticked before: its first tick publishes; a's second does not.
    expect(engine.tickClusters(2_000, ['a']).clusters.get('a')?.changed).toBe(false);
    expect(() => engine.tickClusters(Number.NaN, ['a'])).toThrow(/now must be finite/);
  });

  it('converts each locality within the 2^32 − 1 sum with one shared scale', () => {
    const engine = new WeightEngine({ integerResolution: 2 ** 31 });
    engine.setCluster(
      'svc',
      [
        { key: 'a:1', weight: 1_000, locality: 'z1' },
        { key: 'b:1', weight: 1_000, locality: 'z1' },
        { key: 'c:1', weight: 1, locality: 'z2' },
      ],
      { kind: 'static' },
    );
    const t = cluster(engine, 0);
    const z1 = (t.weights.get('a:1') as number) + (t.weights.get('b:1') as number);
    expect(z1).toBeLessThanOrEqual(2 ** 32 - 1);
    expect(t.weights.get('c:1')).toBeGreaterThanOrEqual(1);
    expect((t.weights.get('a:1') as number) / (t.weights.get('c:1') as number)).toBeCloseTo(1000, 0);
  });

  it('restores seeded weights instead of sloshing back to static', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', eps(1, 1), PID);
    engine.seedWeights('svc', new Map([[key(0), 300], [key(1), 100]]));
    let t = cluster(engine, 0);
    expect(share(t, 0)).toBeCloseTo(0.75, 4);
    // No reports yet: held like fresh data, then stale, and only decayed after decayAfterMs.
    t = cluster(engine, 30_000);
    expect(share(t, 0)).toBeCloseTo(0.75, 4);
    t = cluster(engine, 60_000);
    expect(t.explanations.get(key(0))?.rules).toContain('decay');
    expect(share(t, 0)).toBeLessThan(0.75);
  });
});

describe('WeightEngine: health gate', () => {
  it('takes an endpoint out after 3 failed probes and back only after the backoff and 3 successes', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', eps(1, 1, 1), { kind: 'static' });
    expect(cluster(engine, 0).health.get(key(0))).toBe('HEALTHY');
    for (const at of [1_000, 2_000]) engine.observeProbe('svc', key(0), { ok: false, at });
    expect(cluster(engine, 2_500).health.get(key(0))).toBe('HEALTHY'); // two failures are not enough
    engine.observeProbe('svc', key(0), { ok: false, at: 3_000 });
    const down = cluster(engine, 3_500);
    expect(down.health.get(key(0))).toBe('UNHEALTHY');
    expect(down.changed).toBe(true);
    expect(down.explanations.get(key(0))?.rules).toContain('probe-unhealthy');
    expect(down.explanations.get(key(0))?.healthState).toBe('UNAVAILABLE');
    expect(down.weights.get(key(0))).toBeGreaterThanOrEqual(1);

    // During the 5-minute backoff, successes are ignored.
    for (const at of [4_000, 5_000, 6_000]) engine.observeProbe('svc', key(0), { ok: true, at });
    expect(cluster(engine, 7_000).health.get(key(0))).toBe('UNHEALTHY');
    // After it: RECOVERING, still out until 3 consecutive successes.
    const retry = 3_000 + 5 * 60_000;
    engine.observeProbe('svc', key(0), { ok: true, at: retry });
    engine.observeProbe('svc', key(0), { ok: true, at: retry + 1_000 });
    const recovering = cluster(engine, retry + 1_500);
    expect(recovering.health.get(key(0))).toBe('UNHEALTHY');
    expect(recovering.explanations.get(key(0))?.healthState).toBe('RECOVERING');
    engine.observeProbe('svc', key(0), { ok: true, at: retry + 2_000 });
    const back = cluster(engine, retry + 2_500);
    expect(back.health.get(key(0))).toBe('HEALTHY');
    expect(back.explanations.get(key(0))?.rules).toContain('joined');
  });

  it('an endpoint back from an outage its probes found rejoins on probation, at a quarter of its share, then earns the rest', () => {
    const engine = new WeightEngine({ health: { baseBackoffMs: 1_000 } });
    engine.setCluster('svc', eps(1, 1, 1, 1), PID);
    cluster(engine, 500);
    for (const at of [1_000, 1_100, 1_200]) engine.observeProbe('svc', key(0), { ok: false, at });
    expect(cluster(engine, 1_500).health.get(key(0))).toBe('UNHEALTHY');
    for (const at of [2_300, 2_400, 2_500]) engine.observeProbe('svc', key(0), { ok: true, at });
    const back = cluster(engine, 3_000);
    expect(back.health.get(key(0))).toBe('HEALTHY');
    expect(back.explanations.get(key(0))?.rules).toContain('probation');
    // A quarter of the others' weight: 1/(1 + 3 × 4) of the cluster.
    expect(share(back, 0)).toBeCloseTo(1 / 13, 2);
    // Each endpoint's cpu follows its share of the load (equal capacities): the controller raises it.
    let t = back;
    for (let now = 4_000; now <= 20_000; now += 1_000) {
      for (let i = 0; i < 4; i++) engine.observeSample('svc', key(i), { at: now - 100, cpu: 2 * share(t, i) });
      t = cluster(engine, now);
    }
    expect(share(t, 0)).toBeGreaterThan(0.2);
    // Under static weights there is nothing to earn a share back with: it rejoins whole.
    const fixed = new WeightEngine({ health: { baseBackoffMs: 1_000 } });
    fixed.setCluster('svc', eps(1, 1), { kind: 'static' });
    for (const at of [1_000, 1_100, 1_200]) fixed.observeProbe('svc', key(0), { ok: false, at });
    cluster(fixed, 1_500);
    for (const at of [2_300, 2_400, 2_500]) fixed.observeProbe('svc', key(0), { ok: true, at });
    expect(cluster(fixed, 3_000).explanations.get(key(0))?.rules).toContain('joined');
  });

  it('seeding an endpoint out of rotation: its health changes when it returns, not before', () => {
    const engine = new WeightEngine({ health: { baseBackoffMs: 1_000 } });
    engine.setCluster('svc', eps(1, 1, 1), { kind: 'static' });
    for (const at of [1_000, 2_000, 3_000]) engine.observeProbe('svc', key(2), { ok: false, at });
    expect(cluster(engine, 3_500).health.get(key(2))).toBe('UNHEALTHY');
    expect(cluster(engine, 4_500).changed).toBe(false);
    // A seed marks it as having served (its held weights), which it did not: still no change.
    engine.seedWeights('svc', new Map([[key(2), 5]]));
    const held = cluster(engine, 4_600);
    expect([held.health.get(key(2)), held.changed]).toEqual(['UNHEALTHY', false]);
    // Back (three successes after the backoff) right after another seed: a change, published HEALTHY.
    for (const at of [5_000, 5_100, 5_200]) engine.observeProbe('svc', key(2), { ok: true, at });
    engine.seedWeights('svc', new Map([[key(2), 5]]));
    const back = cluster(engine, 5_500);
    expect([back.health.get(key(2)), back.changed]).toEqual(['HEALTHY', true]);
  });

  it('never publishes an all-unhealthy cluster: fail static when every probe fails', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', eps(1, 3), PID);
    for (let i = 0; i < 2; i++) for (const at of [1, 2, 3]) engine.observeProbe('svc', key(i), { ok: false, at });
    const t = cluster(engine, 10);
    expect(t.failStatic).toBe(true);
    expect([...t.health.values()]).toEqual(['HEALTHY', 'HEALTHY']);
    expect(share(t, 1)).toBeCloseTo(0.75, 4);
    const ex = t.explanations.get(key(0));
    expect(ex?.rules).toEqual(['fail-static']);
    expect(ex?.notes.join(' ')).toMatch(/fail static/);
  });

  it('fail static covers the eligible endpoints; operator-disabled ones stay out', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', [{ key: 'a:1', weight: 1, health: 'DRAINING' }, { key: 'b:1', weight: 1 }], { kind: 'static' });
    for (const at of [1, 2, 3]) engine.observeProbe('svc', 'b:1', { ok: false, at });
    const t = cluster(engine, 10);
    // Out of rotation by its declaration (proxies get DRAINING); nothing of the engine's holds it.
    expect(t.explanations.get('a:1')?.healthState).toBe('OPERATOR_DISABLED');
    expect(t.explanations.get('a:1')?.rules).not.toContain('fail-static');
    expect(t.health.get('a:1')).toBe('HEALTHY');
    expect(t.health.get('b:1')).toBe('HEALTHY');
    expect(t.failStatic).toBe(true);
  });

  it('missing data is not ill health', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', eps(1, 1), PID);
    const t = cluster(engine, 3_600_000);
    expect([...t.health.values()]).toEqual(['HEALTHY', 'HEALTHY']);
    expect(t.explanations.get(key(0))?.freshness).toBe('none');
  });

  it('takes operator-unhealthy endpoints out while others serve; their health says what holds once declared in again', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', [{ key: 'a:1', weight: 1, health: 'UNHEALTHY' }, { key: 'b:1', weight: 1 }, { key: 'c:1', weight: 1 }], { kind: 'static' });
    for (const at of [1, 2, 3]) engine.observeProbe('svc', 'c:1', { ok: false, at });
    cluster(engine, 10);
    // c fails its probes, then is declared UNHEALTHY too.
    engine.setCluster('svc', [{ key: 'a:1', weight: 1, health: 'UNHEALTHY' }, { key: 'b:1', weight: 1 }, { key: 'c:1', weight: 1, health: 'UNHEALTHY' }], { kind: 'static' });
    const t = cluster(engine, 20);
    for (const k of ['a:1', 'c:1']) expect(t.explanations.get(k)?.healthState).toBe('OPERATOR_DISABLED');
    // Proxies get the declared UNHEALTHY for both (publishedEndpoint); declared HEALTHY again before
    // the next tick, a is in at once and c stays out: its probes still fail.
    expect(t.health.get('a:1')).toBe('HEALTHY');
    expect(t.health.get('c:1')).toBe('UNHEALTHY');
    expect(t.health.get('b:1')).toBe('HEALTHY');
    expect(t.failStatic).toBe(false);
  });
});

describe('WeightEngine: an endpoint declared out', () => {
  const declared = (health?: 'UNHEALTHY') => [{ key: 'a:1', weight: 1 }, { key: 'b:1', weight: 1, ...(health ? { health } : {}) }];

  it('its health follows probes that fail after the declaration (proxies must not get it HEALTHY when it is declared in)', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', declared('UNHEALTHY'), { kind: 'static' });
    expect(cluster(engine, 10).health.get('b:1')).toBe('HEALTHY');
    for (const at of [11, 12, 13]) engine.observeProbe('svc', 'b:1', { ok: false, at });
    const t = cluster(engine, 20);
    expect(t.health.get('b:1')).toBe('UNHEALTHY');
    expect(t.changed).toBe(true);
  });

  it('and probes that recover after it', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', declared(), { kind: 'static' });
    for (const at of [1, 2, 3]) engine.observeProbe('svc', 'b:1', { ok: false, at });
    engine.setCluster('svc', declared('UNHEALTHY'), { kind: 'static' });
    expect(cluster(engine, 10).health.get('b:1')).toBe('UNHEALTHY');
    // The back-off (5 s) over, three good probes bring it back.
    for (const at of [6_000, 6_001, 6_002]) engine.observeProbe('svc', 'b:1', { ok: true, at });
    const t = cluster(engine, 7_000);
    expect(t.health.get('b:1')).toBe('HEALTHY');
    expect(t.changed).toBe(true);
    // Nothing moves after: the same health, no change.
    expect(cluster(engine, 8_000).changed).toBe(false);
  });
});

describe('WeightEngine: PID controller', () => {
  it('lowers the weight of an over-utilized endpoint and explains the terms', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', eps(1, 1, 1), PID);
    cluster(engine, 0);
    const cpus = [0.9, 0.5, 0.4];
    cpus.forEach((cpu, i) => engine.observeSample('svc', key(i), { at: 1_000, cpu }));
    const t = cluster(engine, 1_000);
    expect(share(t, 0)).toBeLessThan(1 / 3);
    expect(share(t, 2)).toBeGreaterThan(1 / 3);
    const ex = t.explanations.get(key(0));
    expect(t.setpoint).toBeCloseTo(0.6, 12);
    expect(ex?.pid?.setpoint).toBeCloseTo(0.6, 12);
    expect(ex?.pid?.measurement).toBe(0.9);
    expect(ex?.pid?.error).toBeCloseTo(-0.3, 12);
    expect(ex?.pid?.p).toBeCloseTo(-0.15, 12); // kp 0.5; first update: P only
    expect(ex?.pid).toMatchObject({ i: 0, d: 0, updated: true });
    expect(ex?.pid?.multiplier).toBeCloseTo(Math.exp(-0.15), 12);
    expect(ex?.inputs.utilization).toBe(0.9);
    expect(ex?.sampleAgeMs).toBe(0);
    expect(ex?.freshness).toBe('fresh');
  });

  it('with a fixed setpoint, shifts weight from endpoints above the target to those below', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', eps(1, 1), { kind: 'pid', setpoint: 0.7, metric: 'cpu' });
    cluster(engine, 0);
    engine.observeSample('svc', key(0), { at: 1_000, cpu: 0.9 });
    engine.observeSample('svc', key(1), { at: 1_000, cpu: 0.6 });
    const t = cluster(engine, 1_000);
    expect(t.setpoint).toBe(0.7);
    expect(share(t, 0)).toBeLessThan(0.5);
  });

  it('uses inflight with capacity hints', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', [{ key: 'a:1', weight: 1, capacity: 100 }, { key: 'b:1', weight: 1, capacity: 10 }], { kind: 'pid', setpoint: 'mean', metric: 'inflight' });
    cluster(engine, 0);
    engine.observeSample('svc', 'a:1', { at: 1_000, inflight: 10 });
    engine.observeSample('svc', 'b:1', { at: 1_000, inflight: 10 });
    const t = cluster(engine, 1_000);
    expect(t.explanations.get('b:1')?.inputs.utilization).toBe(1);
    expect(t.weights.get('b:1')).toBeLessThan(t.weights.get('a:1') as number);
  });

  it('does not re-apply an old sample: without a new report the controller holds', () => {
    const engine = new WeightEngine({ safety: { hysteresis: 0 } });
    engine.setCluster('svc', eps(1, 1), PID);
    cluster(engine, 0);
    engine.observeSample('svc', key(0), { at: 1_000, cpu: 0.9 });
    engine.observeSample('svc', key(1), { at: 1_000, cpu: 0.1 });
    const a = cluster(engine, 1_000);
    const b = cluster(engine, 2_000);
    expect(ints(b)).toEqual(ints(a));
    expect(b.explanations.get(key(0))?.rules).toContain('awaiting-sample');
    expect(b.explanations.get(key(0))?.pid?.updated).toBe(false);
  });

  it('limits each step to ×/÷ maxStepRatio of the published weight', () => {
    const engine = new WeightEngine({ safety: { maxStepRatio: 1.1 } });
    engine.setCluster('svc', eps(1, 1), { ...PID, actuationGain: 10 });
    const t0 = cluster(engine, 0);
    engine.observeSample('svc', key(0), { at: 1_000, cpu: 1 });
    engine.observeSample('svc', key(1), { at: 1_000, cpu: 0 });
    const t1 = cluster(engine, 1_000);
    const ex0 = t1.explanations.get(key(0));
    const ex1 = t1.explanations.get(key(1));
    expect(ex0?.rules).toContain('step-limit');
    expect(ex0?.publishedWeight).toBeCloseTo((ex0?.previousWeight as number) / 1.1, 12);
    expect(ex1?.publishedWeight).toBeCloseTo((ex1?.previousWeight as number) * 1.1, 12);
    expect(ex0?.rawWeight).toBeLessThan(ex0?.publishedWeight as number);
    expect(ints(t0)).toEqual([100_000, 100_000]);
    expect(share(t1, 1) / share(t1, 0)).toBeCloseTo(1.21, 3);
  });

  it('keeps every endpoint above the floor and below the ceiling', () => {
    const engine = new WeightEngine({ safety: { minWeightRatio: 0.1, maxWeightRatio: 3 } });
    engine.setCluster('svc', eps(1, 1, 1, 1), PID);
    let t = cluster(engine, 0);
    for (let s = 1; s <= 80; s++) {
      [1, 0.2, 0.2, 0.2].forEach((cpu, i) => engine.observeSample('svc', key(i), { at: s * 1_000, cpu }));
      t = cluster(engine, s * 1_000);
    }
    const ex = t.explanations.get(key(0));
    expect(ex?.weight).toBeGreaterThanOrEqual((ex?.fairWeight as number) * 0.1 * (1 - 1e-12));
    expect(ex?.weight).toBeLessThan((ex?.fairWeight as number) * 0.2);
    for (let i = 0; i < 4; i++) {
      const e = t.explanations.get(key(i));
      expect(e?.weight).toBeLessThanOrEqual((e?.fairWeight as number) * 3 * (1 + 1e-12));
    }
    expect(t.weights.get(key(0))).toBeGreaterThanOrEqual(1);
  });

  it('holds small changes below the hysteresis band and reuses the published integers', () => {
    const engine = new WeightEngine({ safety: { hysteresis: 0.05, deadband: 0 } });
    engine.setCluster('svc', eps(1, 1), PID);
    const t0 = cluster(engine, 0);
    engine.observeSample('svc', key(0), { at: 1_000, cpu: 0.51 });
    engine.observeSample('svc', key(1), { at: 1_000, cpu: 0.49 });
    const t1 = cluster(engine, 1_000);
    expect(t1.changed).toBe(false);
    expect(t1.weights).toBe(t0.weights);
    expect(t1.explanations.get(key(0))?.rules).toContain('hysteresis-hold');
    expect(t1.explanations.get(key(0))?.weight).not.toBe(t1.explanations.get(key(0))?.publishedWeight);
  });
});

describe('WeightEngine: EWMA and blend', () => {
  it('weights ∝ 1/latency once the exploration bonus has faded', () => {
    const engine = new WeightEngine({ safety: { maxStepRatio: 2 } });
    engine.setCluster('svc', eps(1, 1), { kind: 'ewma', explorationBonus: 0 });
    let t = cluster(engine, 0);
    for (let s = 1; s <= 20; s++) {
      engine.observeSample('svc', key(0), { at: s * 1_000, latencyMs: 10 });
      engine.observeSample('svc', key(1), { at: s * 1_000, latencyMs: 40 });
      t = cluster(engine, s * 1_000);
    }
    expect(share(t, 0) / share(t, 1)).toBeCloseTo(4, 2);
    expect(t.explanations.get(key(1))?.ewma?.estimateMs).toBeCloseTo(40, 9);
  });

  it('keeps unmeasured endpoints explored, but no more than the best measured one', () => {
    const engine = new WeightEngine({ safety: { maxStepRatio: 2 } });
    engine.setCluster('svc', eps(1, 1, 1), { kind: 'ewma' });
    let t = cluster(engine, 0);
    for (let s = 1; s <= 20; s++) {
      engine.observeSample('svc', key(0), { at: s * 1_000, latencyMs: 20 });
      engine.observeSample('svc', key(1), { at: s * 1_000, latencyMs: 80 });
      t = cluster(engine, s * 1_000);
    }
    expect(t.explanations.get(key(2))?.rules).toContain('exploration');
    expect(share(t, 2)).toBeGreaterThan(share(t, 1));
    expect(share(t, 2)).toBeLessThanOrEqual(share(t, 0) * 1.001);
  });

  it('blend lands between its parts', () => {
    const run = (policy: WeightingPolicy): number => {
      const engine = new WeightEngine({ safety: { maxStepRatio: 2 } });
      engine.setCluster('svc', eps(1, 1), policy);
      let t = cluster(engine, 0);
      for (let s = 1; s <= 30; s++) {
        engine.observeSample('svc', key(0), { at: s * 1_000, latencyMs: 10 });
        engine.observeSample('svc', key(1), { at: s * 1_000, latencyMs: 40 });
        t = cluster(engine, s * 1_000);
      }
      return share(t, 0);
    };
    const ewma = run({ kind: 'ewma', explorationBonus: 0 });
    const blend = run({ kind: 'blend', parts: { ewma: 0.5, static: 0.5 }, explorationBonus: 0 });
    expect(ewma).toBeCloseTo(0.8, 2);
    expect(blend).toBeCloseTo(0.5 * 0.8 + 0.5 * 0.5, 2);
  });
});

describe('WeightEngine: freshness', () => {
  it('holds weights while samples are stale, then decays toward static; nothing empties', () => {
    const engine = new WeightEngine({ safety: { hysteresis: 0 } });
    engine.setCluster('svc', eps(1, 1), PID);
    cluster(engine, 0);
    let t!: ClusterTick;
    for (let s = 1; s <= 8; s++) {
      engine.observeSample('svc', key(0), { at: s * 1_000, cpu: 0.9 });
      engine.observeSample('svc', key(1), { at: s * 1_000, cpu: 0.3 });
      t = cluster(engine, s * 1_000);
    }
    const skewed = share(t, 0);
    expect(skewed).toBeLessThan(0.3);
    expect(t.explanations.get(key(0))?.rules).not.toContain('floor');
    // Reports stop at 8 s. Fresh until 13 s (awaiting), stale until 38 s: weights held.
    for (let s = 9; s <= 38; s++) {
      t = cluster(engine, s * 1_000);
      expect(share(t, 0)).toBeCloseTo(skewed, 9);
      expect([...t.health.values()]).toEqual(['HEALTHY', 'HEALTHY']);
    }
    expect(t.explanations.get(key(0))?.freshness).toBe('stale');
    expect(t.explanations.get(key(0))?.rules).toContain('stale-hold');
    // Then decay with a 30 s half-life (in log-weight ratio).
    for (let s = 39; s <= 80; s++) t = cluster(engine, s * 1_000);
    expect(t.explanations.get(key(0))?.freshness).toBe('expired');
    expect(t.explanations.get(key(0))?.rules).toContain('decay');
    const ratio = (x: ClusterTick): number => Math.log(share(x, 1) / share(x, 0));
    const before = Math.log((1 - skewed) / skewed);
    // 42 s past the decay threshold: the log-ratio is about halved (a little under 2^−42/30 per tick).
    expect(ratio(t)).toBeLessThan(before * 0.6);
    expect(ratio(t)).toBeGreaterThan(before * 0.25);
    for (let s = 81; s <= 400; s++) t = cluster(engine, s * 1_000);
    expect(share(t, 0)).toBeCloseTo(0.5, 3);
    expect(Math.min(...ints(t))).toBeGreaterThanOrEqual(1);
  });
});

describe('WeightEngine: cluster lifecycle and inputs', () => {
  it('new endpoints join at their fair share; removed ones disappear; policy changes keep weights', () => {
    const engine = new WeightEngine({ safety: { hysteresis: 0 } });
    engine.setCluster('svc', eps(1, 1), PID);
    let before = cluster(engine, 0);
    for (let s = 1; s <= 10; s++) {
      engine.observeSample('svc', key(0), { at: s * 1_000, cpu: 0.9 });
      engine.observeSample('svc', key(1), { at: s * 1_000, cpu: 0.1 });
      before = cluster(engine, s * 1_000);
    }
    engine.setCluster('svc', eps(1, 1, 2), { kind: 'static' });
    const t = cluster(engine, 11_000);
    expect(t.changed).toBe(true);
    const ex = t.explanations.get(key(2));
    expect(ex?.rules).toContain('joined');
    // Still skewed (step-limited toward static), not snapped back.
    expect(t.explanations.get(key(0))?.previousWeight).toBeCloseTo(before.explanations.get(key(0))?.publishedWeight as number, 9);
    expect(share(t, 0)).toBeLessThan(share(t, 1));
    engine.setCluster('svc', eps(1), { kind: 'static' });
    expect([...cluster(engine, 12_000).weights.keys()]).toEqual([key(0)]);
    expect(engine.removeCluster('svc')).toBe(true);
    expect(engine.tick(13_000).clusters.size).toBe(0);
  });

  it('ignores samples for unknown endpoints and out-of-order samples; rejects invalid ones', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', eps(1), PID);
    expect(engine.observeSample('svc', 'nope:1', { at: 0, cpu: 0.5 })).toBe(false);
    expect(engine.observeSample('other', key(0), { at: 0, cpu: 0.5 })).toBe(false);
    expect(engine.observeSample('svc', key(0), { at: 10, cpu: 0.5 })).toBe(true);
    expect(engine.observeSample('svc', key(0), { at: 5, cpu: 0.9 })).toBe(false);
    expect(() => engine.observeSample('svc', key(0), { at: 20, cpu: -1 })).toThrow(RangeError);
    expect(engine.observeProbe('svc', 'nope:1', { ok: true, at: 0 })).toBeUndefined();
    expect(() => engine.tick(Number.NaN)).toThrow(RangeError);
  });

  it('exposes the last published integers for persistence', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', eps(1, 4), { kind: 'static' });
    expect(engine.publishedWeights('svc')).toBeUndefined();
    const t = cluster(engine, 0);
    expect(engine.publishedWeights('svc')).toEqual(t.weights);
  });

  it('explanations behave as a map and keep describing their own tick', () => {
    const engine = new WeightEngine({ safety: { hysteresis: 0 } });
    engine.setCluster('svc', eps(1, 2), PID);
    cluster(engine, 0);
    engine.observeSample('svc', key(0), { at: 1_000, cpu: 0.9 });
    engine.observeSample('svc', key(1), { at: 1_000, cpu: 0.1 });
    const t1 = cluster(engine, 1_000);
    const first = t1.explanations.get(key(0));
    expect(t1.explanations.size).toBe(2);
    expect(t1.explanations.has(key(1))).toBe(true);
    expect(t1.explanations.get('nope:1')).toBeUndefined();
    expect([...t1.explanations.keys()]).toEqual([key(0), key(1)]);
    expect([...t1.explanations].map(([k, v]) => [k, v.integerWeight])).toEqual([...t1.weights]);
    let visited = 0;
    t1.explanations.forEach((v, k) => {
      expect(v.integerWeight).toBe(t1.weights.get(k));
      visited++;
    });
    expect(visited).toBe(2);
    engine.observeSample('svc', key(0), { at: 2_000, cpu: 0.2 });
    engine.observeSample('svc', key(1), { at: 2_000, cpu: 0.8 });
    cluster(engine, 2_000);
    expect(t1.explanations.get(key(0))).toEqual(first);
  });
});

describe('WeightEngine: samples from several sources', () => {
  const pid: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu' };
  const eps: EngineEndpoint[] = [
    { key: 'a', weight: 1 },
    { key: 'b', weight: 1 },
  ];

  it('merges fields, and only the steering metric keeps weights fresh', () => {
    const engine = new WeightEngine({ safety: { staleAfterMs: 2_000, decayAfterMs: 4_000, decayHalfLifeMs: 1_000 } });
    engine.setCluster('c', eps, pid);
    let t = 0;
    for (; t < 20_000; t += 1_000) {
      engine.observeSample('c', 'a', { at: t, cpu: 0.9 });
      engine.observeSample('c', 'b', { at: t, cpu: 0.3 });
      // A load report with only request rates must not erase the CPU the agent reported.
      engine.observeSample('c', 'a', { at: t, rps: 10 });
      engine.tick(t);
    }
    const steered = engine.tick(t).clusters.get('c');
    expect((steered?.weights.get('b') ?? 0) / (steered?.weights.get('a') ?? 1)).toBeGreaterThan(1.5);
    expect(steered?.explanations.get('a')?.inputs.cpu).toBe(0.9);

    // CPU reports stop; rps-only reports go on. The weights must still go stale and decay to 1:1.
    for (const end = t + 30_000; t < end; t += 1_000) {
      engine.observeSample('c', 'a', { at: t, rps: 10 });
      engine.observeSample('c', 'b', { at: t, rps: 10 });
      engine.tick(t);
    }
    const decayed = engine.tick(t).clusters.get('c');
    expect(decayed?.explanations.get('a')?.freshness).toBe('expired');
    expect((decayed?.weights.get('b') ?? 0) / (decayed?.weights.get('a') ?? 1)).toBeLessThan(1.1);
  });

  it("takes an agent's cpu measured before a load report's flush and delivered after it: no cpu held is newer", () => {
    const engine = new WeightEngine();
    engine.setCluster('c', eps, pid);
    let taken = 0;
    for (let t = 1_000; t <= 60_000; t += 1_000) {
      // Load reports (no ORCA) are stamped when flushed; the agent's cpu 200 ms earlier lands after.
      engine.observeSample('c', 'a', { at: t - 100, rps: 50 });
      engine.observeSample('c', 'b', { at: t - 100, rps: 50 });
      if (engine.observeSample('c', 'a', { at: t - 300, cpu: 0.2 })) taken++;
      if (engine.observeSample('c', 'b', { at: t - 300, cpu: 0.9 })) taken++;
      engine.tick(t);
    }
    expect(taken).toBe(120);
    const steered = engine.tick(61_000).clusters.get('c');
    expect(steered?.explanations.get('b')?.inputs.cpu).toBe(0.9);
    expect((steered?.weights.get('a') ?? 0) / (steered?.weights.get('b') ?? 1)).toBeGreaterThan(1.5);
  });

  it('takes of an older sample only the fields no newer value of is held, and drops a repeat', () => {
    const engine = new WeightEngine();
    engine.setCluster('c', eps, pid);
    expect(engine.observeSample('c', 'a', { at: 1_000, cpu: 0.5, rps: 10, errors: 0 })).toBe(true);
    // Older than the held cpu and traffic: nothing to take.
    expect(engine.observeSample('c', 'a', { at: 900, cpu: 0.1, rps: 99, errors: 99 })).toBe(false);
    expect(engine.observeSample('c', 'a', { at: 2_000, latencyMs: 30 })).toBe(true);
    // Newer than the held cpu and traffic (1,000), older than the latency (2,000): cpu and traffic only.
    expect(engine.observeSample('c', 'a', { at: 1_500, cpu: 0.7, latencyMs: 999, rps: 20, errors: 1 })).toBe(true);
    expect(engine.observeSample('c', 'a', { at: 1_500, cpu: 0.7 })).toBe(false); // a repeat
    const inputs = engine.tick(2_000).clusters.get('c')?.explanations.get('a')?.inputs;
    expect(inputs).toMatchObject({ cpu: 0.7, latencyMs: 30, rps: 20, errors: 1 });
  });
});
