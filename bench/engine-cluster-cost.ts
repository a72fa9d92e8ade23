/**
 * What a weight-engine tick costs per cluster, with the cluster's data hot (few clusters: the
 * fleet fits in the caches) and cold (many: each cluster's data was evicted since its last tick),
 * at the same cluster size. The hot figure minus the per-endpoint cost of one large cluster is
 * the instructions a cluster costs whatever its size; cold minus hot is what fetching its data
 * costs. For issue 13's per-cluster fixed cost: which of the two to cut.
 *
 *   npx tsx bench/engine-cluster-cost.ts [--layouts 100x5,2000x5,50x20,500x20,1x10000] [--policy pid] [--rps]
 *
 * Every endpoint reports before every tick (cpu varying, as bench/engine-ab.ts); `--rps`: with
 * request counts (rps 100, 1 % errors). Each layout in a fresh engine, ticked until about 400,000
 * endpoint-ticks (at least 40) after 10 warm-up ticks, the feed's garbage scavenged before each
 * tick; prints the median tick per cluster and per endpoint. Not a test.
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WeightEngine } from '../src/balancing/engine/weight-engine.js';
import type { WeightingPolicy } from '../src/balancing/engine/types.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values: args } = parseArgs({
  options: {
    layouts: { type: 'string', default: '100x5,2000x5,50x20,500x20,1x10000' },
    policy: { type: 'string', default: 'pid' },
    rps: { type: 'boolean', default: false },
  },
});
const POLICIES: Record<string, WeightingPolicy> = { pid: { kind: 'pid', setpoint: 'mean', metric: 'cpu' }, ewma: { kind: 'ewma' }, static: { kind: 'static' } };
const policy = POLICIES[args.policy];
if (policy === undefined) throw new RangeError(`--policy must be pid, ewma or static, got ${args.policy}`);
const layouts = args.layouts.split(',').map((l) => {
  const m = /^(\d+)x(\d+)$/.exec(l.trim());
  if (m === null) throw new RangeError(`--layouts: expected CLUSTERSxENDPOINTS[,...], got ${l}`);
  return { clusters: Number(m[1]), per: Number(m[2]) };
});
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as (o?: { type: 'minor' | 'major' }) => void;
/** Epoch milliseconds, as a server's clock reads (see bench/engine.ts). */
const EPOCH_MS = Date.UTC(2026, 0, 1);
const WARMUP = 10;

/** The median tick (ms) of a fresh engine of `clusters` × `per` endpoints. */
function medianTick(clusters: number, per: number): number {
  const engine = new WeightEngine();
  const keys = Array.from({ length: clusters }, (_, c) => Array.from({ length: per }, (_, e) => `10.${(c >> 8) & 255}.${c & 255}.${e % 250}:${8000 + Math.floor(e / 250)}`));
  keys.forEach((ks, c) => engine.setCluster(`svc-${c}`, ks.map((key, e) => ({ key, weight: 1 + (e % 3), locality: `zone-${e % 3}` })), policy as WeightingPolicy));
  const ticks = Math.max(40, Math.round(400_000 / (clusters * per)));
  const times: number[] = [];
  for (let t = 0; t < WARMUP + ticks; t++) {
    const now = EPOCH_MS + (t + 1) * 1_000;
    keys.forEach((ks, c) =>
      ks.forEach((key, e) => {
        const base = { at: now, cpu: 0.3 + 0.5 * (((e * 7 + t * 3 + c) % 10) / 10), latencyMs: 10 };
        engine.observeSample(`svc-${c}`, key, args.rps ? { ...base, rps: 100, errors: 1 } : base);
      }),
    );
    gc({ type: 'minor' });
    const t0 = performance.now();
    engine.tick(now);
    if (t >= WARMUP) times.push(performance.now() - t0);
  }
  return [...times].sort((a, b) => a - b)[times.length >> 1] as number;
}

for (const { clusters, per } of layouts) {
  const ms = medianTick(clusters, per);
  console.log(`${clusters}×${per} ${args.policy}${args.rps ? ' rps' : ''}: ${((ms * 1_000) / clusters).toFixed(2)} µs per cluster, ${((ms * 1e6) / (clusters * per)).toFixed(0)} ns per endpoint (tick ${ms.toFixed(3)} ms)`);
}
