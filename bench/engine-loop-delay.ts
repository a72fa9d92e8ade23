/**
 * How long the weight loop's tick holds the event loop: the maximum event-loop delay
 * (a 1 ms timer's longest gap, and `perf_hooks.monitorEventLoopDelay`) while the WeightLoop ticks 100,000 endpoints, with the tick
 * in one piece (`--slice-endpoints` ∞: what the loop did before slicing) and in slices, same run.
 *
 *   npx tsx bench/engine-loop-delay.ts [--ticks 8] [--slice-endpoints 5000] [--layout 1000x100,1x100000]
 *
 * Per layout (clusters × endpoints, PID equalizing cpu, every endpoint reporting before every
 * tick: every controller runs and every cluster publishes) and per slicing: a real WeightLoop
 * (AdaptiveWeights + WeightEngine, in-memory archive, publish discarded). Each round feeds one
 * sample per endpoint (outside the measured window), resets the histogram, runs one periodic tick
 * to completion and reads the histogram: the longest the event loop was held during that tick is
 * how long an admin request or an xDS push arriving then would have waited. Reports the median
 * and max over rounds of that maximum, the median of the longest single slice's own time (what
 * slicing bounds: the gap adds preemption on a loaded machine and GC), the tick's busy time (its slices summed) and its wall time
 * from start to publish. Not a test: figures for bench/RESULTS.md.
 */
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Catalog, Cluster, Endpoint } from '../src/catalog/types.js';
import { AdaptiveWeights } from '../src/weights/adaptive-weights.js';
import { WeightLoop } from '../src/weights/weight-loop.js';

const { values: args } = parseArgs({
  options: {
    ticks: { type: 'string', default: '8' },
    'slice-endpoints': { type: 'string', default: '5000' },
    layout: { type: 'string', default: '1000x100,1x100000' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(
    'usage: npx tsx bench/engine-loop-delay.ts [--ticks 8] [--slice-endpoints 5000] [--layout 1000x100,1x100000]\n' +
      '  --ticks            measured ticks per layout and slicing (after 2 warm-up ticks)\n' +
      '  --slice-endpoints  endpoints per slice for the sliced run (the whole tick runs too, as "before")\n' +
      '  --layout           comma-separated CLUSTERSxENDPOINTS layouts\n',
  );
  process.exit(0);
}
const TICKS = Number(args.ticks);
const SLICE = Number(args['slice-endpoints']);
if (!(Number.isInteger(TICKS) && TICKS > 0 && SLICE > 0)) throw new RangeError('--ticks must be an integer > 0 and --slice-endpoints > 0');
const layouts = args.layout.split(',').map((l) => {
  const m = /^(\d+)x(\d+)$/.exec(l.trim());
  if (m === null) throw new RangeError(`--layout: expected CLUSTERSxENDPOINTS, got ${l}`);
  return { clusters: Number(m[1]), perCluster: Number(m[2]) };
});
const WARMUP = 2;

function fleet(clusters: number, perCluster: number): Catalog {
  const endpoint = (c: number, e: number): Endpoint => ({
    address: `10.${(c >> 8) & 255}.${c & 255}.${e % 250}`,
    port: 8000 + Math.floor(e / 250),
    weight: 1 + (e % 3),
    priority: 0,
    health: 'HEALTHY',
    locality: { region: 'eu', zone: `z${e % 3}`, subZone: '' },
  });
  const list: Cluster[] = [];
  for (let c = 0; c < clusters; c++) {
    const endpoints = Array.from({ length: perCluster }, (_, e) => endpoint(c, e));
    list.push({ name: `svc-${c}`, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false, weighting: { kind: 'pid', setpoint: 'mean', metric: 'cpu' }, endpoints });
  }
  return { clusters: list, listeners: [], nodeGroups: [] };
}

/**
 * A 1 ms timer that notes the longest gap between its firings: how late work queued on the event
 * loop ran. (Measured next to monitorEventLoopDelay, whose max missed a single synchronous hold
 * of hundreds of ms here on Node 20; the gap counts it.)
 */
function lagProbe(): { reset(): void; readonly max: number; stop(): void } {
  let last = performance.now();
  let max = 0;
  let timer: NodeJS.Timeout | undefined;
  const beat = (): void => {
    const t = performance.now();
    if (t - last > max) max = t - last;
    last = t;
    timer = setTimeout(beat, 1);
  };
  timer = setTimeout(beat, 1);
  return {
    reset: () => {
      max = 0;
      last = performance.now();
    },
    get max() {
      return max;
    },
    stop: () => clearTimeout(timer),
  };
}

interface Round {
  readonly maxGapMs: number;
  readonly maxDelayMs: number;
  readonly longestSliceMs: number;
  readonly busyMs: number;
  readonly wallMs: number;
}

async function measure(catalog: Catalog, sliceEndpoints: number): Promise<Round[]> {
  const adaptive = new AdaptiveWeights();
  adaptive.setCatalog(catalog);
  const keys = catalog.clusters.map((c) => c.endpoints.map((e) => `${e.address}:${e.port}`));
  let now = 0;
  let done: ((busyMs: number) => void) | undefined;
  // The longest single slice (its own busy time): what slicing bounds; the gap adds preemption and GC.
  let longestSlice = 0;
  const timed = {
    observeSample: adaptive.observeSample.bind(adaptive),
    observeProbe: adaptive.observeProbe.bind(adaptive),
    seed: adaptive.seed.bind(adaptive),
    tick: adaptive.tick.bind(adaptive),
    adaptiveWeights: adaptive.adaptiveWeights.bind(adaptive),
    get alarmed() {
      return adaptive.alarmed;
    },
    tickAlarmed: adaptive.tickAlarmed.bind(adaptive),
    *tickInSlices(now: number, slice: number): Generator<void, ReturnType<AdaptiveWeights['tick']>, void> {
      const run = adaptive.tickInSlices(now, slice);
      for (;;) {
        const t0 = performance.now();
        const step = run.next();
        longestSlice = Math.max(longestSlice, performance.now() - t0);
        if (step.done === true) return step.value;
        yield;
      }
    },
  };
  const loop = new WeightLoop({
    adaptive: timed,
    signals: { subscribe: () => () => undefined },
    archive: { loadWeights: () => new Map(), saveAllWeights: () => undefined },
    // Never due by itself: each round calls tick() once.
    tickMs: 3_600_000,
    sliceEndpoints,
    publish: () => undefined,
    onTicked: (ms) => done?.(ms),
    now: () => now,
  });
  loop.start();
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const probe = lagProbe();
  const rounds: Round[] = [];
  for (let t = 0; t < WARMUP + TICKS; t++) {
    now += 1_000;
    catalog.clusters.forEach((c, ci) => (keys[ci] as string[]).forEach((k, ei) => adaptive.observeSample(c.name, k, { at: now, cpu: 0.3 + ((ci + ei * 7 + t) % 10) / 20 })));
    await sleep(20); // the feed's own hold lands before the window
    h.reset();
    probe.reset();
    longestSlice = 0;
    const finished = new Promise<number>((resolve) => (done = resolve));
    const t0 = performance.now();
    loop.tick();
    const busyMs = await finished;
    const wallMs = performance.now() - t0;
    await sleep(5); // the histogram records the last hold when its timer next fires
    if (t >= WARMUP) rounds.push({ maxGapMs: probe.max, maxDelayMs: h.max / 1e6, longestSliceMs: longestSlice, busyMs, wallMs });
  }
  h.disable();
  probe.stop();
  loop.stop();
  return rounds;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};
const f1 = (x: number): string => x.toFixed(1);

const rows: Record<string, string | number>[] = [];
console.log(`weight loop tick, event-loop delay, ${TICKS} ticks (after ${WARMUP} warm-up), node ${process.version}`);
console.log(
  `${'layout'.padEnd(12)}${'slicing'.padEnd(18)}${'max gap ms (median / max)'.padStart(28)}${'ELD max ms (median / max)'.padStart(28)}${'slice ms'.padStart(10)}${'busy ms'.padStart(10)}${'wall ms'.padStart(10)}`,
);
for (const { clusters, perCluster } of layouts) {
  const catalog = fleet(clusters, perCluster);
  for (const slice of [Number.POSITIVE_INFINITY, SLICE]) {
    const r = await measure(catalog, slice);
    const label = slice === Number.POSITIVE_INFINITY ? 'whole tick' : `${slice} per slice`;
    const gaps = r.map((x) => x.maxGapMs);
    const delays = r.map((x) => x.maxDelayMs);
    const row = {
      layout: `${clusters}×${perCluster}`,
      slicing: label,
      maxGapMedianMs: median(gaps),
      maxGapMaxMs: Math.max(...gaps),
      maxDelayMedianMs: median(delays),
      maxDelayMaxMs: Math.max(...delays),
      longestSliceMs: median(r.map((x) => x.longestSliceMs)),
      busyMs: median(r.map((x) => x.busyMs)),
      wallMs: median(r.map((x) => x.wallMs)),
    };
    rows.push(row);
    console.log(
      `${row.layout.padEnd(12)}${label.padEnd(18)}${`${f1(row.maxGapMedianMs)} / ${f1(row.maxGapMaxMs)}`.padStart(28)}${`${f1(row.maxDelayMedianMs)} / ${f1(row.maxDelayMaxMs)}`.padStart(28)}${f1(row.longestSliceMs).padStart(10)}${f1(row.busyMs).padStart(10)}${f1(row.wallMs).padStart(10)}`,
    );
  }
}
console.log(JSON.stringify({ bench: 'engine-loop-delay', node: process.version, ticks: TICKS, results: rows }));
