/**
 * A soak: fulcrum serving a moving fleet for many minutes, its memory read after a full garbage
 * collection at the end of every round, so what it keeps of the fleets, clusters and writes that
 * came and went shows as growth from round to round. Not a test.
 *
 *   npx tsx bench/soak.ts [--minutes 20] [--round-seconds 60] [--proxies 1000] [--lrs-proxies 100]
 *     [--clusters 40] [--endpoints 20] [--churn 10] [--writes-per-second 20] [--extensions 516]
 *     [--audit-keep-last N] [--fulcrum-node-args="--max-semi-space-size=4 --v8-pool-size=1"]
 *
 * Each round, on one compiled fulcrum (dist/, started as deployed, plus --expose-gc and
 * bench/gc-on-signal.cjs so SIGUSR2 collects):
 * - a new fleet of `--proxies` ADS streams (bench/go/stormclient; SotW and Delta in turn) connects
 *   within 2 s, each with Envoy 1.40's Node and a node id of its own round (pods replaced, not
 *   restarted), stays, receiving and ACKing every push, and leaves at the round's end;
 * - a new fleet of `--lrs-proxies` load reporters (bench/go/lrsclient, ids of their own round)
 *   reports every endpoint of the first 5 clusters every 2 s, and leaves;
 * - `--churn` clusters named after the round are created and the previous round's are deleted;
 * - endpoint writes at `--writes-per-second`: weight changes, drains and re-enables, and metric
 *   report batches (POST /v1/reports) for the PID-weighted clusters.
 * Then, the fleet gone and the writes paused, the server collects twice and the round's row is
 * read: the V8 heap in use and external memory (/metrics), RSS (/proc), the size of /metrics and
 * of the data directory, the proxies still listed. The summary is the growth per round of each
 * from round 2 to the last (least squares; round 1 holds the warm-up: code, caches, pools).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildGo, clusterName, endpointAddress, integer, list, repoRoot, startFulcrum, type GoBinaries, type Server } from './gcp-fanout-servers.js';
import { helpIfAsked } from './help.js';

helpIfAsked(import.meta.url);
const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '20' },
    'round-seconds': { type: 'string', default: '60' },
    proxies: { type: 'string', default: '1000' },
    'lrs-proxies': { type: 'string', default: '100' },
    clusters: { type: 'string', default: '40' },
    endpoints: { type: 'string', default: '20' },
    churn: { type: 'string', default: '10' },
    'writes-per-second': { type: 'string', default: '20' },
    extensions: { type: 'string', default: '516' },
    /** store.auditKeepLast for the run (default: fulcrum's own). */
    'audit-keep-last': { type: 'string' },
    'fulcrum-node-args': { type: 'string', default: '--max-semi-space-size=4 --v8-pool-size=1' },
  },
});
const roundSeconds = integer('round-seconds', args['round-seconds'], 30);
const rounds = Math.max(2, Math.round((integer('minutes', args.minutes) * 60) / roundSeconds));
const proxies = integer('proxies', args.proxies, 0);
const lrsProxies = integer('lrs-proxies', args['lrs-proxies'], 0);
const clusters = integer('clusters', args.clusters, 5);
const endpoints = integer('endpoints', args.endpoints);
const churn = integer('churn', args.churn, 0);
const writesPerSecond = integer('writes-per-second', args['writes-per-second'], 0);
const extensions = integer('extensions', args.extensions, 0);
const NODE_ARGS = list(args['fulcrum-node-args'].replaceAll(' ', ','));
/** The LRS fleet reports these first clusters (lrsclient names svc-0000, …). */
const LRS_CLUSTERS = 5;
/** Of each round: the fleets stay this long, then leave, and the readings follow. */
const activeSeconds = roundSeconds - 20;

const log = (s: string): void => void process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs a Go client to its end; its last stdout line, parsed. */
function runClient(bin: string, argv: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`${bin} exited with ${code}: ${err}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1) as string) as Record<string, unknown>);
      } catch (e) {
        reject(new Error(`${bin}: no JSON line (${String(e)}): ${out.slice(-500)}`));
      }
    });
  });
}

function startFleets(bins: GoBinaries, server: Server, r: number): Promise<Record<string, unknown>>[] {
  const out: Promise<Record<string, unknown>>[] = [];
  if (proxies > 0) {
    const argv = ['-target', server.xds, '-connections', String(proxies), '-within', '2s', '-extensions', String(extensions)];
    argv.push('-hold', `${activeSeconds - 4}s`, '-node-prefix', `soak-r${r}`, '-timeout', `${activeSeconds}s`);
    if (r % 2 === 1) argv.push('-delta');
    out.push(runClient(bins.stormclient, argv));
  }
  if (lrsProxies > 0) {
    const argv = ['-target', server.xds, '-proxies', String(lrsProxies), '-clusters', String(LRS_CLUSTERS), '-endpoints', String(endpoints)];
    argv.push('-extensions', String(extensions), '-warmup', '0s', '-duration', `${activeSeconds}s`, '-node-prefix', `lrs-r${r}`);
    out.push(runClient(bins.lrsclient, argv));
  }
  return out;
}

interface WriteCounts {
  ok: number;
  failed: number;
  lastFailure: string;
}

async function call(admin: string, method: string, path: string, body: unknown, counts: WriteCounts): Promise<void> {
  try {
    const res = await fetch(`${admin}${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    await res.arrayBuffer();
    if (res.ok) counts.ok++;
    else {
      counts.failed++;
      counts.lastFailure = `${method} ${path}: ${res.status}`;
    }
  } catch (e) {
    counts.failed++;
    counts.lastFailure = `${method} ${path}: ${String(e)}`;
  }
}

/** The write of number `n`: mostly weight changes, a drain and its re-enable now and then, and report batches. */
function writeAt(admin: string, n: number, counts: WriteCounts): Promise<void> {
  const c = n % clusters;
  const e = Math.floor(n / clusters) % endpoints;
  const ep = `/v1/clusters/${clusterName(c)}/endpoints/${endpointAddress(c, e)}/8080`;
  switch (n % 10) {
    case 3:
      return call(admin, 'POST', `${ep}/drain`, undefined, counts);
    case 4:
      return call(admin, 'POST', `${ep}/enable`, undefined, counts);
    case 5:
    case 6: {
      const samples = Array.from({ length: endpoints }, (_, i) => ({ cluster: clusterName(c), endpoint: `${endpointAddress(c, i)}:8080`, cpu: 0.2 + 0.6 * ((n * 7 + i * 13) % 100) / 100, latencyMs: 5 + (i % 7) }));
      return call(admin, 'POST', '/v1/reports', { reporter: 'soak', samples }, counts);
    }
    default:
      return call(admin, 'PATCH', ep, { weight: 1 + (n % 97) }, counts);
  }
}

/** Writes at the set rate until `stop()` is called (one at a time: a slow server slows the writer). */
function startWriter(admin: string, counts: WriteCounts): { stop: () => Promise<void> } {
  let stopped = false;
  let n = 0;
  const done = (async () => {
    const gap = writesPerSecond > 0 ? 1000 / writesPerSecond : Infinity;
    while (!stopped && gap !== Infinity) {
      const t0 = Date.now();
      await writeAt(admin, n++, counts);
      await sleep(Math.max(0, gap - (Date.now() - t0)));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

const churnName = (r: number, k: number): string => `soak-r${r}-c${k}`;

/** Creates this round's churn clusters and deletes the previous round's. */
async function churnClusters(admin: string, r: number, counts: WriteCounts): Promise<void> {
  for (let k = 0; k < churn; k++) {
    const eps = Array.from({ length: endpoints }, (_, e) => ({ address: `10.200.${(r * churn + k) % 256}.${e + 1}`, port: 9090, weight: 1 }));
    await call(admin, 'PUT', `/v1/clusters/${churnName(r, k)}`, { name: churnName(r, k), endpoints: eps, weighting: { policy: 'ewma' } }, counts);
    if (r > 1) await call(admin, 'DELETE', `/v1/clusters/${churnName(r - 1, k)}`, undefined, counts);
  }
}

/**
 * Until the served CDS holds this round's churn clusters and none of the last round's: a write's
 * 200 comes before its debounced publish, and a proxy that connected in between would ask for
 * assignments of clusters about to go (the storm client counts a proxy synced once every cluster
 * of its first CDS has its assignment, so it would wait for ever; an Envoy drops them).
 */
async function churnServed(admin: string, r: number): Promise<void> {
  if (churn === 0) return;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = await (await fetch(`${admin}/v1/config_dump?type=CDS`)).text();
    const ours = [...Array(churn).keys()].every((k) => text.includes(`"${churnName(r, k)}"`));
    const gone = r === 1 || [...Array(churn).keys()].every((k) => !text.includes(`"${churnName(r - 1, k)}"`));
    if (ours && gone) return;
    if (Date.now() > deadline) throw new Error(`round ${r}: the churn clusters were not served within 30 s`);
    await sleep(50);
  }
}

async function metricsText(admin: string): Promise<string> {
  const res = await fetch(`${admin}/metrics`);
  return res.text();
}

function gauge(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024;
}

function bytesUnder(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    total += entry.isDirectory() ? bytesUnder(p) : statSync(p).size;
  }
  return total;
}

async function listedProxies(admin: string): Promise<number> {
  const res = await fetch(`${admin}/v1/proxies?limit=1`);
  return ((await res.json()) as { count: number }).count;
}

interface Row {
  round: number;
  protocol: string;
  synced: string;
  lrsReports: number;
  writes: string;
  heapMiB: number;
  externalMiB: number;
  rssMiB: number;
  metricsLines: number;
  metricsKiB: number;
  dataMiB: number;
  proxiesListed: number;
  load: number;
}

/** Waits for the fleet's streams to be gone from the server, then collects twice and reads. */
async function readRound(server: Server, dataDir: string): Promise<Omit<Row, 'round' | 'protocol' | 'synced' | 'lrsReports' | 'writes' | 'load'>> {
  const admin = server.admin as string;
  const deadline = Date.now() + 30_000;
  let listed = await listedProxies(admin);
  while (listed > 0 && Date.now() < deadline) {
    await sleep(250);
    listed = await listedProxies(admin);
  }
  for (let i = 0; i < 2; i++) {
    process.kill(server.pid, 'SIGUSR2');
    await sleep(1_500);
  }
  const text = await metricsText(admin);
  return {
    heapMiB: gauge(text, 'nodejs_heap_size_used_bytes') / 2 ** 20,
    externalMiB: gauge(text, 'nodejs_external_memory_bytes') / 2 ** 20,
    rssMiB: rssMiB(server.pid),
    metricsLines: text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length,
    metricsKiB: Buffer.byteLength(text) / 1024,
    dataMiB: bytesUnder(dataDir) / 2 ** 20,
    proxiesListed: listed,
  };
}

/** Least-squares slope of ys over their index. */
function slope(ys: readonly number[]): number {
  const n = ys.length;
  const mx = (n - 1) / 2;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  ys.forEach((y, x) => {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  });
  return den === 0 ? 0 : num / den;
}

const f1 = (x: number): string => x.toFixed(1);

function printRows(rows: readonly Row[]): void {
  console.log(
    `soak: ${rounds} rounds of ${roundSeconds} s; each round ${proxies} ADS proxies (new ids, Node of ${extensions} extensions, SotW and Delta in turn), ` +
      `${lrsProxies} LRS reporters, ${churn} clusters created and deleted, ${writesPerSecond} writes/s; ${clusters} clusters × ${endpoints} endpoints; ` +
      `fulcrum node ${NODE_ARGS.join(' ')}${args['audit-keep-last'] !== undefined ? `, auditKeepLast ${args['audit-keep-last']}` : ''}; readings after the fleet left and two full GCs`,
  );
  console.log('| round | protocol | synced | LRS reports | writes ok/failed | heap MiB | external MiB | RSS MiB | /metrics series | /metrics KiB | data MiB | proxies listed | load |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.round} | ${r.protocol} | ${r.synced} | ${r.lrsReports} | ${r.writes} | ${f1(r.heapMiB)} | ${f1(r.externalMiB)} | ${f1(r.rssMiB)} | ${r.metricsLines} | ${f1(r.metricsKiB)} | ${r.dataMiB.toFixed(2)} | ${r.proxiesListed} | ${r.load.toFixed(1)} |`,
    );
  }
  const steady = rows.slice(1);
  if (steady.length < 2) return;
  const per = (k: keyof Row): number => slope(steady.map((r) => r[k] as number));
  const perHour = 3600 / roundSeconds;
  console.log(
    `growth per round from round 2 (per hour): heap ${per('heapMiB').toFixed(3)} MiB (${f1(per('heapMiB') * perHour)}), ` +
      `external ${per('externalMiB').toFixed(3)} MiB (${f1(per('externalMiB') * perHour)}), RSS ${per('rssMiB').toFixed(3)} MiB (${f1(per('rssMiB') * perHour)}), ` +
      `/metrics series ${per('metricsLines').toFixed(1)} (${f1(per('metricsLines') * perHour)}), data ${per('dataMiB').toFixed(3)} MiB (${f1(per('dataMiB') * perHour)})`,
  );
  console.log(JSON.stringify({ bench: 'soak', rounds: rows }));
}

async function main(): Promise<void> {
  const bins = buildGo(log);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-soak-'));
  const rows: Row[] = [];
  const server = await startFulcrum(dir, {
    debounce: 'default',
    catalog: { clusters, endpoints, weighting: { policy: 'pid', setpoint: 'mean', metric: 'cpu' } },
    label: 'soak',
    lrsIntervalMs: 2000,
    ...(args['audit-keep-last'] !== undefined ? { auditKeepLast: integer('audit-keep-last', args['audit-keep-last'], 0) } : {}),
    nodeArgs: [...NODE_ARGS, '--expose-gc', '--require', join(repoRoot, 'bench/gc-on-signal.cjs')],
  });
  const dataDir = join(dir, 'fulcrum-default-soak', 'data');
  try {
    for (let r = 1; r <= rounds; r++) {
      const counts: WriteCounts = { ok: 0, failed: 0, lastFailure: '' };
      await churnClusters(server.admin as string, r, counts);
      await churnServed(server.admin as string, r);
      const writer = startWriter(server.admin as string, counts);
      const [storm, lrs] = await Promise.all(startFleets(bins, server, r)).finally(() => writer.stop());
      await writer.stop();
      if (counts.failed > 0) log(`round ${r}: ${counts.failed} writes failed, the last ${counts.lastFailure}`);
      const outcomes = (storm?.outcomes ?? {}) as Record<string, number>;
      const others = Object.entries(outcomes).filter(([k, n]) => k !== 'synced' && n > 0);
      if (others.length > 0) log(`round ${r}: not synced ${JSON.stringify(Object.fromEntries(others))} ${JSON.stringify(storm?.details ?? {})}`);
      const reading = await readRound(server, dataDir);
      const row: Row = {
        round: r,
        protocol: r % 2 === 1 ? 'Delta' : 'SotW',
        synced: `${outcomes.synced ?? 0}/${proxies}`,
        lrsReports: Number(lrs?.reports ?? 0),
        writes: `${counts.ok}/${counts.failed}`,
        ...reading,
        load: loadavg()[0] as number,
      };
      rows.push(row);
      log(JSON.stringify(row));
    }
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  printRows(rows);
}

await main();
