/**
 * `GET /v1/weights/{cluster}` for one large cluster, and the weight loop around the engine tick
 * (AdaptiveWeights.tick: overrides for the publisher; adaptiveWeights(): what is archived; the HA
 * weight-share record's JSON) at 100,000 endpoints.
 *
 *   npx tsx bench/weights-view.ts [--endpoints 10000] [--requests 5] [--loop-endpoints 100000] [--clusters 1000]
 *
 * The view: an admin app (fastify inject, no store) over AdaptiveWeights with one PID cluster of
 * --endpoints endpoints, every endpoint reporting before each of 3 ticks; times --requests GETs.
 * The loop: --loop-endpoints endpoints in --clusters clusters, PID, every endpoint reporting; times
 * each part of one periodic tick separately (median of 5). Not a test: figures for bench/RESULTS.md.
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { buildAdminApp } from '../src/admin/app.js';
import { Metrics } from '../src/telemetry/metrics.js';
import { ProxyRegistry } from '../src/xds/proxy-status.js';
import { XdsCache } from '../src/xds/cache.js';
import { AdaptiveWeights } from '../src/weights/adaptive-weights.js';
import type { Catalog, Cluster, Endpoint } from '../src/catalog/types.js';
import { openStore } from '../src/catalog/store/store.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { intOption } from './help.js';

const { values: args } = parseArgs({
  options: {
    endpoints: { type: 'string', default: '10000' },
    requests: { type: 'string', default: '5' },
    'loop-endpoints': { type: 'string', default: '100000' },
    clusters: { type: 'string', default: '1000' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write('usage: npx tsx bench/weights-view.ts [--endpoints 10000] [--requests 5] [--loop-endpoints 100000] [--clusters 1000]\n');
  process.exit(0);
}
const int = (name: string, v: string | undefined): number => intOption(name, v);

function endpointAt(c: number, e: number): Endpoint {
  return { address: `10.${(c >> 8) & 255}.${c & 255}.${e % 250}`, port: 8000 + Math.floor(e / 250), weight: 1 + (e % 3), priority: 0, health: 'HEALTHY', locality: { region: 'eu', zone: `z${e % 3}`, subZone: '' } };
}

function catalogOf(clusters: number, perCluster: number): Catalog {
  const list: Cluster[] = Array.from({ length: clusters }, (_, c) => ({
    name: `svc-${c}`,
    lbPolicy: 'ROUND_ROBIN',
    connectTimeoutMs: 1000,
    http2: false,
    weighting: { kind: 'pid', setpoint: 'mean', metric: 'cpu' },
    endpoints: Array.from({ length: perCluster }, (_, e) => endpointAt(c, e)),
  }));
  return { clusters: list, listeners: [], nodeGroups: [] };
}

/** AdaptiveWeights over the catalog after `ticks` ticks with a report from every endpoint before each. */
function ticked(catalog: Catalog, ticks: number): AdaptiveWeights {
  const adaptive = new AdaptiveWeights();
  adaptive.setCatalog(catalog);
  for (let t = 1; t <= ticks; t++) feedAndTick(adaptive, catalog, t * 1_000);
  return adaptive;
}

function feedAndTick(adaptive: AdaptiveWeights, catalog: Catalog, now: number): void {
  catalog.clusters.forEach((c, ci) =>
    c.endpoints.forEach((e, ei) => adaptive.observeSample(c.name, `${e.address}:${e.port}`, { at: now, cpu: 0.3 + (((ci + ei * 7 + now / 1000) % 10) / 20) })),
  );
  adaptive.tick(now);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;
const ms = (x: number): string => x.toFixed(1);

async function viewBench(): Promise<void> {
  const n = int('endpoints', args.endpoints);
  const adaptive = ticked(catalogOf(1, n), 3);
  const app = buildAdminApp({ registry: new ProxyRegistry(), cache: new XdsCache(), metrics: new Metrics({ processMetrics: false }), ready: () => ({ ready: true, reasons: [] }), weights: adaptive });
  await app.ready();
  const times: number[] = [];
  let bytes = 0;
  for (let r = 0; r < int('requests', args.requests); r++) {
    const t0 = performance.now();
    const res = await app.inject({ method: 'GET', url: '/v1/weights/svc-0' });
    times.push(performance.now() - t0);
    if (res.statusCode !== 200) throw new Error(`GET /v1/weights/svc-0: ${res.statusCode} ${res.body.slice(0, 200)}`);
    bytes = res.body.length;
  }
  await app.close();
  console.log(`GET /v1/weights/{cluster}, one PID cluster of ${n} endpoints: median ${ms(median(times))} ms, min ${ms(Math.min(...times))} ms, max ${ms(Math.max(...times))} ms (${(bytes / 1024 / 1024).toFixed(1)} MiB)`);
}

function loopBench(): void {
  const total = int('loop-endpoints', args['loop-endpoints']);
  const clusters = int('clusters', args.clusters);
  const catalog = catalogOf(clusters, Math.floor(total / clusters));
  const adaptive = ticked(catalog, 3);
  const parts: Record<string, number[]> = { 'AdaptiveWeights.tick (engine tick + overrides)': [], 'adaptiveWeights() (what is archived)': [], 'weight-share record JSON (all clusters)': [] };
  for (let t = 4; t < 9; t++) {
    catalog.clusters.forEach((c, ci) =>
      c.endpoints.forEach((e, ei) => adaptive.observeSample(c.name, `${e.address}:${e.port}`, { at: t * 1000, cpu: 0.3 + (((ci + ei * 7 + t) % 10) / 20) })),
    );
    let t0 = performance.now();
    const overrides = adaptive.tick(t * 1_000);
    parts['AdaptiveWeights.tick (engine tick + overrides)']?.push(performance.now() - t0);
    t0 = performance.now();
    adaptive.adaptiveWeights();
    parts['adaptiveWeights() (what is archived)']?.push(performance.now() - t0);
    t0 = performance.now();
    // What WeightShare.flush serializes per owned cluster (its body and its record).
    for (const c of catalog.clusters) JSON.stringify({ overrides: Object.fromEntries(overrides?.get(c.name) ?? []), state: adaptive.exportState(c.name) });
    parts['weight-share record JSON (all clusters)']?.push(performance.now() - t0);
  }
  console.log(`weight loop, ${clusters} PID clusters, ${total} endpoints, every endpoint reporting (median of 5 ticks):`);
  for (const [name, xs] of Object.entries(parts)) console.log(`  ${name.padEnd(48)} ${ms(median(xs)).padStart(8)} ms`);
  archiveBench(adaptive.adaptiveWeights());
}

/** The SQLite archive (fsync'd transaction): every cluster's weights, as the loop wrote them, vs one changed cluster. */
function archiveBench(all: ReadonlyMap<string, ReadonlyMap<string, number>>): void {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-weights-'));
  const store = openStore(dir);
  try {
    const [first] = all;
    const one = new Map(first === undefined ? [] : [first]);
    const time = (w: ReadonlyMap<string, ReadonlyMap<string, number>>): number => {
      const xs: number[] = [];
      for (let r = 0; r < 5; r++) {
        const t0 = performance.now();
        store.saveAllWeights(w);
        xs.push(performance.now() - t0);
      }
      return median(xs);
    };
    console.log(`  ${'SQLite saveAllWeights, every cluster'.padEnd(48)} ${ms(time(all)).padStart(8)} ms`);
    console.log(`  ${'SQLite saveAllWeights, the one cluster changed'.padEnd(48)} ${ms(time(one)).padStart(8)} ms`);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await viewBench();
loopBench();
