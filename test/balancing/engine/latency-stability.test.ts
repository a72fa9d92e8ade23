/**
 * The PID's latency term on a queueing fleet (queue-fleet.ts): near saturation a backend's latency
 * climbs steeply with its load, so a latency term without bound turned the controller into a
 * relay that swung weights several times over; and a backend slowed by a dependency (latency up,
 * CPU unchanged) must still lose share to its peers. Each figure is over seeds 1–4, so one lucky or
 * unlucky draw decides nothing; the simulation is deterministic for a seed.
 */
import { describe, expect, it } from 'vitest';
import { meanMaxOverAvg, QueueFleet, weightSwing } from './queue-fleet.js';
import type { WeightingPolicy } from '../../../src/balancing/engine/types.js';

const PID: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu-latency' };
const HETERO = [1, 1, 2, 2, 3, 4, 4, 6, 6, 8];
const DEMO = [3, 3, 3, 3, 6, 6];
const SEEDS = [1, 2, 3, 4];

function settled(workers: readonly number[], serviceMs: number, seed: number): QueueFleet {
  const fleet = new QueueFleet({ workers, load: 0.85, policy: PID, seed, serviceMs });
  fleet.run(60);
  return fleet;
}

const geometricMean = (xs: readonly number[]): number => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('the PID latency term on a queueing fleet at 85% load', () => {
  it('the demo fleet (3 and 6 workers): no backend weight swings more than 2.5× over the last 40 s', () => {
    // Unbounded: 17.7, 3.9, 6.5, 7.5× (cpu alone: 1.1–1.4×).
    for (const seed of SEEDS) expect(weightSwing(settled(DEMO, 100, seed).weights, 20), `seed ${seed}`).toBeLessThan(2.5);
  });

  it('a heterogeneous fleet (1 to 8 workers): weights swing a few times over at most, utilization stays balanced', () => {
    const fleets = SEEDS.map((seed) => settled(HETERO, 200, seed));
    // Unbounded: geometric mean 30× (11.8–65.6); cpu alone 2.6×. The small backends' latency over a
    // second of a few requests is noise, which still moves them some.
    expect(geometricMean(fleets.map((f) => weightSwing(f.weights, 30)))).toBeLessThan(10);
    for (const f of fleets) expect(meanMaxOverAvg(f.utilization, 30)).toBeLessThan(1.3);
  });
});

describe('the PID latency term: a slow dependency', () => {
  it('a 2× backend answering ×5 slower, CPU unchanged, falls below its fair share; its twin rises above it', () => {
    const shares = SEEDS.map((seed) => {
      const fleet = new QueueFleet({ workers: DEMO, load: 0.7, policy: PID, seed });
      fleet.run(20);
      (fleet.backends[4] as { slowFactor: number }).slowFactor = 4;
      fleet.run(40);
      const last = fleet.weights.at(-1) as number[];
      const total = last.reduce((a, b) => a + b, 0);
      return { slow: (last[4] as number) / total, twin: (last[5] as number) / total };
    });
    // Fair: 6 of 24 workers, 0.25. Without a latency term: 0.23–0.25.
    expect(mean(shares.map((s) => s.slow))).toBeLessThan(0.225);
    expect(mean(shares.map((s) => s.twin))).toBeGreaterThan(0.25);
  });
});
