/**
 * Kubernetes discovery under churn: what pods becoming ready and unready cost fulcrum when it
 * discovers a large fleet, this checkout against another (e.g. a worktree of main, built), side by
 * side in one run against one real API server.
 *
 * A real etcd + kube-apiserver (the test harness, `.tools/bin`) holds `--services` headless
 * Services labelled for fulcrum, each with one EndpointSlice of `--endpoints` endpoints. Each
 * checkout's fulcrum (compiled dist/, its own process, the Kubernetes source on) discovers them,
 * and one Delta xDS stream subscribes to every cluster's assignment. Then, per checkout:
 * - one change at a time (`--changes` endpoints, each made unready and then ready again by a JSON
 *   patch of its slice's `ready`): the time from the patch until the stream holds the new health,
 *   per direction, and fulcrum's CPU per change (less what it uses idle over as long);
 * - a rollout (`--rate` patches a second for `--seconds`, spread over the services: the first half
 *   make endpoints unready, the second half the same ones ready again): fulcrum's CPU per second, the wait of a GET /healthz and of an xDS Fetch sent every 10 ms meanwhile,
 *   and how long after the last patch the stream holds every endpoint's last health.
 * The checkouts run one after the other, in alternating order per repeat; each phase leaves every
 * endpoint ready, so each run starts from the same state. Each checkout must be built (`npm run
 * build`): a missing or stale dist/ is refused. Not a test.
 *
 *   npx tsx bench/kube-churn.ts [--other /path/to/checkout] [--services 1000] [--endpoints 20]
 *     [--changes 20] [--rate 20] [--seconds 10] [--repeat 1] [--cpu-prof DIR]
 *
 * `--cpu-prof DIR`: this checkout's fulcrum writes a CPU profile per run into DIR.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Probes } from './admin-probes.js';
import { freePort, integer, repoRoot, stopper, waitReady } from './gcp-fanout-servers.js';
import { quantile } from './gcp-fanout-table.js';
import { helpIfAsked } from './help.js';
import { apiRequest, benchEndpointAddress, benchServiceName, benchSliceName, seedServices } from './kube-run.js';
import { processCpuMs } from './proc-cpu.js';
import { startControlPlane, type ControlPlane } from '../test/kubernetes/control-plane.js';
import { killOnExit } from '../test/support/proc.js';
import { decodeResources, EDS, XdsClient, type DeltaStream } from '../test/support/xds-client.js';

helpIfAsked(import.meta.url);
const { values: args } = parseArgs({
  options: {
    other: { type: 'string' },
    services: { type: 'string', default: '1000' },
    endpoints: { type: 'string', default: '20' },
    changes: { type: 'string', default: '20' },
    rate: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '10' },
    repeat: { type: 'string', default: '1' },
    'cpu-prof': { type: 'string' },
  },
});
const services = integer('services', args.services);
const endpoints = integer('endpoints', args.endpoints);
const changes = integer('changes', args.changes);
const rate = integer('rate', args.rate);
const seconds = integer('seconds', args.seconds);
const repeat = integer('repeat', args.repeat);

const clusterOf = (s: number): string => `bench/${benchServiceName(s)}:http`;
const load = (): string => loadavg().map((l) => l.toFixed(1)).join(' ');

/** What the stream holds: per cluster, per endpoint address, its health. */
type Held = Map<string, Map<string, string>>;

interface Assignment {
  readonly endpoints?: { readonly lb_endpoints?: { readonly health_status?: string; readonly endpoint?: { readonly address?: { readonly socket_address?: { readonly address?: string } } } }[] }[];
}

/** A Delta stream over every bench cluster's assignment, ACKing each push and keeping what it holds. */
class Watcher {
  readonly held: Held = new Map();
  pushes = 0;
  resources = 0;
  private readonly client: XdsClient;
  private readonly stream: DeltaStream;
  private waiters: { check: () => boolean; resolve: () => void }[] = [];

  constructor(xdsPort: number) {
    this.client = XdsClient.forPort(xdsPort);
    this.stream = this.client.delta();
    const names = Array.from({ length: services }, (_, s) => clusterOf(s));
    this.stream.send({ node: { id: 'bench-kube-churn' }, type_url: EDS, resource_names_subscribe: names });
    void this.read();
  }

  private async read(): Promise<void> {
    for (;;) {
      const resp = await this.stream.nextOf(EDS, 3_600_000).catch(() => undefined);
      if (resp === undefined) return;
      this.stream.ack(resp);
      this.pushes++;
      for (const r of decodeResources(resp)) {
        this.resources++;
        this.held.set(r.name, healthByAddress(r.message as Assignment));
      }
      this.waiters = this.waiters.filter((w) => (w.check() ? (w.resolve(), false) : true));
    }
  }

  /** Resolves once `check` holds (checked after every push), or rejects after `timeoutMs`. */
  until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what}: not within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ check, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  health(cluster: string, address: string): string | undefined {
    return this.held.get(cluster)?.get(address);
  }

  close(): void {
    this.stream.cancel();
    this.client.close();
  }
}

function healthByAddress(a: Assignment): Map<string, string> {
  const out = new Map<string, string>();
  for (const locality of a.endpoints ?? []) {
    for (const lb of locality.lb_endpoints ?? []) {
      const address = lb.endpoint?.address?.socket_address?.address;
      if (address !== undefined) out.set(address, lb.health_status ?? 'UNKNOWN');
    }
  }
  return out;
}

interface Fulcrum {
  readonly pid: number;
  readonly admin: string;
  readonly xdsPort: number;
  stop(): Promise<void>;
}

/** The checkout's compiled fulcrum, refused when missing or older than a source file (its figures would be old code's). */
function builtEntry(root: string): string {
  const entry = join(root, 'dist/main.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run npm run build in ${root}`);
  const built = statSync(entry).mtimeMs;
  const newer = readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' }).find((f) => f.endsWith('.ts') && statSync(join(root, 'src', f)).mtimeMs > built);
  if (newer !== undefined) throw new Error(`${entry} is older than src/${newer}: run npm run build in ${root}`);
  return entry;
}

async function startFulcrum(root: string, label: string, dir: string, kubeconfig: string, nodeArgs: readonly string[]): Promise<Fulcrum> {
  const [xdsPort, adminPort] = [await freePort(), await freePort()];
  const runDir = join(dir, label);
  mkdirSync(join(runDir, 'data'), { recursive: true });
  const config = [
    'server:',
    '  logLevel: warn',
    `  xds: { address: 127.0.0.1, port: ${xdsPort} }`,
    `  admin: { address: 127.0.0.1, port: ${adminPort} }`,
    `kubernetes: { enabled: true, kubeconfig: ${JSON.stringify(kubeconfig)} }`,
  ].join('\n');
  writeFileSync(join(runDir, 'fulcrum.yaml'), `${config}\n`);
  const log = openSync(join(runDir, 'fulcrum.log'), 'a');
  const child = spawn(process.execPath, [...nodeArgs, builtEntry(root), '--config', join(runDir, 'fulcrum.yaml'), '--data-dir', join(runDir, 'data')], {
    cwd: root,
    stdio: ['ignore', log, log],
  });
  killOnExit(child, 'SIGTERM');
  const admin = `http://127.0.0.1:${adminPort}`;
  await waitReady(`${admin}/readyz`, child, 'fulcrum', 180_000);
  return { pid: child.pid ?? 0, admin, xdsPort, stop: stopper(child) };
}

/**
 * Waits until the process uses under 5 % of a core over half a second (its start-up work done),
 * then returns its CPU ms per second over 5 s more: what it spends with nothing changing (the
 * engine's ticks, timers), subtracted from the CPU per change.
 */
async function idle(pid: number): Promise<number> {
  for (let i = 0; i < 60; i++) {
    const before = processCpuMs(pid);
    await new Promise((r) => setTimeout(r, 500));
    if (processCpuMs(pid) - before < 25) break;
  }
  const before = processCpuMs(pid);
  await new Promise((r) => setTimeout(r, 5_000));
  return (processCpuMs(pid) - before) / 5;
}

/** Every endpoint's `ready`, as the slices now say: the bench flips them (ready unless flipped). */
class Readiness {
  /** Every endpoint flipped so far, by `s/e`, and whether it is ready now. */
  private readonly flipped = new Map<string, { readonly s: number; readonly e: number; ready: boolean }>();

  async flip(cp: ControlPlane, s: number, e: number): Promise<boolean> {
    const key = `${s}/${e}`;
    const entry = this.flipped.get(key) ?? { s, e, ready: true };
    const ready = !entry.ready;
    entry.ready = ready;
    this.flipped.set(key, entry);
    await apiRequest(cp, 'PATCH', `/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices/${benchSliceName(s)}`, [{ op: 'replace', path: `/endpoints/${e}/conditions/ready`, value: ready }], 'application/json-patch+json');
    return ready;
  }

  /** Every flipped endpoint's health as the stream should hold it. */
  *expected(): Iterable<{ cluster: string; address: string; health: string }> {
    for (const { s, e, ready } of this.flipped.values()) yield { cluster: clusterOf(s), address: benchEndpointAddress(s, e), health: ready ? 'HEALTHY' : 'UNHEALTHY' };
  }
}

/**
 * The endpoints the bench changes, each once per run (a running count; 7,919 is prime, so the
 * Services come in a scrambled order, every one before any twice).
 */
let picked = 0;
const pick = (): { s: number; e: number } => {
  const k = picked++;
  return { s: (k * 7_919) % services, e: Math.floor(k / services) % endpoints };
};

interface Row {
  label: string;
  /** From the patch until the stream holds the new health: a pod unready (down), ready again (up). */
  changeMs: { down: number[]; up: number[] };
  /** Less what the process used idle over as long (its clock ticks are 10 ms: read over many changes). */
  cpuPerChangeMs: number;
  idleMsPerS: number;
  rolloutCpuPerS: number;
  healthz: number[];
  fetched: number[];
  convergedMs: number;
  resourcesPerPush: number;
  load: string;
}

async function oneCheckout(cp: ControlPlane, readiness: Readiness, root: string, label: string, dir: string, round: number): Promise<Row> {
  const nodeArgs = label === 'this' && args['cpu-prof'] ? [`--cpu-prof`, `--cpu-prof-dir=${args['cpu-prof']}`] : [];
  const f = await startFulcrum(root, `${label}-${round}`, dir, cp.kubeconfigPath, nodeArgs);
  const watcher = new Watcher(f.xdsPort);
  try {
    await watcher.until(() => watcher.held.size >= services, 180_000, `${label}: every assignment`);
    const idleMsPerS = await idle(f.pid);
    const base = { pushes: watcher.pushes, resources: watcher.resources };
    const changeMs = { down: [] as number[], up: [] as number[] };
    const cpu0 = processCpuMs(f.pid);
    const t0 = performance.now();
    for (let k = 0; k < changes; k++) {
      // A pod unready, then ready again: the state is as before, each direction timed.
      const { s, e } = pick();
      for (let flip = 0; flip < 2; flip++) {
        const started = performance.now();
        const ready = await readiness.flip(cp, s, e);
        const want = ready ? 'HEALTHY' : 'UNHEALTHY';
        await watcher.until(() => watcher.health(clusterOf(s), benchEndpointAddress(s, e)) === want, 60_000, `${label}: change ${k}`);
        (ready ? changeMs.up : changeMs.down).push(performance.now() - started);
      }
    }
    const idleMs = (idleMsPerS * (performance.now() - t0)) / 1_000;
    const cpuPerChangeMs = (processCpuMs(f.pid) - cpu0 - idleMs) / (2 * changes);
    const rollout = await roll(cp, readiness, watcher, f, label);
    const pushes = watcher.pushes - base.pushes;
    return { label, changeMs, cpuPerChangeMs, idleMsPerS, ...rollout, resourcesPerPush: pushes > 0 ? (watcher.resources - base.resources) / pushes : 0, load: load() };
  } finally {
    watcher.close();
    await f.stop();
  }
}

/** The rollout: `rate` flips a second for `seconds`, probes meanwhile; then until the stream holds them all. */
async function roll(cp: ControlPlane, readiness: Readiness, watcher: Watcher, f: Fulcrum, label: string) {
  const probes = new Probes(f.admin, f.xdsPort, clusterOf(0));
  await probes.warm();
  const cpu0 = processCpuMs(f.pid);
  const started = performance.now();
  probes.start();
  // Half the patches make endpoints unready, the other half the same ones ready again, in the
  // same order: every checkout's rollout has both directions and leaves every endpoint ready.
  const pairs = Math.max(1, Math.floor((rate * seconds) / 2));
  const targets = Array.from({ length: pairs }, pick);
  const flips: Promise<unknown>[] = [];
  // A patch that fails fails the run, after the others (not as an unhandled rejection meanwhile).
  let failed: unknown;
  for (let k = 0; k < 2 * pairs; k++) {
    const due = started + (k * 1_000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const { s, e } = targets[k % pairs] as { s: number; e: number };
    flips.push(readiness.flip(cp, s, e).catch((err: unknown) => (failed ??= err)));
  }
  await Promise.all(flips);
  if (failed !== undefined) throw failed;
  const lastPatch = performance.now();
  const everyHeld = (): boolean => [...readiness.expected()].every((x) => watcher.health(x.cluster, x.address) === x.health);
  await watcher.until(everyHeld, 120_000, `${label}: the rollout`);
  const convergedMs = performance.now() - lastPatch;
  const cpu = processCpuMs(f.pid) - cpu0;
  const elapsedS = (performance.now() - started) / 1_000;
  const result = await probes.stop();
  probes.close();
  if (result.error !== undefined) throw new Error(`${label}: a probe failed: ${result.error}`);
  return { rolloutCpuPerS: cpu / 1_000 / elapsedS, healthz: result.healthz, fetched: result.fetched, convergedMs };
}


const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(x < 10 ? 1 : 0) : '–');

function print(rows: readonly Row[]): void {
  const head = ['checkout', 'pod unready p50 / p99 ms', 'pod ready p50 / p99 ms', 'CPU ms per change (idle ms/s)', 'rollout CPU s/s', 'healthz p99 / max ms', 'Fetch p99 / max ms', 'converged ms', 'EDS per push', 'load'];
  process.stdout.write(`| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|\n`);
  for (const r of rows) {
    const cells = [
      r.label,
      `${ms(quantile(r.changeMs.down, 0.5))} / ${ms(quantile(r.changeMs.down, 0.99))}`,
      `${ms(quantile(r.changeMs.up, 0.5))} / ${ms(quantile(r.changeMs.up, 0.99))}`,
      `${ms(r.cpuPerChangeMs)} (${ms(r.idleMsPerS)})`,
      r.rolloutCpuPerS.toFixed(3),
      `${ms(quantile(r.healthz, 0.99))} / ${ms(Math.max(...r.healthz))}`,
      `${ms(quantile(r.fetched, 0.99))} / ${ms(Math.max(...r.fetched))}`,
      ms(r.convergedMs),
      r.resourcesPerPush.toFixed(1),
      r.load,
    ];
    process.stdout.write(`| ${cells.join(' | ')} |\n`);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'kube-churn-'));
const checkouts = [{ label: 'this', root: repoRoot }, ...(args.other ? [{ label: 'other', root: args.other }] : [])];
process.stdout.write(`kube-churn: ${services} Services × ${endpoints} endpoints, ${changes} single changes, rollout ${rate}/s for ${seconds} s; load ${load()}\n`);
const cp = await startControlPlane();
const rows: Row[] = [];
try {
  const seeded = performance.now();
  await seedServices(cp, services, endpoints, 8);
  process.stdout.write(`seeded in ${((performance.now() - seeded) / 1_000).toFixed(1)} s\n`);
  const readiness = new Readiness();
  for (let round = 0; round < repeat; round++) {
    const order = round % 2 === 0 ? checkouts : [...checkouts].reverse();
    for (const c of order) {
      const row = await oneCheckout(cp, readiness, c.root, c.label, dir, round);
      rows.push(row);
      process.stdout.write(`${JSON.stringify({ ...row, healthz: undefined, fetched: undefined, healthzMax: Math.max(...row.healthz), fetchMax: Math.max(...row.fetched) })}\n`);
    }
  }
  print(rows);
} finally {
  await cp.stop();
  rmSync(dir, { recursive: true, force: true });
}
