import { describe, it, expect } from 'vitest';
import { Fleet } from './fleet.js';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { ClusterTick, EngineEndpoint, Sample, WeightingPolicy } from '../../../src/balancing/engine/types.js';

/**
 * Below lowLoadHold the PID rests, and an endpoint that started below its fair share (a newcomer
 * at newcomerShare, an endpoint back on probation at a quarter) used to keep that start for as long
 * as the load stayed low. It now climbs to its fair share at the step limit; what the controller
 * learned stays.
 */
const PID: WeightingPolicy = { kind: 'pid', setpoint: 'mean' };
const POLICIES: Record<string, WeightingPolicy> = {
  pid: PID,
  'blend pid/ewma': { kind: 'blend', parts: { pid: 0.5, ewma: 0.5 } },
  // EWMA has no low-load hold: it never stranded them (a guard, not a fix).
  ewma: { kind: 'ewma' },
};
const LOW = 0.05;
const STEP_RATIO = 1.25;

/** Its published share over its fair share (equal static weights: one over the endpoints in rotation). */
function ofFair(f: Fleet, i: number): number {
  const serving = f.healthy.filter(Boolean).length;
  return (f.shares()[i] as number) * serving;
}

/** Four equal endpoints at `load`, reporting cpu and latency, after ten ticks. */
function quiet(policy: WeightingPolicy, load = LOW): Fleet {
  const f = new Fleet({ capacities: [1, 1, 1, 1], loadFraction: load, noise: 0.02, seed: 3, policy, rpsPerUnit: 1000 });
  f.latencies = [20, 20, 20, 20];
  for (let t = 0; t < 10; t++) f.step();
  return f;
}

/**
 * Ticks after the one it joined (or came back) at until endpoint i holds ≥ 90% of its fair share
 * (undefined: not within `max`), its share never growing faster than the step limit allows (its
 * own weight up to ×1.25, the others' down to ÷1.25: its share up to ×1.25²).
 */
function ticksToEarn(f: Fleet, i: number, max: number): number | undefined {
  let before = ofFair(f, i);
  for (let t = 1; t <= max; t++) {
    const tick = f.step();
    expect(ofFair(f, i) / before, `tick ${t}`).toBeLessThanOrEqual(STEP_RATIO ** 2 + 1e-9);
    before = ofFair(f, i);
    if (ofFair(f, i) >= 0.9) {
      expect(tick.explanations.get(f.keys[i] as string)?.rules).not.toContain('floor');
      return t;
    }
  }
  return undefined;
}

describe('low load: a newcomer or a probationer earns its fair share anyway', () => {
  for (const [name, policy] of Object.entries(POLICIES)) {
    it(`${name}: a newcomer reaches 90% of its fair share within 10 ticks at load ${LOW}`, () => {
      const f = quiet(policy);
      const n = f.join(1);
      f.latencies[n] = 20;
      const first = f.step();
      expect(first.explanations.get(f.keys[n] as string)?.rules).toContain('probation');
      expect(ofFair(f, n)).toBeLessThan(0.5);
      expect(ticksToEarn(f, n, 10)).toBeDefined();
    });

    it(`${name}: an endpoint back from a probed outage reaches 90% of its fair share within 10 ticks at load ${LOW}`, () => {
      const f = quiet(policy);
      for (let k = 1; k <= 3; k++) f.engine.observeProbe('svc', f.keys[0] as string, { ok: false, at: f.now + 10 * k });
      for (let t = 0; t < 8; t++) f.step();
      expect(f.healthy[0]).toBe(false);
      for (let k = 1; k <= 3; k++) f.engine.observeProbe('svc', f.keys[0] as string, { ok: true, at: f.now + 10 * k });
      const back = f.step();
      expect(back.explanations.get(f.keys[0] as string)?.rules).toContain('probation');
      expect(ofFair(f, 0)).toBeLessThan(0.5);
      expect(ticksToEarn(f, 0, 10)).toBeDefined();
    });
  }

  it('pid: an endpoint back from an ejection reaches 90% of its fair share within 10 ticks at load 0.05', () => {
    const f = quiet(PID);
    f.errorRates[0] = 1;
    let t = 0;
    while (f.healthy[0] && t++ < 10) f.step();
    expect(f.healthy[0]).toBe(false);
    f.errorRates[0] = 0;
    t = 0;
    while (!f.healthy[0] && t++ < 30) f.step();
    expect(f.last?.explanations.get(f.keys[0] as string)?.rules).toContain('probation');
    expect(ofFair(f, 0)).toBeLessThan(0.5);
    expect(ticksToEarn(f, 0, 10)).toBeDefined();
  });

  it('blend pid/ewma: a newcomer earns its fair share, not the PID vector’s, when a scale-in left that vector on a scale of its own', () => {
    const f = new Fleet({ capacities: [1, 1, 1, 1, 1], loadFraction: 0.6, noise: 0.02, seed: 3, policy: POLICIES['blend pid/ewma'] as WeightingPolicy, rpsPerUnit: 1000 });
    // A slow endpoint: both parts lower it, unequally, so its removal takes more from one vector's sum than from the other's.
    f.latencies = [80, 20, 20, 20, 20];
    for (let t = 0; t < 40; t++) f.step();
    f.leave(0);
    f.setLoadFraction(LOW);
    for (let t = 0; t < 15; t++) f.step();
    const n = f.join(1);
    f.latencies[n] = 20;
    f.step();
    expect(ofFair(f, n)).toBeLessThan(0.5);
    expect(ticksToEarn(f, n, 10)).toBeDefined();
  });

  it('pid: a heterogeneous fleet converged at normal load keeps what it learned at 0.05, a newcomer converged below its fair share included', () => {
    const f = new Fleet({ capacities: [1, 1, 2, 2], loadFraction: 0.6, noise: 0.02, seed: 5, policy: PID, rpsPerUnit: 1000 });
    for (let t = 0; t < 30; t++) f.step();
    // A newcomer of half the small ones' capacity: the controller raises it from its quarter, and settles it below its fair share.
    const n = f.join(0.5);
    for (let t = 0; t < 60; t++) f.step();
    const learned = f.shares();
    expect(ofFair(f, n)).toBeLessThan(0.6);
    expect(f.maxOverAvg()).toBeLessThan(1.15);
    f.setLoadFraction(LOW);
    for (let t = 0; t < 30; t++) {
      const tick = f.step();
      if (t > 0) expect(tick.explanations.get(f.keys[n] as string)?.rules, `tick ${t}`).toContain('low-load-hold');
    }
    f.shares().forEach((s, i) => expect(s, f.keys[i]).toBeCloseTo(learned[i] as number, 2));
  });

  it('pid: a failing newcomer (errors ≥ 5%, errorPenalty 0 so the hold stays) does not climb at low load', () => {
    const f = quiet({ ...PID, errorPenalty: 0 });
    const n = f.join(1);
    f.errorRates[n] = 0.08;
    const start = (f.step(), ofFair(f, n));
    expect(start).toBeLessThan(0.5);
    for (let t = 0; t < 15; t++) {
      const tick = f.step();
      expect(f.healthy[n]).toBe(true);
      expect(tick.explanations.get(f.keys[n] as string)?.rules, `tick ${t}`).toContain('low-load-hold');
      expect(ofFair(f, n), `tick ${t}`).toBeLessThanOrEqual(start * 1.05);
    }
  });
});

describe('low load: a stalled newcomer does not climb', () => {
  const key = (i: number): string => `10.0.0.${i + 1}:80`;
  const eps = (n: number): EngineEndpoint[] => Array.from({ length: n }, (_, i) => ({ key: key(i), weight: 1 }));
  const share = (t: ClusterTick, i: number): number => (t.weights.get(key(i)) as number) / [...t.weights.values()].reduce((a, b) => a + b, 0);
  const CPU: WeightingPolicy = { ...PID, metric: 'cpu' };

  it('holds a newcomer whose load reports show requests piling up unanswered (below the stall rule’s volume)', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', eps(4), CPU);
    const answering = (at: number): Sample => ({ at, cpu: 0.04, rps: 4, errors: 0, successes: 4, inflight: 0.2, peerInflight: 0.6, peerCompletions: 12 });
    const tick = (now: number): ClusterTick => engine.tick(now).clusters.get('svc') as ClusterTick;
    tick(1_000);
    for (let now = 2_000; now <= 5_000; now += 1_000) {
      for (let i = 0; i < 4; i++) engine.observeSample('svc', key(i), answering(now - 100));
      tick(now);
    }
    engine.setCluster('svc', eps(5), CPU);
    const start = share(tick(6_000), 4);
    for (let now = 7_000, r = 1; now <= 16_000; now += 1_000, r++) {
      for (let i = 0; i < 4; i++) engine.observeSample('svc', key(i), answering(now - 100));
      // Issued requests, none answered, more in progress each report: fewer than minRequests / 4, so not ejected.
      engine.observeSample('svc', key(4), { at: now - 100, cpu: 0.01, rps: 0.4, errors: 0, successes: 0, inflight: 0.4 * r, peerInflight: 0.8, peerCompletions: 16 });
      const t = tick(now);
      expect(t.health.get(key(4)), `${now}`).toBe('HEALTHY');
      expect(t.explanations.get(key(4))?.rules, `${now}`).toContain('low-load-hold');
      expect(share(t, 4), `${now}`).toBeCloseTo(start, 3);
    }
  });
});
