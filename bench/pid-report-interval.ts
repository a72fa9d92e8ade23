/**
 * The PID policy against the load report interval, on the queueing fleet model
 * (test/balancing/engine/queue-fleet.ts: Poisson arrivals, FIFO backends, ORCA-like reports every
 * `--report-ms`), the real engine ticking once a second. In seconds, not the 20 minutes a pair of
 * real-Envoy scenario runs takes: a first look at what a controller change does to each interval,
 * which bench/scenarios/run.ts then confirms with Envoy in the path.
 *
 * Three runs per seed on the demo fleet (3, 3, 3, 3, 6, 6 workers, 100 ms service time):
 * - steady: 85% load for 60 s; over its last 40 s the largest swing of one backend's weight
 *   (max ÷ min, backlog drains left out), max/avg utilization, request p99 and the ticks whose
 *   weights changed (any by more than 1%);
 * - slow: 70%; at 20 s a 6-worker backend answers 5× slower (its CPU unchanged); request p99 over
 *   the 30 s after, and that backend's final share (fair: 0.25);
 * - cut: 70%; at 20 s a 6-worker backend drops to 2 workers; request p99 over the 30 s after.
 * Each figure is the median over `--seeds` seeds (the model is deterministic for a seed). The model
 * reports at its ticks, so `--report-ms` takes whole seconds. Not a test.
 *
 *   npx tsx bench/pid-report-interval.ts [--report-ms 2000,1000] [--seeds 10] [--metric cpu-latency|cpu]
 */
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { helpIfAsked, intOption } from './help.js';
import { meanMaxOverAvg, QueueFleet, weightSwing, type Backend } from '../test/balancing/engine/queue-fleet.js';
import type { WeightingPolicy } from '../src/balancing/engine/types.js';
import { markdownTable } from './scenarios/suite-cli.js';

helpIfAsked(import.meta.url);
const { values: args } = parseArgs({
  options: {
    'report-ms': { type: 'string', default: '2000,1000' },
    seeds: { type: 'string', default: '10' },
    metric: { type: 'string', default: 'cpu-latency' },
  },
});
const intervals = (args['report-ms'] ?? '').split(',').map((x) => intOption('report-ms', x.trim(), 1000));
// The model reports at its ticks, once a second: 1,500 would report every 3 s.
if (intervals.some((ms) => ms % 1000 !== 0)) throw new RangeError(`--report-ms must be whole seconds (the model ticks once a second), got ${String(args['report-ms'])}`);
const seeds = Array.from({ length: intOption('seeds', args.seeds) }, (_, i) => i + 1);
if (args.metric !== 'cpu-latency' && args.metric !== 'cpu') throw new RangeError(`--metric must be cpu-latency or cpu, got ${String(args.metric)}`);
const policy: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: args.metric };
const DEMO = [3, 3, 3, 3, 6, 6];
/** The 6-worker backend the events hit. */
const HIT = 4;

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const p99 = (sorted: readonly number[]): number => sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))] ?? Number.NaN;

/** Ticks from `from` on whose weights moved by more than 1% anywhere. */
function changedTicks(weights: readonly number[][], from: number): number {
  let n = 0;
  for (let t = Math.max(1, from); t < weights.length; t++) {
    const [now, before] = [weights[t] as number[], weights[t - 1] as number[]];
    if (now.some((w, i) => Math.abs(w / (before[i] as number) - 1) > 0.01)) n++;
  }
  return n;
}

/** The fleet at `load` for 20 s, then `event` on the hit backend and 30 s more. */
function afterEvent(seed: number, reportMs: number, event: (b: Backend) => void): QueueFleet {
  const fleet = new QueueFleet({ workers: DEMO, load: 0.7, policy, seed, reportMs });
  fleet.run(20);
  event(fleet.backends[HIT] as Backend);
  fleet.run(30);
  return fleet;
}

interface Figures {
  swing: number;
  maxAvg: number;
  steadyP99: number;
  changes: number;
  slowP99: number;
  slowShare: number;
  cutP99: number;
}

function runSeed(seed: number, reportMs: number): Figures {
  const steady = new QueueFleet({ workers: DEMO, load: 0.85, policy, seed, reportMs });
  steady.run(60);
  const slow = afterEvent(seed, reportMs, (b) => void (b.slowFactor = 4));
  const final = slow.weights.at(-1) ?? [];
  const cut = afterEvent(seed, reportMs, (b) => void (b.workers = 2));
  return {
    swing: weightSwing(steady.weights, 20, steady.drained),
    maxAvg: meanMaxOverAvg(steady.utilization, 20),
    steadyP99: p99(steady.requestLatencies(20_000)),
    changes: changedTicks(steady.weights, 20),
    slowP99: p99(slow.requestLatencies(20_000)),
    slowShare: (final[HIT] ?? 0) / final.reduce((a, b) => a + b, 0),
    cutP99: p99(cut.requestLatencies(20_000)),
  };
}

const rows = intervals.map((reportMs) => {
  const runs = seeds.map((seed) => runSeed(seed, reportMs));
  const m = (k: keyof Figures) => median(runs.map((r) => r[k]));
  return [`${reportMs}`, m('swing').toFixed(2), m('maxAvg').toFixed(3), m('steadyP99').toFixed(0), m('changes').toFixed(0), m('slowP99').toFixed(0), m('slowShare').toFixed(3), m('cutP99').toFixed(0)];
});
process.stdout.write(`pid (${policy.metric}) on the queueing fleet model, medians over ${seeds.length} seeds; load average ${loadavg()[0]?.toFixed(1)}\n\n`);
process.stdout.write(`${markdownTable(['report ms', 'steady swing', 'steady max/avg', 'steady p99 ms', 'changed ticks /40', 'slow p99 ms', 'slow share', 'cut p99 ms'], rows)}\n`);
