/**
 * See adaptive balancing in one command (`npm run quickstart`): starts fulcrum, a real Envoy and
 * three local backends of unequal capacity that report ORCA load, drives load through Envoy, and
 * prints every two seconds what share of the traffic Envoy gives each backend. Press 1, 2 or 3 to
 * halve that backend's capacity (r restores all, q quits) and watch the weights follow.
 *
 *   npm run quickstart
 *   npm run quickstart -- --workers 2,4,8 --load 0.6 --admin-port 8080 --xds-port 18000
 *   npm run quickstart -- --duration 40 --check    # exit 1 unless weights moved toward capacity
 *
 * Ctrl-C (or SIGTERM) stops everything it started.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emitKeypressEvents } from 'node:readline';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { poissonLoad, type PoissonLoad } from '../backends/poisson-load.js';
import type { QueueingBackend } from '../backends/queueing-backend.js';
import { EnvoyProcess, findEnvoyBinary } from './envoy-process.js';
import { CLUSTER, fleetConfig, LISTENER, movedTowardCapacity, renderTable, shares, startBackends, type Row } from './fleet.js';

const HELP = `npm run quickstart -- [options]

  --workers LIST       workers per backend, capacity is proportional (default 2,4,8)
  --service-ms N       mean service time of one request, ms (default 40)
  --load F             offered load as a fraction of the total capacity (default 0.6)
  --xds-port N         fulcrum's xDS port (default 18000)
  --admin-port N       fulcrum's admin API and dashboard (default 8080)
  --listener-port N    Envoy's listener that the load goes through (default 10000; 0: a free port)
  --envoy-admin-port N Envoy's admin port (default 9901; 0: a free port)
  --backend-port N     first backend port, the others follow (default 0: free ports)
  --duration S         stop after S seconds (default: run until Ctrl-C or q)
  --check              at the end, exit 1 unless the weights moved toward the backends with more capacity
  --help`;

interface Settings {
  readonly workers: number[];
  readonly serviceMs: number;
  readonly load: number;
  readonly ports: { xds: number; admin: number; listener: number; envoyAdmin: number; backend: number };
  readonly durationS: number | undefined;
  readonly check: boolean;
}

function settingsFromArgs(argv: readonly string[]): Settings | undefined {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      workers: { type: 'string', default: '2,4,8' },
      'service-ms': { type: 'string', default: '40' },
      load: { type: 'string', default: '0.6' },
      'xds-port': { type: 'string', default: '18000' },
      'admin-port': { type: 'string', default: '8080' },
      'listener-port': { type: 'string', default: '10000' },
      'envoy-admin-port': { type: 'string', default: '9901' },
      'backend-port': { type: 'string', default: '0' },
      duration: { type: 'string' },
      check: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return undefined;
  const port = (name: string, v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--${name}: not a port: ${v}`);
    return n;
  };
  const positive = (name: string, v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: expected a positive number, got ${v}`);
    return n;
  };
  const workers = values.workers.split(',').map((w) => positive('workers', w));
  if (workers.length < 2 || workers.some((w) => !Number.isInteger(w))) throw new Error('--workers: at least two whole numbers, e.g. 2,4,8');
  return {
    workers,
    serviceMs: positive('service-ms', values['service-ms']),
    load: positive('load', values.load),
    ports: {
      xds: port('xds-port', values['xds-port']),
      admin: port('admin-port', values['admin-port']),
      listener: port('listener-port', values['listener-port']),
      envoyAdmin: port('envoy-admin-port', values['envoy-admin-port']),
      backend: port('backend-port', values['backend-port']),
    },
    durationS: values.duration === undefined ? undefined : positive('duration', values.duration),
    check: values.check,
  };
}

/** Everything the quickstart started, stopped in reverse. */
class Running {
  backends: QueueingBackend[] = [];
  fulcrum: Fulcrum | undefined;
  envoy: EnvoyProcess | undefined;
  load: PoissonLoad | undefined;
  dir = mkdtempSync(join(tmpdir(), 'fulcrum-quickstart-'));

  async stop(): Promise<void> {
    await this.load?.stop();
    await this.envoy?.stop();
    await this.fulcrum?.stop();
    await Promise.all(this.backends.map((b) => b.close()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

async function waitUntil<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, explain: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe().catch(() => undefined);
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${explain()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A free loopback port, for the ports given as 0 that Envoy must bind itself. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function bringUp(s: Settings, run: Running): Promise<string> {
  const envoyBin = findEnvoyBinary();
  const listener = s.ports.listener || (await freePort());
  const envoyAdmin = s.ports.envoyAdmin || (await freePort());
  run.backends = await startBackends({ workers: s.workers, serviceMs: s.serviceMs, basePort: s.ports.backend });
  const configPath = join(run.dir, 'fulcrum.yaml');
  writeFileSync(configPath, fleetConfig(run.backends, { ...s.ports, listener }));
  run.fulcrum = await startFulcrum({ configPath, xdsPort: s.ports.xds, adminPort: s.ports.admin, logger: pino({ level: 'error' }), dataDir: join(run.dir, 'data') });
  const envoy = new EnvoyProcess(envoyBin, { xds: run.fulcrum.xdsPort, admin: envoyAdmin });
  run.envoy = envoy;
  const port = await waitUntil('Envoy to bind the listener it got from fulcrum', () => envoy.listenerPort(LISTENER), 60_000, () => envoy.logs());
  await waitUntil(
    'Envoy to receive every backend',
    async () => ((await envoy.weights(CLUSTER)).size === run.backends.length ? true : undefined),
    60_000,
    () => envoy.logs(),
  );
  return `http://127.0.0.1:${port}/`;
}

function startLoad(s: Settings, run: Running, url: string): void {
  const totalRps = run.backends.reduce((sum, b) => sum + b.capacityRps, 0);
  run.load = poissonLoad({ url, rps: s.load * totalRps, timeoutMs: 15_000, onResult: () => undefined });
}

/** Keys 1..n halve backend n's capacity, r restores every backend, q quits. */
function listenForKeys(run: Running, initial: readonly number[], quit: () => void): void {
  const act = (key: string): void => {
    if (key === 'q') return quit();
    if (key === 'r') run.backends.forEach((b, i) => b.setWorkers(initial[i] ?? 1));
    const backend = run.backends[Number(key) - 1];
    if (backend) backend.setWorkers(Math.max(1, Math.floor(backend.workers / 2)));
    if (backend || key === 'r') say(key === 'r' ? 'restored every backend' : `${backend?.name}: capacity halved to ${backend?.workers} workers`);
  };
  if (process.stdin.isTTY) {
    emitKeypressEvents(process.stdin);
    process.stdin.setRawMode(true);
    process.stdin.on('keypress', (_s: string, key: { name?: string; ctrl?: boolean }) => (key.ctrl && key.name === 'c' ? quit() : act(key.name ?? '')));
  } else {
    process.stdin.on('data', (chunk: Buffer) => chunk.toString('utf8').split(/\s+/).filter(Boolean).forEach(act));
  }
  process.stdin.resume();
}

async function sampleRows(run: Running, last: { served: number[]; at: number }): Promise<Row[]> {
  const weights = run.envoy ? await run.envoy.weights(CLUSTER).catch(() => new Map<string, number>()) : new Map<string, number>();
  const share = shares(run.backends, weights);
  const now = performance.now();
  const served = run.backends.map((b) => b.served.ok);
  const dt = Math.max(0.001, (now - last.at) / 1000);
  const rows = run.backends.map((b, i) => ({
    name: b.name,
    workers: b.workers,
    capacityRps: b.capacityRps,
    utilization: b.utilization(),
    servedRps: ((served[i] ?? 0) - (last.served[i] ?? 0)) / dt,
    share: share[i] ?? Number.NaN,
  }));
  last.served = served;
  last.at = now;
  return rows;
}

function intro(s: Settings, run: Running, url: string): void {
  const admin = `http://127.0.0.1:${run.fulcrum?.adminPort ?? s.ports.admin}`;
  say(`fulcrum xDS on 127.0.0.1:${run.fulcrum?.xdsPort ?? s.ports.xds}, Envoy listener ${url}`);
  say(`backends: ${run.backends.map((b) => `${b.name} ${b.key} (${b.workers} workers, ${b.capacityRps.toFixed(0)} rps)`).join(', ')}`);
  say(`dashboard: ${admin}/   weights and why: curl ${admin}/v1/weights/${CLUSTER}`);
  say('Look at the Envoy weight share: it starts equal and moves toward the backends with more capacity.');
  say('Keys: 1..9 halve that backend\'s capacity, r restores, q quits.\n');
}

async function main(): Promise<number> {
  const s = settingsFromArgs(process.argv.slice(2));
  if (!s) {
    say(HELP);
    return 0;
  }
  const run = new Running();
  let stopping: Promise<void> | undefined;
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const quit = (): void => {
    stopping ??= run.stop().finally(finish);
  };
  process.once('SIGINT', quit);
  process.once('SIGTERM', quit);
  try {
    const url = await bringUp(s, run);
    startLoad(s, run, url);
    intro(s, run, url);
    listenForKeys(run, s.workers, quit);
    return await watch(s, run, done, quit);
  } catch (err) {
    process.stderr.write(`quickstart: ${(err as Error).message}\n`);
    quit();
    await done;
    return 1;
  }
}

/** Prints the table every 2 s until quit (or --duration); with --check, judges the last one. */
async function watch(s: Settings, run: Running, done: Promise<void>, quit: () => void): Promise<number> {
  const t0 = performance.now();
  const last = { served: run.backends.map(() => 0), at: t0 };
  let rows: Row[] = [];
  const timer = setInterval(() => {
    void sampleRows(run, last).then((r) => {
      rows = r;
      say(`${renderTable(r, (performance.now() - t0) / 1000)}\n`);
    });
  }, 2_000);
  if (s.durationS !== undefined) setTimeout(quit, s.durationS * 1000);
  await done;
  clearInterval(timer);
  process.stdin.pause();
  if (!s.check) return 0;
  const moved = movedTowardCapacity(rows.map((r) => r.capacityRps), rows.map((r) => r.share));
  say(moved ? 'check: weights moved toward the backends with more capacity' : 'check FAILED: the weights did not follow capacity');
  return moved ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`quickstart: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
