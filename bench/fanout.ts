/**
 * Fan-out benchmark: how long an EDS change takes to reach N ADS streams, what it costs the server.
 *
 *   npx tsx bench/fanout.ts --streams 5000 --clusters 100 --endpoints 20 --workers 2 --pushes 5
 *
 * Processes: this coordinator; fulcrum in bench/fanout-server.ts (its own process, so its CPU and
 * RSS are its own); K client workers (bench/fanout-client.ts) with N/K SotW ADS streams each,
 * `--per-channel` streams per HTTP/2 connection. Each push changes one endpoint weight in the
 * config file; fulcrum picks it up through its file watcher and its debounce (defaults: 50 ms
 * watcher settle, 100 ms quiet / 1 s max), so latencies are quoted both from the file write (t0)
 * and from the publish moment (cache.update). All timestamps are process.hrtime (CLOCK_MONOTONIC,
 * comparable across processes). Prints a table and a final JSON line. Not a test.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { PushSamples } from './fanout-client.js';
import type { MemReport, PushReport } from './fanout-server.js';

const { values: args } = parseArgs({
  options: {
    streams: { type: 'string', default: '1000' },
    clusters: { type: 'string', default: '100' },
    endpoints: { type: 'string', default: '20' },
    workers: { type: 'string', default: '2' },
    pushes: { type: 'string', default: '5' },
    'per-channel': { type: 'string', default: '100' },
    /**
     * Client HTTP/2 flow-control window in bytes (stream and connection). Envoy's default is
     * 256 MiB for both; grpc-js/Node's is 64 KiB, smaller than one 100x20 EDS response (~68 KiB),
     * which costs each stream a WINDOW_UPDATE round trip per push. 0 keeps the grpc-js default.
     */
    window: { type: 'string', default: String(16 * 2 ** 20) },
    /** node --cpu-prof on the server process (whole run, written at exit into the run directory). */
    'cpu-prof': { type: 'boolean', default: false },
    /** In-process CPU profile of the server during the pushes only, written to this file. */
    'profile-pushes': { type: 'string' },
    'keep-dir': { type: 'boolean', default: false },
    /** sotw (ADS StreamAggregatedResources) or delta (DeltaAggregatedResources, CDS wildcard + named EDS). */
    protocol: { type: 'string', default: 'sotw' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(
    'usage: npx tsx bench/fanout.ts [--streams N] [--clusters N] [--endpoints N] [--workers K] [--pushes P]\n' +
      '       [--per-channel N] [--window BYTES] [--protocol sotw|delta] [--cpu-prof] [--profile-pushes FILE] [--keep-dir]\n',
  );
  process.exit(0);
}
const N = Number(args.streams);
const C = Number(args.clusters);
const E = Number(args.endpoints);
const K = Math.min(Number(args.workers), N);
const P = Number(args.pushes);
const PER_CHANNEL = Number(args['per-channel']);
const WINDOW = Number(args.window);
const PROTOCOL = args.protocol === 'delta' ? 'delta' : 'sotw';
if (args.protocol !== PROTOCOL) throw new Error(`--protocol must be sotw or delta, not "${args.protocol}"`);
const RUN_DEADLINE_MS = 15 * 60_000;

const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-fanout-'));
const configPath = join(dir, 'fulcrum.yaml');
const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};

// --- config ----------------------------------------------------------------------------------

const clusterName = (c: number): string => `svc-${String(c).padStart(4, '0')}`;
const endpointAddress = (c: number, e: number): string => `10.${Math.floor(c / 256) % 256}.${c % 256}.${e + 1}`;
const weights = new Map<string, number>();

function yaml(): string {
  // The default limits (5,000 connections and calls, 2,000 calls per peer) would refuse a load
  // client that opens N streams from one address.
  const cap = N + 1000;
  const limits = `maxStreamsPerPeer: ${cap}, maxStreams: ${cap}, maxConnectionsPerPeer: ${cap}, maxConnections: ${cap}`;
  // Keepalive pings off the path (as in reconnect-storm.ts): on a loaded machine the client
  // workers answer them late and the server drops whole connections of streams.
  const lines = ['server:', '  logLevel: info', '  xds:', '    keepaliveTimeMs: 600000', `    limits: { ${limits} }`, 'clusters:'];
  for (let c = 0; c < C; c++) {
    lines.push(`  - name: ${clusterName(c)}`, '    endpoints:');
    for (let e = 0; e < E; e++) {
      const addr = endpointAddress(c, e);
      lines.push(`      - { address: ${addr}, port: 8080, weight: ${weights.get(`${c}/${e}`) ?? 1}, locality: { region: r1, zone: z${e % 3} } }`);
    }
  }
  return `${lines.join('\n')}\n`;
}

// --- processes -------------------------------------------------------------------------------

type Msg = { type: string } & Record<string, unknown>;

function spawn(script: string, argv: string[], extraExecArgv: string[], stdout: number | 'inherit'): ChildProcess {
  return fork(here(script), argv, {
    execArgv: ['--import', 'tsx', ...extraExecArgv],
    stdio: ['ignore', stdout, 'inherit', 'ipc'],
  });
}

function next(child: ChildProcess, type: string, timeoutMs = 180_000): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', on);
      reject(new Error(`timed out waiting for "${type}" from pid ${child.pid}`));
    }, timeoutMs);
    const on = (m: Msg): void => {
      if (m.type === 'log') log(`  [client ${child.pid}] ${String(m.msg)}`);
      if (m.type !== type) return;
      clearTimeout(timer);
      child.off('message', on);
      resolve(m);
    };
    child.on('message', on);
  });
}

const children: ChildProcess[] = [];
const deadline = setTimeout(() => {
  log(`fanout: run exceeded ${RUN_DEADLINE_MS / 60_000} min; stopping`);
  for (const c of children) c.kill('SIGKILL');
  process.exit(2);
}, RUN_DEADLINE_MS);
deadline.unref();

// --- statistics ------------------------------------------------------------------------------

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}
const median = (xs: readonly number[]): number => quantile([...xs].sort((a, b) => a - b), 0.5);
const r1 = (x: number): number => Math.round(x * 10) / 10;
const mb = (b: number): number => r1(b / 2 ** 20);

interface PushResult {
  push: number;
  cluster: string;
  received: number;
  acked: number;
  serverAcks: number;
  extraResponses: number;
  publishDelayMs: number;
  /** Receive latency across streams, from the file write. */
  recvFromWrite: { p50: number; p99: number; max: number };
  /** Receive latency across streams, from the publish moment. */
  recvFromPublish: { p50: number; p99: number; max: number };
  lastClientAckFromPublishMs: number;
  lastServerAckFromWriteMs: number;
  lastServerAckFromPublishMs: number;
  fanoutSyncMs: number;
  serverCpuMs: number;
  serverCpuFromPublishMs: number;
  clientCpuMs: number;
  kbPerStream: number;
}

function summarize(push: number, cluster: string, server: PushReport, samples: PushSamples[]): PushResult {
  const recv = samples.flatMap((s) => s.recv).filter((t) => !Number.isNaN(t));
  const ack = samples.flatMap((s) => s.ack).filter((t) => !Number.isNaN(t));
  const fromWrite = recv.map((t) => t - server.t0).sort((a, b) => a - b);
  const fromPublish = recv.map((t) => t - server.tPublish).sort((a, b) => a - b);
  const dist = (xs: number[]) => ({ p50: r1(quantile(xs, 0.5)), p99: r1(quantile(xs, 0.99)), max: r1(quantile(xs, 1)) });
  const bytes = samples.reduce((a, s) => a + s.bytes, 0);
  return {
    push,
    cluster,
    received: recv.length,
    acked: ack.length,
    serverAcks: server.acks,
    extraResponses: samples.reduce((a, s) => a + s.extra, 0),
    publishDelayMs: r1(server.tPublish - server.t0),
    recvFromWrite: dist(fromWrite),
    recvFromPublish: dist(fromPublish),
    lastClientAckFromPublishMs: r1(Math.max(...ack) - server.tPublish),
    lastServerAckFromWriteMs: r1((server.tLastAck ?? NaN) - server.t0),
    lastServerAckFromPublishMs: r1((server.tLastAck ?? NaN) - server.tPublish),
    fanoutSyncMs: r1(server.fanoutSyncMs),
    serverCpuMs: r1(server.cpuMs),
    serverCpuFromPublishMs: r1(server.cpuFromPublishMs),
    clientCpuMs: r1(samples.reduce((a, s) => a + s.cpuMs, 0)),
    kbPerStream: r1(bytes / Math.max(1, recv.length) / 1024),
  };
}

// --- run -------------------------------------------------------------------------------------

async function main(): Promise<void> {
  writeFileSync(configPath, yaml());
  log(`fanout: ${N} ${PROTOCOL} streams, ${C} clusters x ${E} endpoints, ${K} client workers, ${PER_CHANNEL} streams/connection, client window ${WINDOW || 'default'}, ${P} pushes; ${cpus().length} cores; config ${configPath}`);

  const serverLog = openSync(join(dir, 'server.log'), 'w');
  const server = spawn('./fanout-server.ts', [configPath], ['--expose-gc', ...(args['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', dir] : [])], serverLog);
  children.push(server);
  const ready = await next(server, 'ready', 60_000);
  const address = `127.0.0.1:${Number(ready.port)}`;
  server.send({ cmd: 'mem' });
  const memBefore = (await next(server, 'mem')).mem as MemReport;
  log(`server pid ${String(ready.pid)} on ${address}; RSS ${mb(memBefore.rss)} MiB, heap ${mb(memBefore.heapUsed)} MiB before clients`);

  const workers = Array.from({ length: K }, () => spawn('./fanout-client.ts', [], [], 'inherit'));
  children.push(...workers);
  await Promise.all(workers.map((w) => next(w, 'ready', 60_000)));
  const openStarted = performance.now();
  const opened = await Promise.all(
    workers.map((w, k) => {
      const streams = Math.floor(N / K) + (k < N % K ? 1 : 0);
      w.send({ cmd: 'open', address, streams, perChannel: PER_CHANNEL, worker: k, batch: 100, batchPauseMs: 20, window: WINDOW, protocol: PROTOCOL });
      return next(w, 'opened', 180_000);
    }),
  );
  const synced = opened.reduce((a, o) => a + Number(o.synced), 0);
  const connections = opened.reduce((a, o) => a + Number(o.channels), 0);
  log(`clients: ${synced}/${N} streams synced (CDS+EDS ACKed) over ${connections} connections in ${Math.round(performance.now() - openStarted)} ms`);
  if (synced < N) throw new Error(`only ${synced} of ${N} streams synced`);
  await new Promise((r) => setTimeout(r, 1_000));
  server.send({ cmd: 'mem' });
  const memConnected = (await next(server, 'mem')).mem as MemReport;
  const perStreamKb = (memConnected.rss - memBefore.rss) / N / 1024;
  const heapPerStreamKb = (memConnected.heapUsed - memBefore.heapUsed) / N / 1024;
  log(
    `server with ${memConnected.streams} streams: RSS ${mb(memConnected.rss)} MiB (+${r1(perStreamKb)} KiB/stream), ` +
      `heap ${mb(memConnected.heapUsed)} MiB (+${r1(heapPerStreamKb)} KiB/stream), external ${mb(memConnected.external)} MiB ` +
      `(arrayBuffers ${mb(memConnected.arrayBuffers)} MiB), peak RSS so far ${mb(memConnected.maxRss)} MiB`,
  );

  const profileFile = args['profile-pushes'];
  if (profileFile) {
    server.send({ cmd: 'profile', action: 'start' });
    await next(server, 'profiling');
  }
  const results: PushResult[] = [];
  for (let p = 1; p <= P; p++) {
    const c = (p * 37) % C;
    const e = p % E;
    const weight = 1 + p;
    weights.set(`${c}/${e}`, weight);
    const cluster = clusterName(c);
    workers.forEach((w) => w.send({ cmd: 'watch', push: p, cluster, address: endpointAddress(c, e), weight }));
    await Promise.all(workers.map((w) => next(w, 'watching')));
    server.send({ cmd: 'push', yaml: yaml(), streams: N });
    const report = (await next(server, 'pushed', 90_000)).report as PushReport;
    await new Promise((r) => setTimeout(r, 300));
    workers.forEach((w) => w.send({ cmd: 'collect', push: p }));
    const samples = (await Promise.all(workers.map((w) => next(w, 'samples')))).map((m) => m.samples as PushSamples);
    const r = summarize(p, cluster, report, samples);
    results.push(r);
    log(
      `push ${p} (${cluster} weight→${weight}): ${r.received}/${N} received, server saw ${r.serverAcks} ACKs; ` +
        `publish ${r.publishDelayMs} ms after write; from publish p50 ${r.recvFromPublish.p50} / p99 ${r.recvFromPublish.p99} / max ${r.recvFromPublish.max} ms, ` +
        `last ACK at server ${r.lastServerAckFromPublishMs} ms (${r.lastServerAckFromWriteMs} ms from write); ` +
        `server CPU ${r.serverCpuMs} ms (${r.serverCpuFromPublishMs} from publish; sync fan-out ${r.fanoutSyncMs} ms), clients CPU ${r.clientCpuMs} ms, ${r.kbPerStream} KiB/stream`,
    );
    await new Promise((r) => setTimeout(r, 1_000));
  }

  if (profileFile) {
    server.send({ cmd: 'profile', action: 'stop', file: profileFile });
    log(`server CPU profile of the pushes: ${String((await next(server, 'profiled', 60_000)).file)}`);
  }
  server.send({ cmd: 'mem' });
  const memAfter = (await next(server, 'mem')).mem as MemReport;
  log(
    `server after pushes: RSS ${mb(memAfter.rss)} MiB, heap ${mb(memAfter.heapUsed)} MiB (total ${mb(memAfter.heapTotal)}), external ${mb(memAfter.external)} MiB ` +
      `(arrayBuffers ${mb(memAfter.arrayBuffers)} MiB), peak RSS ${mb(memAfter.maxRss)} MiB`,
  );

  workers.forEach((w) => w.send({ cmd: 'stop' }));
  await Promise.all(workers.map((w) => next(w, 'stopped', 10_000).catch(() => undefined)));
  server.send({ cmd: 'stop' });
  await new Promise<void>((resolve) => {
    server.once('exit', () => resolve());
    setTimeout(() => {
      server.kill('SIGKILL');
      resolve();
    }, 15_000).unref();
  });
  for (const w of workers) if (w.exitCode === null) w.kill();

  const med = (f: (r: PushResult) => number): number => r1(median(results.map(f)));
  const summary = {
    bench: 'fanout',
    date: new Date().toISOString(),
    cores: cpus().length,
    protocol: PROTOCOL,
    streams: N,
    clusters: C,
    endpoints: E,
    workers: K,
    streamsPerConnection: PER_CHANNEL,
    clientWindowBytes: WINDOW,
    connections,
    pushes: P,
    debounce: { watcherSettleMs: 50, quietMs: 100, maxMs: 1000 },
    median: {
      publishDelayMs: med((r) => r.publishDelayMs),
      recvFromPublishP50Ms: med((r) => r.recvFromPublish.p50),
      recvFromPublishP99Ms: med((r) => r.recvFromPublish.p99),
      recvFromPublishMaxMs: med((r) => r.recvFromPublish.max),
      recvFromWriteP50Ms: med((r) => r.recvFromWrite.p50),
      recvFromWriteP99Ms: med((r) => r.recvFromWrite.p99),
      recvFromWriteMaxMs: med((r) => r.recvFromWrite.max),
      lastServerAckFromPublishMs: med((r) => r.lastServerAckFromPublishMs),
      lastServerAckFromWriteMs: med((r) => r.lastServerAckFromWriteMs),
      serverCpuMsPerPush: med((r) => r.serverCpuMs),
      serverCpuMsPerPushFromPublish: med((r) => r.serverCpuFromPublishMs),
      syncFanoutMs: med((r) => r.fanoutSyncMs),
      clientCpuMsPerPush: med((r) => r.clientCpuMs),
      kbPerStreamPerPush: med((r) => r.kbPerStream),
    },
    memory: {
      rssBeforeMiB: mb(memBefore.rss),
      rssConnectedMiB: mb(memConnected.rss),
      rssAfterPushesMiB: mb(memAfter.rss),
      heapAfterPushesMiB: mb(memAfter.heapUsed),
      heapTotalAfterPushesMiB: mb(memAfter.heapTotal),
      externalAfterPushesMiB: mb(memAfter.external),
      peakRssMiB: mb(memAfter.maxRss),
      externalConnectedMiB: mb(memConnected.external),
      arrayBuffersConnectedMiB: mb(memConnected.arrayBuffers),
      rssPerStreamKiB: r1(perStreamKb),
      heapPerStreamKiB: r1(heapPerStreamKb),
    },
    allReceived: results.every((r) => r.received === N && r.serverAcks === N),
    pushes_detail: results,
  };
  log(`medians over ${P} pushes: ${JSON.stringify(summary.median)}`);
  log(`memory: ${JSON.stringify(summary.memory)}`);
  if (args['cpu-prof']) log(`server CPU profile in ${dir}`);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  if (!args['keep-dir'] && !args['cpu-prof']) rmSync(dir, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(`fanout: ${(err as Error).stack ?? String(err)}`);
    for (const c of children) c.kill('SIGKILL');
    process.exit(1);
  },
);
