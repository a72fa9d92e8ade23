/**
 * Bytes the weight engine allocates in one steady tick: heap growth across `tick(now)` with a
 * young generation large enough that no GC runs inside it (run with the flags below), after
 * 8 ticks of warm-up with every endpoint reporting before each tick.
 *
 *   node --expose-gc --max-semi-space-size=128 --import tsx bench/engine-alloc.ts [CLUSTERS] [PER_CLUSTER] [pid|ewma|static] [--rps]
 *
 * Defaults: 1 cluster × 10,000 endpoints, pid. Prints KiB per tick for ticks 8–11. `--rps`: every
 * sample also carries request counts (rps 100, 1 % errors), as in bench/engine.ts. Not a test.
 */
import { WeightEngine } from '../src/balancing/engine/weight-engine.js';
import type { WeightingPolicy } from '../src/balancing/engine/types.js';

if (process.argv.includes('--help')) {
  process.stdout.write('usage: node --expose-gc --max-semi-space-size=128 --import tsx bench/engine-alloc.ts [CLUSTERS] [PER_CLUSTER] [pid|ewma|static] [--rps]\n');
  process.exit(0);
}
const gc = (globalThis as { gc?: (o?: { type: 'minor' | 'major' }) => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc --max-semi-space-size=128 (see the header)');
const rps = process.argv.includes('--rps');
const positional = process.argv.slice(2).filter((a) => a !== '--rps');
const [clusters = 1, perCluster = 10_000] = positional.slice(0, 2).map(Number);
const kind = positional[2] ?? 'pid';
const policies: Record<string, WeightingPolicy> = { pid: { kind: 'pid', setpoint: 'mean', metric: 'cpu' }, ewma: { kind: 'ewma' }, static: { kind: 'static' } };
const policy = policies[kind];
if (policy === undefined) throw new RangeError(`policy must be pid, ewma or static, got ${kind}`);

const engine = new WeightEngine();
const keys: string[][] = [];
for (let c = 0; c < clusters; c++) {
  const ks = Array.from({ length: perCluster }, (_, e) => `10.${(c >> 8) & 255}.${c & 255}.${e % 250}:${8000 + Math.floor(e / 250)}`);
  keys.push(ks);
  engine.setCluster(`svc-${c}`, ks.map((key, e) => ({ key, weight: 1 + (e % 3), locality: `zone-${e % 3}` })), policy);
}
let now = 0;
for (let t = 0; t < 12; t++) {
  now += 1_000;
  keys.forEach((ks, c) => ks.forEach((key, e) => engine.observeSample(`svc-${c}`, key, { at: now, cpu: 0.3 + 0.5 * (((e * 7 + t * 3) % 10) / 10), latencyMs: 10, ...(rps ? { rps: 100, errors: 1 } : {}) })));
  gc({ type: 'minor' });
  gc({ type: 'minor' });
  const before = process.memoryUsage().heapUsed;
  engine.tick(now);
  const grew = process.memoryUsage().heapUsed - before;
  if (t >= 8) console.log(`${clusters}×${perCluster} ${kind}${rps ? ' rps' : ''}, tick ${t}: ${(grew / 1024).toFixed(0)} KiB allocated`);
}
