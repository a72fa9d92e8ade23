/**
 * Folding load reports, in process: the CPU `LrsAggregator.apply` (and the `take` that hands the
 * samples over) costs per report entry, with nothing of gRPC, protobufjs or the engine around it,
 * for this checkout and others (their src/, loaded through tsx), interleaved in one process. The
 * reports are decoded objects as protobufjs hands them over: `--granularity endpoint` as Envoy
 * sends (every endpoint of every cluster, ORCA cpu), `locality` as a proxyless gRPC client does
 * (each endpoint its own locality, named back by its sub-zone, so every entry goes through
 * `Signals.localityMembers`). Every `--proxies` reports one interval; a take after each tenth of
 * them (the service flushes every 200 ms of a 2 s interval). Figures, not pass/fail.
 *
 *   npx tsx bench/lrs-fold.ts [--other /path/to/checkout[,/another]] [--granularity endpoint|locality]
 *     [--proxies 1000] [--clusters 5] [--endpoints 20] [--intervals 10] [--repeat 3]
 *
 * For a profile of this checkout alone: `node --import tsx --cpu-prof bench/lrs-fold.ts ...`.
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import type { Cluster } from '../src/catalog/types.js';
import type { WireLoadStatsRequest, WireLocalityStats } from '../src/signals/lrs-codec.js';
import { helpIfAsked, intOption } from './help.js';

helpIfAsked(import.meta.url);
const { values: args } = parseArgs({
  options: {
    other: { type: 'string' },
    granularity: { type: 'string', default: 'endpoint' },
    proxies: { type: 'string', default: '1000' },
    clusters: { type: 'string', default: '5' },
    endpoints: { type: 'string', default: '20' },
    intervals: { type: 'string', default: '10' },
    repeat: { type: 'string', default: '3' },
  },
});
const granularity = args.granularity;
if (granularity !== 'endpoint' && granularity !== 'locality') throw new RangeError(`--granularity must be endpoint or locality, got ${granularity}`);
const proxies = intOption('proxies', args.proxies);
const clusterCount = intOption('clusters', args.clusters);
const endpointCount = intOption('endpoints', args.endpoints);
const intervals = intOption('intervals', args.intervals);
const repeat = intOption('repeat', args.repeat);
const INTERVAL_MS = 2000;
const here = resolve(import.meta.dirname, '..');
const roots = [here, ...(args.other?.split(',').filter(Boolean) ?? []).map((p) => resolve(p))];

/** What the bench uses of a checkout's modules (the same shape in every checkout since LRS locality reports). */
interface Checkout {
  readonly root: string;
  readonly label: string;
  readonly LrsAggregator: new (options: object) => { apply(stream: number, req: WireLoadStatsRequest, now: number, intervalMs: number): void; take(now: number): unknown[] };
  readonly Signals: new (options: object) => { setCatalog(catalog: { clusters: readonly Cluster[] }): void; localityMembers(cluster: string, locality: never): unknown };
  readonly endpointSubZone: (e: Pick<Cluster['endpoints'][number], 'address' | 'port' | 'locality'>) => string;
}

async function load(root: string): Promise<Checkout> {
  const mod = async (path: string): Promise<Record<string, unknown>> => (await import(pathToFileURL(`${root}/src/${path}`).href)) as Record<string, unknown>;
  const label = `${root === here ? 'this' : root} ${execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()}`;
  return {
    root,
    label,
    LrsAggregator: (await mod('signals/lrs-aggregator.ts')).LrsAggregator as Checkout['LrsAggregator'],
    Signals: (await mod('signals/signals.ts')).Signals as Checkout['Signals'],
    endpointSubZone: (await mod('catalog/endpoint-localities.ts')).endpointSubZone as Checkout['endpointSubZone'],
  };
}

const clusterName = (c: number): string => `svc-${String(c).padStart(4, '0')}`;

function catalog(): Cluster[] {
  return Array.from({ length: clusterCount }, (_, c) => ({
    name: clusterName(c),
    lbPolicy: 'ROUND_ROBIN',
    connectTimeoutMs: 1000,
    http2: false,
    weighting: { policy: 'static' },
    endpoints: Array.from({ length: endpointCount }, (_, e) => ({
      address: `10.${c >> 8}.${c & 255}.${e + 1}`,
      port: 8080,
      locality: { region: 'r', zone: `z${e % 3}`, subZone: '' },
      priority: 0,
      weight: 1,
      health: 'HEALTHY' as const,
    })),
  })) as unknown as Cluster[];
}

/** One proxy's report of every endpoint of every cluster, its counts varied by proxy. */
function report(clusters: readonly Cluster[], p: number, subZone: Checkout['endpointSubZone']): WireLoadStatsRequest {
  const counters = (e: number) => ({
    total_issued_requests: 10 + ((p + e) % 7),
    total_successful_requests: 9 + ((p + e) % 7),
    total_error_requests: 1,
    total_requests_in_progress: 1 + (e % 3),
  });
  const cpu = { num_requests_finished_with_metric: 10, total_metric_value: 4 + (p % 5) / 10 };
  return {
    node: { id: `proxy-${p}` },
    cluster_stats: clusters.map((c) => ({
      cluster_name: c.name,
      load_report_interval: { seconds: 2 },
      upstream_locality_stats:
        granularity === 'endpoint'
          ? [
              {
                locality: { region: 'r', zone: 'z0' },
                upstream_endpoint_stats: c.endpoints.map((e, i) => ({
                  address: { socket_address: { address: e.address, port_value: e.port } },
                  ...counters(i),
                  load_metric_stats: [{ metric_name: 'cpu_utilization', ...cpu }],
                })),
              },
            ]
          : c.endpoints.map((e, i): WireLocalityStats => ({ locality: { region: e.locality.region, zone: e.locality.zone, sub_zone: subZone(e) }, ...counters(i), cpu_utilization: cpu })),
    })),
  } as WireLoadStatsRequest;
}

/** CPU µs per entry over `intervals` intervals of the whole fleet, and the samples taken. */
function run(checkout: Checkout): { usPerEntry: number; samples: number } {
  const clusters = catalog();
  const signals = new checkout.Signals({ log: pino({ level: 'silent' }), lrsIntervalMs: INTERVAL_MS });
  signals.setCatalog({ clusters });
  const keys = new Map(clusters.map((c) => [c.name, new Set(c.endpoints.map((e) => `${e.address}:${e.port}`))]));
  const aggregator = new checkout.LrsAggregator({
    knows: (cluster: string, endpoint?: string) => keys.has(cluster) && (endpoint === undefined || keys.get(cluster)?.has(endpoint) === true),
    localityMembers: (cluster: string, locality: never) => signals.localityMembers(cluster, locality),
  });
  const reports = Array.from({ length: proxies }, (_, p) => report(clusters, p, checkout.endpointSubZone));
  const flushEvery = Math.max(1, Math.floor(proxies / 10));
  let samples = 0;
  const before = process.cpuUsage();
  for (let i = 0; i < intervals; i++) {
    for (let p = 0; p < proxies; p++) {
      const now = i * INTERVAL_MS + (p * INTERVAL_MS) / proxies;
      aggregator.apply(p, reports[p] as WireLoadStatsRequest, now, INTERVAL_MS);
      if ((p + 1) % flushEvery === 0) samples += aggregator.take(now).length;
    }
  }
  const used = process.cpuUsage(before);
  return { usPerEntry: (used.user + used.system) / (intervals * proxies * clusterCount * endpointCount), samples };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

const checkouts = await Promise.all(roots.map(load));
const figures = new Map<string, number[]>(checkouts.map((c) => [c.label, []]));
// Warm every checkout's code once, then alternate the order per repeat.
for (const c of checkouts) run(c);
for (let r = 0; r < repeat; r++) {
  for (const c of r % 2 === 0 ? checkouts : [...checkouts].reverse()) {
    const { usPerEntry, samples } = run(c);
    if (samples === 0) throw new Error(`${c.label}: no sample taken: the reports were not kept`);
    figures.get(c.label)?.push(usPerEntry);
    process.stderr.write(`${c.label}: ${usPerEntry.toFixed(3)} µs per entry (${samples} samples)\n`);
  }
}
console.log(
  `LRS fold (${granularity}): ${proxies} proxies × ${clusterCount} clusters × ${endpointCount} endpoints, ${intervals} intervals, median of ${repeat}; load ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
);
console.log('| checkout | µs per entry (median) | runs |');
console.log('|---|---|---|');
for (const c of checkouts) {
  const xs = figures.get(c.label) ?? [];
  console.log(`| ${c.label} | ${median(xs).toFixed(3)} | ${xs.map((x) => x.toFixed(3)).join(', ')} |`);
}
