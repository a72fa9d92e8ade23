/**
 * The admin write path at scale (issue 13): a store holding 1,000 clusters × 100 endpoints, then
 * - single endpoint writes: PUT (a weight change) and drain/enable, sequential, p50/p99/max;
 * - propagation: from the PUT until a SotW ADS stream subscribed to that cluster's EDS has it;
 * - cluster creates and DELETEs (--cluster-writes, of --endpoints each, named among the seeded
 *   ones), p50/p99/max, with the probes below running over the whole series;
 * - stalls: while one big write runs (a 20k-endpoint cluster PUT, then the same set through the
 *   bulk endpoint API), GET /healthz and an xDS Fetch (EDS of one cluster) are sent every 10 ms;
 *   the worst latency of each is how long a request waited behind the write. The probes run in a
 *   process of their own (bench/admin-probes.ts), since this one builds, sends and reads the 1 MB
 *   writes; `--probes here` runs them on this process's loop, as every figure before engine18 was;
 * - first requests: the first endpoint PUT and PATCH after /readyz, `--settle-ms` later (route
 *   schemas compile lazily; a build that warms them once ready has them compiled by then);
 * - the 20k cluster PUT twice more (weights changed): the first (201) and second (the first 200)
 *   paid one-time compilations of their answer's serializer (fast-json-stringify compiled the
 *   validators of anyOf branches on first use, until union10 left no anyOf in any answer's
 *   serializer); the third shows a warm process.
 * - after them, the first of each other kind of write or heavy read: DELETE of the big cluster,
 *   an audit page, /metrics (each probed as the big writes are); /metrics twice more (a warm
 *   scrape) and its size; then the big cluster created and deleted twice more (later DELETEs),
 *   and a DELETE of a cluster of `--endpoints`.
 * fulcrum runs as its own process, so the client's timers are not stalled with the server: the
 * compiled build (dist/main.js, what `npm start` and the image run; built first when stale), or
 * with `--sources` src/main.ts through tsx (every admin-100k figure in bench/RESULTS.md before the
 * tenth pass was taken so, and reads slower than the build: "tail10"). The store is seeded
 * directly (SQLite) before it starts. `--repo DIR` runs the server of another checkout (its dist/
 * or src/, and node_modules) under this script, for side-by-side runs of the same stages.
 * Every stage's window (wall clock, ms since the epoch) is printed as `window START MS LABEL` for
 * bench/admin-slow-writes.ts --bench-out (the longest stall behind each).
 *
 *   npx tsx bench/admin-100k.ts [--clusters 1000] [--endpoints 100] [--writes 200] [--big 20000] [--cluster-writes 20]
 *                               [--debounce-ms 0] [--engine-tick-ms MS] [--settle-ms 3000] [--cpu-prof DIR]
 *                               [--repo DIR] [--sources] [--probes child|here]
 *                               [--node-args=--max-semi-space-size=4,--v8-pool-size=1,...]  (as `npm start` runs it)
 *
 * `--big 0` skips the big writes: with `--settle-ms 20000` the audit page and /metrics stages then
 * run on a process whose warm-up (write schemas compiled while the loop is quiet) is over.
 */
import { fork, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { openStore } from '../src/catalog/store/store.js';
import { parseClusterBody } from '../src/admin/resources.js';
import { startFulcrumProcess, type FulcrumProcess } from '../test/support/fulcrum-process.js';
import { killOnExit } from '../test/support/proc.js';
import { Probes, type ProbeResult } from './admin-probes.js';
import { EDS, XdsClient, type DiscoveryResponse, type SotwStream } from '../test/support/xds-client.js';

const USAGE = 'usage: npx tsx bench/admin-100k.ts [--clusters N] [--endpoints N] [--writes N] [--big N] [--cluster-writes N] [--debounce-ms MS] [--engine-tick-ms MS] [--settle-ms MS] [--cpu-prof DIR] [--repo DIR] [--sources] [--probes child|here] [--node-args=A,B]\n';
const { values } = parseArgs({
  options: {
    clusters: { type: 'string', default: '1000' },
    endpoints: { type: 'string', default: '100' },
    writes: { type: 'string', default: '200' },
    big: { type: 'string', default: '20000' },
    'cluster-writes': { type: 'string', default: '20' },
    'debounce-ms': { type: 'string', default: '0' },
    'engine-tick-ms': { type: 'string' },
    'settle-ms': { type: 'string', default: '3000' },
    'cpu-prof': { type: 'string' },
    repo: { type: 'string' },
    sources: { type: 'boolean', default: false },
    'node-args': { type: 'string', default: '' },
    probes: { type: 'string', default: 'child' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (values.probes !== 'child' && values.probes !== 'here') {
  process.stderr.write(`--probes: child or here, not ${values.probes}\n${USAGE}`);
  process.exit(2);
}
const CLUSTERS = Number(values.clusters);
const PER_CLUSTER = Number(values.endpoints);
const WRITES = Number(values.writes);
const BIG = Number(values.big);
const CLUSTER_WRITES = Number(values['cluster-writes']);

const clusterName = (i: number): string => `c-${String(i).padStart(4, '0')}`;
const address = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const endpointEntry = (i: number, weight = 1) => ({ address: address(i), port: 8080, weight, locality: { region: 'r1', zone: `z${i % 3}` } });

interface Summary {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

function summarize(ms: readonly number[]): Summary {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] ?? Number.NaN };
}

/** Writes the catalog straight into the SQLite file, one transaction per cluster, before fulcrum starts. */
/**
 * Unless --sources: the server runs `repo`'s compiled build (test/support/fulcrum-command.ts reads
 * FULCRUM_TEST_DIST), built first when src/ is newer, as `npm start` does.
 */
function useBuild(repo: string): void {
  if (values.sources) return void process.stdout.write('server: src/main.ts through tsx (--sources)\n');
  const build = spawnSync(process.execPath, ['scripts/build-if-stale.mjs'], { cwd: repo, stdio: ['ignore', 'inherit', 'inherit'] });
  if (build.status !== 0) throw new Error(`${repo}: npm run build failed`);
  process.env.FULCRUM_TEST_DIST = '1';
  process.stdout.write('server: dist/main.js (the compiled build, as npm start runs it)\n');
}

function seed(dataDir: string): void {
  const store = openStore(dataDir);
  try {
    for (let c = 0; c < CLUSTERS; c++) {
      const endpoints = Array.from({ length: PER_CLUSTER }, (_, i) => endpointEntry(c * PER_CLUSTER + i));
      // The admin API's own parser: the cluster is stored exactly as a PUT would store it.
      store.putCluster(parseClusterBody({ lbPolicy: 'ROUND_ROBIN', endpoints }, clusterName(c)), { actor: 'bench', owner: 'api' });
    }
  } finally {
    store.close();
  }
}

/** Each measured stage's wall-clock window, for bench/admin-slow-writes.ts. */
const windows: string[] = [];

/** Runs `work`, recording its window under `label`. */
async function windowed<T>(label: string, work: () => Promise<T>): Promise<T> {
  const start = Date.now();
  try {
    return await work();
  } finally {
    windows.push(`window ${start} ${Date.now() - start} ${label}`);
  }
}

class Admin {
  constructor(private readonly base: string) {}

  /** The size (bytes) of the body of GET `path`'s answer. */
  async size(path: string): Promise<number> {
    const res = await fetch(`${this.base}${path}`);
    return Buffer.byteLength(await res.text());
  }

  async call(method: string, path: string, body?: unknown): Promise<number> {
    const started = performance.now();
    const init: RequestInit = body === undefined ? { method } : { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
    const res = await fetch(`${this.base}${path}`, init);
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
    return performance.now() - started;
  }
}

/** Sequential weight changes on endpoints spread over the catalog, each also timed until a subscribed stream has it. */
async function endpointPuts(admin: Admin, stream: SotwStream, watched: string): Promise<{ put: Summary; propagated: Summary }> {
  const put: number[] = [];
  const propagated: number[] = [];
  for (let w = 0; w < WRITES; w++) {
    const c = w % 2 === 0 ? 0 : (w * 7919) % CLUSTERS;
    const e = c * PER_CLUSTER + (w % PER_CLUSTER);
    const started = performance.now();
    const arrived = c === 0 ? stream.next((r) => r.type_url === EDS, 60_000) : undefined;
    // Each pass over the cluster's endpoints shifts the weights by one, so a repeated endpoint always
    // changes (an unchanged PUT pushes nothing, and the watched stream would wait in vain).
    const weight = 2 + ((w + Math.floor(w / PER_CLUSTER)) % 50);
    put.push(await admin.call('PUT', `/v1/clusters/${clusterName(c)}/endpoints/${address(e)}/8080`, { weight }));
    if (arrived) {
      const resp: DiscoveryResponse = await arrived;
      propagated.push(performance.now() - started);
      stream.request(EDS, [watched], { version_info: resp.version_info, response_nonce: resp.nonce });
    }
  }
  return { put: summarize(put), propagated: summarize(propagated) };
}

async function drains(admin: Admin): Promise<Summary> {
  const ms: number[] = [];
  for (let w = 0; w < WRITES; w++) {
    const c = (w * 104_729) % CLUSTERS;
    const path = `/v1/clusters/${clusterName(c)}/endpoints/${address(c * PER_CLUSTER + 1)}/8080`;
    ms.push(await admin.call('POST', `${path}/${w % 2 === 0 ? 'drain' : 'enable'}`));
  }
  return summarize(ms);
}

/** The probes of one stage: in the child process (bench/admin-probes.ts), or with `--probes here` on this process's loop. */
interface Prober {
  /** Probes while `write` (started by this call, once probing has begun) runs. */
  during(write: () => Promise<unknown>): Promise<{ healthz: Summary; fetched: Summary; ownStallMs: number }>;
  close(): void;
}

/** The results of a stage's probes, or the first probe's failure. */
function summarized(r: Partial<ProbeResult>): { healthz: Summary; fetched: Summary; ownStallMs: number } {
  if (r.error !== undefined || !r.healthz || !r.fetched) throw new Error(`probes: ${r.error ?? 'no result'}`);
  return { healthz: summarize(r.healthz), fetched: summarize(r.fetched), ownStallMs: r.ownStallMs ?? Number.NaN };
}

/** The same probes on this process's own loop, which also builds, sends and reads the big writes (the figures before engine18). */
async function proberHere(server: FulcrumProcess): Promise<Prober> {
  const probes = new Probes(`http://127.0.0.1:${server.adminPort}`, server.xdsPort, clusterName(1));
  await probes.warm();
  return {
    async during(write) {
      probes.start();
      const work = write();
      await work.catch(() => undefined);
      const r = await probes.stop();
      await work;
      return summarized(r);
    },
    close: () => probes.close(),
  };
}

/** Probes in a child process of their own, started once (its tsx loader inherited through execArgv). */
async function proberChild(server: FulcrumProcess): Promise<Prober> {
  const child = fork(fileURLToPath(new URL('admin-probes.ts', import.meta.url)), [String(server.adminPort), String(server.xdsPort), clusterName(1)], { stdio: 'inherit' });
  killOnExit(child, 'SIGTERM');
  const replies: { resolve: (msg: Record<string, unknown>) => void; reject: (err: Error) => void }[] = [];
  child.on('message', (msg: Record<string, unknown>) => replies.shift()?.resolve(msg));
  // A prober that dies fails the stage waiting on it, rather than leaving the bench waiting forever.
  let exited: Error | undefined;
  child.once('exit', (code, signal) => {
    exited = new Error(`probes exited (${signal ?? `code ${String(code)}`})`);
    for (const r of replies.splice(0)) r.reject(exited);
  });
  const reply = (): Promise<Record<string, unknown>> => new Promise((resolve, reject) => (exited ? reject(exited) : replies.push({ resolve, reject })));
  // Sending to a prober that is gone throws here (and fails the stage), not as an 'error' event.
  child.on('error', () => undefined);
  const send = (msg: object): void => {
    if (exited || !child.connected) throw exited ?? new Error('probes: channel closed');
    child.send(msg);
  };
  await reply(); // ready
  return {
    async during(write) {
      // The answer comes in a later turn: waiting for it after sending misses nothing.
      send({ start: true });
      await reply();
      const work = write();
      await work.catch(() => undefined);
      send({ stop: true });
      const r = (await reply()) as Partial<ProbeResult>;
      await work;
      return summarized(r);
    },
    close: () => child.disconnect(),
  };
}

let prober: Prober;

/**
 * --cluster-writes N clusters of --endpoints created (PUT, 201) and deleted one after another, each
 * named to sort among the seeded ones (an insertion in the middle of the catalog's order, as
 * Kubernetes discovery adds services), with the probes running over the whole series.
 */
async function clusterWrites(label: string, admin: Admin): Promise<string[]> {
  const created: number[] = [];
  const deleted: number[] = [];
  const series = async (): Promise<number> => {
    const started = performance.now();
    for (let w = 0; w < CLUSTER_WRITES; w++) {
      const name = `${clusterName((w * 389) % CLUSTERS)}-new`;
      const endpoints = Array.from({ length: PER_CLUSTER }, (_, i) => endpointEntry(CLUSTERS * PER_CLUSTER + BIG + w * PER_CLUSTER + i));
      created.push(await admin.call('PUT', `/v1/clusters/${name}`, { endpoints }));
      deleted.push(await admin.call('DELETE', `/v1/clusters/${name}`));
    }
    return performance.now() - started;
  };
  const { healthz, fetched, ownStallMs } = await prober.during(() => windowed(label, series));
  await new Promise((resolve) => setTimeout(resolve, 600));
  return [
    row(`cluster create, ${PER_CLUSTER} endpoints`, summarize(created)),
    row(`cluster DELETE, ${PER_CLUSTER} endpoints`, summarize(deleted)),
    row(`${label}: GET /healthz meanwhile`, healthz),
    row(`${label}: xDS Fetch EDS meanwhile`, fetched),
    `| ${label}: the prober's own longest loop delay | 1 | ${ownStallMs.toFixed(1)} | | |`,
  ];
}

async function stallDuring(label: string, write: () => Promise<number>): Promise<string[]> {
  let writeMs = 0;
  const { healthz, fetched, ownStallMs } = await prober.during(() => windowed(label, write).then((t) => (writeMs = t)));
  // The stage's window ends 500 ms after its answer (admin-slow-writes.ts): the next starts after that.
  await new Promise((resolve) => setTimeout(resolve, 600));
  return [
    `| ${label}: the write itself | 1 | ${writeMs.toFixed(0)} | | |`,
    row(`${label}: GET /healthz meanwhile`, healthz),
    row(`${label}: xDS Fetch EDS meanwhile`, fetched),
    `| ${label}: the prober's own longest loop delay | 1 | ${ownStallMs.toFixed(1)} | | |`,
  ];
}

/** One measurement whose failure (e.g. a route the build under test lacks) is reported, not fatal. */
async function stage(label: string, run: (label: string) => Promise<string[]>): Promise<string[]> {
  try {
    return await run(label);
  } catch (err) {
    return [`| ${label}: failed (${(err as Error).message.slice(0, 80).replaceAll('|', '/')}) | | | | |`];
  }
}

function row(label: string, s: Summary): string {
  return `| ${label} | ${s.n} | ${s.p50.toFixed(1)} | ${s.p99.toFixed(1)} | ${s.max.toFixed(1)} |`;
}

/** The first endpoint PUT and PATCH of the process (on clusters the later stages do not use first). */
async function firstRequests(admin: Admin): Promise<string[]> {
  await new Promise((resolve) => setTimeout(resolve, Number(values['settle-ms'])));
  const c = clusterName(CLUSTERS - 1);
  const e = (CLUSTERS - 1) * PER_CLUSTER;
  const put = await windowed('first endpoint PUT', () => admin.call('PUT', `/v1/clusters/${c}/endpoints/${address(e)}/8080`, { weight: 7 }));
  const patch = await windowed('first endpoint PATCH', () => admin.call('PATCH', `/v1/clusters/${c}/endpoints/${address(e + 1)}/8080`, { weight: 7 }));
  return [`| first endpoint PUT after ready (+${values['settle-ms']} ms) | 1 | ${put.toFixed(1)} | | |`, `| first endpoint PATCH after it | 1 | ${patch.toFixed(1)} | | |`];
}

async function measure(server: FulcrumProcess): Promise<string[]> {
  const admin = new Admin(`http://127.0.0.1:${server.adminPort}`);
  const xds = XdsClient.forPort(server.xdsPort);
  prober = values.probes === 'here' ? await proberHere(server) : await proberChild(server);
  try {
    const firstCalls = await firstRequests(admin);
    const watched = clusterName(0);
    const stream = xds.sotw();
    stream.request(EDS, [watched], { node: { id: 'bench-proxy', cluster: 'bench' } });
    const first = await stream.next((r) => r.type_url === EDS, 120_000);
    stream.request(EDS, [watched], { version_info: first.version_info, response_nonce: first.nonce });
    const { put, propagated } = await windowed(`${WRITES} endpoint PUTs`, () => endpointPuts(admin, stream, watched));
    const drain = await windowed(`${WRITES} drains / enables`, () => drains(admin));
    const lines = [...firstCalls, row('endpoint PUT (weight change)', put), row('  … until the EDS stream has it', propagated), row('drain / enable', drain)];
    if (CLUSTER_WRITES > 0) lines.push(...(await stage(`${CLUSTER_WRITES} cluster creates and DELETEs`, (label) => clusterWrites(label, admin))));
    if (BIG > 0) lines.push(...(await bigWrites(admin)));
    lines.push(...(await stage('first audit page (limit 100)', (label) => stallDuring(label, () => admin.call('GET', '/v1/audit?limit=100')))));
    for (const nth of ['first', 'second', 'third']) {
      lines.push(...(await stage(`${nth} GET /metrics`, (label) => stallDuring(label, () => admin.call('GET', '/metrics')))));
    }
    lines.push(`| GET /metrics: answer size (bytes) | 1 | ${await admin.size('/metrics')} | | |`);
    lines.push(...(await laterDeletes(admin)));
    return lines;
  } finally {
    prober.close();
    xds.close();
  }
}

/** The big cluster's endpoints: address, port and weight only (20k such entries are the largest cluster PUT under the 1 MiB body limit). */
const bigEndpoints = (): { address: string; port: number; weight: number }[] =>
  Array.from({ length: BIG }, (_, i) => ({ address: address(CLUSTERS * PER_CLUSTER + i), port: 8080, weight: 1 + (i % 5) }));

/** The big writes' stages (--big N endpoints; skipped with --big 0). */
async function bigWrites(admin: Admin): Promise<string[]> {
  const big = bigEndpoints();
  const lines: string[] = [];
  lines.push(...(await stage(`cluster PUT, ${BIG} endpoints`, (label) => stallDuring(label, () => admin.call('PUT', '/v1/clusters/big', { endpoints: big })))));
  // The first re-weight is the route's first 200 answer (the create was a 201): both compile their serializer's validators once.
  for (const [n, label] of [[5, 'again (first 200)'], [6, 'a third time']] as const) {
    const reweighted = big.map((e) => ({ ...e, weight: e.weight + n }));
    lines.push(...(await stage(`cluster PUT ${label}, ${BIG} re-weighted`, (l) => stallDuring(l, () => admin.call('PUT', '/v1/clusters/big', { endpoints: reweighted })))));
  }
  const bulk = big.map((e) => ({ ...e, weight: e.weight + 1 }));
  const bulkPath = '/v1/clusters/big/endpoints';
  lines.push(...(await stage(`bulk endpoint PUT, ${BIG} endpoints`, (label) => stallDuring(label, () => admin.call('PUT', bulkPath, { endpoints: bulk })))));
  // An operator draining one endpoint of the big cluster (and enabling it again): one row written,
  // but the cluster's whole assignment re-encoded, its engine and signal state set again.
  const one = `/v1/clusters/big/endpoints/${big[BIG >> 1]?.address ?? ''}/8080`;
  for (const action of ['drain', 'enable']) {
    lines.push(...(await stage(`${action} of one endpoint of the ${BIG}-endpoint cluster`, (label) => stallDuring(label, () => admin.call('POST', `${one}/${action}`)))));
  }
  lines.push(...(await stage(`DELETE of the ${BIG}-endpoint cluster`, (label) => stallDuring(label, () => admin.call('DELETE', '/v1/clusters/big')))));
  return lines;
}

/** The big cluster created and deleted twice more (a warm process's DELETE; not with --big 0), then a DELETE of one of the 100-endpoint clusters. */
async function laterDeletes(admin: Admin): Promise<string[]> {
  const big = bigEndpoints();
  const lines: string[] = [];
  for (const nth of BIG > 0 ? ['second', 'third'] : []) {
    lines.push(...(await stage(`cluster PUT, ${BIG} endpoints, before the ${nth} DELETE`, (label) => stallDuring(label, () => admin.call('PUT', '/v1/clusters/big', { endpoints: big })))));
    lines.push(...(await stage(`${nth} DELETE of the ${BIG}-endpoint cluster`, (label) => stallDuring(label, () => admin.call('DELETE', '/v1/clusters/big')))));
  }
  const small = clusterName(CLUSTERS - 2);
  lines.push(...(await stage(`DELETE of a ${PER_CLUSTER}-endpoint cluster`, (label) => stallDuring(label, () => admin.call('DELETE', `/v1/clusters/${small}`)))));
  return lines;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-admin-100k-'));
  const config = join(dir, 'fulcrum.yaml');
  const debounce = Number(values['debounce-ms']);
  // --engine-tick-ms 600000 keeps the weight engine's tick over 100k endpoints out of the write path's figures.
  const tick = values['engine-tick-ms'] === undefined ? '' : `  engine:\n    tickMs: ${Number(values['engine-tick-ms'])}\n`;
  writeFileSync(config, `server:\n  logLevel: info\n${tick}  xds:\n    debounceQuietMs: ${debounce}\n    debounceMaxMs: ${Math.max(debounce, 1)}\nclusters: []\n`);
  const seeded = performance.now();
  seed(join(dir, 'data'));
  process.stdout.write(`seeded ${CLUSTERS} clusters × ${PER_CLUSTER} endpoints in ${((performance.now() - seeded) / 1000).toFixed(1)} s\n`);
  const prof = values['cpu-prof'];
  const nodeArgs = values['node-args'].split(',').filter((a) => a !== '');
  useBuild(values.repo ?? process.cwd());
  const server = await startFulcrumProcess({ ...(values.repo ? { cwd: values.repo } : {}), config, dataDir: join(dir, 'data'), nodeOptions: [...nodeArgs, ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [])], startMs: 300_000 });
  try {
    const lines = await measure(server);
    process.stdout.write(`load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}; server RSS ${(server.rss() / 2 ** 20).toFixed(0)} MiB\n`);
    process.stdout.write(`| what | n | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|\n${lines.join('\n')}\n`);
    process.stdout.write(`${windows.join('\n')}\n`);
  } finally {
    // SIGTERM: a clean exit, so --cpu-prof writes its profile.
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
