/**
 * Selector throughput and SWRR allocation precision.
 *
 *   npx tsx bench/algorithms.ts [--runs 7] [--ms 300]
 *
 * Throughput: picks per second for each selector in bench/selectors, median of `--runs` timed
 * runs of about `--ms` each (after one untimed warm-up run of the same length). Keys and
 * weights are prepared outside the timed loop; each loop folds its results into a checksum
 * so the JIT cannot drop the work. Ring construction and single-node removal are timed too.
 *
 * Precision: how closely a pick sequence follows the weights over short stretches. For a
 * window of K consecutive picks, the error is the total variation distance between the
 * observed shares and the weight shares, ½ Σ_i |count_i/K − w_i/W|. Precision is
 * 1 − the mean error over every window position of a long sequence. 1 means every window is
 * exactly proportional. That is unreachable when K·w_i/W is not an integer, so the table
 * also gives the best any integer allocation of K picks can do (largest remainder).
 * Compared: SWRR, plain weighted round robin (each endpoint w times in a row, the expanded
 * list), and weighted random.
 *
 * Prints a table and a final JSON line. Not a test.
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { seededRandom } from '../examples/backends/poisson-load.js';
import { helpIfAsked } from './help.js';
import {
  HashRing,
  LeastConnections,
  RoundRobin,
  SmoothWeightedRoundRobin,
} from './selectors/index.js';

helpIfAsked(import.meta.url);
const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    ms: { type: 'string', default: '300' },
  },
});
const RUNS = Number(args.runs);
const RUN_MS = Number(args.ms);

/** Deterministic PRNG (mulberry32) so every run measures the same inputs. */
const prng = seededRandom;

function randomWeights(n: number, max: number, seed: number): number[] {
  const rand = prng(seed);
  return Array.from({ length: n }, () => 1 + Math.floor(rand() * max));
}

// ───────────────────────── throughput ─────────────────────────

interface Throughput {
  readonly name: string;
  readonly opsPerSec: number;
  readonly min: number;
  readonly max: number;
}

let sink = 0;

/** `op(i)` performs one pick and returns a number folded into the checksum. */
function measure(name: string, op: (i: number) => number): Throughput {
  // Size the batch so one batch takes ~10 ms, then run batches until RUN_MS has passed.
  let batch = 1000;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) sink += op(i);
    if (performance.now() - t0 > 10) break;
    batch *= 2;
  }
  const rates: number[] = [];
  for (let run = -1; run < RUNS; run++) {
    let ops = 0;
    const t0 = performance.now();
    let elapsed = 0;
    while (elapsed < RUN_MS) {
      for (let i = 0; i < batch; i++) sink += op(i);
      ops += batch;
      elapsed = performance.now() - t0;
    }
    if (run >= 0) rates.push((ops / elapsed) * 1000);
  }
  rates.sort((a, b) => a - b);
  return { name, opsPerSec: rates[rates.length >> 1] as number, min: rates[0] as number, max: rates[rates.length - 1] as number };
}

function throughput(): Throughput[] {
  const results: Throughput[] = [];

  const rr = new RoundRobin(Array.from({ length: 20 }, (_, i) => i));
  results.push(measure('round robin, 20 endpoints', () => rr.next() as number));

  for (const n of [20, 1000]) {
    const swrr = new SmoothWeightedRoundRobin(randomWeights(n, 100, n).map((weight, key) => ({ key, weight })));
    results.push(measure(`SWRR, ${n} endpoints (weights 1..100)`, () => swrr.next() as number));
  }

  const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i * 7919}`);
  const nodes = Array.from({ length: 100 }, (_, i) => `10.0.${i >> 8}.${i & 255}:8080`);
  for (const hash of ['md5', 'murmur3'] as const) {
    const ring = new HashRing(nodes, { hash });
    results.push(
      measure(`ring lookup, ${hash}, 100 nodes × 160 points`, (i) => (ring.lookup(keys[i % keys.length] as string) as string).length),
    );
  }

  for (const n of [20, 1000]) {
    // Steady state with 2n requests in flight: each op releases the oldest and acquires one.
    const lc = new LeastConnections(Array.from({ length: n }, (_, i) => `e${i}`));
    const inFlight: string[] = [];
    for (let i = 0; i < 2 * n; i++) inFlight.push(lc.acquire() as string);
    let oldest = 0;
    results.push(
      measure(`least connections acquire+release, ${n} endpoints`, () => {
        lc.release(inFlight[oldest] as string);
        const key = lc.acquire() as string;
        inFlight[oldest] = key;
        oldest = (oldest + 1) % inFlight.length;
        return key.length;
      }),
    );
  }
  return results;
}

interface RingBuild {
  readonly hash: string;
  readonly nodes: number;
  readonly buildMs: number;
  readonly removeOneMs: number;
}

/** Ring construction (one sort) and removal of one node, median of RUNS + 1 builds. */
function ringBuilds(): RingBuild[] {
  const results: RingBuild[] = [];
  for (const hash of ['md5', 'murmur3'] as const) {
    for (const n of [100, 1000]) {
      const nodes = Array.from({ length: n }, (_, i) => `10.0.${i >> 8}.${i & 255}:8080`);
      const builds: number[] = [];
      const removals: number[] = [];
      for (let run = 0; run <= RUNS; run++) {
        const t0 = performance.now();
        const ring = new HashRing(nodes, { hash });
        const t1 = performance.now();
        ring.remove(nodes[run % n] as string);
        const t2 = performance.now();
        sink += ring.pointCount;
        builds.push(t1 - t0);
        removals.push(t2 - t1);
      }
      builds.sort((a, b) => a - b);
      removals.sort((a, b) => a - b);
      results.push({ hash, nodes: n, buildMs: builds[builds.length >> 1] as number, removeOneMs: removals[removals.length >> 1] as number });
    }
  }
  return results;
}

// ───────────────────────── precision ─────────────────────────

function swrrSequence(weights: readonly number[], length: number): number[] {
  const s = new SmoothWeightedRoundRobin(weights.map((weight, key) => ({ key, weight })));
  return Array.from({ length }, () => s.next() as number);
}

function plainWrrSequence(weights: readonly number[], length: number): number[] {
  const cycle = weights.flatMap((w, i) => new Array<number>(w).fill(i));
  return Array.from({ length }, (_, k) => cycle[k % cycle.length] as number);
}

function randomSequence(weights: readonly number[], length: number, seed: number): number[] {
  const rand = prng(seed);
  const total = weights.reduce((a, b) => a + b, 0);
  const cumulative: number[] = [];
  let acc = 0;
  for (const w of weights) cumulative.push((acc += w));
  return Array.from({ length }, () => {
    const x = rand() * total;
    let i = 0;
    while ((cumulative[i] as number) <= x) i++;
    return i;
  });
}

/** 1 − mean over all window positions of ½ Σ |count_i/K − w_i/W|. */
function precision(seq: readonly number[], weights: readonly number[], k: number): number {
  const total = weights.reduce((a, b) => a + b, 0);
  const share = weights.map((w) => w / total);
  const counts = new Array<number>(weights.length).fill(0);
  for (let j = 0; j < k; j++) counts[seq[j] as number]! += 1;
  let errorSum = 0;
  let windows = 0;
  for (let start = 0; ; start++) {
    let tvd = 0;
    for (let i = 0; i < weights.length; i++) tvd += Math.abs((counts[i] as number) / k - (share[i] as number));
    errorSum += tvd / 2;
    windows++;
    if (start + k >= seq.length) break;
    counts[seq[start] as number]! -= 1;
    counts[seq[start + k] as number]! += 1;
  }
  return 1 - errorSum / windows;
}

/** The best any window of K picks can do: largest-remainder apportionment of K. */
function idealPrecision(weights: readonly number[], k: number): number {
  const total = weights.reduce((a, b) => a + b, 0);
  const targets = weights.map((w) => (k * w) / total);
  const counts = targets.map(Math.floor);
  const owed = k - counts.reduce((a, b) => a + b, 0);
  targets
    .map((t, i) => ({ i, r: t - Math.floor(t) }))
    .sort((a, b) => b.r - a.r)
    .slice(0, owed)
    .forEach(({ i }) => (counts[i]! += 1));
  let tvd = 0;
  for (let i = 0; i < weights.length; i++) tvd += Math.abs((counts[i] as number) - (targets[i] as number)) / k;
  return 1 - tvd / 2;
}

interface PrecisionRow {
  readonly weights: string;
  readonly window: number;
  readonly swrr: number;
  readonly plainWrr: number;
  readonly random: number;
  readonly ideal: number;
}

function precisionTable(): PrecisionRow[] {
  const sets: { name: string; weights: number[] }[] = [
    { name: '{5,1,1}', weights: [5, 1, 1] },
    { name: '20 endpoints, weights 1..10', weights: randomWeights(20, 10, 7) },
    { name: '20 endpoints, one at 50, rest 1..5', weights: [50, ...randomWeights(19, 5, 11)] },
  ];
  const rows: PrecisionRow[] = [];
  for (const { name, weights } of sets) {
    const total = weights.reduce((a, b) => a + b, 0);
    const length = Math.max(20 * total, 20_000);
    const swrr = swrrSequence(weights, length);
    const plain = plainWrrSequence(weights, length);
    const random = randomSequence(weights, length, 42);
    for (const k of [5, 20, 100]) {
      rows.push({
        weights: name,
        window: k,
        swrr: precision(swrr, weights, k),
        plainWrr: precision(plain, weights, k),
        random: precision(random, weights, k),
        ideal: idealPrecision(weights, k),
      });
    }
  }
  return rows;
}

// ───────────────────────── report ─────────────────────────

const fmtRate = (x: number): string => `${(x / 1e6).toFixed(2)} M/s`;
const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

const tp = throughput();
console.log(`\nThroughput (median of ${RUNS} runs × ~${RUN_MS} ms; min–max across runs)\n`);
console.log('| selector | picks/s | ns/pick | min–max |');
console.log('|---|---|---|---|');
for (const r of tp) {
  console.log(`| ${r.name} | ${fmtRate(r.opsPerSec)} | ${(1e9 / r.opsPerSec).toFixed(0)} | ${fmtRate(r.min)} – ${fmtRate(r.max)} |`);
}

const builds = ringBuilds();
console.log(`\nRing construction, 160 points per node (median of ${RUNS + 1})\n`);
console.log('| hash | nodes | build | remove one node |');
console.log('|---|---|---|---|');
for (const b of builds) console.log(`| ${b.hash} | ${b.nodes} | ${b.buildMs.toFixed(1)} ms | ${b.removeOneMs.toFixed(2)} ms |`);

const prec = precisionTable();
console.log('\nAllocation precision over sliding windows of K picks (1 − mean ½Σ|observed − weight share|)\n');
console.log('| weights | K | SWRR | plain WRR | weighted random | best possible |');
console.log('|---|---|---|---|---|---|');
for (const r of prec) {
  console.log(`| ${r.weights} | ${r.window} | ${pct(r.swrr)} | ${pct(r.plainWrr)} | ${pct(r.random)} | ${pct(r.ideal)} |`);
}

console.log(
  '\n' +
    JSON.stringify({
      bench: 'algorithms',
      node: process.version,
      runs: RUNS,
      runMs: RUN_MS,
      throughput: tp.map((r) => ({ name: r.name, opsPerSec: Math.round(r.opsPerSec) })),
      ringBuild: builds.map((b) => ({ ...b, buildMs: +b.buildMs.toFixed(2), removeOneMs: +b.removeOneMs.toFixed(3) })),
      precision: prec.map((r) => ({
        ...r,
        swrr: +r.swrr.toFixed(4),
        plainWrr: +r.plainWrr.toFixed(4),
        random: +r.random.toFixed(4),
        ideal: +r.ideal.toFixed(4),
      })),
      checksum: sink % 1_000_003,
    }),
);
