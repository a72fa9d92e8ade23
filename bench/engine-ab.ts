/**
 * Weight engine tick, this checkout against another (e.g. a worktree of main), in one process:
 * both engines get the same fleet and the same samples, and their ticks alternate (which goes
 * first alternates too), so a loaded machine weighs on both alike. Prints the median wall and CPU
 * ms per tick of each and the ratio (this ÷ other). bench/engine.ts gives absolute figures; this
 * gives before/after ratios that survive the shared machine.
 *
 * The engine built and fed first (index 0) ticked 5–15 % faster than the other even when both
 * were the same code (A/A at 1×10000, either checkout first; the cause is not the import order nor
 * the feed order). So by default the comparison runs twice, in two processes, each checkout
 * first once, and the ratio quoted is the geometric mean of the two, where that advantage cancels.
 *
 *   npx tsx bench/engine-ab.ts --other /path/to/checkout [--layout 1x10000] [--policy pid] [--ticks 30] [--rps] [--first both|this|other]
 *
 * `--rps`: every sample also carries request counts (rps 100, 1 % errors), as in bench/engine.ts.
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WeightEngine } from '../src/balancing/engine/weight-engine.js';
import type { WeightingPolicy } from '../src/balancing/engine/types.js';

const { values: args } = parseArgs({
  options: {
    other: { type: 'string' },
    layout: { type: 'string', default: '1x10000' },
    policy: { type: 'string', default: 'pid' },
    ticks: { type: 'string', default: '30' },
    rps: { type: 'boolean', default: false },
    first: { type: 'string', default: 'both' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help || args.other === undefined) {
  process.stdout.write('usage: npx tsx bench/engine-ab.ts --other /path/to/checkout [--layout CLUSTERSxENDPOINTS] [--policy pid|ewma|static] [--ticks 30] [--rps] [--first both|this|other]\n');
  process.exit(args.help ? 0 : 2);
}
if (!['both', 'this', 'other'].includes(args.first)) throw new RangeError(`--first must be both, this or other, got ${args.first}`);
if (args.first === 'both') {
  const ratios = (['this', 'other'] as const).map((first) => {
    const given = process.argv.slice(2).filter((a, i, all) => a !== '--first' && all[i - 1] !== '--first' && !a.startsWith('--first='));
    const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1] as string, ...given, '--first', first], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (child.status !== 0) throw new Error(`the ${first}-first run failed (exit ${child.status})`);
    process.stdout.write(child.stdout);
    const ratio = /ratio wall ([\d.]+) cpu ([\d.]+)/.exec(child.stdout);
    if (ratio === null) throw new Error(`no ratio in the ${first}-first run's output`);
    return [Number(ratio[1]), Number(ratio[2])] as const;
  });
  const geo = (k: 0 | 1): string => Math.sqrt((ratios[0]?.[k] as number) * (ratios[1]?.[k] as number)).toFixed(2);
  console.log(`${args.layout} ${args.policy}${args.rps ? ' rps' : ''}: ratio this ÷ other, both orders: wall ${geo(0)} cpu ${geo(1)}`);
  process.exit(0);
}
const m = /^(\d+)x(\d+)$/.exec(args.layout);
if (m === null) throw new RangeError(`--layout: expected CLUSTERSxENDPOINTS, got ${args.layout}`);
const [clusters, perCluster] = [Number(m[1]), Number(m[2])];
const POLICIES: Record<string, WeightingPolicy> = { pid: { kind: 'pid', setpoint: 'mean', metric: 'cpu' }, ewma: { kind: 'ewma' }, static: { kind: 'static' } };
const policy = POLICIES[args.policy];
if (policy === undefined) throw new RangeError(`--policy must be pid, ewma or static, got ${args.policy}`);
const TICKS = Number(args.ticks);
const WARMUP = 5;
/** Epoch milliseconds, as a server's clock reads (see bench/engine.ts). */
const EPOCH_MS = Date.UTC(2026, 0, 1);
type EngineLike = Pick<WeightEngine, 'setCluster' | 'observeSample' | 'tick'>;
const Other = ((await import(pathToFileURL(join(args.other, 'src/balancing/engine/weight-engine.ts')).href)) as { WeightEngine: new () => EngineLike }).WeightEngine;
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as (o?: { type: 'minor' | 'major' }) => void;

const mineAt = args.first === 'this' ? 0 : 1;
const engines: EngineLike[] = mineAt === 0 ? [new WeightEngine(), new Other()] : [new Other(), new WeightEngine()];
const keys = Array.from({ length: clusters }, (_, c) => Array.from({ length: perCluster }, (_, e) => `10.${(c >> 8) & 255}.${c & 255}.${e % 250}:${8000 + Math.floor(e / 250)}`));
for (const en of engines) keys.forEach((ks, c) => en.setCluster(`svc-${c}`, ks.map((key, e) => ({ key, weight: 1 + (e % 3), locality: `zone-${e % 3}` })), policy));
let seed = 1234;
const rand = (): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0), seed / 4294967296);
const level = keys.map((ks) => ks.map(() => 0.3 + 0.6 * rand()));
const times = engines.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
for (let t = 0; t < WARMUP + TICKS; t++) {
  const now = EPOCH_MS + (t + 1) * 1000;
  keys.forEach((ks, c) =>
    ks.forEach((key, e) => {
      const base = { at: now, cpu: (level[c]?.[e] ?? 0.5) * (1 + 0.05 * (rand() - 0.5)), latencyMs: 20 };
      const sample = args.rps ? { ...base, rps: 100, errors: 1 } : base;
      for (const en of engines) en.observeSample(`svc-${c}`, key, sample);
    }),
  );
  const order = t % 2 === 0 ? [0, 1] : [1, 0];
  for (const k of order) {
    gc({ type: 'minor' });
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    (engines[k] as EngineLike).tick(now);
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    if (t >= WARMUP) {
      times[k]?.wall.push(wall);
      times[k]?.cpu.push((cpu.user + cpu.system) / 1000);
    }
  }
}
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const medians = times.map((x) => ({ wall: median(x.wall), cpu: median(x.cpu) }));
const [mine, other] = [medians[mineAt], medians[1 - mineAt]];
if (mine === undefined || other === undefined) throw new Error('unreachable');
const r2 = (x: number): string => x.toFixed(2);
console.log(
  `${args.layout} ${args.policy}${args.rps ? ' rps' : ''}: this ${r2(mine.wall)} ms wall / ${r2(mine.cpu)} ms cpu, other ${r2(other.wall)} / ${r2(other.cpu)}, ratio wall ${r2(mine.wall / other.wall)} cpu ${r2(mine.cpu / other.cpu)} (median of ${TICKS} ticks, ${args.first} first)`,
);
