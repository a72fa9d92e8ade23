/**
 * Heap allocated by one weight-engine tick, and GC pauses inside ticks, for a checkout's engine:
 * every endpoint reports a noisy CPU before each tick (so every tick publishes), the feed's garbage
 * is scavenged before the tick, and the heap growth across `tick(now)` is the tick's allocation
 * when the young generation is large enough that no GC runs inside it (run with the flag below).
 * bench/engine-alloc.ts measures the same with a steadier feed, whose ticks may hold (no publish).
 *
 *   node --max-semi-space-size=256 --import tsx bench/engine-tick-heap.ts [CHECKOUT] [CLUSTERSxENDPOINTS] [pid|ewma|static] [TICKS]
 *
 * Defaults: this checkout, 500x20, pid, 60 ticks (the first 10 not counted). Not a test.
 */
import { performance, PerformanceObserver } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import type { WeightEngine as Engine } from '../src/balancing/engine/weight-engine.js';
import type { WeightingPolicy } from '../src/balancing/engine/types.js';

const USAGE = 'usage: node --max-semi-space-size=256 --import tsx bench/engine-tick-heap.ts [CHECKOUT] [CLUSTERSxENDPOINTS] [pid|ewma|static] [TICKS]\n';
if (process.argv.slice(2).some((a) => a === '--help' || a === '-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const [root = '.', layout = '500x20', kind = 'pid', ticksArg = '60'] = process.argv.slice(2);
const m = /^(\d+)x(\d+)$/.exec(layout);
if (m === null) throw new RangeError(`layout: expected CLUSTERSxENDPOINTS, got ${layout}`);
const [clusters, perCluster, TICKS] = [Number(m[1]), Number(m[2]), Number(ticksArg)];
const POLICIES: Record<string, WeightingPolicy> = { pid: { kind: 'pid', setpoint: 'mean', metric: 'cpu' }, ewma: { kind: 'ewma' }, static: { kind: 'static' } };
const policy = POLICIES[kind];
if (policy === undefined) throw new RangeError(`policy must be pid, ewma or static, got ${kind}`);
const url = pathToFileURL(join(root, 'src/balancing/engine/weight-engine.ts')).href;
const { WeightEngine } = (await import(url)) as { WeightEngine: new () => Engine };
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as (o?: { type: 'minor' | 'major' }) => void;
const pauses: { start: number; ms: number }[] = [];
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) pauses.push({ start: e.startTime, ms: e.duration });
}).observe({ entryTypes: ['gc'] });

const en = new WeightEngine();
const keys = Array.from({ length: clusters }, (_, c) => Array.from({ length: perCluster }, (_, e) => `10.${(c >> 8) & 255}.${c & 255}.${e % 250}:${8000 + Math.floor(e / 250)}`));
keys.forEach((ks, c) => en.setCluster(`svc-${c}`, ks.map((key, e) => ({ key, weight: 1 + (e % 3), locality: `zone-${e % 3}` })), policy));
let seed = 1234;
const rand = (): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0), seed / 4294967296);
const level = keys.map((ks) => ks.map(() => 0.3 + 0.6 * rand()));
const windows: [number, number][] = [];
const kib: number[] = [];
for (let t = 0; t < TICKS; t++) {
  const now = (t + 1) * 1000;
  keys.forEach((ks, c) => ks.forEach((key, e) => en.observeSample(`svc-${c}`, key, { at: now, cpu: (level[c]?.[e] ?? 0.5) * (1 + 0.05 * (rand() - 0.5)), latencyMs: 20 })));
  gc({ type: 'minor' });
  const heap = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  en.tick(now);
  const t1 = performance.now();
  const grew = process.memoryUsage().heapUsed - heap;
  if (t < 10) continue;
  windows.push([t0, t1]);
  kib.push(grew / 1024);
}
await new Promise((r) => setTimeout(r, 50)); // GC entries arrive asynchronously
const inTicks = pauses.filter((p) => windows.some(([a, b]) => p.start >= a && p.start < b));
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;
process.stdout.write(
  `${layout} ${kind} (${root}): heap growth per tick median ${median(kib).toFixed(0)} KiB, wall median ${median(windows.map(([a, b]) => b - a)).toFixed(2)} ms; ` +
    `${inTicks.length} GC pauses inside ${windows.length} ticks, ${inTicks.reduce((s, p) => s + p.ms, 0).toFixed(1)} ms\n`,
);
