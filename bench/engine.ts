/**
 * Weight engine tick time: how long one `tick(now)` takes for 10,000 and 100,000 endpoints.
 *
 *   npx tsx bench/engine.ts [--runs 7] [--ticks 20] [--raw] [--size 10k|100k|all] [--only TEXT] [--rps]
 *
 * Scenarios: 500 clusters × 20 endpoints and 1 cluster × 10,000 endpoints (targets: ≤ 5 ms), and
 * 1,000 clusters × 100 and 1 cluster × 100,000 (≤ 50 ms), each under the PID
 * policy (equalize cpu; every endpoint reports every tick: the worst case, every controller runs),
 * the EWMA policy and a static one. Each run builds a fresh engine, warms it up (JIT, first
 * publish), then times `--ticks` ticks with new samples before each (samples are fed outside the
 * timed region, and their garbage is scavenged (minor GC) before the tick: the figure is the engine's tick,
 * not the ingestion). Reports the median over runs of the per-run median tick (wall clock, and the
 * process's CPU time during the tick, which a loaded machine inflates less), plus p90 and max of
 * the wall clock. Prints a table and a final JSON line. `--rps`: every sample also carries request
 * counts (rps 100, 1 % errors), as Envoy's load reports do, so every endpoint has an error window and
 * an error rate (without it, samples carry cpu and latency only, an agent's reports).
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
    /** Which endpoint counts: 10k, 100k or all. */
    size: { type: 'string', default: 'all' },
    /** Only the scenarios whose name contains this text (e.g. "pid", "500×20"). */
    only: { type: 'string', default: '' },
    /** Samples carry request counts (rps, errors), as load reports do. */
    rps: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(
    'usage: npx tsx bench/engine.ts [--runs 7] [--ticks 20] [--raw] [--size 10k|100k|all] [--only TEXT] [--rps]\n' +
      '  --raw    do not scavenge the feed garbage before each timed tick\n' +
      '  --size   10k: 500×20 and 1×10000; 100k: 1000×100 and 1×100000; all: both (default)\n' +
      '  --only   run only the scenarios whose name contains TEXT\n' +
      '  --rps    samples carry request counts (rps 100, errors 1): every endpoint has an error rate\n',
  );
  process.exit(0);
}
const RUNS = Number(args.runs);
const TICKS = Number(args.ticks);
if (!(Number.isInteger(RUNS) && RUNS > 0 && Number.isInteger(TICKS) && TICKS > 0)) throw new RangeError('--runs and --ticks must be integers > 0');
const SIZES = { '10k': [[500, 20], [1, 10_000]], '100k': [[1_000, 100], [1, 100_000]] } as const;
if (args.size !== 'all' && !(args.size in SIZES)) throw new RangeError(`--size must be 10k, 100k or all, got ${args.size}`);
const WARMUP = 5;
// Scavenge the feed phase's garbage (10,000 sample objects per tick) before each timed tick, so
// the figure is the engine's own cost, its own garbage included (collected in later ticks).
setFlagsFromString('--expose-gc');
const gcFn = runInNewContext('gc') as (o?: { type: 'minor' | 'major' }) => void;
const gc = (): void => gcFn({ type: 'minor' });
/** Issue 13's targets: ≤ 5 ms per tick for 10,000 endpoints, ≤ 50 ms for 100,000. */
const targetMs = (endpoints: number): number => (endpoints * 5) / 10_000;

interface Scenario {
  readonly name: string;
  readonly clusters: number;
  readonly perCluster: number;
  readonly policy: WeightingPolicy;
}

const scenarios: Scenario[] = [];
const sizes = args.size === 'all' ? [...SIZES['10k'], ...SIZES['100k']] : SIZES[args.size as keyof typeof SIZES];
for (const [clusters, perCluster] of sizes) {
  for (const policy of [
    { kind: 'pid', setpoint: 'mean', metric: 'cpu' },
    { kind: 'ewma' },
    { kind: 'static' },
  ] as const satisfies readonly WeightingPolicy[]) {
    const name = `${clusters}×${perCluster} ${policy.kind}`;
    if (name.includes(args.only)) scenarios.push({ name, clusters, perCluster, policy });
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

/**
 * The clock starts where a server's does, at epoch milliseconds: past V8's small-integer range, so a
 * time field that may also hold `undefined` stores a heap number, as in production (from 0 the
 * times were small integers; 2026-12-07, six pairs at 500×20: no difference within the noise).
 */
const EPOCH_MS = Date.UTC(2026, 0, 1);

/** Wall-clock and CPU (this process, all threads: GC helpers included) ms of each timed tick. */
interface Times {
  readonly wall: number[];
  readonly cpu: number[];
}

function runOnce(sc: Scenario, seed: number): Times {
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
  let now = EPOCH_MS;
  const feed = (): void => {
    for (let c = 0; c < sc.clusters; c++) {
      const ks = keys[c] as string[];
      const lv = level[c] as number[];
      for (let e = 0; e < ks.length; e++) {
        const u = (lv[e] as number) * (1 + 0.05 * (rand() - 0.5));
        const sample = { at: now, cpu: u, latencyMs: 5 + 50 * u };
        engine.observeSample(`svc-${c}`, ks[e] as string, args.rps ? { ...sample, rps: 100, errors: 1 } : sample);
      }
    }
  };
  const times: Times = { wall: [], cpu: [] };
  for (let t = 0; t < WARMUP + TICKS; t++) {
    now += 1_000;
    feed();
    if (!args.raw) gc();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    engine.tick(now);
    const dt = performance.now() - t0;
    const dc = process.cpuUsage(c0);
    if (t >= WARMUP) {
      times.wall.push(dt);
      times.cpu.push((dc.user + dc.system) / 1000);
    }
  }
  return times;
}

interface Row {
  scenario: string;
  endpoints: number;
  medianMs: number;
  cpuMedianMs: number;
  p90Ms: number;
  maxMs: number;
  targetMs: number;
  underTarget: boolean;
}

const rows: Row[] = [];
for (const sc of scenarios) {
  const medians: number[] = [];
  const cpuMedians: number[] = [];
  const all: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const times = runOnce(sc, 1234 + r);
    medians.push(quantile(times.wall, 0.5));
    cpuMedians.push(quantile(times.cpu, 0.5));
    all.push(...times.wall);
  }
  const medianMs = quantile(medians, 0.5);
  const endpoints = sc.clusters * sc.perCluster;
  rows.push({
    scenario: sc.name,
    endpoints,
    medianMs: round(medianMs),
    cpuMedianMs: round(quantile(cpuMedians, 0.5)),
    p90Ms: round(quantile(all, 0.9)),
    maxMs: round(Math.max(...all)),
    targetMs: targetMs(endpoints),
    underTarget: medianMs <= targetMs(endpoints),
  });
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

const pad = (s: string, n: number): string => s.padEnd(n);
const lpad = (s: string, n: number): string => s.padStart(n);
console.log(
  `weight engine tick, ${RUNS} runs × ${TICKS} timed ticks (after ${WARMUP} warm-up), node ${process.version}, ` +
    `${args.raw ? 'feed garbage NOT scavenged' : 'feed garbage scavenged before each tick'}, target 5 ms per 10k endpoints`,
);
console.log(`${pad('scenario', 20)}${lpad('endpoints', 10)}${lpad('median ms', 11)}${lpad('cpu ms', 9)}${lpad('p90 ms', 9)}${lpad('max ms', 9)}${lpad('target', 8)}  met`);
for (const r of rows) {
  console.log(
    `${pad(r.scenario, 20)}${lpad(String(r.endpoints), 10)}${lpad(r.medianMs.toFixed(2), 11)}${lpad(r.cpuMedianMs.toFixed(2), 9)}${lpad(r.p90Ms.toFixed(2), 9)}${lpad(r.maxMs.toFixed(2), 9)}${lpad(String(r.targetMs), 8)}  ${r.underTarget ? 'yes' : 'NO'}`,
  );
}
console.log(JSON.stringify({ bench: 'engine', node: process.version, runs: RUNS, ticks: TICKS, raw: args.raw, results: rows }));
