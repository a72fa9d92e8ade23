/**
 * One endpoint written on a cluster of many endpoints (issue 13: a write should cost what it
 * changes): SQLite store in process, a cluster of --endpoints, then --writes sequential
 * one-endpoint writes (weight PUTs and drain/enable alternating), each followed by what the
 * running process does after it: the catalog read (the feed's refresh) and the cluster record
 * read (every endpoint route checks the cluster first). Prints p50 and max per write.
 *
 *   npx tsx bench/big-cluster-endpoint-write.ts [--endpoints 20000] [--writes 40]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openStore } from '../src/catalog/store/store.js';
import type { Endpoint } from '../src/catalog/types.js';

const USAGE = 'usage: npx tsx bench/big-cluster-endpoint-write.ts [--endpoints N] [--writes N]\n';
const { values } = parseArgs({
  options: { endpoints: { type: 'string', default: '20000' }, writes: { type: 'string', default: '40' }, help: { type: 'boolean', default: false } },
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const SIZE = Number(values.endpoints);
const WRITES = Number(values.writes);
const API = { actor: 'bench', owner: 'api' } as const;

const endpoint = (i: number, weight = 1): Endpoint => ({
  address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
  port: 8080,
  weight,
  priority: 0,
  health: 'HEALTHY',
  locality: { region: 'r1', zone: 'z1', subZone: '' },
});

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-big-cluster-'));
const store = openStore(dir);
try {
  const endpoints = Array.from({ length: SIZE }, (_, i) => endpoint(i));
  store.putCluster({ name: 'big', lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' }, endpoints }, API);
  store.catalog();
  store.getCluster('big');
  const ms: number[] = [];
  for (let w = 0; w < WRITES; w++) {
    const started = performance.now();
    if (w % 2 === 0) store.putEndpoint('big', endpoint(w, 2 + w), API);
    else store.setEndpointState('big', endpoint(w).address, 8080, w % 4 === 1 ? 'draining' : 'active', { actor: 'bench' });
    store.catalog();
    store.getCluster('big');
    ms.push(performance.now() - started);
  }
  ms.sort((a, b) => a - b);
  const at = (q: number): string => (ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? Number.NaN).toFixed(1);
  process.stdout.write(`${SIZE} endpoints, ${WRITES} one-endpoint writes (+ catalog read + cluster record read): p50 ${at(0.5)} ms, max ${at(1)} ms; load ${loadavg()[0]?.toFixed(1)}\n`);
} finally {
  store.close();
  rmSync(dir, { recursive: true, force: true });
}
