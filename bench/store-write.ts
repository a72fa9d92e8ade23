/**
 * Admin API write latency, SQLite vs etcd: sequential PUTs of one endpoint (a real change each
 * time: its weight) over real HTTP to a fulcrum started with each store. On etcd the time covers
 * the transaction's commit on a 3-member cluster AND the local mirror catching up (read your
 * writes). The cluster is the test harness's (test/support/etcd-cluster.ts): loopback, and
 * --unsafe-no-fsync, so these figures leave out etcd's disk; SQLite fsyncs every commit.
 *
 *   npx tsx bench/store-write.ts [--writes 500] [--warmup 50]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import YAML from 'yaml';
import { startFulcrum } from '../src/main.js';
import { startEtcdCluster } from '../test/support/etcd-cluster.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({ options: { writes: { type: 'string', default: '500' }, warmup: { type: 'string', default: '50' } } });
const writes = Number(values.writes);
const warmup = Number(values.warmup);

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
};

async function run(kind: 'sqlite' | 'etcd', store: object | undefined): Promise<{ p50: number; p99: number; max: number }> {
  const dir = await mkdtemp(join(tmpdir(), `fulcrum-bench-store-${kind}-`));
  const configPath = join(dir, 'fulcrum.yaml');
  await writeFile(configPath, YAML.stringify({ ...(store ? { store } : {}), clusters: [] }));
  const fulcrum = await startFulcrum({
    configPath,
    dataDir: join(dir, 'data'),
    xdsPort: 0,
    xdsAddress: '127.0.0.1',
    adminPort: 0,
    logger: pino({ level: 'silent' }),
    auth: { adminTokens: [], readTokens: [] },
  });
  const base = `http://127.0.0.1:${fulcrum.adminPort}`;
  const put = async (path: string, body: unknown): Promise<void> => {
    const res = await fetch(`${base}${path}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (res.status >= 300) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  };
  try {
    await put('/v1/clusters/bench', { endpoints: Array.from({ length: 20 }, (_, i) => ({ address: `10.0.0.${i + 1}`, port: 8080 })) });
    const ms: number[] = [];
    for (let i = 0; i < warmup + writes; i++) {
      const started = performance.now();
      await put('/v1/clusters/bench/endpoints/10.0.0.1/8080', { weight: 1 + (i % 50) });
      if (i >= warmup) ms.push(performance.now() - started);
    }
    return { p50: quantile(ms, 0.5), p99: quantile(ms, 0.99), max: Math.max(...ms) };
  } finally {
    await fulcrum.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const etcd = await startEtcdCluster(3);
try {
  const sqlite = await run('sqlite', undefined);
  const onEtcd = await run('etcd', { kind: 'etcd', etcd: { endpoints: etcd.endpoints, prefix: '/bench' } });
  const line = (name: string, r: { p50: number; p99: number; max: number }) =>
    `| ${name} | ${writes} | ${r.p50.toFixed(2)} ms | ${r.p99.toFixed(2)} ms | ${r.max.toFixed(1)} ms |`;
  process.stdout.write(`load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
  process.stdout.write('| store | writes | p50 | p99 | max |\n|---|---|---|---|---|\n');
  process.stdout.write(`${line('SQLite (WAL, synchronous=FULL)', sqlite)}\n${line('etcd, 3 members on loopback', onEtcd)}\n`);
} finally {
  await etcd.stop();
}
