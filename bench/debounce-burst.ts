/**
 * Which debounce? A burst of K endpoint writes through fulcrum's admin API (as an operator script
 * or a rollout issues them), N streams watching (the Go load client, bench/go/loadclient), once
 * per debounce setting on the same catalog (100 clusters × 20 endpoints). Per burst: time from the
 * first write until each stream has the LAST write (p50/p99 over the streams), EDS pushes each
 * stream received, fulcrum's CPU over the burst, and the admin calls' own p50/p99. One table.
 *
 *   npx tsx bench/debounce-burst.ts [--streams 1000] [--settings 0/0,20/200,100/1000,250/2000]
 *   npx tsx bench/debounce-burst.ts --help
 *
 * How: the load client's one "trigger" per round is a request to a small HTTP server in this
 * process, which plays the round's burst against fulcrum and answers when the last write has
 * answered. The last write of every burst is the endpoint the load client watches, so "has the
 * watched weight" is "has the whole burst" (a push carries the catalog as it is when it is built).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildGo, clusterName, endpointAddress, freePort, integer, list, startFulcrum, type Debounce, type Server } from './gcp-fanout-servers.js';
import { quantile, type RoundLine } from './gcp-fanout-table.js';

const HELP = `bench/debounce-burst.ts: bursts of admin-API endpoint writes under several debounce settings.

Options:
  --streams N           streams watching (default 1000)
  --settings LIST       quietMs/maxMs pairs (default 0/0,20/200,100/1000,250/2000; 100/1000 is the default)
  --writes LIST         burst sizes K (default 1,10,50,200)
  --shapes LIST         serial (one client, each write as soon as the previous answered) and/or
                        concurrent (--clients writers at once); default serial,concurrent
  --clients N           writers of the concurrent shape (default 20)
  --repeats N           bursts per (K, shape) and setting (default 1)
  --delta               Delta xDS streams (default SotW)
  --clusters N, --endpoints N   catalog size (default 100 × 20)
  --keep-dir            keep the run directory (fulcrum logs and configs)
  --help

Each setting starts its own fulcrum (tsx unless dist/ is built), connects the streams once and
plays every burst; the default run takes 3-5 minutes on 2 cores. Needs Go (bench/go, built once).`;

const { values: args } = parseArgs({
  options: {
    streams: { type: 'string', default: '1000' },
    settings: { type: 'string', default: '0/0,20/200,100/1000,250/2000' },
    writes: { type: 'string', default: '1,10,50,200' },
    shapes: { type: 'string', default: 'serial,concurrent' },
    clients: { type: 'string', default: '20' },
    repeats: { type: 'string', default: '1' },
    delta: { type: 'boolean', default: false },
    clusters: { type: 'string', default: '100' },
    endpoints: { type: 'string', default: '20' },
    'keep-dir': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}

function setting(raw: string): { quietMs: number; maxMs: number } {
  const [q = '', m = ''] = raw.split('/');
  const quietMs = integer('settings', q, 0);
  const maxMs = integer('settings', m, 0);
  if (maxMs < quietMs) throw new Error(`--settings: "${raw}" has maxMs below quietMs`);
  return { quietMs, maxMs };
}
type Shape = 'serial' | 'concurrent';
function shape(raw: string): Shape {
  if (raw !== 'serial' && raw !== 'concurrent') throw new Error(`--shapes: "${raw}" is not serial or concurrent`);
  return raw;
}

const STREAMS = integer('streams', args.streams);
const SETTINGS = list(args.settings).map(setting);
const WRITES = list(args.writes).map((w) => integer('writes', w));
const SHAPES = list(args.shapes).map(shape);
const CLIENTS = integer('clients', args.clients);
const REPEATS = integer('repeats', args.repeats);
const catalog = { clusters: integer('clusters', args.clusters), endpoints: integer('endpoints', args.endpoints) };
if (Math.max(...WRITES) > catalog.clusters * catalog.endpoints) throw new Error('--writes: a burst writes each endpoint at most once; the catalog is too small');

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const uptime = (): string => `load average ${loadavg().map((x) => x.toFixed(2)).join(', ')}`;
const WEIGHT_BASE = 100;
// A burst whose last write has not reached every stream by then is reported with its count.
const TIMEOUT_S = 30;
// The watched endpoint (the last write of every burst): in the middle of the catalog.
const target = { c: Math.floor(catalog.clusters / 2), e: 3 };

interface Burst { writes: number; shape: Shape }
/** Round r of every load-client run plays SCHEDULE[r - 1]. */
const SCHEDULE: Burst[] = SHAPES.flatMap((s) => WRITES.flatMap((w) => Array.from({ length: REPEATS }, () => ({ writes: w, shape: s }))));

/** The K - 1 endpoints written before the watched one: spread over the clusters, never it. */
function burstEndpoints(k: number): { c: number; e: number }[] {
  const out: { c: number; e: number }[] = [];
  for (let i = 0; out.length < k - 1; i++) {
    const c = (target.c + 1 + i) % catalog.clusters;
    const e = Math.floor(i / catalog.clusters) % catalog.endpoints;
    if (c !== target.c || e !== target.e) out.push({ c, e });
  }
  return out;
}

/** One PATCH through fulcrum's admin API; its latency in ms. */
async function write(server: Server, at: { c: number; e: number }, weight: number): Promise<number> {
  const { trigger, body } = server.trigger(clusterName(at.c), endpointAddress(at.c, at.e), 8080);
  const [method = 'PATCH', url = ''] = trigger.split(' ');
  const t0 = performance.now();
  const res = await fetch(url, { method, headers: { 'content-type': 'application/json' }, body: body.replaceAll('{w}', String(weight)) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return performance.now() - t0;
}

/** Plays one burst; the watched endpoint is written last, after every other write answered. */
async function playBurst(server: Server, burst: Burst, weight: number): Promise<number[]> {
  const queue = burstEndpoints(burst.writes);
  const latencies: number[] = [];
  const worker = async (): Promise<void> => {
    for (let at = queue.shift(); at; at = queue.shift()) latencies.push(await write(server, at, weight));
  };
  await Promise.all(Array.from({ length: burst.shape === 'serial' ? 1 : CLIENTS }, worker));
  latencies.push(await write(server, target, weight));
  return latencies;
}

/** The load client's trigger: POST /burst?w=W plays round W - WEIGHT_BASE; API latencies kept by round. */
async function startBurstServer(server: Server, apiMs: Map<number, number[]>): Promise<{ http: HttpServer; url: string }> {
  const http = createServer((req, res) => {
    const weight = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('w'));
    const round = weight - WEIGHT_BASE;
    const burst = SCHEDULE[round - 1];
    if (!burst) return void res.writeHead(400).end(`no round ${round}`);
    playBurst(server, burst, weight).then(
      (ms) => { apiMs.set(round, ms); res.writeHead(204).end(); },
      (err: unknown) => { log(`burst ${round}: ${String(err)}`); res.writeHead(500).end(String(err)); },
    );
  });
  const port = await freePort();
  await new Promise<void>((r) => http.listen(port, '127.0.0.1', r));
  return { http, url: `http://127.0.0.1:${port}/burst?w={w}` };
}

interface PushLine extends RoundLine { round: number; pushesP50: number; pushesP99: number; pushesMax: number; allReceivedMs: number }
interface Row { setting: string; burst: Burst; line: PushLine; api: number[] }

/** One fulcrum with this debounce, the streams connected once, every burst of the schedule. */
async function runSetting(dir: string, bins: { loadclient: string }, debounce: Debounce, label: string): Promise<Row[]> {
  const server = await startFulcrum(dir, { debounce, catalog });
  const apiMs = new Map<number, number[]>();
  const burstServer = await startBurstServer(server, apiMs);
  try {
    const argv = [
      '-target', server.xds, '-streams', String(STREAMS), '-rounds', String(SCHEDULE.length), '-server-pid', String(server.pid),
      '-cluster', clusterName(target.c), '-address', endpointAddress(target.c, target.e), '-port', '8080',
      '-weight-base', String(WEIGHT_BASE), '-trigger', `POST ${burstServer.url}`, '-body', '', '-settle', '500ms', '-timeout', `${TIMEOUT_S}s`,
      ...(args.delta ? ['-delta'] : []),
    ];
    const out = await new Promise<string>((resolve, reject) => {
      // Async: this process must stay free to answer the load client's trigger.
      execFile(bins.loadclient, argv, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 15 * 60_000 }, (err, stdout, stderr) => {
        if (stderr) process.stderr.write(stderr);
        if (err) reject(new Error(`load client: ${err.message.split('\n')[0] ?? ''}`));
        else resolve(stdout);
      });
    });
    const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as PushLine);
    log(`  ${label}: synced in ${lines.find((l) => l.type === 'synced')?.ms ?? '?'} ms (${uptime()})`);
    return lines.filter((l) => l.type === 'round').map((line) => ({
      setting: label, burst: SCHEDULE[line.round - 1] ?? { writes: 0, shape: 'serial' }, line, api: apiMs.get(line.round) ?? [],
    }));
  } finally {
    burstServer.http.close();
    await server.stop();
  }
}

const f = (n: number): string => (Number.isFinite(n) ? n.toFixed(n >= 100 ? 0 : 1) : '-');

function formatTable(rows: Row[]): string {
  const head = ['debounce', 'shape', 'K', 'burst ms', 'api p50', 'api p99', 'last p50', 'last p99', 'pushes p50', 'pushes max', 'server cpu ms', 'received'];
  const body = rows.map(({ setting: s, burst, line, api }) => [
    s, burst.shape, String(burst.writes), f(line.apiMs), f(quantile(api, 0.5)), f(quantile(api, 0.99)),
    f(line.p50), f(line.p99), f(line.pushesP50), f(line.pushesMax), f(line.serverCpuMs), `${line.received}/${line.streams}${line.error ? ' ERR' : ''}`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  return [head, ...body].map((r) => r.map((c, i) => c.padStart(widths[i] ?? 0)).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const bins = buildGo(log);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-debounce-burst-'));
  log(`debounce-burst: ${catalog.clusters} × ${catalog.endpoints}, ${STREAMS} ${args.delta ? 'delta' : 'sotw'} streams, ${SCHEDULE.length} bursts per setting; before: ${uptime()}; run dir ${dir}`);
  const rows: Row[] = [];
  try {
    for (const s of SETTINGS) {
      const done = await runSetting(dir, bins, s, `${s.quietMs}/${s.maxMs}`);
      // Logged at once, so an interrupted run still leaves its figures.
      for (const r of done) log(`  row ${JSON.stringify(r)}`);
      rows.push(...done);
    }
  } finally {
    if (!args['keep-dir']) rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`\n${formatTable(rows)}\n(ms from the first write; "last" = a stream has the last write; pushes = EDS responses per stream)\nAfter the run: ${uptime()}\n`);
  process.stdout.write(`${JSON.stringify({ date: new Date().toISOString(), catalog, streams: STREAMS, rows })}\n`);
}

await main();
