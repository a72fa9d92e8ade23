/**
 * What the admin API's two big outputs cost at 100k endpoints (issue 13: /metrics was 7 MB and
 * 3.6 s, /v1/audit?limit=100 22.6 MB): GET /metrics of a real fulcrum with the default
 * per-endpoint series cap and with the cap lifted (same store, restarted), and GET /v1/audit
 * against what the former route returned (the store's 100 newest records, verbatim).
 *
 * Two audit logs: A, 1,000 clusters x 100 endpoints created through the store (the brief's shape);
 * B, 5 clusters x 20,000 endpoints (the shape that gave 22.6 MB), read in process through the
 * route's own paging function. Medians of --runs.
 *
 *   npx tsx bench/admin-outputs.ts [--clusters 1000] [--endpoints 100] [--runs 5] [--audit-only]
 *
 * --audit-only: only B (the audit page over 20k-endpoint changes), e.g. before and after a store change.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { auditPage } from '../src/admin/routes/audit.js';
import { openStore, type Store } from '../src/catalog/store/index.js';
import type { Endpoint } from '../src/catalog/types.js';
import { startFulcrum } from '../src/main.js';

const USAGE = 'usage: npx tsx bench/admin-outputs.ts [--clusters N] [--endpoints N] [--runs N] [--audit-only]\n';
const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '1000' },
    endpoints: { type: 'string', default: '100' },
    runs: { type: 'string', default: '5' },
    'audit-only': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const CLUSTERS = Number(values.clusters);
const PER_CLUSTER = Number(values.endpoints);
const RUNS = Number(values.runs);

const endpoints = (n: number, base: number): Endpoint[] =>
  Array.from({ length: n }, (_, i) => {
    const k = base + i;
    return { address: `10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`, port: 8080, weight: 1 + (i % 5), priority: 0, health: 'HEALTHY', locality: { region: 'eu', zone: 'a', subZone: '' } };
  });

function seed(store: Store, clusters: number, perCluster: number): void {
  for (let c = 0; c < clusters; c++) {
    const name = `svc-${String(c).padStart(5, '0')}`;
    store.putCluster(
      { name, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' }, endpoints: endpoints(perCluster, c * perCluster) },
      { actor: 'bench', owner: 'api' },
    );
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function timed(url: string): Promise<{ ms: number; bytes: number }> {
  const ms: number[] = [];
  let bytes = 0;
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    const res = await fetch(url);
    bytes = (await res.arrayBuffer()).byteLength;
    ms.push(performance.now() - t);
    if (!res.ok) throw new Error(`${url}: ${res.status}`);
  }
  return { ms: median(ms), bytes };
}

function timedLocal(f: () => string): { ms: number; bytes: number } {
  const ms: number[] = [];
  let bytes = 0;
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    bytes = Buffer.byteLength(f());
    ms.push(performance.now() - t);
  }
  return { ms: median(ms), bytes };
}

async function scrape(dir: string, dataDir: string, maxEndpointSeries?: number): Promise<{ ms: number; bytes: number; audit?: { ms: number; bytes: number } }> {
  const configPath = join(dir, `fulcrum-${maxEndpointSeries ?? 'default'}.yaml`);
  await writeFile(configPath, maxEndpointSeries === undefined ? 'clusters: []\n' : `server: { admin: { metrics: { maxEndpointSeries: ${maxEndpointSeries} } } }\n`);
  const f = await startFulcrum({ configPath, dataDir, xdsPort: 0, xdsAddress: '127.0.0.1', adminPort: 0, adminAddress: '127.0.0.1', logger: pino({ level: 'silent' }), auth: { adminTokens: [], readTokens: [] } });
  try {
    const base = `http://127.0.0.1:${f.adminPort}`;
    await timed(`${base}/metrics`); // the first scrape after start builds the publisher's view
    const metrics = await timed(`${base}/metrics`);
    return { ...metrics, ...(maxEndpointSeries === undefined ? { audit: await timed(`${base}/v1/audit?limit=100`) } : {}) };
  } finally {
    await f.stop();
  }
}

const kb = (b: number): string => `${(b / 1024).toFixed(0)} KiB`;
const mb = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const size = (b: number): string => (b >= 1024 * 1024 ? mb(b) : kb(b));

/** B: five changes of 20k endpoints; a page of the log against the store's records verbatim. */
function auditB(dir: string): void {
  const b = openStore(join(dir, 'data-b'));
  seed(b, 5, 20_000);
  const oldB = timedLocal(() => JSON.stringify({ entries: b.audit(100) }));
  const newB = timedLocal(() => JSON.stringify(auditPage(b, 100, 1024 * 1024)));
  b.close();
  console.log(`B: 5 x 20,000 endpoints, audit page (in process):       ${size(newB.bytes)} in ${newB.ms.toFixed(1)} ms`);
  console.log(`B: former response (in process):                        ${size(oldB.bytes)} in ${oldB.ms.toFixed(0)} ms`);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-admin-outputs-'));
  try {
    if (values['audit-only']) {
      auditB(dir);
      console.log(`medians of ${RUNS}; load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
      return;
    }
    const dataDir = join(dir, 'data');
    const a = openStore(dataDir);
    seed(a, CLUSTERS, PER_CLUSTER);
    const oldA = timedLocal(() => JSON.stringify({ entries: a.audit(100) }));
    a.close();
    const capped = await scrape(dir, dataDir);
    const lifted = await scrape(dir, dataDir, 10_000_000);

    console.log(`${CLUSTERS * PER_CLUSTER} endpoints in ${CLUSTERS} clusters; medians of ${RUNS}; load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    console.log(`GET /metrics, default cap (1,000 series per gauge): ${size(capped.bytes)} in ${capped.ms.toFixed(0)} ms`);
    console.log(`GET /metrics, cap lifted (every endpoint):          ${size(lifted.bytes)} in ${lifted.ms.toFixed(0)} ms   (${(lifted.bytes / capped.bytes).toFixed(0)}x bytes, ${(lifted.ms / capped.ms).toFixed(0)}x time)`);
    if (capped.audit) console.log(`A: GET /v1/audit?limit=100 (HTTP):                    ${size(capped.audit.bytes)} in ${capped.audit.ms.toFixed(0)} ms`);
    console.log(`A: former response (100 store records, in process):   ${size(oldA.bytes)} in ${oldA.ms.toFixed(0)} ms`);
    auditB(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
