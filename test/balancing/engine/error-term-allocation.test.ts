/**
 * The PID's error terms (tick/pid.ts errorTerm) cost no object per endpoint per tick: a cluster
 * whose load reports carry a few errors allocates in a steady tick not much more than one whose
 * reports carry none (bench/RESULTS.md: 3.8 MB → 1.1 MB per 500 × 20 rps tick, kept so).
 */
import { GCProfiler } from 'node:v8';
import { expect, it } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import { fullGc } from '../../../src/runtime/startup-garbage.js';

const N = 10_000;
/**
 * Bytes per endpoint per steady tick the error terms may add (the error window, explanations'
 * rule bits and measurement at 1% errors: ~48 before the capacity bound, and since). An object
 * with its heap numbers per endpoint, and the boxing around it, made ~127.
 */
const MAX_EXTRA_PER_ENDPOINT = 80;
/** Ticks whose allocations, each within STEADY of their median, say V8 has settled the tick's code. */
const WINDOW = 5;
const STEADY = 0.1;
const keys = Array.from({ length: N }, (_, e) => `10.0.${e % 250}.${Math.floor(e / 250)}:8000`);

function pidEngine(): WeightEngine {
  const engine = new WeightEngine();
  engine.setCluster('svc', keys.map((key) => ({ key, weight: 1 })), { kind: 'pid', setpoint: 'mean', metric: 'cpu' });
  return engine;
}

/**
 * Heap growth across one tick after every endpoint reported; NaN when a collection ran inside it
 * (it hides what the tick allocated). A full collection first empties the young generation.
 */
function tickBytes(engine: WeightEngine, now: number, errors: number, gc: () => void): number {
  keys.forEach((key, e) => engine.observeSample('svc', key, { at: now, cpu: 0.3 + 0.5 * (((e * 7 + now / 1000) % 10) / 10), rps: 100, errors }));
  gc();
  const profiler = new GCProfiler();
  profiler.start();
  const before = process.memoryUsage().heapUsed;
  engine.tick(now);
  const grew = process.memoryUsage().heapUsed - before;
  return profiler.stop().statistics.length > 0 ? Number.NaN : grew;
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;

/** The median of the last WINDOW ticks once each is within STEADY of it; undefined before. */
function steady(xs: readonly number[]): number | undefined {
  const last = xs.slice(-WINDOW);
  if (last.length < WINDOW || last.some(Number.isNaN)) return undefined;
  const m = median(last);
  return last.every((x) => Math.abs(x - m) <= STEADY * m) ? m : undefined;
}

it('error terms: next to nothing per endpoint per steady tick over a cluster without errors', () => {
  const gc = fullGc();
  const clean = pidEngine();
  const failing = pidEngine();
  const base: number[] = [];
  const withErrors: number[] = [];
  // V8 optimizes the tick's loops over the first ticks (later under load), and code that is not
  // optimized yet boxes every double: only steady ticks say what the code allocates.
  for (let t = 1; t <= 300 && (steady(base) === undefined || steady(withErrors) === undefined); t++) {
    base.push(tickBytes(clean, t * 1000, 0, gc));
    withErrors.push(tickBytes(failing, t * 1000, 1, gc));
  }
  const extra = ((steady(withErrors) ?? Number.NaN) - (steady(base) ?? Number.NaN)) / N;
  expect(extra).toBeLessThan(MAX_EXTRA_PER_ENDPOINT);
}, 300_000);
