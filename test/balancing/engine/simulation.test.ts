/**
 * Closed-loop simulation of a fleet (see fleet.ts): the engine's published weights split the
 * offered load, utilization = load share / capacity (+ seeded noise) is reported back, once
 * per 1 s tick. The bar is Robinhood's: max/avg utilization near 1.05 or better.
 */
import { describe, it, expect } from 'vitest';
import { Fleet, prng } from './fleet.js';
import { SAFETY_DEFAULTS, type WeightingPolicy } from '../../../src/balancing/engine/types.js';

const PID: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu' };
const BAR = 1.05;
/** Ticks (1 s each) within which max/avg must be and stay <= BAR, from static weights. */
const CONVERGE_WITHIN = 30;
/** Ticks within which the fleet must be back under BAR after a capacity step. */
const RECOVER_WITHIN = 20;

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Largest |Δ log share| of any endpoint between two share vectors. */
function maxLogChange(a: readonly number[], b: readonly number[]): number {
  return Math.max(...a.map((x, i) => Math.abs(Math.log((b[i] as number) / x))));
}

/** The first tick from which every later value in `ratios` (1-based ticks) is <= BAR. */
function settledFrom(ratios: readonly number[]): number {
  let last = 0;
  ratios.forEach((r, i) => {
    if (r > BAR) last = i + 1;
  });
  return last + 1;
}

describe('fleet simulation: PID equalizes heterogeneous capacity', () => {
  for (const seed of [1, 2, 3]) {
    it(`3 endpoints at 1× and 3 at 2×, 70% load, 2% noise (seed ${seed}): converges, stays, recovers from a capacity step`, () => {
      const fleet = new Fleet({ capacities: [1, 1, 1, 2, 2, 2], loadFraction: 0.7, noise: 0.02, seed, policy: PID });
      const initial = fleet.maxOverAvg();
      expect(initial).toBeCloseTo(4 / 3, 9); // static weights: 1.05 vs 0.525 utilization

      const ratios: number[] = [];
      const changes: number[] = [];
      for (let t = 1; t <= 120; t++) {
        const before = fleet.shares();
        fleet.step();
        ratios.push(fleet.maxOverAvg());
        changes.push(maxLogChange(before, fleet.shares()));
      }
      // Converged within the bound and stayed there through tick 120 (60+ ticks of no oscillation out of the band).
      expect(settledFrom(ratios)).toBeLessThanOrEqual(CONVERGE_WITHIN);
      expect(Math.max(...ratios.slice(60))).toBeLessThanOrEqual(BAR);
      // Weights reflect capacity: the 2× endpoints carry about twice the share.
      const s = fleet.shares();
      expect(mean(s.slice(3)) / mean(s.slice(0, 3))).toBeGreaterThan(1.9);
      expect(mean(s.slice(3)) / mean(s.slice(0, 3))).toBeLessThan(2.1);
      // Weight changes shrink: what is left after convergence is noise-chasing, several times
      // smaller than the corrections during convergence, and every step is small.
      expect(mean(changes.slice(60))).toBeLessThan(mean(changes.slice(0, 30)) / 3);
      expect(Math.max(...changes.slice(60))).toBeLessThan(0.05);

      // Capacity step: one 2× endpoint drops to 1× (e.g. a noisy neighbor).
      fleet.capacities[3] = 1;
      expect(fleet.maxOverAvg()).toBeGreaterThan(1.3);
      const after: number[] = [];
      for (let t = 1; t <= 120; t++) {
        fleet.step();
        after.push(fleet.maxOverAvg());
      }
      expect(settledFrom(after)).toBeLessThanOrEqual(RECOVER_WITHIN);
      const s2 = fleet.shares();
      expect((s2[3] as number) / mean(s2.slice(0, 3))).toBeCloseTo(1, 1);
    });
  }

  it('20 endpoints with mixed capacities (1, 1.5, 2, 3×) converge within the same bound', () => {
    const rand = prng(99);
    const capacities = Array.from({ length: 20 }, () => [1, 1.5, 2, 3][Math.floor(rand() * 4)] as number);
    const fleet = new Fleet({ capacities, loadFraction: 0.7, noise: 0.02, seed: 7, policy: PID });
    expect(fleet.maxOverAvg()).toBeGreaterThan(1.3);
    const ratios: number[] = [];
    for (let t = 1; t <= 120; t++) {
      fleet.step();
      ratios.push(fleet.maxOverAvg());
    }
    expect(settledFrom(ratios)).toBeLessThanOrEqual(CONVERGE_WITHIN);
  });

  it('when reports stop, weights hold for staleAfterMs, then decay toward static; the cluster never empties', () => {
    const fleet = new Fleet({ capacities: [1, 1, 1, 2, 2, 2], loadFraction: 0.7, noise: 0.02, seed: 4, policy: PID });
    for (let t = 1; t <= 60; t++) fleet.step();
    const converged = fleet.shares();
    const lastReport = fleet.now;
    // Reports stop. Until decayAfterMs (30 s) nothing moves: fresh (awaiting) then stale (held).
    while (fleet.now < lastReport + 30_000) {
      const tick = fleet.step(false);
      expect(fleet.shares()).toEqual(converged);
      expect([...tick.health.values()].every((h) => h === 'HEALTHY')).toBe(true);
    }
    expect(fleet.last?.explanations.get(fleet.keys[0] as string)?.rules).toContain('stale-hold');
    // Then decay toward the static (equal) weights, monotonically, never emptying.
    let spread = Math.max(...converged) / Math.min(...converged);
    for (let t = 1; t <= 300; t++) {
      const tick = fleet.step(false);
      const s = fleet.shares();
      const next = Math.max(...s) / Math.min(...s);
      expect(next).toBeLessThanOrEqual(spread + 1e-9);
      spread = next;
      expect(Math.min(...tick.weights.values())).toBeGreaterThanOrEqual(1);
      expect([...tick.health.values()].every((h) => h === 'HEALTHY')).toBe(true);
    }
    // 300 s = 10 half-lives: the internal weights are at static; what is published may lag
    // by up to the hysteresis band (per endpoint, so twice that between two), since smaller moves
    // are not pushed.
    for (const ex of fleet.last?.explanations.values() ?? []) expect(ex.weight / ex.fairWeight).toBeCloseTo(1, 2);
    expect(spread).toBeLessThan(1 + 2 * SAFETY_DEFAULTS.hysteresis + 0.005);
    expect(fleet.last?.explanations.get(fleet.keys[3] as string)?.rules).toContain('decay');
  });

  it('an endpoint whose probes fail 3 times leaves rotation, the rest re-equalize, it returns after backoff + 3 successes', () => {
    const fleet = new Fleet({ capacities: [1, 1, 1, 2, 2, 2], loadFraction: 0.6, noise: 0.02, seed: 5, policy: PID });
    for (let t = 1; t <= 40; t++) fleet.step();
    const sick = fleet.keys[4] as string;
    for (let k = 1; k <= 3; k++) fleet.engine.observeProbe('svc', sick, { ok: false, at: fleet.now + k * 100 });
    fleet.step();
    expect(fleet.last?.health.get(sick)).toBe('UNHEALTHY');
    expect(fleet.healthy.filter(Boolean)).toHaveLength(5);
    const ratios: number[] = [];
    for (let t = 1; t <= 60; t++) {
      fleet.step();
      ratios.push(fleet.maxOverAvg());
    }
    expect(settledFrom(ratios)).toBeLessThanOrEqual(RECOVER_WITHIN);
    // Backoff (5 min) passes; probes succeed again; back after the third success.
    while (fleet.now < 41_000 + 5 * 60_000) fleet.step();
    for (let k = 1; k <= 2; k++) fleet.engine.observeProbe('svc', sick, { ok: true, at: fleet.now + k * 100 });
    fleet.step();
    expect(fleet.last?.health.get(sick)).toBe('UNHEALTHY');
    fleet.engine.observeProbe('svc', sick, { ok: true, at: fleet.now + 100 });
    fleet.step();
    expect(fleet.last?.health.get(sick)).toBe('HEALTHY');
    const back: number[] = [];
    for (let t = 1; t <= 60; t++) {
      fleet.step();
      back.push(fleet.maxOverAvg());
    }
    expect(settledFrom(back)).toBeLessThanOrEqual(CONVERGE_WITHIN);
  });
});
