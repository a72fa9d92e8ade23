/**
 * What three replicas write to etcd with signals flowing: 3 fulcrum processes on a 3-member
 * etcd, C clusters × E endpoints under pid, and every second a report for every endpoint sent to
 * every replica (as if Envoys on each replica reported load), with utilizations that drift so the
 * weights keep moving. Counts etcd's write transactions (the revision) and the watched puts by key
 * section over the measuring window, and how much etcd's database grows (what an etcd without
 * `--auto-compaction-retention` keeps until its space quota, 2 GiB by default, is full).
 *
 *   npx tsx bench/ha-etcd-writes.ts [--clusters 100] [--endpoints 20] [--seconds 60] [--compact-every-ms 0]
 *
 * `--compact-every-ms N` (at least 10000): the replicas compact etcd's history every N ms
 * (store.etcd.compactEveryMs); 0, the default here: never (as with etcd auth, where compaction
 * is left to etcd), so the growth shown is what an uncompacted etcd keeps.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Etcd3 } from 'etcd3';
import YAML from 'yaml';
import { startEtcdCluster } from '../test/support/etcd-cluster.js';
import { startReplicas, type ReplicaSet } from '../test/support/replicas.js';
import { helpIfAsked } from './help.js';
import { runMain } from './run-main.js';

helpIfAsked(import.meta.url);
const { values } = parseArgs({
  options: { clusters: { type: 'string', default: '100' }, endpoints: { type: 'string', default: '20' }, seconds: { type: 'string', default: '60' }, 'compact-every-ms': { type: 'string', default: '0' } },
});
const COMPACT_EVERY_MS = Number(values['compact-every-ms']);
if (!(COMPACT_EVERY_MS === 0 || (Number.isInteger(COMPACT_EVERY_MS) && COMPACT_EVERY_MS >= 10_000))) throw new RangeError('--compact-every-ms must be 0 or an integer >= 10000');
const C = Number(values.clusters);
const E = Number(values.endpoints);
const SECONDS = Number(values.seconds);
const PREFIX = '/fulcrum-bench';
const REPLICAS = 3;

const address = (c: number, e: number): string => `10.${(c >> 8) & 255}.${c & 255}.${e + 1}`;

function config(endpoints: readonly string[]): string {
  return YAML.stringify({
    store: { kind: 'etcd', etcd: { endpoints, prefix: PREFIX, compactEveryMs: COMPACT_EVERY_MS } },
    clusters: Array.from({ length: C }, (_, c) => ({
      name: `c${c}`,
      weighting: { policy: 'pid', setpoint: 'mean', metric: 'cpu' },
      endpoints: Array.from({ length: E }, (_, e) => ({ address: address(c, e), port: 8080, weight: 1 })),
    })),
  });
}

/** One report round: every endpoint's utilization, drifting, to every replica (batches of 500). */
async function reportRound(fleet: ReplicaSet, round: number): Promise<void> {
  const time = Date.now();
  const samples = [];
  for (let c = 0; c < C; c++) {
    for (let e = 0; e < E; e++) samples.push({ cluster: `c${c}`, endpoint: `${address(c, e)}:8080`, time, cpu: 0.3 + 0.4 * Math.abs(Math.sin((round + c + e * 7) / 9)) });
  }
  const posts: Promise<unknown>[] = [];
  for (let i = 0; i < REPLICAS; i++) {
    for (let k = 0; k < samples.length; k += 500) posts.push(fleet.api(i, 'POST', '/v1/reports', { reporter: `bench-${i}`, samples: samples.slice(k, k + 500) }));
  }
  await Promise.all(posts);
}

/** Puts seen under each section (`ha/weights`, `ha/signals`, ...) and their bytes. */
async function watchSections(client: Etcd3): Promise<{ counts: Map<string, { puts: number; bytes: number }>; cancel: () => Promise<void> }> {
  const counts = new Map<string, { puts: number; bytes: number }>();
  const watcher = await client.watch().prefix(`${PREFIX}/`).create();
  watcher.on('put', (kv) => {
    const parts = kv.key.toString().slice(PREFIX.length + 1).split('/');
    const section = parts[0] === 'ha' ? `ha/${parts[1]}` : (parts[0] ?? '?');
    const c = counts.get(section) ?? { puts: 0, bytes: 0 };
    c.puts++;
    c.bytes += kv.value.length;
    counts.set(section, c);
  });
  return { counts, cancel: () => watcher.cancel() };
}

async function main(): Promise<void> {
  const etcd = await startEtcdCluster(3);
  const client = new Etcd3({ hosts: [...etcd.endpoints] });
  let fleet: ReplicaSet | undefined;
  try {
    fleet = await startReplicas({ count: REPLICAS, config: config(etcd.endpoints), readyTimeoutMs: 180_000 });
    for (let i = 0; i < 10; i++) await reportRound(fleet, i); // warm up: owners chosen, weights moving
    const { counts, cancel } = await watchSections(client);
    const rev0 = Number((await client.get(`${PREFIX}/none`).exec()).header.revision);
    const db0 = await client.maintenance.status();
    const t0 = Date.now();
    for (let round = 10; Date.now() - t0 < SECONDS * 1000; round++) {
      const started = Date.now();
      await reportRound(fleet, round);
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
    }
    const seconds = (Date.now() - t0) / 1000;
    const rev1 = Number((await client.get(`${PREFIX}/none`).exec()).header.revision);
    const db1 = await client.maintenance.status();
    await cancel();
    const compaction = COMPACT_EVERY_MS > 0 ? `history compacted every ${COMPACT_EVERY_MS / 1000} s` : 'history never compacted';
    console.log(`${REPLICAS} replicas, ${C} clusters x ${E} endpoints, reports for every endpoint to every replica each second, ${compaction}; ${seconds.toFixed(0)} s, load ${loadavg()[0]?.toFixed(1)}`);
    console.log(`  etcd write transactions: ${((rev1 - rev0) / seconds).toFixed(1)}/s in all, ${((rev1 - rev0) / seconds / REPLICAS).toFixed(1)}/s per replica`);
    const mib = (bytes: string): number => Number(bytes) / 2 ** 20;
    const grew = mib(db1.dbSizeInUse) - mib(db0.dbSizeInUse);
    const perHour = (grew / seconds) * 3600;
    console.log(
      `  etcd database in use: ${mib(db0.dbSizeInUse).toFixed(1)} -> ${mib(db1.dbSizeInUse).toFixed(1)} MiB (file ${mib(db0.dbSize).toFixed(1)} -> ${mib(db1.dbSize).toFixed(1)} MiB): ` +
        (COMPACT_EVERY_MS > 0 ? `${grew >= 0 ? '+' : ''}${grew.toFixed(1)} MiB over the run` : `+${perHour.toFixed(0)} MiB/h, a 2 GiB quota full in ${(2048 / Math.max(perHour, 1e-9)).toFixed(1)} h`),
    );
    for (const [section, c] of [...counts].sort(([a], [b]) => a.localeCompare(b))) {
      console.log(`  ${section.padEnd(14)} ${(c.puts / seconds).toFixed(1).padStart(7)} puts/s  ${(c.bytes / seconds / 1024).toFixed(1).padStart(8)} KiB/s`);
    }
  } finally {
    client.close();
    await fleet?.stop();
    await etcd.stop();
  }
}

runMain(main);
