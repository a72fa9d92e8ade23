/**
 * Side-by-side fan-out: fulcrum against go-control-plane v0.14.0 (SnapshotCache with one node key
 * for the fleet, and LinearCache), driven by one Go load client (bench/go/loadclient), on the
 * same content (100 clusters × 20 endpoints: fulcrum's own CDS and EDS responses, replayed by
 * bench/go/gcpserver). Each round changes one endpoint weight through the server's own API
 * (fulcrum: PATCH on the admin API) and times trigger → each stream receiving the changed
 * ClusterLoadAssignment. Prints one table (medians over the rounds) and a JSON line.
 *
 *   npx tsx bench/gcp-fanout.ts [--streams 1000,5000,10000] [--protocols sotw,delta] [--rounds 3]
 *   npx tsx bench/gcp-fanout.ts --help
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildGo, clusterName, endpointAddress, integer, list, startFulcrum, startGcp, type GoBinaries, type Server } from './gcp-fanout-servers.js';
import { formatTable, summarize, type Row, type RoundLine } from './gcp-fanout-table.js';
import { processCpuMs } from './proc-cpu.js';

const HELP = `bench/gcp-fanout.ts: fulcrum vs go-control-plane fan-out, one Go load client for both.

  --streams LIST        stream counts for the fan-out rows (default 1000,5000,10000; "" for none)
  --protocols LIST      sotw,delta (default both)
  --servers LIST        fulcrum,linear,snapshot (default); add fulcrum-default to run the fan-out
                        rows with fulcrum's default debounce too
  --rounds N            weight changes per row (default 3)
  --single-rounds N     rounds of the single-proxy rows (default 100; 0 skips them), after one
                        warm-up change each (logged, not in the row) and once every server is
                        idle. Those rows run fulcrum with debounce 0 and with the default debounce
                        (and fulcrum-base when listed in --servers)
  --clusters N, --endpoints N   catalog size (default 100 × 20)
  --subscribe-fraction F        each simulated proxy asks EDS for this fraction of the clusters, a
                        subset of its own (default 1: every cluster, as Envoy does; e.g. 0.05 at 1,000
                        clusters: ~50 each, as proxyless gRPC clients naming their services). A change
                        must then reach the streams whose subset holds the watched cluster
                        ("received" counts of those)
  --connect-concurrency N       streams connecting at once (default 200)
  --settle-ms N         pause before each fan-out row, after every server went idle (default 15000): a
                        row right after a 10,000-stream row read ~30-40 % slower, server and client
                        CPU alike (bench/RESULTS.md, fan16)
  --keep-dir            keep the run directory (logs, configs, the dump)
  --fulcrum-node-args=S node options for the fulcrum processes, space-separated (e.g. --fulcrum-node-args=
                        "--cpu-prof --cpu-prof-dir=/tmp/prof": a profile per process, written at exit)
  --base DIR            another checkout (with node_modules) to run as "fulcrum base": list it in
                        --servers as fulcrum-base for a before/after in the same run
  --base-node-args=S    node options for fulcrum base instead of --fulcrum-node-args (with --base
                        this checkout, an A/B of node options on the same code)
  --help

The default run takes 15-35 minutes on 2 loaded cores. Each finished row is logged to stderr
("  row {...}") as it completes.

Needs Go (builds bench/go once per source hash into .tools/bench-go/). Each Envoy is one HTTP/2
connection with one ADS stream: 10,000 streams need ~10,000 open files in both the client and the
server; both lift their soft limit to the hard one (ulimit -Hn), and loopback ports suffice.`;

const { values: args } = parseArgs({
  options: {
    streams: { type: 'string', default: '1000,5000,10000' },
    protocols: { type: 'string', default: 'sotw,delta' },
    servers: { type: 'string', default: 'fulcrum,linear,snapshot' },
    rounds: { type: 'string', default: '3' },
    'single-rounds': { type: 'string', default: '100' },
    clusters: { type: 'string', default: '100' },
    endpoints: { type: 'string', default: '20' },
    'subscribe-fraction': { type: 'string', default: '1' },
    'connect-concurrency': { type: 'string', default: '200' },
    'keep-dir': { type: 'boolean', default: false },
    'fulcrum-node-args': { type: 'string', default: '' },
    'base-node-args': { type: 'string' },
    base: { type: 'string' },
    'settle-ms': { type: 'string', default: '15000' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}

const STREAMS = list(args.streams).map((s) => integer('streams', s));
const PROTOCOLS = list(args.protocols);
const SERVERS = list(args.servers);
for (const p of PROTOCOLS) if (p !== 'sotw' && p !== 'delta') throw new Error(`--protocols: "${p}" is not sotw or delta`);
if (SERVERS.includes('fulcrum-base') && !args.base) throw new Error('--servers fulcrum-base needs --base DIR');
const BASE = args.base;
for (const s of SERVERS) if (!['fulcrum', 'fulcrum-base', 'fulcrum-default', 'linear', 'snapshot'].includes(s)) throw new Error(`--servers: unknown "${s}"`);
const ROUNDS = integer('rounds', args.rounds);
const SINGLE_ROUNDS = integer('single-rounds', args['single-rounds'], 0);
const catalog = { clusters: integer('clusters', args.clusters), endpoints: integer('endpoints', args.endpoints) };
const CONCURRENCY = integer('connect-concurrency', args['connect-concurrency']);
const FRACTION = Number(args['subscribe-fraction']);
if (!(FRACTION > 0 && FRACTION <= 1)) throw new Error(`--subscribe-fraction: "${args['subscribe-fraction']}" is not a number in (0, 1]`);
const NODE_ARGS = list(args['fulcrum-node-args'].replaceAll(' ', ','));
const BASE_NODE_ARGS = args['base-node-args'] === undefined ? NODE_ARGS : list(args['base-node-args'].replaceAll(' ', ','));

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-gcp-fanout-'));
// The watched endpoint: in the middle of the catalog, so no server finds it first by luck.
const target = { cluster: clusterName(Math.floor(catalog.clusters / 2)), c: Math.floor(catalog.clusters / 2), e: 3 };
let weightBase = 100;

/** One load-client run: connect N streams, play the rounds, return the round lines. */
function drive(bins: GoBinaries, server: Server, protocol: string, streams: number, rounds: number): { rounds: RoundLine[]; failure: string | undefined } {
  const address = endpointAddress(target.c, target.e);
  const { trigger, body } = server.trigger(target.cluster, address, 8080);
  weightBase += 100; // every round sets a weight the server does not hold yet
  const argv = [
    '-target', server.xds, '-streams', String(streams), '-rounds', String(rounds), '-server-pid', String(server.pid),
    '-cluster', target.cluster, '-address', address, '-port', '8080', '-weight-base', String(weightBase),
    '-trigger', trigger, '-body', body, '-connect-concurrency', String(CONCURRENCY), '-subscribe-fraction', String(FRACTION),
    ...(protocol === 'delta' ? ['-delta'] : []),
  ];
  let out: string;
  let failure: string | undefined;
  try {
    out = execFileSync(bins.loadclient, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20, timeout: 20 * 60_000 });
  } catch (err) {
    // A run that fails (streams that never synced) still gives a row, with what it measured.
    out = String((err as { stdout?: unknown }).stdout ?? '');
    failure = `load client failed: ${(err as Error).message.split('\n')[0] ?? ''}`;
  }
  const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as RoundLine);
  const synced = lines.find((l) => l.type === 'synced');
  log(`  ${server.label} ${server.cache} ${protocol} ${streams}: synced in ${synced?.ms ?? '?'} ms, ${synced?.reconnects ?? '?'} reconnects${failure ? `; ${failure}` : ''}`);
  // One stream: each round's latency in order, so the worst round can be told apart (the first
  // request on a route, a GC, an engine tick).
  if (streams === 1) log(`    rounds ms: ${lines.filter((l) => l.type === 'round').map((l) => l.max.toFixed(1)).join(' ')}`);
  // Many streams: each round's p50 / p99 in order (the row is their median), so an outlier round shows.
  else log(`    rounds p50/p99 ms: ${lines.filter((l) => l.type === 'round').map((l) => `${l.p50.toFixed(0)}/${l.p99.toFixed(0)}`).join(' ')}`);
  // Each round's trigger time (ms since the epoch) and CPU, to line a round up with a server trace.
  for (const l of lines.filter((x) => x.type === 'round')) log(`    round t0 ${l.t0 ?? '?'} api ${l.apiMs.toFixed(0)} server CPU ${l.serverCpuMs} client CPU ${l.clientCpuMs.toFixed(0)} ms`);
  return { rounds: lines.filter((l) => l.type === 'round'), failure };
}

/**
 * Waits until every server is idle: at most QUIET_CPU_MS of CPU, all servers together, over
 * QUIET_WINDOW_MS (at most QUIET_MAX_MS). After a row of 10,000 streams the server of that row
 * spends seconds closing them and collecting their state, on the same two cores as the next
 * row: without this wait the server that ran first was measured on a quiet machine and the
 * others beside their predecessor's clean-up. Logs what the wait saw.
 */
async function waitQuiet(servers: ReadonlyMap<string, Server>): Promise<void> {
  const started = Date.now();
  const used = new Map<string, number>();
  for (;;) {
    const before = [...servers].map(([key, s]) => ({ key, pid: s.pid, cpu: processCpuMs(s.pid) }));
    await new Promise((r) => setTimeout(r, QUIET_WINDOW_MS));
    let total = 0;
    for (const b of before) {
      const d = processCpuMs(b.pid) - b.cpu || 0; // NaN (a server gone): nothing to wait for
      used.set(b.key, (used.get(b.key) ?? 0) + d);
      total += d;
    }
    const waited = Date.now() - started;
    if (total <= QUIET_CPU_MS || waited >= QUIET_MAX_MS) {
      const spent = [...used].filter(([, ms]) => ms > 0).map(([k, ms]) => `${k} ${ms} ms`).join(', ');
      log(`  quiet after ${waited} ms${total > QUIET_CPU_MS ? ' (gave up waiting)' : ''}; server CPU meanwhile: ${spent || 'none'}`);
      return;
    }
  }
}
const SETTLE_MS = integer('settle-ms', args['settle-ms'], 0);
const QUIET_WINDOW_MS = 500;
const QUIET_CPU_MS = 20;
const QUIET_MAX_MS = 60_000;

function uptime(): string {
  return `load average ${loadavg().map((x) => x.toFixed(2)).join(', ')}`;
}

async function startAll(bins: GoBinaries): Promise<Map<string, Server>> {
  const servers = new Map<string, Server>();
  servers.set('fulcrum', await startFulcrum(dir, { debounce: 'zero', catalog, nodeArgs: NODE_ARGS }));
  const dump = join(dir, 'resources.bin');
  execFileSync(bins.loadclient, ['-target', servers.get('fulcrum')?.xds ?? '', '-dump', dump], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (SERVERS.includes('fulcrum-default') || SINGLE_ROUNDS > 0) servers.set('fulcrum-default', await startFulcrum(dir, { debounce: 'default', catalog, nodeArgs: NODE_ARGS }));
  if (SERVERS.includes('fulcrum-base')) servers.set('fulcrum-base', await startFulcrum(dir, { debounce: 'zero', catalog, nodeArgs: BASE_NODE_ARGS, root: BASE, label: 'base' }));
  if (SERVERS.includes('linear')) servers.set('linear', await startGcp(dir, bins, 'linear', dump));
  if (SERVERS.includes('snapshot')) servers.set('snapshot', await startGcp(dir, bins, 'snapshot', dump));
  return servers;
}

/** Keeps the row and logs it at once, so an interrupted run still leaves its figures. */
function record(rows: Row[], row: Row): void {
  rows.push(row);
  log(`  row ${JSON.stringify(row)}`);
}

async function main(): Promise<void> {
  const bins = buildGo(log);
  log(`gcp-fanout: ${catalog.clusters} × ${catalog.endpoints}, subscribe fraction ${FRACTION}, streams ${STREAMS.join('/')}, ${PROTOCOLS.join('/')}, ${ROUNDS} rounds; ${uptime()}; run dir ${dir}`);
  const servers = await startAll(bins);
  const rows: Row[] = [];
  try {
    const single = SINGLE_ROUNDS > 0 ? ['fulcrum', 'fulcrum-default', ...SERVERS.filter((s) => s === 'fulcrum-base' || s === 'linear' || s === 'snapshot')] : [];
    for (const protocol of PROTOCOLS) {
      for (const key of single) {
        const s = servers.get(key);
        if (!s) continue;
        // Idle first, as before a fan-out row: right after start a server compiles its write
        // routes' schemas and compacts its heap, 50-100 ms of CPU at a time (bench/RESULTS.md, engine17).
        await waitQuiet(servers);
        const run = drive(bins, s, protocol, 1, SINGLE_ROUNDS + 1);
        // The first change of a row is a warm-up, logged apart: on a fresh server it is the route's
        // first call (interpreted code, first statements), 2-3x a later one.
        const [first, ...rest] = run.rounds;
        log(`    warm-up change (not in the row): ${first?.max.toFixed(1) ?? '?'} ms`);
        record(rows, summarize(s, protocol, 1, { ...run, rounds: rest }));
      }
    }
    for (const streams of STREAMS) {
      for (const protocol of PROTOCOLS) {
        for (const key of SERVERS) {
          const s = servers.get(key);
          if (!s) continue;
          await waitQuiet(servers);
          await new Promise((r) => setTimeout(r, SETTLE_MS));
          record(rows, summarize(s, protocol, streams, drive(bins, s, protocol, streams, ROUNDS)));
        }
        log(`  (${uptime()})`);
      }
    }
  } finally {
    for (const s of servers.values()) await s.stop();
    if (!args['keep-dir']) rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`\n${formatTable(rows)}\nAfter the run: ${uptime()}\n`);
  process.stdout.write(`${JSON.stringify({ date: new Date().toISOString(), catalog, subscribeFraction: FRACTION, rows })}\n`);
}

await main();
