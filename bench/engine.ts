/**
 * Weight engine tick time: how long one `tick(now)` takes for 10,000 endpoints.
 *
 *   npx tsx bench/engine.ts [--runs 7] [--ticks 20] [--raw]
 *
 * Scenarios: 500 clusters × 20 endpoints and 1 cluster × 10,000 endpoints, each under the PID
 * policy (equalize cpu; every endpoint reports every tick: the worst case, every controller runs),
 * the EWMA policy and a static one. Each run builds a fresh engine, warms it up (JIT, first
 * publish), then times `--ticks` ticks with new samples before each (samples are fed outside the
 * timed region, and their garbage is scavenged (minor GC) before the tick: the figure is the engine's tick,
 * not the ingestion). Reports the median over
 * runs of the per-run median tick, plus p90 and max. Prints a table and a final JSON line.
 * Not a test.
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WeightEngine } from '../src/balancing/engine/weight-engine.js';
import type { WeightingPolicy } from '../src/balancing/engine/types.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    ticks: { type: 'string', default: '20' },
    /** Do not scavenge the feed's garbage before each tick (figures then include collecting it). */
    raw: { type: 'boolean', default: false },
  },
});
const RUNS = Number(args.runs);
const TICKS = Number(args.ticks);
const WARMUP = 5;
// Scavenge the feed phase's garbage (10,000 sample objects per tick) before each timed tick, so
// the figure is the engine's own cost, its own garbage included (collected in later ticks).
setFlagsFromString('--expose-gc');
const gcFn = runInNewContext('gc') as (o?: { type: 'minor' | 'major' }) => void;
const gc = (): void => gcFn({ type: 'minor' });
const TARGET_MS = 10;

interface Scenario {
  readonly name: string;
  readonly clusters: number;
  readonly perCluster: number;
  readonly policy: WeightingPolicy;
}

const scenarios: Scenario[] = [];
for (const [clusters, perCluster] of [
  [500, 20],
  [1, 10_000],
] as const) {
  for (const policy of [
    { kind: 'pid', setpoint: 'mean', metric: 'cpu' },
    { kind: 'ewma' },
    { kind: 'static' },
  ] as const satisfies readonly WeightingPolicy[]) {
    scenarios.push({ name: `${clusters}×${perCluster} ${policy.kind}`, clusters, perCluster, policy });
  }
}

/** Deterministic pseudo-random in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
};

function runOnce(sc: Scenario, seed: number): number[] {
  const rand = lcg(seed);
  const engine = new WeightEngine();
  const keys: string[][] = [];
  for (let c = 0; c < sc.clusters; c++) {
    const ks = Array.from({ length: sc.perCluster }, (_, e) => `10.${(c >> 8) & 255}.${c & 255}.${e % 250}:${8000 + Math.floor(e / 250)}`);
    keys.push(ks);
    engine.setCluster(
      `svc-${c}`,
      ks.map((key, e) => ({ key, weight: 1 + (e % 3), locality: `zone-${e % 3}` })),
      sc.policy,
    );
  }
  // Fixed per-endpoint load levels so the controllers have work to do every tick.
  const level = keys.map((ks) => ks.map(() => 0.3 + 0.6 * rand()));
  let now = 0;
  const feed = (): void => {
    for (let c = 0; c < sc.clusters; c++) {
      const ks = keys[c] as string[];
      const lv = level[c] as number[];
      for (let e = 0; e < ks.length; e++) {
        const u = (lv[e] as number) * (1 + 0.05 * (rand() - 0.5));
        engine.observeSample(`svc-${c}`, ks[e] as string, { at: now, cpu: u, latencyMs: 5 + 50 * u });
      }
    }
  };
  const times: number[] = [];
  for (let t = 0; t < WARMUP + TICKS; t++) {
    now += 1_000;
    feed();
    if (!args.raw) gc();
    const t0 = performance.now();
    engine.tick(now);
    const dt = performance.now() - t0;
    if (t >= WARMUP) times.push(dt);
  }
  return times;
}

interface Row {
  scenario: string;
  endpoints: number;
  medianMs: number;
  p90Ms: number;
  maxMs: number;
  underTarget: boolean;
}

const rows: Row[] = [];
for (const sc of scenarios) {
  const medians: number[] = [];
  const all: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const times = runOnce(sc, 1234 + r);
    medians.push(quantile(times, 0.5));
    all.push(...times);
  }
  const medianMs = quantile(medians, 0.5);
  rows.push({
    scenario: sc.name,
    endpoints: sc.clusters * sc.perCluster,
    medianMs: round(medianMs),
    p90Ms: round(quantile(all, 0.9)),
    maxMs: round(Math.max(...all)),
    underTarget: medianMs < TARGET_MS,
  });
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

const pad = (s: string, n: number): string => s.padEnd(n);
const lpad = (s: string, n: number): string => s.padStart(n);
console.log(
  `weight engine tick, ${RUNS} runs × ${TICKS} timed ticks (after ${WARMUP} warm-up), node ${process.version}, ` +
    `${args.raw ? 'feed garbage NOT scavenged' : 'feed garbage scavenged before each tick'}, target < ${TARGET_MS} ms`,
);
console.log(`${pad('scenario', 20)}${lpad('endpoints', 10)}${lpad('median ms', 11)}${lpad('p90 ms', 9)}${lpad('max ms', 9)}  < target`);
for (const r of rows) {
  console.log(
    `${pad(r.scenario, 20)}${lpad(String(r.endpoints), 10)}${lpad(r.medianMs.toFixed(2), 11)}${lpad(r.p90Ms.toFixed(2), 9)}${lpad(r.maxMs.toFixed(2), 9)}  ${r.underTarget ? 'yes' : 'NO'}`,
  );
}
console.log(JSON.stringify({ bench: 'engine', node: process.version, runs: RUNS, ticks: TICKS, raw: args.raw, targetMs: TARGET_MS, results: rows }));
