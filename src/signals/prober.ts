import * as grpc from '@grpc/grpc-js';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import protobuf from 'protobufjs';
import { PROBE_DEFAULTS } from '../catalog/protection.js';
import type { ProbeSpec as CatalogProbeSpec } from '../catalog/types.js';
import { endpointKeyOf } from './report-validation.js';
import type { ProbeResult, SignalStore } from './signal-store.js';

/**
 * Active probes: per cluster, every endpoint is probed on an interval (jittered, and spread over
 * the first interval so a large cluster is not probed all at once) with a timeout. Each probe
 * opens its own connection, so its latency includes the connect (an RTT measure) and a
 * recovered endpoint is seen at the next probe. Results go to the SignalStore as probe results
 * `{ ok, at, latencyMs?, error? }`; the health gate in the weight engine counts them.
 *
 * A probe of an endpoint starts only after the previous one finished: a slow endpoint is never
 * probed twice at once.
 */

export type ProbeSpec =
  /** GET `path`; ok when the status is 2xx. */
  | { readonly kind: 'http'; readonly path?: string; readonly host?: string }
  /** TCP connect; ok when it connects. */
  | { readonly kind: 'tcp' }
  /** grpc.health.v1.Health/Check; ok when the status is SERVING. `service` '' is the server as a whole. */
  | { readonly kind: 'grpc'; readonly service?: string };

export interface ProbeOutcome {
  readonly ok: boolean;
  /** Time to the answer (HTTP headers, TCP connect, gRPC response), ms. Only when ok. */
  readonly latencyMs?: number;
  readonly error?: string;
}

/** A monotonic ms clock for latencies. */
type Stopwatch = () => number;

// --- one probe -------------------------------------------------------------------------------

function httpProbe(spec: Extract<ProbeSpec, { kind: 'http' }>, address: string, port: number, timeoutMs: number, watch: Stopwatch): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const started = watch();
    let settled = false;
    const finish = (o: ProbeOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(o);
    };
    const host = address.includes(':') ? `[${address}]` : address;
    const req = http.request(
      {
        host: address,
        port,
        path: spec.path ?? '/',
        method: 'GET',
        agent: false,
        headers: { host: spec.host ?? `${host}:${port}`, connection: 'close', 'user-agent': 'fulcrum-prober' },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        if (status >= 200 && status < 300) finish({ ok: true, latencyMs: watch() - started });
        else finish({ ok: false, error: `HTTP ${status}` });
      },
    );
    const timer = setTimeout(() => finish({ ok: false, error: `timeout after ${timeoutMs} ms` }), timeoutMs);
    req.on('error', (err) => finish({ ok: false, error: describe(err) }));
    req.end();
  });
}

function tcpProbe(address: string, port: number, timeoutMs: number, watch: Stopwatch): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const started = watch();
    let settled = false;
    const socket = net.connect({ host: address, port });
    const finish = (o: ProbeOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => finish({ ok: false, error: `timeout after ${timeoutMs} ms` }), timeoutMs);
    socket.once('connect', () => finish({ ok: true, latencyMs: watch() - started }));
    socket.once('error', (err) => finish({ ok: false, error: describe(err) }));
  });
}

export const GRPC_HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
/** grpc.health.v1.HealthCheckResponse.ServingStatus */
export const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;

/** HealthCheckRequest { string service = 1; } */
export function encodeHealthCheckRequest(service: string): Buffer {
  const w = protobuf.Writer.create();
  if (service !== '') w.uint32((1 << 3) | 2).string(service);
  return Buffer.from(w.finish());
}

/** HealthCheckResponse { ServingStatus status = 1; } → the status number (0 when absent). */
export function decodeHealthCheckResponse(bytes: Buffer): number {
  const r = protobuf.Reader.create(bytes);
  let status = 0;
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === ((1 << 3) | 0)) status = r.int32();
    else r.skipType(tag & 7);
  }
  return status;
}

export function decodeHealthCheckRequest(bytes: Buffer): string {
  const r = protobuf.Reader.create(bytes);
  let service = '';
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === ((1 << 3) | 2)) service = r.string();
    else r.skipType(tag & 7);
  }
  return service;
}

export function encodeHealthCheckResponse(status: number): Buffer {
  const w = protobuf.Writer.create();
  if (status !== 0) w.uint32((1 << 3) | 0).int32(status);
  return Buffer.from(w.finish());
}

function grpcProbe(spec: Extract<ProbeSpec, { kind: 'grpc' }>, address: string, port: number, timeoutMs: number, watch: Stopwatch): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const started = watch();
    const target = address.includes(':') ? `ipv6:[${address}]:${port}` : `ipv4:${address}:${port}`;
    // One channel per probe, closed after it: no reconnect backoff carried from probe to probe.
    const client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc.enable_retries': 0 });
    client.makeUnaryRequest(
      GRPC_HEALTH_CHECK_PATH,
      (s: string) => encodeHealthCheckRequest(s),
      decodeHealthCheckResponse,
      spec.service ?? '',
      { deadline: Date.now() + timeoutMs },
      (err, status) => {
        client.close();
        if (err) {
          const code = grpc.status[err.code] ?? String(err.code);
          resolve({ ok: false, error: err.code === grpc.status.DEADLINE_EXCEEDED ? `timeout after ${timeoutMs} ms` : `gRPC ${code}: ${err.details}` });
        } else if (status === 1) resolve({ ok: true, latencyMs: watch() - started });
        else resolve({ ok: false, error: SERVING_STATUS[status ?? 0] ?? `status ${status}` });
      },
    );
  });
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ECONNREFUSED') return 'connection refused';
  return e.code ? `${e.code}: ${e.message}` : String(e.message ?? err);
}

/** Runs one probe against `address:port`. Never rejects. */
export function runProbe(spec: ProbeSpec, address: string, port: number, timeoutMs: number, watch: Stopwatch = () => performance.now()): Promise<ProbeOutcome> {
  const probe =
    spec.kind === 'http' ? httpProbe(spec, address, port, timeoutMs, watch)
    : spec.kind === 'tcp' ? tcpProbe(address, port, timeoutMs, watch)
    : grpcProbe(spec, address, port, timeoutMs, watch);
  return probe.catch((err: unknown) => ({ ok: false, error: describe(err) }));
}

// --- the scheduler -----------------------------------------------------------------------------

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const REAL_TIMERS: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface ClusterProbeConfig {
  readonly spec: ProbeSpec;
  /** Default: the prober's. */
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
}

/** A catalog cluster's `probe` → what `Prober.setCluster` takes (`path` is the gRPC service for grpc). */
export function probeConfigFromCatalog(p: CatalogProbeSpec): ClusterProbeConfig {
  const spec: ProbeSpec = p.kind === 'http' ? { kind: 'http', path: p.path || '/' } : p.kind === 'grpc' ? { kind: 'grpc', service: p.path } : { kind: 'tcp' };
  return { spec, intervalMs: p.intervalMs, timeoutMs: p.timeoutMs };
}

export interface ProberOptions {
  readonly store: SignalStore;
  /** Default PROBE_DEFAULTS.intervalMs (2000 ms). */
  readonly intervalMs?: number;
  /** Default PROBE_DEFAULTS.timeoutMs (1000 ms). */
  readonly timeoutMs?: number;
  /** Each interval is scaled by a random factor in [1 − jitter, 1 + jitter]. Default 0.2. */
  readonly jitter?: number;
  readonly timers?: Timers;
  /** In [0, 1). Default Math.random. */
  readonly random?: () => number;
  /** Replaces the network probe (tests). */
  readonly probe?: (spec: ProbeSpec, address: string, port: number, timeoutMs: number) => Promise<ProbeOutcome>;
  /** Every result, after it is stored. */
  readonly onResult?: (cluster: string, key: string, result: ProbeResult) => void;
}

interface Job {
  readonly cluster: string;
  readonly key: string;
  readonly address: string;
  readonly port: number;
  config: ClusterProbeConfig;
  handle: unknown;
  running: boolean;
  stopped: boolean;
}

export class Prober {
  /** cluster → key → job */
  private readonly jobs = new Map<string, Map<string, Job>>();
  private readonly timers: Timers;
  private readonly random: () => number;
  private started = false;

  constructor(private readonly options: ProberOptions) {
    this.timers = options.timers ?? REAL_TIMERS;
    this.random = options.random ?? Math.random;
  }

  /**
   * Sets what to probe in a cluster (config undefined, or no endpoints: stop probing it). Jobs of
   * endpoints that stay keep their schedule; a changed config applies from their next probe.
   */
  setCluster(cluster: string, config: ClusterProbeConfig | undefined, endpoints: readonly { readonly address: string; readonly port: number }[]): void {
    const current = this.jobs.get(cluster) ?? new Map<string, Job>();
    const wanted = new Map(config ? endpoints.map((e) => [endpointKeyOf(e.address, e.port), e] as const) : []);
    for (const [key, job] of current) {
      if (!wanted.has(key)) {
        this.cancel(job);
        current.delete(key);
      }
    }
    for (const [key, e] of wanted) {
      const existing = current.get(key);
      if (existing && config) existing.config = config;
      else if (config) {
        const job: Job = { cluster, key, address: e.address, port: e.port, config, handle: undefined, running: false, stopped: false };
        current.set(key, job);
        if (this.started) this.schedule(job, this.random() * this.interval(job));
      }
    }
    if (current.size === 0) this.jobs.delete(cluster);
    else this.jobs.set(cluster, current);
  }

  /** Starts probing; each endpoint's first probe comes at a random point of its first interval. */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const eps of this.jobs.values()) for (const job of eps.values()) this.schedule(job, this.random() * this.interval(job));
  }

  /** Stops every timer; probes in flight finish but are not recorded. */
  stop(): void {
    this.started = false;
    for (const eps of this.jobs.values()) for (const job of eps.values()) this.cancel(job);
    this.jobs.clear();
  }

  get targetCount(): number {
    let n = 0;
    for (const eps of this.jobs.values()) n += eps.size;
    return n;
  }

  /** Probes one endpoint now, records and returns the result (also usable without start()). */
  async probeNow(cluster: string, key: string): Promise<ProbeResult | undefined> {
    const job = this.jobs.get(cluster)?.get(key);
    return job ? this.run(job) : undefined;
  }

  private interval(job: Job): number {
    return Math.max(1, job.config.intervalMs ?? this.options.intervalMs ?? PROBE_DEFAULTS.intervalMs);
  }

  private schedule(job: Job, delay: number): void {
    if (job.stopped) return;
    job.handle = this.timers.setTimeout(() => {
      job.handle = undefined;
      void this.run(job).then(() => {
        const jitter = this.options.jitter ?? 0.2;
        const factor = 1 + jitter * (2 * this.random() - 1);
        if (this.started) this.schedule(job, this.interval(job) * factor);
      });
    }, Math.max(0, delay));
  }

  private cancel(job: Job): void {
    job.stopped = true;
    if (job.handle !== undefined) this.timers.clearTimeout(job.handle);
    job.handle = undefined;
  }

  private async run(job: Job): Promise<ProbeResult | undefined> {
    if (job.running) return undefined;
    job.running = true;
    try {
      const timeoutMs = Math.max(1, job.config.timeoutMs ?? this.options.timeoutMs ?? PROBE_DEFAULTS.timeoutMs);
      const probe = this.options.probe ?? runProbe;
      const outcome = await probe(job.config.spec, job.address, job.port, timeoutMs).catch(
        (err: unknown): ProbeOutcome => ({ ok: false, error: String(err) }),
      );
      if (job.stopped) return undefined;
      const result: ProbeResult = {
        ok: outcome.ok,
        at: this.options.store.now(),
        ...(outcome.ok && outcome.latencyMs !== undefined ? { latencyMs: outcome.latencyMs } : {}),
        ...(outcome.error !== undefined ? { error: outcome.error } : {}),
      };
      this.options.store.recordProbe(job.cluster, job.key, result);
      this.options.onResult?.(job.cluster, job.key, result);
      return result;
    } finally {
      job.running = false;
    }
  }
}
