/**
 * Checks that two checkouts' weight engines give identical ticks: the same random fleet (PID on
 * cpu / cpu-latency / inflight, EWMA, static, blend; probes failing, errors, endpoints that stop
 * reporting, some without request counts, a cluster reshaped midway, clusters failing static;
 * and busy clusters, near capacity with a share failing and no ejections, where errors move load
 * only as far as the peers can carry it: tick/error-shift.ts) fed to both, every tick's weights, health and every
 * explanation compared exactly. For a change that restructures the tick without meaning to
 * change its arithmetic.
 *
 *   npx tsx bench/engine-compare.ts --other /path/to/other/checkout [--ticks 60] [--seeds 5] [--chunk N]
 *
 * `--chunk N`: this checkout's engine ticks each cluster in steps of N endpoints
 * (WeightEngine.startClusterTick, as the weight loop does for a cluster larger than a slice), so the
 * comparison proves a split tick gives what a whole one does.
 */
import { parseArgs } from 'node:util';
import { isDeepStrictEqual } from 'node:util';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { WeightEngine } from '../src/balancing/engine/weight-engine.js';
import type { ClusterTick, TickResult, WeightingPolicy } from '../src/balancing/engine/types.js';

const { values: args } = parseArgs({
  options: {
    other: { type: 'string' },
    ticks: { type: 'string', default: '60' },
    seeds: { type: 'string', default: '5' },
    chunk: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help || args.other === undefined) {
  process.stdout.write('usage: npx tsx bench/engine-compare.ts --other /path/to/other/checkout [--ticks 60] [--seeds 5] [--chunk N]\n');
  process.exit(args.help ? 0 : 2);
}
type EngineLike = Pick<WeightEngine, 'setCluster' | 'observeSample' | 'observeProbe' | 'tick'>;
const other = (await import(pathToFileURL(join(args.other, 'src/balancing/engine/weight-engine.ts')).href)) as { WeightEngine: new () => EngineLike };

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s / 4294967296);
}

const POLICIES: WeightingPolicy[] = [
  { kind: 'pid', setpoint: 'mean', metric: 'cpu' },
  { kind: 'pid', setpoint: 0.6, metric: 'cpu-latency' },
  { kind: 'pid', setpoint: 'mean', metric: 'inflight' },
  { kind: 'ewma' },
  { kind: 'static' },
  { kind: 'blend', parts: { pid: 0.5, ewma: 0.3, static: 0.2 }, metric: 'cpu' },
];

/** Everything a tick says, explanations included, as plain data. */
function plain(t: TickResult): unknown {
  return [...t.clusters].map(([name, c]) => [name, [...c.weights], [...c.health], c.changed, c.failStatic, c.setpoint, [...c.explanations]]);
}

/** The busy clusters' endpoints' share of failed requests: none, sporadic, failing, all. */
const BUSY_ERRORS = [0, 0, 0.01, 0.08, 0.5, 1];

function drive(engines: EngineLike[], seed: number, ticks: number): number {
  const rand = lcg(seed);
  const sizes = [3, 20, 150];
  const keys = (c: number, n: number): string[] => Array.from({ length: n }, (_, e) => `10.0.${c}.${e}:80`);
  POLICIES.forEach((policy, p) =>
    sizes.forEach((n, s) => {
      const eps = keys(p * 10 + s, n).map((key, e) => ({ key, weight: 1 + (e % 3), locality: `z${e % 2}` }));
      for (const en of engines) en.setCluster(`c${p}-${s}`, eps, policy);
    }),
  );
  // And one with errorPenalty 0: failures still counted as busy, no penalty and no allowance.
  const busyPolicies: WeightingPolicy[] = [...POLICIES, { kind: 'pid', setpoint: 'mean', metric: 'cpu', errorPenalty: 0 }];
  const busy = busyPolicies.map((policy, p) => ({ name: `busy${p}`, keys: keys(100 + p, 20), policy }));
  for (const b of busy) for (const en of engines) en.setCluster(b.name, b.keys.map((key, e) => ({ key, weight: 1 + (e % 3) })), b.policy, undefined, { enabled: false });
  let compared = 0;
  for (let t = 1; t <= ticks; t++) {
    const now = t * 1000;
    POLICIES.forEach((policy, p) =>
      sizes.forEach((n, s) => {
        const cluster = `c${p}-${s}`;
        if (t === Math.floor(ticks / 2) && s === 1) {
          const eps = keys(p * 10 + s, n + 5).slice(3).map((key, e) => ({ key, weight: 1 + ((e + t) % 4) }));
          for (const en of engines) en.setCluster(cluster, eps, policy);
        }
        keys(p * 10 + s, n + 5).forEach((key, e) => {
          const r = rand();
          if (e % 7 === 3 && t > ticks / 3) return; // stops reporting
          if (r < 0.8) {
            const base = { at: now - 200 + Math.floor(rand() * 100), cpu: 0.2 + 0.7 * rand(), latencyMs: 5 + 50 * rand(), inflight: Math.floor(20 * rand()) };
            // Some endpoints report no request counts (an agent's cpu and latency only): no error
            // window, the state the tick reads without its object (endpoint-inputs.ts).
            const sample = e % 5 === 1 ? base : { ...base, rps: 100, errors: e % 11 === 5 ? 40 * rand() : 0 };
            for (const en of engines) en.observeSample(cluster, key, sample);
          }
          // The 3-endpoint clusters fail every probe for a stretch: fail static.
          const outage = s === 0 && t > ticks / 4 && t < ticks / 2;
          if (e % 13 === 2 || outage) {
            const probe = { at: now - 100, ok: !outage && rand() > 0.6, latencyMs: 3 };
            for (const en of engines) en.observeProbe(cluster, key, probe);
          }
        });
      }),
    );
    for (const b of busy) feedBusy(engines, b, now, rand);
    const [a, ...rest] = engines.map((en) => plain(en.tick(now)));
    for (const b of rest) {
      if (!isDeepStrictEqual(a, b)) throw new Error(`seed ${seed}, tick ${t}: the engines differ`);
      compared++;
    }
  }
  return compared;
}

/** A busy cluster's samples: cpu 0.7–1, request counts with each endpoint's share of errors, some of it only now and then. */
function feedBusy(engines: EngineLike[], b: { name: string; keys: string[] }, now: number, rand: () => number): void {
  b.keys.forEach((key, e) => {
    const share = BUSY_ERRORS[e % BUSY_ERRORS.length] as number;
    const errors = share > 0 && (share >= 0.5 || rand() < 0.7) ? Math.round(100 * share) : 0;
    const sample = { at: now - 100, cpu: 0.7 + 0.3 * rand(), latencyMs: 5 + 50 * rand(), inflight: Math.floor(20 * rand()), rps: 100, errors };
    for (const en of engines) en.observeSample(b.name, key, sample);
  });
}

/** This checkout's engine, ticking each cluster in steps of `chunk` endpoints. */
function stepped(chunk: number): EngineLike {
  const en = new WeightEngine();
  const names = new Set<string>();
  return {
    setCluster: (name, ...rest) => (names.add(name), en.setCluster(name, ...rest)),
    observeSample: (...a) => en.observeSample(...a),
    observeProbe: (...a) => en.observeProbe(...a),
    tick: (now) => {
      const clusters = new Map<string, ClusterTick>();
      for (const name of names) {
        const run = en.startClusterTick(now, name, chunk);
        while (!run.step());
        if (run.result !== undefined) clusters.set(name, run.result);
      }
      return { now, clusters };
    },
  };
}

const chunk = args.chunk === undefined ? undefined : Number(args.chunk);
if (chunk !== undefined && !(Number.isInteger(chunk) && chunk > 0)) throw new RangeError(`--chunk must be an integer > 0, got ${args.chunk}`);
let total = 0;
for (let s = 0; s < Number(args.seeds); s++) {
  total += drive([chunk === undefined ? new WeightEngine() : stepped(chunk), new other.WeightEngine()], 77 + s, Number(args.ticks));
}
console.log(`identical: ${total} ticks compared (${POLICIES.length * 4 + 1} clusters each, explanations included${chunk === undefined ? '' : `, ticked in steps of ${chunk}`})`);
