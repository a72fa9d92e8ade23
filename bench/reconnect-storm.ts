/**
 * Reconnect storm (issue 13): N proxies connect within a couple of seconds, as when a control
 * plane restarts. One Go client (bench/go/stormclient: each proxy its own HTTP/2 connection in
 * clear and one ADS stream, CDS wildcard then EDS for the clusters, every response ACKed) storms
 * fulcrum and then go-control-plane (LinearCache, on fulcrum's own CDS and EDS responses), and
 * prints one table: proxies synced, refused, reset; time from each proxy's start to its sync
 * (p50, p99, max); when the last one synced; server and client CPU (the kernel's share, and a
 * node server's main thread: its event loop); the host's accept-queue overflows (TcpExt
 * ListenOverflows: SYNs dropped, each retried a second later, and handshakes not queued; events,
 * not proxies); server RSS afterwards. Each row's JSON line also has the synced proxies' time per
 * step (connect, first request written, CDS including any wait in the accept queue, EDS; p50 and
 * p99 ms).
 *
 *   npx tsx bench/reconnect-storm.ts [--connections 10000] [--within-ms 2000] [--protocols sotw,delta]
 *   npx tsx bench/reconnect-storm.ts --help
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildGo, list, startFulcrum, startGcp, type Server } from './gcp-fanout-servers.js';

const HELP = `bench/reconnect-storm.ts: N Envoy-like proxies connect within --within-ms; fulcrum vs go-control-plane.

  --connections N      proxies (default 10000)
  --within-ms N        start them all within this time, evenly spaced (default 2000)
  --protocols LIST     sotw,delta (default sotw)
  --servers LIST       fulcrum,fulcrum-base,linear,snapshot (default fulcrum,linear), stormed in this order
  --base DIR           another checkout (built, with node_modules) run as "fulcrum base" (--servers fulcrum-base)
  --repeat N           storm every server N times per protocol, rows interleaved (default 1)
  --clusters N, --endpoints N   catalog size (default 100 × 20)
  --extensions N       extensions each proxy's Node lists, as an Envoy lists those compiled into it
                       (default 516, Envoy 1.40's: a ~61 KB first request per proxy; 0: a bare node,
                       what every storm figure before 2026-12-05 used)
  --timeout-ms N       give up on proxies not synced by then (default 120000)
  --cpu-prof DIR       write fulcrum's V8 CPU profile (node --cpu-prof) into DIR
  --client-cpu-prof DIR  write the client's Go CPU profile of each storm into DIR (go tool pprof -top FILE)
  --restart            storm fulcrum right after a restart: its catalog PUT, the process stopped and
                       started again on the same data, the storm as soon as it serves (what a control
                       plane restart does; without it the storm meets a server that has settled)
  --fulcrum-node-args=S  node options for both fulcrum builds, space-separated (e.g. --trace-gc;
                       its lines land in fulcrum.log, see --keep-dir)
  --keep-dir           keep the run directory (logs, configs)
  --help

Each server is started fresh for each protocol (a storm meets a server with no proxies).
Needs Go (builds bench/go once per source hash into .tools/bench-go/) and ~N open files in the
client and the server (both lift their soft limit to the hard one).`;

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '10000' },
    'within-ms': { type: 'string', default: '2000' },
    protocols: { type: 'string', default: 'sotw' },
    servers: { type: 'string', default: 'fulcrum,linear' },
    clusters: { type: 'string', default: '100' },
    endpoints: { type: 'string', default: '20' },
    extensions: { type: 'string', default: '516' },
    'timeout-ms': { type: 'string', default: '120000' },
    base: { type: 'string' },
    repeat: { type: 'string', default: '1' },
    'cpu-prof': { type: 'string' },
    'client-cpu-prof': { type: 'string' },
    'fulcrum-node-args': { type: 'string', default: '' },
    restart: { type: 'boolean', default: false },
    'keep-dir': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
if (list(args.servers).includes('fulcrum-base') && !args.base) throw new Error('--servers fulcrum-base needs --base DIR');

const num = (name: 'connections' | 'within-ms' | 'clusters' | 'endpoints' | 'timeout-ms' | 'repeat'): number => {
  const n = Number(args[name]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: expected a positive whole number, got ${String(args[name])}`);
  return n;
};
const log = (s: string): void => void process.stderr.write(`${s}\n`);

/** One stormclient line (bench/go/stormclient/main.go). */
interface StormLine {
  protocol: string;
  outcomes: Record<string, number>;
  details?: Record<string, number>;
  syncP50Ms: number;
  syncP99Ms: number;
  syncMaxMs: number;
  lastSyncedMs: number;
  serverCpuSeconds: number;
  clientCpuSeconds: number;
  serverSysSeconds?: number;
  clientSysSeconds?: number;
  /** The server's main thread (a node server's event loop); -1 when unknown. */
  serverMainThreadSeconds?: number;
  /** The host's accept-queue overflow events during the storm; -1 when unknown. */
  listenOverflows?: number;
  serverRssMiB: number;
  /** The synced proxies' [p50, p99] ms per step: connect, send, cds, eds. */
  phases?: Record<string, [number, number]>;
}

/** A reading the client could not take (absent, or -1) as "?". */
const known = (x: number | undefined): string => (x === undefined || x < 0 ? '?' : String(x));

function storm(client: string, server: Server, protocol: string): StormLine {
  const extensions = Number(args.extensions);
  if (!(Number.isInteger(extensions) && extensions >= 0)) throw new Error(`--extensions: expected a whole number, got ${args.extensions}`);
  const argv = ['-target', server.xds, '-connections', String(num('connections')), '-within', `${num('within-ms')}ms`, '-timeout', `${num('timeout-ms')}ms`, '-server-pid', String(server.pid), '-extensions', String(extensions)];
  if (protocol === 'delta') argv.push('-delta');
  const profDir = args['client-cpu-prof'];
  if (profDir !== undefined) {
    mkdirSync(profDir, { recursive: true });
    argv.push('-cpuprofile', resolve(profDir, `stormclient-${protocol}-${Date.now()}.pprof`));
  }
  const out = execFileSync(client, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as StormLine;
}

async function withServer<T>(start: () => Promise<Server>, use: (s: Server) => T): Promise<T> {
  const server = await start();
  try {
    return use(server);
  } finally {
    await server.stop();
  }
}

/** fulcrum (or the --base checkout's), with --cpu-prof when asked (the profile is written on its SIGTERM exit). */
function fulcrum(dir: string, base = false): Promise<Server> {
  const prof = args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${resolve(args['cpu-prof'], base ? 'base' : 'fulcrum')}`] : [];
  prof.push(...list(args['fulcrum-node-args'].replaceAll(' ', ',')));
  const root = base ? resolve(args.base ?? '') : undefined;
  return startFulcrum(dir, { debounce: 'zero', catalog: { clusters: num('clusters'), endpoints: num('endpoints') }, nodeArgs: prof, restart: args.restart, ...(root ? { root, label: 'base' } : {}) });
}

/** How a --servers name is started and labelled. */
function server(name: string, dir: string, bins: ReturnType<typeof buildGo>, dump: string): { start: () => Promise<Server>; label: string } {
  if (name === 'fulcrum' || name === 'fulcrum-base') return { start: () => fulcrum(dir, name === 'fulcrum-base'), label: name === 'fulcrum' ? 'fulcrum' : 'fulcrum base' };
  const cache = name === 'snapshot' ? 'snapshot' : 'linear';
  return { start: () => startGcp(dir, bins, cache, dump), label: `go-control-plane ${cache === 'snapshot' ? 'SnapshotCache' : 'LinearCache'}` };
}

const row = (label: string, l: StormLine, load: string): string => {
  const o = l.outcomes;
  const other = Object.entries(o).filter(([k]) => !['synced', 'refused', 'reset'].includes(k)).map(([k, v]) => `${k} ${v}`).join(', ') || '0';
  // A Go server's main thread is one of many that run its goroutines: no event loop to show.
  const loop = label.startsWith('fulcrum') ? known(l.serverMainThreadSeconds) : '–';
  return `| ${label} | ${l.protocol} | ${load} | ${o.synced ?? 0} | ${o.refused ?? 0} | ${o.reset ?? 0} | ${other} | ${known(l.listenOverflows)} | ${l.syncP50Ms} | ${l.syncP99Ms} | ${l.syncMaxMs} | ${l.lastSyncedMs} | ${l.serverCpuSeconds} (${known(l.serverSysSeconds)}, ${loop}) | ${l.clientCpuSeconds} (${known(l.clientSysSeconds)}) | ${l.serverRssMiB} |`;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-storm-'));
  const bins = buildGo(log);
  const lines: { label: string; line: StormLine; load: string }[] = [];
  try {
    const dump = join(dir, 'resources.bin');
    await withServer(() => fulcrum(dir), (s) => execFileSync(bins.loadclient, ['-target', s.xds, '-dump', dump], { stdio: ['ignore', 'ignore', 'inherit'] }));
    for (const protocol of list(args.protocols)) {
      for (let round = 0; round < num('repeat'); round++) {
        for (const name of list(args.servers)) {
          const { start, label } = server(name, dir, bins, dump);
          const line = await withServer(start, (s) => storm(bins.stormclient, s, protocol));
          const load = (loadavg()[0] ?? 0).toFixed(1);
          log(`  row ${JSON.stringify({ label, load, ...line })}`);
          lines.push({ label, line, load });
        }
      }
    }
  } finally {
    if (!args['keep-dir']) rmSync(dir, { recursive: true, force: true });
    else log(`run directory kept: ${dir}`);
  }
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  process.stdout.write(
    [
      `${num('connections')} proxies within ${num('within-ms')} ms, ${num('clusters')} clusters × ${num('endpoints')} endpoints; load average ${load}`,
      '',
      '| server | protocol | load | synced | refused | reset | other | accept-queue overflows (host) | p50 ms | p99 ms | max ms | last synced ms | server CPU s (kernel, event loop) | client CPU s (kernel) | server RSS MiB |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
      ...lines.map((l) => row(l.label, l.line, l.load)),
      '',
      ...lines.filter((l) => Object.keys(l.line.details ?? {}).length > 0).map((l) => `${l.label} ${l.line.protocol}: ${JSON.stringify(l.line.details)}`),
      '',
    ].join('\n'),
  );
}

await main();
