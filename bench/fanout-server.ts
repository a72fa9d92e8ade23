/**
 * Fan-out benchmark, server side: runs fulcrum in its own process so that its CPU time and
 * resident memory are isolated from the simulated clients. Driven over the fork IPC channel by
 * bench/fanout.ts; not meant to be run by hand.
 *
 * Instrumentation (bench-only, no src/ change): `cache.update` is wrapped to timestamp the publish
 * moment (before the server's own cache listener starts writing to streams), and `registry.acked`
 * is wrapped to count the EDS ACKs of the new version and timestamp the last one.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { pino } from 'pino';
import { startFulcrum } from '../src/main.js';
import { TYPE } from '../src/xds/envoy-api.js';
import { subscription } from '../src/xds/cache.js';
import { cpuMs, nowMs, send } from './fanout-child.js';

export type ServerCommand =
  | { cmd: 'mem' }
  | { cmd: 'push'; yaml: string; streams: number }
  | { cmd: 'profile'; action: 'start' | 'stop'; file?: string }
  | { cmd: 'stop' };

export interface MemReport {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  maxRss: number;
  streams: number;
}

export interface PushReport {
  /** All times: process.hrtime (CLOCK_MONOTONIC, shared by every process on the machine), in ms. */
  t0: number;
  tPublish: number;
  /** Time spent inside cache.update, i.e. diffing plus the synchronous fan-out to every stream. */
  fanoutSyncMs: number;
  tLastAck: number | undefined;
  acks: number;
  version: string;
  /** CPU ms from the config write to the last ACK (parse, translate, encode, fan-out, ACK handling). */
  cpuMs: number;
  /** CPU ms from the publish moment to the last ACK. */
  cpuFromPublishMs: number;
  maxRss: number;
}

const configPath = process.argv[2];
if (!configPath || configPath === '--help' || configPath === '-h' || !process.send) {
  // Started by hand: it only works as bench/fanout.ts's forked child, with the IPC channel.
  process.stdout.write('usage: fanout-server.ts CONFIG (forked by bench/fanout.ts, which you run instead: npx tsx bench/fanout.ts --help)\n');
  process.exit(configPath === '--help' || configPath === '-h' ? 0 : 2);
}

// Production-like logging: pino JSON at info level, to this process's stdout (a file).
const logger = pino({ name: 'fulcrum', level: process.env.FULCRUM_LOG_LEVEL ?? 'info', base: { pid: process.pid } });
const fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger });
const { cache, registry } = fulcrum;

interface Pending {
  t0: number;
  cpu0: number;
  tPublish?: number;
  cpuPublish?: number;
  fanoutSyncMs?: number;
  version?: string;
  systemVersion?: string;
  expected: number;
  acks: number;
  tLastAck?: number;
  timer?: NodeJS.Timeout;
}
let pending: Pending | undefined;
let profiler: Session | undefined;

const origUpdate = cache.update.bind(cache);
cache.update = (groups) => {
  const p = pending;
  const t = nowMs();
  if (p && p.tPublish === undefined) {
    p.tPublish = t;
    p.cpuPublish = cpuMs();
  }
  const changed = origUpdate(groups);
  if (p && p.version === undefined && changed.size > 0) {
    p.fanoutSyncMs = nowMs() - t;
    // The clients ask for every cluster by name; the memoized body for all names is theirs.
    p.version = cache.snapshotFor('').sotwBody(TYPE.endpoint, subscription(TYPE.endpoint, true, [])).version;
    p.systemVersion = cache.snapshotFor('').version;
  }
  return changed;
};

const origAcked = registry.acked.bind(registry);
registry.acked = (record, type, nonce, version) => {
  origAcked(record, type, nonce, version);
  const p = pending;
  // SotW ACKs name the EDS body's version, Delta ones the snapshot's system version.
  if (!p || type !== TYPE.endpoint || p.version === undefined || (version !== p.version && version !== p.systemVersion)) return;
  p.acks++;
  if (p.acks === p.expected) {
    p.tLastAck = nowMs();
    finish(p);
  }
};

function finish(p: Pending): void {
  if (pending !== p) return;
  pending = undefined;
  if (p.timer) clearTimeout(p.timer);
  const cpu = cpuMs();
  const report: PushReport = {
    t0: p.t0,
    tPublish: p.tPublish ?? NaN,
    fanoutSyncMs: p.fanoutSyncMs ?? NaN,
    tLastAck: p.tLastAck,
    acks: p.acks,
    version: p.version ?? '',
    cpuMs: cpu - p.cpu0,
    cpuFromPublishMs: cpu - (p.cpuPublish ?? p.cpu0),
    maxRss: process.resourceUsage().maxRSS * 1024,
  };
  send({ type: 'pushed', report });
}

function mem(): MemReport {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    maxRss: process.resourceUsage().maxRSS * 1024,
    streams: registry.size,
  };
}

process.on('message', (msg: ServerCommand) => {
  if (msg.cmd === 'mem') {
    send({ type: 'mem', mem: mem() });
  } else if (msg.cmd === 'push') {
    const p: Pending = { t0: 0, cpu0: cpuMs(), expected: msg.streams, acks: 0 };
    p.timer = setTimeout(() => finish(p), 60_000);
    pending = p;
    // Atomic replace, as an editor or a ConfigMap update would do it.
    const tmp = `${configPath}.tmp`;
    writeFileSync(tmp, msg.yaml);
    p.t0 = nowMs();
    renameSync(tmp, configPath);
  } else if (msg.cmd === 'profile') {
    // In-process V8 CPU profile of the push phase only (node --cpu-prof would include start-up
    // and the connection storm).
    if (msg.action === 'start') {
      profiler = new Session();
      profiler.connect();
      profiler.post('Profiler.enable', () =>
        profiler?.post('Profiler.setSamplingInterval', { interval: 200 }, () => profiler?.post('Profiler.start', () => send({ type: 'profiling' }))),
      );
    } else {
      const file = msg.file ?? 'fanout-server.cpuprofile';
      profiler?.post('Profiler.stop', (err, res) => {
        if (!err) writeFileSync(file, JSON.stringify(res.profile));
        profiler?.disconnect();
        profiler = undefined;
        send({ type: 'profiled', file: err ? undefined : file });
      });
    }
  } else if (msg.cmd === 'stop') {
    void fulcrum.stop().then(() => process.exit(0));
  }
});

send({ type: 'ready', port: fulcrum.xdsPort, pid: process.pid });
