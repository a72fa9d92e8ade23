/**
 * One row of one proxyless scenario: the Go fleet (bench/go/grpcfleet), fulcrum in process with the
 * row's cluster behind an apiListener, one grpc-go xDS client (bench/go/grpcload) at a seeded
 * Poisson rate, the scenario's events on time, and the figures.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { killOnExit } from '../../test/support/proc.js';
import { latencyFigures, mean, windowUtilization, type RowFigures, type Sample } from '../scenarios/figures.js';
import { TIMING, type ProxylessRow, type ProxylessScenario } from './scenarios.js';

/** The Envoy scenarios' balance and latency figures, and what a proxyless row adds. */
export interface ProxylessFigures extends Pick<RowFigures, 'maxAvg' | 'meanUtil' | 'p50' | 'p99' | 'p99All' | 'errorRate'> {
  /** Share of the calls after the event (or the warm-up) that the event's backend (else the biggest) answered or failed. */
  readonly targetShare: number;
  /** fulcrum's published weights at the end (adaptive rows), and its chosen policy. */
  readonly weights: string;
}

export type ProxylessResult = { readonly row: string; readonly figures: ProxylessFigures } | { readonly row: string; readonly unavailable: string };

export interface Binaries {
  readonly grpcfleet: string;
  readonly grpcload: string;
}

const CLUSTER = 'work';
const LISTENER = 'work';

/** A child whose stdout lines are read one at a time. */
class LineProc {
  private readonly lines: string[] = [];
  private waiters: ((line: string) => void)[] = [];
  private readonly stderr: string[] = [];
  constructor(readonly child: ChildProcess) {
    killOnExit(child);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => {
      const w = this.waiters.shift();
      if (w) w(l);
      else this.lines.push(l);
    });
    child.stderr?.on('data', (d: Buffer) => this.stderr.push(d.toString()));
  }
  next(timeoutMs: number, what: string): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${what}: no line within ${timeoutMs} ms; stderr: ${this.stderr.join('').slice(-2000)}`)), timeoutMs);
      this.waiters.push((line) => {
        clearTimeout(t);
        resolve(line);
      });
    });
  }
  send(line: string): void {
    this.child.stdin?.write(`${line}\n`);
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }
}

interface Marks {
  busyMs: number[];
  capacityMs: number[];
}

export function configFor(row: ProxylessRow, ports: readonly number[]): string {
  return YAML.stringify({
    server: { logLevel: 'warn' },
    clusters: [{ name: CLUSTER, http2: true, ...row.cluster, endpoints: ports.map((port) => ({ address: '127.0.0.1', port })) }],
    listeners: [{ name: LISTENER, apiListener: true, routes: [{ prefix: '/', cluster: CLUSTER, timeoutMs: 10_000 }] }],
  });
}

function bootstrap(xdsPort: number, nodeId: string): string {
  return JSON.stringify({
    xds_servers: [{ server_uri: `127.0.0.1:${xdsPort}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: nodeId, cluster: 'proxyless-bench', locality: { zone: 'bench' } },
  });
}

const sleepUntil = (t0: number, s: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, t0 + s * 1000 - performance.now())));

async function mark(fleet: LineProc): Promise<Marks> {
  fleet.send('mark');
  return JSON.parse(await fleet.next(10_000, 'grpcfleet mark')) as Marks;
}

function toUtil(m: Marks): { busyMs: number; capacityMs: number }[] {
  return m.busyMs.map((busyMs, i) => ({ busyMs, capacityMs: m.capacityMs[i] ?? 0 }));
}

/** With --detail: every second, what fulcrum read of each endpoint (cpu, latency, calls a second and in flight, error rate, their freshness), the weight it published and the rules that applied. */
function traceEvery(fulcrum: Fulcrum, ports: readonly number[], t0: () => number, log: (s: string) => void): () => void {
  const timer = setInterval(() => {
    const ex = fulcrum.adaptive.explain(CLUSTER);
    if (ex === undefined) return;
    const f = (v: number | undefined, d: number): string => (v === undefined ? '-' : v.toFixed(d));
    const parts = ports.map((p) => {
      const x = ex.explanations.get(`127.0.0.1:${p}`);
      if (x === undefined) return '?';
      const rules = x.rules.length > 0 ? ` [${x.rules.join(',')}]` : '';
      return `cpu ${f(x.inputs.cpu, 2)} lat ${f(x.inputs.latencyMs, 0)} rps ${f(x.inputs.rps, 0)} infl ${f(x.inputs.inflight, 0)} err ${f(x.inputs.errorRate, 2)} ${x.freshness} w ${x.integerWeight}${rules}`;
    });
    log(`    t=${((performance.now() - t0()) / 1000).toFixed(0)} s: ${parts.join(' | ')}`);
  }, 1000);
  return () => clearInterval(timer);
}

export async function runRow(s: ProxylessScenario, row: ProxylessRow, bins: Binaries, seed: number, log: (s: string) => void, detail = false): Promise<ProxylessResult> {
  const dir = await mkdtemp(join(tmpdir(), `fulcrum-proxyless-${s.name}-`));
  const fleet = new LineProc(spawn(bins.grpcfleet, ['--workers', s.workers.join(','), '--service-ms', String(s.meanServiceMs), '--seed', String(seed)], { stdio: ['pipe', 'pipe', 'pipe'] }));
  let fulcrum: Fulcrum | undefined;
  let load: LineProc | undefined;
  let stopTrace: (() => void) | undefined;
  try {
    const { ports } = JSON.parse(await fleet.next(10_000, 'grpcfleet ports')) as { ports: number[] };
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(configPath, configFor(row, ports));
    try {
      fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger: pino({ level: 'silent' }) });
    } catch (err) {
      return { row: row.name, unavailable: `fulcrum refused the config: ${(err instanceof Error ? err.message : String(err)).split('\n')[0] ?? ''}` };
    }
    const capacity = s.workers.reduce((a, w) => a + (w * 1000) / s.meanServiceMs, 0);
    const args = ['--target', `xds:///${LISTENER}`, '--rps', String(capacity * s.load), '--duration', `${TIMING.durationS}s`, '--backends', String(s.workers.length), '--seed', String(seed)];
    if (s.deadlineMs !== undefined) args.push('--deadline', `${s.deadlineMs}ms`);
    const env = { ...process.env, GRPC_XDS_BOOTSTRAP_CONFIG: bootstrap(fulcrum.xdsPort, `proxyless-${s.name}-${row.name}-${seed}`) };
    load = new LineProc(spawn(bins.grpcload, args, { stdio: ['pipe', 'pipe', 'pipe'], env }));
    await load.next(90_000, 'grpcload warm-up');
    const t0 = performance.now();
    const f = fulcrum;
    stopTrace = detail && f.adaptive.explain(CLUSTER) !== undefined ? traceEvery(f, ports, () => t0, log) : undefined;
    for (const e of s.events) {
      await sleepUntil(t0, e.atS);
      log(`    t=${((performance.now() - t0) / 1000).toFixed(1)} s: ${e.command}`);
      fleet.send(e.command);
    }
    await sleepUntil(t0, TIMING.durationS - TIMING.steadyS);
    const before = await mark(fleet);
    await sleepUntil(t0, TIMING.durationS);
    const after = await mark(fleet);
    const weights = row.cluster.weighting === undefined ? '' : weightsOf(fulcrum, ports);
    const calls = JSON.parse(await load.next(60_000, 'grpcload calls')) as Calls;
    if (detail) log(`    failed by second sent: ${failedBySecond(calls) || 'none'}`);
    return { row: row.name, figures: figuresOf(s, calls, windowUtilization(toUtil(before), toUtil(after)), weights) };
  } finally {
    stopTrace?.();
    await load?.stop();
    await fulcrum?.stop();
    await fleet.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function weightsOf(fulcrum: Fulcrum, ports: readonly number[]): string {
  const ex = fulcrum.adaptive.explain(CLUSTER);
  if (ex === undefined) return '';
  return ports.map((p) => ex.explanations.get(`127.0.0.1:${p}`)?.integerWeight ?? '?').join(':');
}

interface Calls {
  sentMs: number[];
  ms: number[];
  code: string[];
  backend: number[];
}

/** "20s 45, 21s 50": the failed calls counted by the second (since the load started) they were sent in. */
function failedBySecond(c: Calls): string {
  const bySecond = new Map<number, number>();
  c.code.forEach((code, i) => {
    if (code === 'OK') return;
    const second = Math.floor((c.sentMs[i] ?? 0) / 1000);
    bySecond.set(second, (bySecond.get(second) ?? 0) + 1);
  });
  return [...bySecond].sort((a, b) => a[0] - b[0]).map(([second, n]) => `${second}s ${n}`).join(', ');
}

function figuresOf(s: ProxylessScenario, c: Calls, util: readonly number[], weights: string): ProxylessFigures {
  const samples: Sample[] = c.sentMs.map((sent, i) => {
    const backend = c.backend[i] ?? -1;
    return { sentS: sent / 1000, ms: c.ms[i] ?? 0, outcome: c.code[i] === 'OK' ? 'ok' : c.code[i] === 'DeadlineExceeded' ? 'timeout' : 'http5xx', ...(backend >= 0 ? { backend } : {}) };
  });
  const meanUtil = mean(util);
  const target = s.target ?? s.workers.indexOf(Math.max(...s.workers));
  const fromS = s.events[0]?.atS ?? TIMING.warmS;
  const after = samples.filter((x) => x.sentS >= fromS);
  // A failed call names no backend: the fast-failing target's failures are counted as its own.
  const failed = s.target === undefined ? 0 : after.filter((x) => x.outcome !== 'ok').length;
  return {
    maxAvg: Math.max(...util) / meanUtil,
    meanUtil,
    ...latencyFigures(samples, TIMING.warmS),
    targetShare: (after.filter((x) => x.backend === target).length + failed) / Math.max(1, after.length),
    weights,
  };
}
