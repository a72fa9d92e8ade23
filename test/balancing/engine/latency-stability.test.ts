/**
 * The PID's latency term on a queueing fleet (queue-fleet.ts): near saturation a backend's latency
 * climbs steeply with its load, so a latency term without bound turned the controller into a
 * relay that swung weights several times over; a backend slowed by a dependency (latency up,
 * CPU unchanged) must still lose share to its peers; and a saturated backend's load reads what it
 * was sent past its capacity (its cpu stops at 1), so a capacity cut is answered fast. Each figure is over seeds 1–4, so one lucky or
 * unlucky draw decides nothing; the simulation is deterministic for a seed. The weight swings
 * leave out the ticks of a backlog drain (tick/backlog.ts: a backend whose queue grew far past
 * its peers' is cut for about one report, then goes back): that cut is meant, and it is what the
 * relay was not, a measured backlog drained; the swing tested is the controller's.
 */
import { describe, expect, it } from 'vitest';
import { meanMaxOverAvg, QueueFleet, weightSwing, type Backend } from './queue-fleet.js';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { Sample, WeightingPolicy } from '../../../src/balancing/engine/types.js';

const PID: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu-latency' };
const HETERO = [1, 1, 2, 2, 3, 4, 4, 6, 6, 8];
const DEMO = [3, 3, 3, 3, 6, 6];
const SEEDS = [1, 2, 3, 4];

function settled(workers: readonly number[], serviceMs: number, seed: number): QueueFleet {
  const fleet = new QueueFleet({ workers, load: 0.85, policy: PID, seed, serviceMs });
  fleet.run(60);
  return fleet;
}

/** The demo fleet at 70% for 20 s, then `event` on its first 2× backend and `seconds` more. */
function demoAt70(seed: number, event: (b: Backend) => void, seconds: number): QueueFleet {
  const fleet = new QueueFleet({ workers: DEMO, load: 0.7, policy: PID, seed });
  fleet.run(20);
  event(fleet.backends[4] as Backend);
  fleet.run(seconds);
  return fleet;
}

const geometricMean = (xs: readonly number[]): number => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('the PID latency term on a queueing fleet at 85% load', () => {
  it('the demo fleet (3 and 6 workers): no backend weight swings more than 2.5× over the last 40 s', () => {
    // Unbounded: 17.7, 3.9, 6.5, 7.5× (cpu alone: 1.1–1.4×).
    for (const seed of SEEDS) {
      const f = settled(DEMO, 100, seed);
      expect(weightSwing(f.weights, 20, f.drained), `seed ${seed}`).toBeLessThan(2.5);
    }
  });

  it('a heterogeneous fleet (1 to 8 workers): weights swing a few times over at most, utilization stays balanced', () => {
    const fleets = SEEDS.map((seed) => settled(HETERO, 200, seed));
    // Unbounded: geometric mean 30× (11.8–65.6); cpu alone 2.6×. The small backends' latency over a
    // second of a few requests is noise, which still moves them some.
    expect(geometricMean(fleets.map((f) => weightSwing(f.weights, 30, f.drained)))).toBeLessThan(10);
    for (const f of fleets) expect(meanMaxOverAvg(f.utilization, 30)).toBeLessThan(1.3);
  });
});

describe('the PID latency term: a slow dependency', () => {
  it('a 2× backend answering ×5 slower, CPU unchanged, falls below its fair share; its twin rises above it', () => {
    const shares = SEEDS.map((seed) => {
      const fleet = demoAt70(seed, (b) => (b.slowFactor = 4), 40);
      const last = fleet.weights.at(-1) as number[];
      const total = last.reduce((a, b) => a + b, 0);
      return { slow: (last[4] as number) / total, twin: (last[5] as number) / total };
    });
    // Fair: 6 of 24 workers, 0.25. Without a latency term: 0.23–0.25.
    expect(mean(shares.map((s) => s.slow))).toBeLessThan(0.225);
    expect(mean(shares.map((s) => s.twin))).toBeGreaterThan(0.25);
  });
});

describe('a saturated backend reads what it was sent past its capacity', () => {
  const flow = (rps: number, successes: number): Partial<Sample> => ({ rps, errors: 0, successes, inflight: 10, peerInflight: 10, peerCompletions: 100 });
  const measured = (metric: 'cpu' | 'cpu-latency', a: Partial<Sample>): number | undefined => {
    const engine = new WeightEngine({ safety: { smoothing: 1 } });
    engine.setCluster('svc', [{ key: 'a:1', weight: 1 }, { key: 'b:1', weight: 1 }], { kind: 'pid', setpoint: 'mean', metric });
    engine.observeSample('svc', 'a:1', { at: 1_000, ...a });
    engine.observeSample('svc', 'b:1', { at: 1_000, cpu: 0.5, ...flow(100, 100) });
    return engine.tick(1_000).clusters.get('svc')?.explanations.get('a:1')?.pid?.measurement;
  };

  it.for(['cpu', 'cpu-latency'] as const)('%s: cpu 1 and 150 sent for 100 answered reads 1.5; unsaturated or without counts, its cpu', (metric) => {
    expect(measured(metric, { cpu: 1, ...flow(150, 100) })).toBeCloseTo(1.5, 6);
    expect(measured(metric, { cpu: 1, ...flow(900, 100) })).toBeCloseTo(4, 6);
    // Answering more than it was sent (a queue draining) is no less load than its cpu.
    expect(measured(metric, { cpu: 1, ...flow(80, 100) })).toBeCloseTo(1, 6);
    expect(measured(metric, { cpu: 0.9, ...flow(150, 100) })).toBeCloseTo(0.9, 6);
    expect(measured(metric, { cpu: 1, rps: 150, errors: 0 })).toBeCloseTo(1, 6);
  });

  it('a 2× backend losing half its workers at 70% load falls to its new share within a few ticks', () => {
    const ticks = SEEDS.map((seed) => {
      const fleet = demoAt70(seed, (b) => (b.workers = 3), 30);
      // Its new fair share: 3 of 21 workers, 0.143.
      return fleet.weights.slice(20).findIndex((w) => (w[4] as number) / w.reduce((a, b) => a + b, 0) < 0.16);
    });
    // With its cpu alone (stopped at 1) and the bounded latency: 5, 5, 7 and 17 ticks.
    expect(ticks.every((t) => t >= 0)).toBe(true);
    expect(mean(ticks)).toBeLessThan(6);
  });
});

describe('the backlog drain on a queueing fleet', () => {
  it('a 2× backend losing half its workers at 70% load mid-report: its queue is drained, the tail shorter', () => {
    const p99s = [1, 2, 3, 4, 5, 6].map((seed) => {
      const fleet = new QueueFleet({ workers: DEMO, load: 0.7, policy: PID, seed });
      // The cut a second into a 2 s report interval: the first report sees half of it.
      fleet.run(21);
      (fleet.backends[4] as Backend).workers = 3;
      fleet.run(25);
      const l = fleet.requestLatencies(10_000);
      return l[Math.floor(0.99 * l.length)] as number;
    });
    // Without drains: 1,037, 785, 781, 777, 1,393, 729 ms (mean 917); drained: 656–965 (mean 802).
    expect(Math.max(...p99s)).toBeLessThan(1_100);
    expect(mean(p99s)).toBeLessThan(870);
  });
});
