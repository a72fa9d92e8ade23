/**
 * One /metrics scrape at 100k endpoints, in process (issue 13: no request waits > 50 ms behind
 * another): the former scrape (prom-client's `registry.metrics()` over the publisher's flat
 * per-endpoint weights: one task) against the current one (`Metrics.render` in turns over the
 * weights by cluster), alternating, with a real Publisher holding a catalog of --clusters ×
 * --endpoints. Per scrape: main-thread CPU (process.cpuUsage, user + system), wall time, and the
 * longest piece between two turns (for the former: the whole scrape). Medians of --runs.
 *
 *   npx tsx bench/metrics-scrape.ts [--clusters 1000] [--endpoints 100] [--runs 9] [--max-series N]
 *
 * --max-series: the per-endpoint cap (default the server's, 1,000; 200000 lifts it).
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { Catalog, Cluster } from '../src/catalog/types.js';
import { nextTurn } from '../src/runtime/next-turn.js';
import { DEFAULT_MAX_ENDPOINT_SERIES } from '../src/telemetry/endpoint-series.js';
import { Metrics } from '../src/telemetry/metrics.js';
import { XdsCache } from '../src/xds/cache.js';
import { Publisher } from '../src/xds/publisher.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '1000' },
    endpoints: { type: 'string', default: '100' },
    runs: { type: 'string', default: '9' },
    'max-series': { type: 'string', default: String(DEFAULT_MAX_ENDPOINT_SERIES) },
  },
});

function cluster(c: number, size: number): Cluster {
  const endpoints = Array.from({ length: size }, (_, e) => ({
    address: `10.${(c >> 8) & 255}.${c & 255}.${e}`,
    port: 8080,
    weight: 1 + (e % 5),
    priority: 0,
    health: 'HEALTHY' as const,
    locality: { region: 'r1', zone: `z${e % 3}`, subZone: '' },
  }));
  return { name: `c-${String(c).padStart(4, '0')}`, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' }, endpoints };
}

interface Scrape {
  readonly cpu: number;
  readonly wall: number;
  readonly longest: number;
  readonly bytes: number;
}

/** One scrape; `turn` undefined: the former one task. */
async function scrape(metrics: Metrics, inTurns: boolean): Promise<Scrape> {
  let longest = 0;
  let since = performance.now();
  const turn = async (): Promise<void> => {
    longest = Math.max(longest, performance.now() - since);
    await nextTurn();
    since = performance.now();
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  since = t0;
  const text = await (inTurns ? metrics.render(turn) : metrics.registry.metrics());
  const wall = performance.now() - t0;
  longest = Math.max(longest, performance.now() - since);
  const cpu = process.cpuUsage(cpu0);
  return { cpu: (cpu.user + cpu.system) / 1000, wall, longest, bytes: Buffer.byteLength(text) };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function main(): Promise<void> {
  const publisher = new Publisher(new XdsCache(), pino({ level: 'silent' }), { quietMs: 0, maxMs: 0 });
  publisher.stop(); // holds the catalog without translating it
  const catalog: Catalog = { clusters: Array.from({ length: Number(values.clusters) }, (_, c) => cluster(c, Number(values.endpoints))), listeners: [], nodeGroups: [] };
  publisher.setCatalog(catalog);
  const options = { maxEndpointSeries: Number(values['max-series']) };
  const former = new Metrics(options);
  former.trackEndpointWeights(() => publisher.endpointWeights());
  const current = new Metrics(options);
  current.trackEndpointWeightsByCluster(() => publisher.endpointWeightsByCluster());
  const results: Record<'former' | 'current', Scrape[]> = { former: [], current: [] };
  for (let r = 0; r < Number(values.runs); r++) {
    results.former.push(await scrape(former, false));
    results.current.push(await scrape(current, true));
  }
  process.stdout.write(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; medians of ${values.runs} (the first scrape of each included)\n`);
  process.stdout.write('| scrape | CPU ms | wall ms | longest piece ms | bytes |\n|---|---|---|---|---|\n');
  for (const [name, rs] of Object.entries(results)) {
    const m = (f: (s: Scrape) => number): string => median(rs.map(f)).toFixed(1);
    process.stdout.write(`| ${name} | ${m((s) => s.cpu)} | ${m((s) => s.wall)} | ${m((s) => s.longest)} | ${m((s) => s.bytes)} |\n`);
  }
}

await main();
