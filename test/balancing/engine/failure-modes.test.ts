/**
 * The engine under real failure modes (issue: "a fast-failing backend gains traffic"): errors
 * steer weights and eject outliers with back-off, latency steers the PID, and weights rest under
 * noise. Closed loop through the fleet model in fleet.ts: fast errors cost no CPU there, exactly
 * the case that made a CPU-only PID feed the failing backend.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Fleet } from './fleet.js';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import { judgeOutliers } from '../../../src/balancing/engine/tick/ejection.js';
import { EJECTION_DEFAULTS, type ClusterTick, type WeightingPolicy } from '../../../src/balancing/engine/types.js';

const PID: WeightingPolicy = { kind: 'pid', setpoint: 'mean' };
const CPU_ONLY: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu', errorPenalty: 0 };
const NO_EJECTION = { enabled: false };

function run(fleet: Fleet, ticks: number): ClusterTick[] {
  const out: ClusterTick[] = [];
  for (let t = 0; t < ticks; t++) out.push(fleet.step());
  return out;
}

describe('errors steer weights', () => {
  it('a backend answering half its requests with fast 503s loses share under pid (it gained share without the error term)', () => {
    const make = (policy: WeightingPolicy): Fleet => {
      const f = new Fleet({ capacities: [1, 1, 1, 2, 2, 2], loadFraction: 0.7, noise: 0.02, seed: 7, policy, ejection: NO_EJECTION });
      run(f, 40); // converged first
      f.errorRates[3] = 0.5;
      run(f, 40);
      return f;
    };
    const fair = 2 / 9;
    // errorPenalty 0 takes the penalty away, not the failures counted as busy: it holds its share,
    // where it gained it without them (the bug the issue found: > 1.2 × fair).
    const unpenalized = make(CPU_ONLY).shares()[3] as number;
    expect(unpenalized).toBeLessThanOrEqual(fair * 1.05);
    expect(unpenalized).toBeGreaterThan(fair * 0.8);
    const withErrors = make(PID);
    expect(withErrors.shares()[3]).toBeLessThan(fair * 0.5);
    expect(withErrors.last?.explanations.get(withErrors.keys[3] as string)?.rules).toContain('error-penalty');
  });

  it('ewma: a backend that fails fast does not look like the fastest one', () => {
    const f = new Fleet({ capacities: [1, 1, 1, 1], loadFraction: 0.5, noise: 0, seed: 1, policy: { kind: 'ewma', explorationBonus: 0 }, ejection: NO_EJECTION });
    f.latencies = [20, 20, 20, 5]; // its errors come back fast, so its mean latency is low
    f.errorRates[3] = 0.5;
    run(f, 30);
    expect(f.shares()[3]).toBeLessThan(0.25);
  });

  it('property: errors never raise a weight (same fleet, one endpoint failing more: its share is never higher)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3 }),
        fc.double({ min: 0.05, max: 0.9, noNaN: true }),
        fc.constantFrom<WeightingPolicy>(PID, { kind: 'ewma', explorationBonus: 0 }, { kind: 'blend', parts: { pid: 0.5, ewma: 0.5 } }),
        fc.integer({ min: 1, max: 1_000 }),
        (k, rate, policy, seed) => {
          const make = (): Fleet => {
            const f = new Fleet({ capacities: [1, 2, 1, 3], loadFraction: 0.6, noise: 0, seed, policy, ejection: NO_EJECTION });
            f.latencies = [20, 15, 25, 10];
            return f;
          };
          const clean = make();
          const failing = make();
          failing.errorRates[k] = rate;
          for (let t = 0; t < 25; t++) {
            clean.step();
            failing.step();
            expect(failing.shares()[k]).toBeLessThanOrEqual((clean.shares()[k] as number) * (1 + 1e-9));
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('errors bound an endpoint whose steering data stopped (its load reports go on)', () => {
  const A = '10.0.0.1:80';
  const B = '10.0.0.2:80';
  const clusterTick = (e: WeightEngine, now: number): ClusterTick => e.tick(now).clusters.get('svc') as ClusterTick;
  const shareOf = (t: ClusterTick, k: string): number => (t.weights.get(k) as number) / [...t.weights.values()].reduce((a, b) => a + b, 0);

  /** A and B report cpu, latency and traffic for 60 s (B the busier); then B's agent stops and its load reports say it fails `errors` in 100. */
  function agentStops(policy: WeightingPolicy, errors: number): { before: number; max: number; last: ClusterTick } {
    const engine = new WeightEngine();
    engine.setCluster('svc', [{ key: A, weight: 1 }, { key: B, weight: 1 }], policy);
    let last!: ClusterTick;
    for (let t = 0; t < 60; t++) {
      engine.observeSample('svc', A, { at: t * 1000 - 50, cpu: 0.3, latencyMs: 10, rps: 100, errors: 0 });
      engine.observeSample('svc', B, { at: t * 1000 - 50, cpu: 0.9, latencyMs: 40, rps: 100, errors: 0 });
      last = clusterTick(engine, t * 1000);
    }
    const before = shareOf(last, B);
    let max = before;
    for (let t = 60; t < 180; t++) {
      engine.observeSample('svc', A, { at: t * 1000 - 50, cpu: 0.3, latencyMs: 10, rps: 100, errors: 0 });
      engine.observeSample('svc', B, { at: t * 1000 - 50, rps: 100, errors });
      last = clusterTick(engine, t * 1000);
      max = Math.max(max, shareOf(last, B));
    }
    return { before, max, last };
  }

  for (const policy of [PID, { kind: 'ewma', explorationBonus: 0 }] as WeightingPolicy[]) {
    it(`${policy.kind}: failing 25 % (below the ejection ratio), it never gains share (it decayed from 2.5 % to 30 % before)`, () => {
      const { before, max, last } = agentStops(policy, 25);
      expect(before).toBeLessThan(0.4);
      expect(last.health.get(B)).toBe('HEALTHY');
      expect(max).toBeLessThanOrEqual(before * 1.02); // integer rounding of the other's weight
      expect(last.explanations.get(B)?.rules).toContain('error-penalty');
    });
  }

  it('pid: without errors above the noise it holds and decays toward static as before', () => {
    const { before, last } = agentStops(PID, 0);
    expect(before).toBeLessThan(0.05);
    expect(shareOf(last, B)).toBeGreaterThan(0.25); // on its way to 0.5
    expect(last.explanations.get(B)?.rules).toContain('decay');
  });

  it('two of four backends fail every request fast (5xx carry no ORCA cpu): the one left in rotation is near the floor', () => {
    const keys = [1, 2, 3, 4].map((i) => `10.0.0.${i}:80`);
    const engine = new WeightEngine();
    engine.setCluster('svc', keys.map((key) => ({ key, weight: 1 })), PID);
    let last!: ClusterTick;
    for (let t = 0; t < 120; t++) {
      keys.forEach((key, i) => {
        const failing = t >= 30 && i >= 2;
        engine.observeSample('svc', key, failing ? { at: t * 1000 - 50, rps: 100, errors: 100 } : { at: t * 1000 - 50, rps: 100, errors: 0, cpu: 0.5 });
      });
      last = clusterTick(engine, t * 1000);
    }
    const served = keys.filter((k) => last.health.get(k) === 'HEALTHY');
    const failing = served.filter((k) => k === keys[2] || k === keys[3]);
    expect(failing.length).toBeGreaterThan(0); // the ejection cap leaves one in rotation: the case at hand
    const weight = (ks: string[]): number => ks.reduce((s, k) => s + (last.weights.get(k) as number), 0);
    expect(weight(failing) / weight(served)).toBeLessThan(0.1); // 0.137 before
  });
});

describe('the fleet outlier detector', () => {
  it('ejects a backend failing every request within one signal interval, and only it', () => {
    const f = new Fleet({ capacities: [1, 1, 1, 1], loadFraction: 0.5, noise: 0, seed: 1, policy: PID });
    run(f, 5);
    f.errorRates[2] = 1;
    const t = f.step();
    expect(t.health.get(f.keys[2] as string)).toBe('UNHEALTHY');
    expect(t.explanations.get(f.keys[2] as string)?.ejection?.reason).toMatch(/all-failing/);
    expect([...t.health.values()].filter((h) => h === 'HEALTHY')).toHaveLength(3);
  });

  it('ejects a 50% fast-failing backend on the failure-percentage rule, also under static weights', () => {
    const f = new Fleet({ capacities: [1, 1, 1, 1, 1, 1], loadFraction: 0.5, noise: 0, seed: 1, policy: { kind: 'static' } });
    f.errorRates[0] = 0.5;
    const ticks = run(f, 5);
    const ejectedAt = ticks.findIndex((t) => t.health.get(f.keys[0] as string) === 'UNHEALTHY');
    expect(ejectedAt).toBeGreaterThanOrEqual(0);
    expect(ejectedAt).toBeLessThanOrEqual(2);
  });

  it('does not eject when the whole cluster fails alike (the fault is not the endpoint\'s)', () => {
    const f = new Fleet({ capacities: [1, 1, 1, 1], loadFraction: 0.5, noise: 0, seed: 1, policy: PID });
    f.errorRates = [0.6, 0.6, 0.6, 0.6];
    const ticks = run(f, 20);
    for (const t of ticks) expect([...t.health.values()].every((h) => h === 'HEALTHY')).toBe(true);
  });

  it('releases after the back-off on probation; retries at the same pace while the backend never came back; doubles after a relapse', () => {
    const base = 10_000;
    const f = new Fleet({ capacities: [1, 1, 1, 1], loadFraction: 0.5, noise: 0, seed: 1, policy: PID, ejection: { baseEjectionMs: base } });
    run(f, 3);
    const k = f.keys[1] as string;
    const outages = (): number[] => {
      const lengths: number[] = [];
      let down = 0;
      for (let t = 0; t < 200 && lengths.length < 2; t++) {
        const tick = f.step();
        if (tick.health.get(k) === 'UNHEALTHY') down++;
        else if (down > 0) {
          lengths.push(down);
          expect(tick.explanations.get(k)?.rules).toContain('probation');
          down = 0;
        }
      }
      return lengths;
    };
    f.errorRates[1] = 1;
    const dead = outages();
    expect(dead).toHaveLength(2);
    expect(dead[1]).toBe(dead[0]); // never came back: same pace
    expect(dead[0]).toBeGreaterThanOrEqual(base / 1000);
    expect(dead[0]).toBeLessThanOrEqual(base / 1000 + 1);
    // Revived: it comes back, serves clean traffic, then relapses: the next ejection is twice as long.
    f.errorRates[1] = 0;
    run(f, 20);
    expect(f.last?.health.get(k)).toBe('HEALTHY');
    f.errorRates[1] = 1;
    const relapse = outages();
    expect(relapse[0]).toBeGreaterThanOrEqual(2 * (base / 1000));
  });

  it('property: never more than maxEjectedRatio of a cluster (at least one if it has two or more), never the last one serving', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 5 }), (rates, already) => {
        const readings = rates.map((rate) => ({ rate, requests: 100, lastRate: rate, lastRequests: 50 }));
        const total = rates.length + already;
        const verdicts = judgeOutliers(readings, total, already, EJECTION_DEFAULTS);
        const cap = total >= 2 ? Math.max(1, Math.floor(EJECTION_DEFAULTS.maxEjectedRatio * total)) : 0;
        expect(verdicts.length + already <= cap || verdicts.length === 0).toBe(true);
        expect(verdicts.length).toBeLessThanOrEqual(Math.max(0, rates.length - 1));
      }),
      { numRuns: 300 },
    );
  });
});

describe('latency steers pid', () => {
  it('a backend whose latency grows 5× with normal CPU loses share under the default metric, not under cpu', () => {
    const make = (policy: WeightingPolicy): Fleet => {
      const f = new Fleet({ capacities: [1, 1, 1, 1, 1], loadFraction: 0.6, noise: 0.02, seed: 3, policy });
      f.latencies = [20, 20, 20, 20, 20];
      run(f, 20);
      f.latencies[0] = 100;
      run(f, 30);
      return f;
    };
    expect(make({ kind: 'pid', setpoint: 'mean', metric: 'cpu' }).shares()[0]).toBeGreaterThan(0.17);
    const f = make(PID);
    expect(f.shares()[0]).toBeLessThan(0.1);
    expect(f.last?.explanations.get(f.keys[0] as string)?.rules).toContain('latency-penalty');
  });

  it('a backend that was slow and recovers gets its share back (the step was taken for noise and the weight froze low)', () => {
    const f = new Fleet({ capacities: [1, 1, 1, 1, 2, 2], loadFraction: 0.7, noise: 0.02, seed: 3, policy: PID });
    f.latencies = [100, 100, 100, 100, 100, 100];
    run(f, 30);
    f.latencies[4] = 500;
    run(f, 10);
    const starved = f.shares()[4] as number;
    expect(starved).toBeLessThan(0.1);
    f.latencies[4] = 100;
    run(f, 15);
    // Fair share 2/8. Before, it rested on a noise band the two steps had widened (6 ticks at 0.017
    // with an error of 0.69, later 0.19 with 0.27): 0.16 here; with a real Envoy 11,538 against its
    // 2× peer's 100,000 for ten seconds (bench/scenarios/run.ts --scenario recovery).
    expect(f.shares()[4]).toBeGreaterThan(0.2);
    expect(f.maxOverAvg()).toBeLessThan(1.2);
  });

  it('blend: the PID part no longer pushes back what the EWMA part takes from a slow backend', () => {
    const f = new Fleet({ capacities: [1, 1, 1, 1], loadFraction: 0.6, noise: 0, seed: 3, policy: { kind: 'blend', parts: { pid: 0.5, ewma: 0.5 }, explorationBonus: 0 } });
    f.latencies = [20, 20, 20, 20];
    run(f, 20);
    f.latencies[0] = 100;
    run(f, 40);
    expect(f.shares()[0]).toBeLessThan(0.15);
  });
});

describe('weights rest', () => {
  it('with ±20% noise on utilization: converged, and published far less often than every tick', () => {
    const f = new Fleet({ capacities: [1, 1, 1, 2, 2, 2], loadFraction: 0.7, noise: 0.2, seed: 11, policy: PID });
    run(f, 60);
    const ticks = run(f, 120);
    const changes = ticks.filter((t) => t.changed).length;
    // Per 2 minutes. Before the deadband and smoothing the engine published on ~90% of ticks here
    // (and ~110 changes/min were measured with a real Envoy); a 2% hysteresis alone gave 54/min, a
    // fixed deadband ~27/min. The band that widens with each endpoint's measured noise rests.
    expect(changes).toBeLessThan(12);
    expect(f.maxOverAvg()).toBeLessThan(1.1);
  });

  it('hold at low load: nothing to balance while every endpoint is nearly idle', () => {
    const f = new Fleet({ capacities: [1, 1, 1, 2, 2, 2], loadFraction: 0.05, noise: 0.2, seed: 5, policy: PID });
    const ticks = run(f, 30);
    expect(ticks.slice(1).filter((t) => t.changed)).toHaveLength(0);
    expect(ticks.at(-1)?.explanations.get(f.keys[0] as string)?.rules).toContain('low-load-hold');
  });

  it('rejects nonsense ejection settings', () => {
    expect(() => new WeightEngine({ ejection: { maxEjectedRatio: 0 } })).toThrow(RangeError);
    expect(() => new WeightEngine({ ejection: { baseEjectionMs: 10_000, maxEjectionMs: 1_000 } })).toThrow(RangeError);
  });
});

describe('the step limit is a rate', () => {
  it('reports every 2 ticks: one controller step may move two ticks\' worth, never more', () => {
    const engine = new WeightEngine({ safety: { maxStepRatio: 1.25, deadband: 0, smoothing: 1 } });
    const keys = ['a:1', 'b:1'];
    engine.setCluster('svc', keys.map((key) => ({ key, weight: 1 })), { kind: 'pid', setpoint: 'mean', metric: 'cpu', gains: { kp: 4 } });
    engine.tick(0);
    const ratios: number[] = [];
    for (let t = 2_000; t <= 8_000; t += 1_000) {
      if (t % 2_000 === 0) {
        engine.observeSample('svc', 'a:1', { at: t, cpu: 1 });
        engine.observeSample('svc', 'b:1', { at: t, cpu: 0.1 });
      }
      const tick = engine.tick(t).clusters.get('svc');
      ratios.push((tick?.explanations.get('b:1')?.publishedWeight ?? 0) / (tick?.explanations.get('b:1')?.previousWeight ?? 1));
    }
    // The first report has no previous one (one tick's worth); later ones come 2 ticks apart.
    expect(ratios[0]).toBeLessThanOrEqual(1.25 + 1e-9);
    for (const r of ratios.slice(1)) expect(r).toBeLessThanOrEqual(1.25 ** 2 + 1e-9);
    expect(Math.max(...ratios.slice(1))).toBeGreaterThan(1.25 + 1e-6);
  });
});
