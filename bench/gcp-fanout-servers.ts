/**
 * Processes for bench/gcp-fanout.ts: the Go programs (built from bench/go into a cache keyed by
 * their source hash), fulcrum (compiled dist/ when present, else tsx) with 100 × 20 created
 * through its admin API, and the go-control-plane server on the same content.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
// Ports below the kernel's ephemeral range, where the load client's 10,000 connections never land.
import { freePort } from '../test/support/ports.js';
import { killOnExit } from '../test/support/proc.js';

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const goSource = join(repoRoot, 'bench/go');

export interface GoBinaries { loadclient: string; gcpserver: string; stormclient: string; lrsclient: string; grpcfleet: string; grpcload: string }

const GO_PROGRAMS = ['loadclient', 'gcpserver', 'stormclient', 'lrsclient', 'grpcfleet', 'grpcload'] as const;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : /\.(go|mod|sum)$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

/** Builds the Go programs unless this exact source was built before (`.tools/bench-go/<hash>`). */
export function buildGo(log: (s: string) => void): GoBinaries {
  const hash = createHash('sha256');
  for (const f of sourceFiles(goSource).sort()) hash.update(relative(goSource, f)).update('\0').update(readFileSync(f));
  const dir = join(repoRoot, '.tools/bench-go', hash.digest('hex').slice(0, 16));
  const bins = Object.fromEntries(GO_PROGRAMS.map((name) => [name, join(dir, name)])) as unknown as GoBinaries;
  if (Object.values(bins).every((b) => existsSync(b))) return bins;
  mkdirSync(dir, { recursive: true });
  for (const name of GO_PROGRAMS) {
    log(`building ${name} (go-control-plane v0.14.0 and grpc-go from the Go module proxy) into ${dir}`);
    // -mod=readonly: exactly what go.sum pins; GOTOOLCHAIN=local: never download another Go.
    execFileSync('go', ['build', '-trimpath', '-o', `${bins[name]}.tmp`, `./${name}`], {
      cwd: goSource,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly' },
    });
    renameSync(`${bins[name]}.tmp`, bins[name]);
  }
  return bins;
}

export { freePort };

/** A comma-separated option as its non-empty items. */
export const list = (s: string): string[] => s.split(',').map((x) => x.trim()).filter(Boolean);

/** A whole-number option, at least `min`; a clear error naming the option otherwise. */
export function integer(name: string, raw: string, min = 1): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${raw}"`);
  return n;
}

export interface Server {
  label: string;
  cache: string;
  pid: number;
  xds: string;
  /** The admin API's base URL (fulcrum only). */
  admin?: string;
  /** "METHOD URL" and body for loadclient -trigger/-body ({w} = the new weight). */
  trigger: (cluster: string, address: string, port: number) => { trigger: string; body: string };
  stop: () => Promise<void>;
  /** Stops the process and starts it again on the same data and ports, serving; returns the new pid (fulcrum only). */
  restart?: () => Promise<number>;
}

/** Stops `child`: SIGTERM, SIGKILL after 10 s; resolves once it exited. */
export function stopper(child: ChildProcess): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
}

/** Spawns through sh to lift the soft open-files limit to the hard one (10,000 streams). */
function spawnWithFiles(argv: string[], logFile: string, stdout: 'pipe' | 'log', cwd = repoRoot): ChildProcess {
  const fd = openSync(logFile, 'a');
  const quoted = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  return outlivedByNone(
    spawn('sh', ['-c', `ulimit -n "$(ulimit -Hn)"; exec ${quoted}`], {
      cwd,
      stdio: ['ignore', stdout === 'pipe' ? 'pipe' : fd, fd],
    }),
  );
}

/** The signals that end a bench are turned into an exit once, at the first server. */
let signalsExit = false;

/**
 * A bench that dies before its `finally` (a pipe closed under it, `| head`; Ctrl-C outside a
 * terminal) left its servers running, idle on the same cores as the next run's (one fulcrum ran
 * on for 50 minutes: bench/RESULTS.md, engine17). Each is sent SIGTERM when this process exits
 * (test/support/proc.ts), and the signals that end a bench become an exit.
 */
function outlivedByNone(child: ChildProcess): ChildProcess {
  if (!signalsExit) {
    signalsExit = true;
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => process.exit(128 + osConstants.signals[signal]));
  }
  killOnExit(child, 'SIGTERM');
  return child;
}

export interface Catalog {
  clusters: number;
  endpoints: number;
  /** Every cluster's `weighting` (the admin API's); default: none (static weights). */
  weighting?: Record<string, unknown>;
}
export const clusterName = (c: number): string => `svc-${String(c).padStart(4, '0')}`;
export const endpointAddress = (c: number, e: number): string => `10.${Math.floor(c / 256) % 256}.${c % 256}.${e + 1}`;

/** 'zero' (0/0), fulcrum's default (nothing in the config), or explicit quiet/max milliseconds. */
export type Debounce = 'zero' | 'default' | { readonly quietMs: number; readonly maxMs: number };

function debounceLines(debounce: Debounce): string[] {
  if (debounce === 'default') return [];
  const { quietMs, maxMs } = debounce === 'zero' ? { quietMs: 0, maxMs: 0 } : debounce;
  return [`    debounceQuietMs: ${quietMs}`, `    debounceMaxMs: ${maxMs}`];
}

const debounceName = (d: Debounce): string => (typeof d === 'string' ? d : `${d.quietMs}-${d.maxMs}`);

function fulcrumConfig(xdsPort: number, adminPort: number, debounce: Debounce, run: Pick<FulcrumRun, 'tls' | 'lrsIntervalMs' | 'auditKeepLast'>): string {
  const { tls, lrsIntervalMs, auditKeepLast } = run;
  const high = 1_000_000;
  const lines = [
    'server:',
    '  logLevel: warn',
    '  xds:',
    '    address: 127.0.0.1',
    `    port: ${xdsPort}`,
    ...debounceLines(debounce),
    ...(tls ? [`    tls: ${JSON.stringify(tls)}`] : []),
    `    limits: { maxConnectionsPerPeer: ${high}, maxConnections: ${high}, maxStreamsPerPeer: ${high}, maxStreams: ${high} }`,
    '  admin:',
    '    address: 127.0.0.1',
    `    port: ${adminPort}`,
    ...(lrsIntervalMs !== undefined ? [`  loadReporting: { enabled: true, intervalMs: ${lrsIntervalMs} }`] : []),
    ...(auditKeepLast !== undefined ? [`store: { kind: sqlite, auditKeepLast: ${auditKeepLast} }`] : []),
  ];
  return `${lines.join('\n')}\n`;
}

function clusterBody(c: number, endpoints: number, weighting: Catalog['weighting']): string {
  const eps = Array.from({ length: endpoints }, (_, e) => ({
    address: endpointAddress(c, e),
    port: 8080,
    weight: 1,
    locality: { region: 'r1', zone: `z${e % 3}` },
  }));
  return JSON.stringify({ name: clusterName(c), endpoints: eps, ...(weighting ? { weighting } : {}) });
}

/** Until `url` answers 2xx, or `child` exits, or `timeoutMs` passes. */
export async function waitReady(url: string, child: ChildProcess, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode} before it was ready`);
    if (await fetch(url).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms (${url})`);
}

/**
 * Wait until the served snapshot holds every cluster's assignment: a PUT answers before its debounced
 * publish, and streams that connect in between would start from a part of the catalog.
 */
async function waitServed(admin: string, clusters: number, child: ChildProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let served = 0;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`fulcrum exited with ${child.exitCode} while publishing the catalog`);
    const res = await fetch(`${admin}/v1/config_dump?type=EDS`);
    if (res.ok) served = ((await res.json()) as { types: { EDS?: { resources: unknown[] } } }).types.EDS?.resources.length ?? 0;
    if (served >= clusters) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`fulcrum served ${served} of ${clusters} assignments after ${timeoutMs} ms`);
}

/** fulcrum's server.xds.tls, as the config file takes it. */
export interface XdsTls {
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCaFile?: string;
  readonly sessionTicketKeyFile?: string;
}

export interface FulcrumRun {
  readonly debounce: Debounce;
  /** TLS on the xDS port. */
  readonly tls?: XdsTls;
  readonly catalog: Catalog;
  /** node options for the process (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[];
  /** Another checkout to run fulcrum from (a "before" side by side); labelled with `label`. */
  readonly root?: string;
  readonly label?: string;
  /**
   * Once the catalog is served, stop the process and start it again on the same data directory:
   * the server returned has just started, its catalog read from the store (a control plane
   * restart, which is what sends a fleet reconnecting at once).
   */
  readonly restart?: boolean;
  /** Serve LRS on the xDS port, asking proxies for a report this often. */
  readonly lrsIntervalMs?: number;
  /** store.auditKeepLast (default: fulcrum's). */
  readonly auditKeepLast?: number;
}

/** Stops `child`, starts its successor, and waits until that one serves the stored catalog. */
async function restarted(child: ChildProcess, spawnNext: () => ChildProcess, admin: string, clusters: number): Promise<ChildProcess> {
  await stopper(child)();
  const next = spawnNext();
  await waitReady(`${admin}/readyz`, next, 'fulcrum (restarted)');
  await waitServed(admin, clusters, next);
  return next;
}

/** fulcrum in its own process, its clusters created through the admin API (the API owns them). */
export async function startFulcrum(dir: string, run: FulcrumRun): Promise<Server> {
  const { debounce, catalog, nodeArgs = [], root = repoRoot } = run;
  const [xdsPort, adminPort] = [await freePort(), await freePort()];
  const runDir = join(dir, `fulcrum-${debounceName(debounce)}${run.label ? `-${run.label}` : ''}`);
  mkdirSync(join(runDir, 'data'), { recursive: true });
  writeFileSync(join(runDir, 'fulcrum.yaml'), fulcrumConfig(xdsPort, adminPort, debounce, run));
  const compiled = existsSync(join(root, 'dist/main.js'));
  const entry = compiled ? ['dist/main.js'] : ['--import', 'tsx', 'src/main.ts'];
  const argv = [process.execPath, ...nodeArgs, ...entry, '--config', join(runDir, 'fulcrum.yaml'), '--data-dir', join(runDir, 'data')];
  let child = spawnWithFiles(argv, join(runDir, 'fulcrum.log'), 'log', root);
  const admin = `http://127.0.0.1:${adminPort}`;
  await waitReady(`${admin}/readyz`, child, 'fulcrum');
  for (let c = 0; c < catalog.clusters; c++) {
    const res = await fetch(`${admin}/v1/clusters/${clusterName(c)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: clusterBody(c, catalog.endpoints, catalog.weighting),
    });
    if (!res.ok) throw new Error(`fulcrum PUT ${clusterName(c)}: ${res.status} ${await res.text()}`);
  }
  await waitServed(admin, catalog.clusters, child);
  const restart = async (): Promise<number> => {
    child = await restarted(child, () => spawnWithFiles(argv, join(runDir, 'fulcrum.log'), 'log', root), admin, catalog.clusters);
    return child.pid ?? 0;
  };
  if (run.restart) await restart();
  return {
    label: `fulcrum${run.label ? ` ${run.label}` : ''}${debounce === 'default' ? ' (default debounce)' : ''}`,
    cache: debounce === 'zero' ? 'debounce 0' : debounce === 'default' ? 'debounce 100/1000 ms' : `debounce ${debounce.quietMs}/${debounce.maxMs} ms`,
    pid: child.pid ?? 0,
    xds: `127.0.0.1:${xdsPort}`,
    admin,
    trigger: (cluster, address, port) => ({
      trigger: `PATCH ${admin}/v1/clusters/${cluster}/endpoints/${address}/${port}`,
      body: '{"weight":{w}}',
    }),
    // The process of now: a restart replaces it.
    stop: () => stopper(child)(),
    restart,
  };
}

/** The go-control-plane server on the resources fulcrum served (the dump). */
export async function startGcp(dir: string, bins: GoBinaries, cache: 'snapshot' | 'linear', dump: string): Promise<Server> {
  const child = spawnWithFiles([bins.gcpserver, '-cache', cache, '-resources', dump], join(dir, `gcp-${cache}.log`), 'pipe');
  const stdout = child.stdout;
  if (!stdout) throw new Error('gcpserver: no stdout');
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: stdout });
    rl.once('line', (l) => { rl.close(); resolve(l); });
    child.once('exit', (code) => reject(new Error(`gcpserver exited with ${code}; see ${dir}/gcp-${cache}.log`)));
  });
  const ports = JSON.parse(line) as { xds: number; http: number };
  return {
    label: 'go-control-plane',
    cache: cache === 'snapshot' ? 'SnapshotCache' : 'LinearCache',
    pid: child.pid ?? 0,
    xds: `127.0.0.1:${ports.xds}`,
    trigger: (cluster, address, port) => ({
      trigger: `POST http://127.0.0.1:${ports.http}/weight?cluster=${cluster}&address=${address}&port=${port}&weight={w}`,
      body: '',
    }),
    stop: stopper(child),
  };
}
