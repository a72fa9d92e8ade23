/**
 * Errors move load only as far as the peers can carry it (tick/error-shift.ts): the error penalty
 * and the fleet outlier detector, closed loop through the fleet model (fleet.ts), where a 2×
 * backend is 40% of a four-backend fleet's capacity, and failed requests are retried once on the
 * others (fulcrum's default route retries).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Fleet } from './fleet.js';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import { ERROR_SHIFT, addCarrier, addUtilization, errorShiftAllowance, newLedger, newTotals, peersCarry } from '../../../src/balancing/engine/tick/error-shift.js';
import { SAFETY_DEFAULTS, type ClusterTick, type WeightingPolicy } from '../../../src/balancing/engine/types.js';

const PID: WeightingPolicy = { kind: 'pid', setpoint: 'mean' };
const BIG = 3;

/** Four backends, the last of twice the capacity, converged at `load`; then the big one fails `rate` of its requests fast. */
function failingBig(policy: WeightingPolicy, load: number, rate: number): { f: Fleet; ticks: ClusterTick[]; reasons: string[] } {
  const f = new Fleet({ capacities: [1, 1, 1, 2], loadFraction: load, noise: 0.02, seed: 11, policy, retryErrors: true });
  f.latencies = [20, 20, 20, 20];
  for (let t = 0; t < 40; t++) f.step();
  f.errorRates[BIG] = rate;
  const ticks: ClusterTick[] = [];
  const reasons: string[] = [];
  for (let t = 0; t < 80; t++) {
    const tick = f.step();
    ticks.push(tick);
    // Explanations are read before the next tick (they are valid until then).
    const reason = tick.explanations.get(f.keys[BIG] as string)?.ejection?.reason;
    if (reason !== undefined) reasons.push(reason);
  }
  return { f, ticks, reasons };
}

const peersBusiest = (f: Fleet): number => Math.max(...f.utilization().slice(0, BIG));
const everHealthy = (f: Fleet, ticks: readonly ClusterTick[]): boolean => ticks.every((t) => t.health.get(f.keys[BIG] as string) === 'HEALTHY');

describe('errors move load only as far as the peers can carry it', () => {
  it('pid at 70% load: the 2× backend failing half its calls is kept at its capacity share, its peers below capacity (they were driven to ~117%)', () => {
    const { f, ticks } = failingBig(PID, 0.7, 0.5);
    expect(everHealthy(f, ticks)).toBe(true);
    // Its retried failures keep its peers a little above fullAt at its clean share (0.93): no further.
    expect(peersBusiest(f)).toBeLessThanOrEqual(0.96);
    // Never more than its clean share: its fast failures do not make it look idle.
    expect(f.shares()[BIG]).toBeLessThanOrEqual(0.4 * 1.03);
    expect(f.last?.explanations.get(f.keys[BIG] as string)?.rules).toContain('peers-near-capacity');
  });

  it('at 40% load the peers have room: the failing backend is ejected as before', () => {
    const { f, ticks, reasons } = failingBig(PID, 0.4, 0.5);
    expect(everHealthy(f, ticks)).toBe(false);
    expect(reasons[0]).toMatch(/failure|success/);
  });

  it('a backend failing every call is ejected however busy its peers: it serves nothing well', () => {
    const { f, ticks } = failingBig(PID, 0.7, 1);
    expect(everHealthy(f, ticks)).toBe(false);
  });

  it('property: whatever the load and error rate, a failing endpoint never gains share, and its errors take its peers no further than fullAt (or its retries at its clean share), but for the successes of a minor endpoint', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.2, max: 0.75, noNaN: true }), fc.double({ min: 0.1, max: 0.9, noNaN: true }), fc.constantFrom<WeightingPolicy>(PID, { kind: 'blend', parts: { pid: 0.5, ewma: 0.5 } }), (load, rate, policy) => {
        const clean = failingBig(policy, load, 0).f;
        const { f } = failingBig(policy, load, rate);
        const share = clean.shares()[BIG] as number;
        expect(f.shares()[BIG]).toBeLessThanOrEqual(share * (1 + 1e-6));
        // Peers at most fullAt, or as busy as its retried failures make them at its clean share;
        // plus its successes when it serves too few to matter (minorGoodput: ejected however busy
        // they are), and the ±2% noise.
        const atCleanShare = peersBusiest(clean) * (1 + (rate * share) / (1 - share));
        expect(peersBusiest(f)).toBeLessThanOrEqual(Math.max(ERROR_SHIFT.fullAt, atCleanShare) * (1 + ERROR_SHIFT.minorGoodput) + 0.03);
      }),
      { numRuns: 20 },
    );
  });
});

describe('without utilization reports the peers\' capacity is unknown: errors move load as before', () => {
  it('a 50% failing endpoint is ejected although nothing says its peers have room', () => {
    const e = new WeightEngine();
    const keys = ['a:1', 'b:1', 'c:1', 'd:1'];
    e.setCluster('svc', keys.map((key) => ({ key, weight: 1 })), { kind: 'static' });
    let ejected = false;
    for (let t = 1; t <= 10 && !ejected; t++) {
      keys.forEach((key, i) => e.observeSample('svc', key, { at: t * 1000, rps: 100, errors: i === 3 ? 50 : 0 }));
      ejected = e.tick(t * 1000).clusters.get('svc')?.health.get('d:1') === 'UNHEALTHY';
    }
    expect(ejected).toBe(true);
  });
});

describe('a capacity reading is as old as its cpu or its request rate, whichever is older', () => {
  it('peers whose cpu stopped coming long ago, while their load reports go on, do not keep a failing endpoint in', () => {
    const e = new WeightEngine();
    const keys = ['a:1', 'b:1', 'c:1', 'd:1'];
    e.setCluster('svc', keys.map((key) => ({ key, weight: 1 })), { kind: 'static' });
    // An agent's last cpu (busy), then only Envoy's request counts: the sample's own time stays new.
    keys.forEach((key) => e.observeSample('svc', key, { at: 1000, cpu: 0.95 }));
    let ejectedAt: number | undefined;
    for (let t = 2; t <= 30 && ejectedAt === undefined; t++) {
      keys.forEach((key, i) => e.observeSample('svc', key, { at: t * 1000, rps: 100, errors: i === 3 ? 50 : 0 }));
      if (e.tick(t * 1000).clusters.get('svc')?.health.get('d:1') === 'UNHEALTHY') ejectedAt = t * 1000;
    }
    // Ejected once that cpu says nothing of the peers' room any more (it is then unknown).
    expect(ejectedAt).toBeDefined();
    expect(ejectedAt).toBeLessThanOrEqual(1000 + SAFETY_DEFAULTS.staleAfterMs + 5000);
  });
});

describe('the peers\' utilization is read only while fresh', () => {
  it('pid on inflight: a cpu that stopped coming long ago does not take a failing endpoint\'s error penalty away', () => {
    const e = new WeightEngine();
    const keys = ['a:1', 'b:1', 'c:1', 'd:1'];
    e.setCluster('svc', keys.map((key) => ({ key, weight: 1 })), { kind: 'pid', setpoint: 'mean', metric: 'inflight' }, undefined, { enabled: false });
    keys.forEach((key) => e.observeSample('svc', key, { at: 1000, cpu: 0.95 }));
    let rules: readonly string[] | undefined;
    for (let t = 2; t <= 20; t++) {
      keys.forEach((key, i) => e.observeSample('svc', key, { at: t * 1000, inflight: 10, rps: 100, errors: i === 3 ? 50 : 0 }));
      rules = e.tick(t * 1000).clusters.get('svc')?.explanations.get('d:1')?.rules;
    }
    expect(rules).toContain('error-penalty');
    expect(rules).not.toContain('peers-near-capacity');
  });
});

describe('capacity readings are fresh as long as the cluster\'s steering data (staleAfterMs)', () => {
  const keys = ['a:1', 'b:1', 'c:1', 'd:1'];
  /** Busy peers (cpu 0.95) and d, at half of its capacity, failing half its calls: its peers cannot carry its successes. */
  const cpuOf = (i: number): number => (i === 3 ? 0.5 : 0.95);
  const loadReport = (i: number, at: number) => ({ at, rps: 100, errors: i === 3 ? 50 : 0 });

  /** Load reports every second, an agent's cpu every `cpuEveryS` (up to `cpuUntilS`); the ticks at which d is ejected. */
  function ejections(safety: { staleAfterMs: number }, cpuEveryS: number, cpuUntilS = Infinity): number[] {
    const e = new WeightEngine();
    e.setCluster('svc', keys.map((key) => ({ key, weight: 1 })), { kind: 'static' }, safety);
    const out: number[] = [];
    for (let t = 1; t <= 40; t++) {
      const at = t * 1000;
      if (t % cpuEveryS === 1 % cpuEveryS && t <= cpuUntilS) keys.forEach((key, i) => e.observeSample('svc', key, { at, cpu: cpuOf(i) }));
      keys.forEach((key, i) => e.observeSample('svc', key, loadReport(i, at)));
      if (e.tick(at).clusters.get('svc')?.health.get('d:1') === 'UNHEALTHY') out.push(at);
    }
    return out;
  }

  it('cpu every 10 s under staleAfterMs 15 s: the busy peers hold the failing endpoint in at every tick (a fixed 5 s window lost them half the time)', () => {
    expect(ejections({ staleAfterMs: 15_000 }, 10)).toEqual([]);
    // The same cadence under the default 5 s: the capacity goes unknown between reports, and errors move load as before.
    expect(ejections({ staleAfterMs: 5_000 }, 10).length).toBeGreaterThan(0);
  });

  it('staleAfterMs 2 s: a cpu that stopped counts for 2 s, not 5 s', () => {
    expect(ejections({ staleAfterMs: 2_000 }, 1, 10)[0]).toBe(13_000);
    expect(ejections({ staleAfterMs: 5_000 }, 1, 10)[0]).toBe(16_000);
  });

  it('pid: the peers\' cpu every 10 s under staleAfterMs 15 s tempers the error penalty at every tick', () => {
    const e = new WeightEngine();
    e.setCluster('svc', keys.map((key) => ({ key, weight: 1 })), { kind: 'pid', setpoint: 'mean', metric: 'inflight' }, { staleAfterMs: 15_000 }, { enabled: false });
    const untempered: number[] = [];
    for (let t = 1; t <= 40; t++) {
      const at = t * 1000;
      if (t % 10 === 1) keys.forEach((key, i) => e.observeSample('svc', key, { at, cpu: cpuOf(i) }));
      keys.forEach((key, i) => e.observeSample('svc', key, { ...loadReport(i, at), inflight: 10 }));
      const rules = e.tick(at).clusters.get('svc')?.explanations.get('d:1')?.rules ?? [];
      if (t > 2 && !rules.includes('peers-near-capacity')) untempered.push(at);
    }
    expect(untempered).toEqual([]);
  });
});

describe('the pure parts', () => {
  it('allowance: whole up to freeBelow, none from fullAt, linear between, from the mean; 1 without any utilization', () => {
    const { freeBelow, fullAt } = ERROR_SHIFT;
    const t = newTotals();
    for (const u of [0.5, 0.7]) addUtilization(t, u);
    addUtilization(t, Number.NaN);
    expect(t.count).toBe(2);
    expect(errorShiftAllowance(t)).toBe(1); // mean 0.6
    const between = newTotals();
    for (const u of [0.7, 0.9]) addUtilization(between, u);
    expect(errorShiftAllowance(between)).toBeCloseTo((fullAt - 0.8) / (fullAt - freeBelow));
    const busy = newTotals();
    addUtilization(busy, 0.95);
    addUtilization(busy, 0.95);
    expect(errorShiftAllowance(busy)).toBe(0);
    expect(errorShiftAllowance(newTotals())).toBe(1);
  });

  it('ledger: ejects while the others stay at most fullAt busy with its successes, consumes their room, and steps aside when a capacity is unknown', () => {
    const now = 10_000;
    const clock = { now, freshMs: SAFETY_DEFAULTS.staleAfterMs };
    // A reading as an endpoint's state holds it: its merged sample, each field as old as the sample.
    const s = (cpu: number | undefined, rps: number, errors = 0) => ({ sample: { at: now, ...(cpu !== undefined ? { cpu } : {}), rps, errors }, fieldAt: undefined });
    // Three endpoints of capacity 100 rps at 60% (180 of 300) and two failing ones of 200 at 50%.
    const l = newLedger();
    const a = s(0.5, 100, 50);
    const b = s(0.5, 100, 50);
    for (const x of [s(0.6, 60), s(0.6, 60), s(0.6, 60), a, b]) addCarrier(l, x, clock);
    expect(peersCarry(l, a, clock)).toBe(true); // the others: 280 + a's 50 successes of 500 (≤ 450)
    expect({ capacity: l.capacity, load: l.load }).toEqual({ capacity: 500, load: 330 });
    expect(peersCarry(l, b, clock)).toBe(false); // the three left: 230 + 50 of 300 > 270: a took the room
    expect({ capacity: l.capacity, load: l.load }).toEqual({ capacity: 500, load: 330 });
    const tight = newLedger();
    const c = s(0.5, 200, 50);
    for (const x of [s(0.6, 60), s(0.6, 60), s(0.6, 60), c]) addCarrier(tight, x, clock);
    expect(peersCarry(tight, c, clock)).toBe(false); // 180 + 150 > 270
    expect(tight.load).toBe(380); // unchanged
    const failingAll = s(0.05, 200, 200);
    expect(peersCarry(tight, failingAll, clock)).toBe(true); // serves nothing well
    const busy = newLedger();
    const mostlyFailing = s(0.1, 200, 185);
    for (const x of [s(0.95, 95), s(0.95, 95), s(0.95, 95), mostlyFailing]) addCarrier(busy, x, clock);
    expect(peersCarry(busy, mostlyFailing, clock)).toBe(true); // 15 successes, ≤ 10% of the others' 285: it spares them little
    // Half failing, pushed low by its penalty (20 rps at 5%: capacity 200 served well): at its
    // capacity share it would serve 40% of the load half well, not little; the others are full.
    const pushedLow = newLedger();
    const low = s(0.05, 20, 10);
    for (const x of [s(0.95, 95), s(0.95, 95), s(0.95, 95), low]) addCarrier(pushedLow, x, clock);
    expect(peersCarry(pushedLow, low, clock)).toBe(false);
    const unknown = newLedger();
    for (const x of [s(undefined, 60), s(0.6, 60), c]) addCarrier(unknown, x, clock);
    expect(unknown.known).toBe(false);
    expect(peersCarry(unknown, c, clock)).toBe(true);
    const stale = newLedger();
    addCarrier(stale, { sample: { ...s(0.6, 60).sample, at: now - clock.freshMs - 1 }, fieldAt: undefined }, clock);
    expect(stale.known).toBe(false);
    // A new sample (load reports go on) whose cpu is old: the capacity is unknown all the same.
    const oldCpu = newLedger();
    addCarrier(oldCpu, { sample: s(0.6, 60).sample, fieldAt: { cpu: now - clock.freshMs - 1, inflight: -Infinity, latencyMs: -Infinity, traffic: now } }, clock);
    expect(oldCpu.known).toBe(false);
  });
});

describe('errorPenalty 0 takes the penalty away, never the failures counted as busy', () => {
  const NO_PENALTY: WeightingPolicy = { kind: 'pid', setpoint: 'mean', errorPenalty: 0 };
  const NO_PENALTY_CPU: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu', errorPenalty: 0 };

  it.each([
    ['cpu-latency', NO_PENALTY],
    ['cpu', NO_PENALTY_CPU],
  ])('pid (%s) at 60%%, retries on, no ejection: an endpoint failing half its calls fast never gains share (it went 0.25 → 0.49)', (_, policy) => {
    const f = new Fleet({ capacities: [1, 1, 1, 1], loadFraction: 0.6, noise: 0.02, seed: 5, policy, retryErrors: true, ejection: { enabled: false } });
    f.latencies = [20, 20, 20, 20];
    for (let t = 0; t < 40; t++) f.step();
    f.errorRates[BIG] = 0.5;
    let most = 0;
    for (let t = 0; t < 80; t++) {
      f.step();
      most = Math.max(most, f.shares()[BIG] as number);
    }
    expect(most).toBeLessThanOrEqual(0.25 * 1.03);
    // No penalty: it is not driven away either (its peers carry its retried failures only).
    expect(f.shares()[BIG]).toBeGreaterThan(0.2);
    expect(f.last?.explanations.get(f.keys[BIG] as string)?.rules ?? []).not.toContain('peers-near-capacity');
  });

  it('without fresh steering data, a failing endpoint never rises at errorPenalty 0 either (not even decaying to its fair share)', () => {
    // Half the others' capacity: below its fair (static) share, where decay would take it back up.
    const f = new Fleet({ capacities: [1, 1, 1, 0.5], loadFraction: 0.6, noise: 0.02, seed: 5, policy: NO_PENALTY, ejection: { enabled: false } });
    f.latencies = [20, 20, 20, 20];
    for (let t = 0; t < 60; t++) f.step();
    const before = f.shares()[BIG] as number;
    expect(before).toBeLessThan(0.2);
    // Its steering data (cpu) stops while its load reports go on counting its failures, past decayAfterMs.
    const key = f.keys[BIG] as string;
    for (let t = 0; t < 70; t++) {
      f.now += f.tickMs;
      for (const k of f.keys) {
        if (k === key) f.engine.observeSample('svc', k, { at: f.now, rps: 30, errors: 15 });
        else f.engine.observeSample('svc', k, { at: f.now, cpu: 0.6, rps: 60, errors: 0, latencyMs: 20 });
      }
      const tick = f.engine.tick(f.now).clusters.get('svc') as ClusterTick;
      f.weights = f.keys.map((k) => tick.weights.get(k) as number);
      f.last = tick;
    }
    expect(f.shares()[BIG]).toBeLessThanOrEqual(before * 1.01);
    expect(f.last?.explanations.get(key)?.rules).toContain('error-penalty');
  });
});
