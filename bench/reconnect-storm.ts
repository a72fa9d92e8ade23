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
 * With --tls the proxies speak mTLS and the storm is a fleet reconnecting after a restart with
 * the session tickets it got before: fulcrum without a ticket-key file (each process its own key,
 * every proxy does a full handshake again) and fulcrum-tickets (server.xds.tls.sessionTicketKeyFile:
 * the restarted process resumes the sessions).
 *
 *   npx tsx bench/reconnect-storm.ts [--connections 10000] [--within-ms 2000] [--protocols sotw,delta]
 *   npx tsx bench/reconnect-storm.ts --tls --servers fulcrum,fulcrum-tickets
 *   npx tsx bench/reconnect-storm.ts --help
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { buildGo, list, startFulcrum, startGcp, type Server, type XdsTls } from './gcp-fanout-servers.js';
import { issue, makeCa, type CertFiles } from '../test/support/certs.js';

const HELP = `bench/reconnect-storm.ts: N Envoy-like proxies connect within --within-ms; fulcrum vs go-control-plane.

  --connections N      proxies (default 10000)
  --within-ms N        start them all within this time, evenly spaced (default 2000)
  --protocols LIST     sotw,delta (default sotw)
  --servers LIST       fulcrum,fulcrum-base,linear,snapshot (default fulcrum,linear), stormed in this order;
                       with --tls: fulcrum,fulcrum-tickets (default both)
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
  --tls                mTLS on the xDS port (a CA, server and client certificate made by openssl), and
                       the storm after a restart: every proxy first syncs once (so it holds a session
                       ticket), fulcrum restarts, then the storm, each proxy offering its ticket.
                       fulcrum-tickets has server.xds.tls.sessionTicketKeyFile (the restarted
                       process resumes the sessions), fulcrum has not (full handshakes)
  --tls-key ec|rsa     the certificates' keys: ECDSA P-256 (default) or RSA 2048
  --tls-version 1.2|1.3  the highest TLS version the proxies offer: 1.2 (default: what Envoy offers
                       upstream unless told otherwise) or 1.3
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
    tls: { type: 'boolean', default: false },
    'tls-key': { type: 'string', default: 'ec' },
    'tls-version': { type: 'string', default: '1.2' },
    'keep-dir': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
if (list(args.servers).includes('fulcrum-base') && !args.base) throw new Error('--servers fulcrum-base needs --base DIR');
const serverNames = args.tls && args.servers === 'fulcrum,linear' ? ['fulcrum', 'fulcrum-tickets'] : list(args.servers);
if (args.tls && serverNames.some((n) => n !== 'fulcrum' && n !== 'fulcrum-tickets')) throw new Error('--tls storms fulcrum and fulcrum-tickets only');
if (!args.tls && serverNames.includes('fulcrum-tickets')) throw new Error('--servers fulcrum-tickets needs --tls');
if (args.tls && args.restart) throw new Error('--tls always storms after a restart (of its own, after the proxies got their tickets): leave out --restart');
if (args['tls-key'] !== 'ec' && args['tls-key'] !== 'rsa') throw new Error(`--tls-key: ec or rsa, got ${args['tls-key']}`);
if (args['tls-version'] !== '1.2' && args['tls-version'] !== '1.3') throw new Error(`--tls-version: 1.2 or 1.3, got ${args['tls-version']}`);

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
  /** The synced proxies' [p50, p99] ms per step: connect, tls (with --tls), send, cds, eds. */
  phases?: Record<string, [number, number]>;
  /** With --tls: proxies whose handshake resumed a session. */
  tlsResumed?: number;
}

/** The files of --tls: a CA, the server's and the proxies' certificates, a ticket-key secret. */
interface Pki {
  readonly ca: string;
  readonly server: CertFiles;
  readonly client: CertFiles;
  readonly tickets: string;
}

async function makePki(dir: string): Promise<Pki> {
  const ca = await makeCa(dir, 'storm-ca', args['tls-key'] === 'rsa' ? 'rsa' : 'ec');
  const tickets = join(dir, 'tickets.key');
  writeFileSync(tickets, randomBytes(48));
  return { ca: ca.cert, server: await issue(ca, 'server', ['DNS:localhost']), client: await issue(ca, 'proxy', ['URI:spiffe://storm/proxy']), tickets };
}

/** A reading the client could not take (absent, or -1) as "?". */
const known = (x: number | undefined): string => (x === undefined || x < 0 ? '?' : String(x));

function stormArgs(server: Server, protocol: string): string[] {
  const extensions = Number(args.extensions);
  if (!(Number.isInteger(extensions) && extensions >= 0)) throw new Error(`--extensions: expected a whole number, got ${args.extensions}`);
  const argv = ['-target', server.xds, '-connections', String(num('connections')), '-within', `${num('within-ms')}ms`, '-timeout', `${num('timeout-ms')}ms`, '-server-pid', String(server.pid), '-extensions', String(extensions)];
  if (protocol === 'delta') argv.push('-delta');
  const profDir = args['client-cpu-prof'];
  if (profDir !== undefined) {
    mkdirSync(profDir, { recursive: true });
    argv.push('-cpuprofile', resolve(profDir, `stormclient-${protocol}-${Date.now()}.pprof`));
  }
  return argv;
}

function storm(client: string, server: Server, protocol: string): StormLine {
  const out = execFileSync(client, stormArgs(server, protocol), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as StormLine;
}

/** --tls: the client syncs every proxy once, the server restarts, then the storm (stormclient -resume). */
async function stormAfterRestart(client: string, server: Server, protocol: string, pki: Pki): Promise<StormLine> {
  const restart = server.restart;
  if (!restart) throw new Error(`${server.label} cannot restart`);
  const argv = [...stormArgs(server, protocol), '-tls-ca', pki.ca, '-tls-cert', pki.client.cert, '-tls-key', pki.client.key, '-tls-max', args['tls-version'], '-resume'];
  const child = spawn(client, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  let last = '';
  for await (const line of createInterface({ input: child.stdout })) {
    last = line;
    const warm = (JSON.parse(line) as { warm?: number }).warm;
    if (warm === undefined) continue;
    log(`  ${warm} of ${num('connections')} proxies synced once and hold a session ticket; restarting ${server.label}`);
    child.stdin.end(`go ${await restart()}\n`);
  }
  const code = await exited;
  if (code !== 0) throw new Error(`stormclient exited with ${code}`);
  return JSON.parse(last) as StormLine;
}

async function withServer<T>(start: () => Promise<Server>, use: (s: Server) => T | Promise<T>): Promise<T> {
  const server = await start();
  try {
    return await use(server);
  } finally {
    await server.stop();
  }
}

/** fulcrum (or the --base checkout's), with --cpu-prof when asked (the profile is written on its SIGTERM exit). */
function fulcrum(dir: string, base = false, tls?: XdsTls): Promise<Server> {
  const prof = args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${resolve(args['cpu-prof'], base ? 'base' : 'fulcrum')}`] : [];
  prof.push(...list(args['fulcrum-node-args'].replaceAll(' ', ',')));
  const root = base ? resolve(args.base ?? '') : undefined;
  const label = root ? 'base' : tls?.sessionTicketKeyFile ? 'tickets' : undefined;
  return startFulcrum(dir, {
    debounce: 'zero',
    catalog: { clusters: num('clusters'), endpoints: num('endpoints') },
    nodeArgs: prof,
    restart: args.restart,
    ...(root ? { root } : {}),
    ...(label ? { label } : {}),
    ...(tls ? { tls } : {}),
  });
}

/** fulcrum's server.xds.tls for --tls: mTLS, with the shared ticket key for fulcrum-tickets. */
function xdsTls(pki: Pki, tickets: boolean): XdsTls {
  return { certFile: pki.server.cert, keyFile: pki.server.key, clientCaFile: pki.ca, ...(tickets ? { sessionTicketKeyFile: pki.tickets } : {}) };
}

/** How a --servers name is started and labelled. */
function server(name: string, dir: string, bins: ReturnType<typeof buildGo>, dump: string, pki: Pki | undefined): { start: () => Promise<Server>; label: string } {
  if (pki) {
    const tickets = name === 'fulcrum-tickets';
    return { start: () => fulcrum(dir, false, xdsTls(pki, tickets)), label: tickets ? 'fulcrum, shared ticket key' : 'fulcrum, own ticket key' };
  }
  if (name === 'fulcrum' || name === 'fulcrum-base') return { start: () => fulcrum(dir, name === 'fulcrum-base'), label: name === 'fulcrum' ? 'fulcrum' : 'fulcrum base' };
  const cache = name === 'snapshot' ? 'snapshot' : 'linear';
  return { start: () => startGcp(dir, bins, cache, dump), label: `go-control-plane ${cache === 'snapshot' ? 'SnapshotCache' : 'LinearCache'}` };
}

const row = (label: string, l: StormLine, load: string): string => {
  const o = l.outcomes;
  const other = Object.entries(o).filter(([k]) => !['synced', 'refused', 'reset'].includes(k)).map(([k, v]) => `${k} ${v}`).join(', ') || '0';
  // A Go server's main thread is one of many that run its goroutines: no event loop to show.
  const loop = label.startsWith('fulcrum') ? known(l.serverMainThreadSeconds) : '–';
  const tls = args.tls ? ` ${l.tlsResumed ?? '?'} | ${l.phases?.tls?.join(' / ') ?? '?'} |` : '';
  return `| ${label} | ${l.protocol} | ${load} | ${o.synced ?? 0} | ${o.refused ?? 0} | ${o.reset ?? 0} | ${other} | ${known(l.listenOverflows)} | ${l.syncP50Ms} | ${l.syncP99Ms} | ${l.syncMaxMs} | ${l.lastSyncedMs} | ${l.serverCpuSeconds} (${known(l.serverSysSeconds)}, ${loop}) | ${l.clientCpuSeconds} (${known(l.clientSysSeconds)}) | ${l.serverRssMiB} |${tls}`;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-storm-'));
  const bins = buildGo(log);
  const lines: { label: string; line: StormLine; load: string }[] = [];
  try {
    const dump = join(dir, 'resources.bin');
    const pki = args.tls ? await makePki(dir) : undefined;
    // The go-control-plane servers storm on a dump of fulcrum's resources (none with --tls).
    if (!pki) await withServer(() => fulcrum(dir), (s) => execFileSync(bins.loadclient, ['-target', s.xds, '-dump', dump], { stdio: ['ignore', 'ignore', 'inherit'] }));
    for (const protocol of list(args.protocols)) {
      for (let round = 0; round < num('repeat'); round++) {
        for (const name of serverNames) {
          const { start, label } = server(name, dir, bins, dump, pki);
          const line = await withServer(start, (s) => (pki ? stormAfterRestart(bins.stormclient, s, protocol, pki) : storm(bins.stormclient, s, protocol)));
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
      `${num('connections')} proxies within ${num('within-ms')} ms, ${num('clusters')} clusters × ${num('endpoints')} endpoints${args.tls ? `, mTLS ${args['tls-version']} (${args['tls-key'] === 'rsa' ? 'RSA 2048' : 'ECDSA P-256'}) after a restart` : ''}; load average ${load}`,
      '',
      `| server | protocol | load | synced | refused | reset | other | accept-queue overflows (host) | p50 ms | p99 ms | max ms | last synced ms | server CPU s (kernel, event loop) | client CPU s (kernel) | server RSS MiB |${args.tls ? ' TLS resumed | TLS handshake p50 / p99 ms |' : ''}`,
      `|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|${args.tls ? '---|---|' : ''}`,
      ...lines.map((l) => row(l.label, l.line, l.load)),
      '',
      ...lines.filter((l) => Object.keys(l.line.details ?? {}).length > 0).map((l) => `${l.label} ${l.line.protocol}: ${JSON.stringify(l.line.details)}`),
      '',
    ].join('\n'),
  );
}

await main();
