/**
 * A benchmark backend that queues for real: an HTTP server with a finite number of workers (its
 * capacity share) and exponentially distributed service times. A request that finds every worker
 * busy waits in a FIFO queue; when the queue is full it is answered 503 at once. Latency and
 * overload are not computed, they emerge from the queue.
 *
 * Utilization is the measured busy time of the workers over the last window (never above 1). A
 * successful response carries it as ORCA, with the backend's recent mean latency:
 *
 *   endpoint-load-metrics: TEXT cpu_utilization=0.6312, rps_fractional=41.00, eps=0.00, named_metrics.latency_ms=57.1
 *
 * 5xx responses carry no ORCA header. Failure modes, switchable at run time (in code or over
 * HTTP with `POST /_bench?fastFail=0.5&slowFactor=5&workers=2&noise=0.2&hang=1`):
 * - fast-fail: a fraction of requests is answered 503 immediately, with no worker time;
 * - slow dependency: after its CPU work a request waits for a dependency (slowFactor − 1) × the
 *   mean service time; it keeps its connection but releases the CPU worker, so utilization is
 *   unchanged and latency grows;
 * - capacity change: fewer (or more) workers; running requests finish, new ones wait;
 * - noise: reported utilization × (1 ± noise), uniformly;
 * - hang (a black hole): connections and requests are accepted and never answered, those already
 *   accepted included; when it ends, the requests held are dropped (their clients gave up);
 * - death (`kill()`: the listener closes, connections are refused) and `revive()` on the same port;
 * - cold start (option `coldStart`, off by default): a new pod's caches are empty and its JIT is
 *   still warming, so its service times start `factor` × longer and ease linearly to normal over
 *   `easeMs` from its first `listen()`; utilization shows it, as a real cold pod's CPU would.
 *
 * Run one on its own:
 *   npx tsx examples/backends/queueing-backend.ts --workers 4 --service-ms 50 --port 9001 --name b1
 * Every response names the backend in `x-backend`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { runIfMain } from './run-main.js';

export interface QueueingBackendOptions {
  /** Concurrent requests in service (the backend's capacity share). */
  readonly workers: number;
  /** Mean of the exponential service time, ms. Capacity = workers × 1000 / meanServiceMs rps. */
  readonly meanServiceMs: number;
  /** Requests allowed to wait for a worker; one more is answered 503 (default 500). */
  readonly queueLimit?: number;
  /** Window of the utilization and mean-latency measures, ms (default 1000). */
  readonly windowMs?: number;
  /** `x-backend` header value (default the port). */
  readonly name?: string;
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  /** Uniform random numbers in [0, 1) (default Math.random; inject a seeded one to replay). */
  readonly random?: () => number;
  /** Starts cold: service times × `factor` at the first listen, easing to × 1 over `easeMs` (default: warm). */
  readonly coldStart?: ColdStart;
}

export interface ColdStart {
  readonly factor: number;
  readonly easeMs: number;
}

/** The service-time multiplier `elapsedMs` after a cold start: `factor` at 0, 1 from `easeMs` on, linear between. */
export function coldFactor(cold: ColdStart | undefined, elapsedMs: number): number {
  if (cold === undefined || !(elapsedMs < cold.easeMs)) return 1;
  return 1 + (cold.factor - 1) * (1 - Math.max(0, elapsedMs) / cold.easeMs);
}

/** What a backend has answered since it started. */
export interface BackendCounts {
  readonly ok: number;
  /** 503 from a full queue. */
  readonly rejected: number;
  /** 503 from fast-fail. */
  readonly fastFailed: number;
}

interface Waiting {
  readonly arrived: number;
  readonly res: http.ServerResponse;
}

const BUCKET_MS = 100;

/** Running sums in 100 ms buckets, so a window's total is cheap to read. */
class Buckets {
  private readonly sums = new Map<number, { total: number; n: number }>();
  constructor(private readonly windowMs: number) {}
  add(now: number, value: number): void {
    const b = Math.floor(now / BUCKET_MS);
    const s = this.sums.get(b) ?? { total: 0, n: 0 };
    s.total += value;
    s.n++;
    this.sums.set(b, s);
    for (const k of this.sums.keys()) if (k < b - this.windowMs / BUCKET_MS) this.sums.delete(k);
  }
  mean(now: number): number | undefined {
    const { total, n } = this.window(now);
    return n === 0 ? undefined : total / n;
  }
  /** Values added per second over the window. */
  rate(now: number): number {
    return this.window(now).n / (this.windowMs / 1000);
  }
  private window(now: number): { total: number; n: number } {
    const from = Math.floor((now - this.windowMs) / BUCKET_MS);
    let total = 0;
    let n = 0;
    for (const [k, s] of this.sums) {
      if (k <= from) continue;
      total += s.total;
      n += s.n;
    }
    return { total, n };
  }
}

export class QueueingBackend {
  fastFail = 0;
  slowFactor = 1;
  noise = 0;
  orca = true;
  meanServiceMs: number;
  /** Responses held while hung (`setHung`), never answered. */
  private readonly held = new Set<http.ServerResponse>();
  private hung = false;
  private workerCount: number;
  private readonly queue: Waiting[] = [];
  /**
   * Requests in service, each with its scheduled start and end. Service runs in virtual time: a
   * worker freed late (a busy event loop fires timers late) starts its next request at the time it
   * should have been freed, so a loaded machine does not silently shrink the backend's capacity.
   */
  private readonly inService = new Set<{ start: number; end: number }>();
  /** Busy worker-ms of finished services, and ∫ available workers dt up to `integratedAt`. */
  private busyDoneMs = 0;
  private capacityMs = 0;
  private integratedAt = performance.now();
  /** (time, busyMs, capacityMs) snapshots, every BUCKET_MS, for windowed utilization. */
  private readonly history: { t: number; busy: number; cap: number }[] = [];
  private readonly latencies: Buckets;
  /** Every answered request and every 503, for ORCA's rps_fractional and eps. */
  private readonly answered: Buckets;
  private readonly failed: Buckets;
  private readonly counts = { ok: 0, rejected: 0, fastFailed: 0 };
  /** Requests accepted and not yet answered nor dropped (queued, in service or waiting on the dependency). */
  private open = 0;
  private server: http.Server | undefined;
  private readonly sampler: NodeJS.Timeout;
  private readonly windowMs: number;
  private readonly random: () => number;
  private boundPort = 0;
  /** When it first listened: where a cold start's easing begins. */
  private startedAt: number | undefined;

  constructor(private readonly options: QueueingBackendOptions) {
    if (!(options.workers >= 1) || !Number.isInteger(options.workers)) throw new RangeError(`workers must be an integer >= 1, got ${options.workers}`);
    if (!(options.meanServiceMs > 0)) throw new RangeError(`meanServiceMs must be > 0, got ${options.meanServiceMs}`);
    const cold = options.coldStart;
    if (cold !== undefined && !(cold.factor >= 1 && cold.easeMs > 0)) throw new RangeError(`coldStart needs factor >= 1 and easeMs > 0, got ${cold.factor}, ${cold.easeMs}`);
    this.workerCount = options.workers;
    this.meanServiceMs = options.meanServiceMs;
    this.windowMs = options.windowMs ?? 1000;
    this.random = options.random ?? Math.random;
    this.latencies = new Buckets(this.windowMs);
    this.answered = new Buckets(this.windowMs);
    this.failed = new Buckets(this.windowMs);
    this.sampler = setInterval(() => this.snapshot(), BUCKET_MS);
    this.sampler.unref();
  }

  get port(): number {
    return this.boundPort;
  }
  /** `host:port`, the catalog's endpoint key. */
  get key(): string {
    return `${this.options.host ?? '127.0.0.1'}:${this.boundPort}`;
  }
  get name(): string {
    return this.options.name ?? String(this.boundPort);
  }
  get workers(): number {
    return this.workerCount;
  }
  /** Requests per second at 100% utilization. */
  get capacityRps(): number {
    return (this.workerCount * 1000) / this.meanServiceMs;
  }
  get served(): BackendCounts {
    return { ...this.counts };
  }
  get alive(): boolean {
    return this.server !== undefined;
  }
  /** Requests in flight here: what a death loses. */
  get inFlight(): number {
    return this.open;
  }

  /** Capacity change: running requests finish; new ones start only while fewer than `n` are busy. */
  setWorkers(n: number): void {
    if (!(n >= 1) || !Number.isInteger(n)) throw new RangeError(`workers must be an integer >= 1, got ${n}`);
    this.integrate();
    this.workerCount = n;
    this.dispatch();
  }

  /** A black hole while `on`: nothing is answered; turned off, the requests it held are dropped. */
  setHung(on: boolean): void {
    this.hung = on;
    if (on) return;
    for (const res of this.held) res.destroy();
    this.held.clear();
  }

  /** Requests a hang holds: accepted, or done with their work, and never to be answered. */
  get holding(): number {
    return this.held.size;
  }

  /** Busy fraction of the workers over the last `windowMs` (measured, ≤ 1). */
  utilization(windowMs = this.windowMs): number {
    this.integrate();
    const now = performance.now();
    const busy = this.busyMs(now);
    const past = this.history.find((h) => h.t >= now - windowMs) ?? { t: now, busy, cap: this.capacityMs };
    const cap = this.capacityMs - past.cap;
    return cap <= 0 ? 0 : Math.min(1, (busy - past.busy) / cap);
  }

  /** Cumulative busy and available worker-milliseconds: utilization over any interval from two readings. */
  busyTotals(): { busyMs: number; capacityMs: number } {
    this.integrate();
    return { busyMs: this.busyMs(performance.now()), capacityMs: this.capacityMs };
  }

  /** Mean latency (queue + service + dependency) of the successes of the last window, ms. */
  meanLatencyMs(): number | undefined {
    return this.latencies.mean(performance.now());
  }

  async listen(): Promise<number> {
    if (this.server) return this.boundPort;
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort || (this.options.port ?? 0), this.options.host ?? '127.0.0.1', () => resolve());
    });
    this.boundPort = (server.address() as AddressInfo).port;
    this.server = server;
    this.startedAt ??= performance.now();
    return this.boundPort;
  }

  /** Death: the listener closes and every connection drops (new ones are refused). */
  async kill(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const w of this.queue.splice(0)) w.res.destroy();
    this.setHung(false);
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** Revival on the same port. */
  async revive(): Promise<void> {
    await this.listen();
  }

  async close(): Promise<void> {
    clearInterval(this.sampler);
    await this.kill();
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.url?.startsWith('/_bench')) return this.control(req, res);
    req.resume();
    if (this.hung) return this.hold(res);
    if (this.fastFail > 0 && this.random() < this.fastFail) {
      this.counts.fastFailed++;
      return this.reply(res, 503, 'fast-fail');
    }
    if (this.inService.size >= this.workerCount && this.queue.length >= (this.options.queueLimit ?? 500)) {
      this.counts.rejected++;
      return this.reply(res, 503, 'queue full');
    }
    this.open++;
    res.once('close', () => this.open--);
    this.queue.push({ arrived: performance.now(), res });
    this.dispatch();
  }

  /** Starts queued requests on free workers; `freedAt`: when the worker that just freed was due to. */
  private dispatch(freedAt?: number): void {
    while (this.inService.size < this.workerCount && this.queue.length > 0) {
      const w = this.queue.shift() as Waiting;
      if (w.res.destroyed) continue;
      this.integrate();
      const now = performance.now();
      const start = freedAt === undefined ? now : Math.max(freedAt, w.arrived);
      freedAt = undefined;
      const meanMs = this.meanServiceMs * coldFactor(this.options.coldStart, start - (this.startedAt ?? start));
      const service = { start, end: start - Math.log(1 - this.random()) * meanMs };
      this.inService.add(service);
      setTimeout(() => this.finishCpu(w, service), Math.max(0, service.end - now));
    }
  }

  private finishCpu(w: Waiting, service: { start: number; end: number }): void {
    this.integrate();
    this.inService.delete(service);
    this.busyDoneMs += service.end - service.start;
    this.dispatch(service.end);
    const dependencyMs = (this.slowFactor - 1) * this.meanServiceMs;
    const wait = service.end + dependencyMs - performance.now();
    if (wait > 0) setTimeout(() => this.succeed(w), wait);
    else this.succeed(w);
  }

  /** A hung backend keeps the request open and never answers it. */
  private hold(res: http.ServerResponse): void {
    this.open++;
    this.held.add(res);
    res.once('close', () => {
      this.open--;
      this.held.delete(res);
    });
  }

  private succeed(w: Waiting): void {
    if (w.res.destroyed) return;
    // Work accepted before the hang is not answered either (its `open` count is the queue's).
    if (this.hung) {
      this.held.add(w.res);
      w.res.once('close', () => this.held.delete(w.res));
      return;
    }
    const now = performance.now();
    this.latencies.add(now, now - w.arrived);
    this.counts.ok++;
    const headers: Record<string, string> = {};
    if (this.orca) headers['endpoint-load-metrics'] = this.orcaText();
    this.reply(w.res, 200, this.name, headers);
  }

  private orcaText(): string {
    const jitter = this.noise > 0 ? 1 + (this.random() * 2 - 1) * this.noise : 1;
    const u = Math.min(1, Math.max(0, this.utilization() * jitter));
    const latency = this.meanLatencyMs();
    // rps_fractional and eps are what Envoy's client-side WRR weighs by (qps / (utilization +
    // eps / qps × penalty)); without them it cannot weight hosts at all.
    const now = performance.now();
    const rates = `, rps_fractional=${this.answered.rate(now).toFixed(2)}, eps=${this.failed.rate(now).toFixed(2)}`;
    return `TEXT cpu_utilization=${u.toFixed(4)}${rates}` + (latency !== undefined ? `, named_metrics.latency_ms=${latency.toFixed(1)}` : '');
  }

  private reply(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
    const now = performance.now();
    this.answered.add(now, 1);
    if (status >= 500) this.failed.add(now, 1);
    res.writeHead(status, { 'content-type': 'text/plain', 'x-backend': this.name, ...headers });
    res.end(body);
  }

  /** `POST /_bench?fastFail=&slowFactor=&workers=&noise=` switches modes; any method returns the state. */
  private control(req: http.IncomingMessage, res: http.ServerResponse): void {
    req.resume();
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    try {
      if (req.method === 'POST') {
        const num = (k: string): number | undefined => (q.has(k) ? Number(q.get(k)) : undefined);
        const ff = num('fastFail');
        const sf = num('slowFactor');
        const wk = num('workers');
        const nz = num('noise');
        const hg = num('hang');
        if (ff !== undefined && !(ff >= 0 && ff <= 1)) throw new RangeError(`fastFail must be in [0, 1], got ${q.get('fastFail')}`);
        if (sf !== undefined && !(sf >= 1)) throw new RangeError(`slowFactor must be >= 1, got ${q.get('slowFactor')}`);
        if (hg !== undefined && hg !== 0 && hg !== 1) throw new RangeError(`hang must be 0 or 1, got ${q.get('hang')}`);
        if (nz !== undefined && !(nz >= 0 && nz < 1)) throw new RangeError(`noise must be in [0, 1), got ${q.get('noise')}`);
        if (wk !== undefined) this.setWorkers(wk);
        if (ff !== undefined) this.fastFail = ff;
        if (sf !== undefined) this.slowFactor = sf;
        if (nz !== undefined) this.noise = nz;
        if (hg !== undefined) this.setHung(hg === 1);
      }
    } catch (err) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(err instanceof Error ? err.message : String(err));
      return;
    }
    const state = { workers: this.workerCount, meanServiceMs: this.meanServiceMs, fastFail: this.fastFail, slowFactor: this.slowFactor, noise: this.noise, hang: this.hung, utilization: this.utilization(), queued: this.queue.length, busy: this.inService.size, ...this.counts };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(state));
  }

  /** Busy worker-ms up to `now`: finished services plus the elapsed part of those running. */
  private busyMs(now: number): number {
    let busy = this.busyDoneMs;
    for (const s of this.inService) busy += Math.max(0, Math.min(now, s.end) - s.start);
    return busy;
  }

  private integrate(): void {
    const now = performance.now();
    this.capacityMs += Math.max(this.inService.size, this.workerCount) * (now - this.integratedAt);
    this.integratedAt = now;
  }

  private snapshot(): void {
    this.integrate();
    const now = performance.now();
    this.history.push({ t: now, busy: this.busyMs(now), cap: this.capacityMs });
    while ((this.history[0]?.t ?? now) < now - 10 * this.windowMs) this.history.shift();
  }
}

/** Starts one listening backend. */
export async function startQueueingBackend(options: QueueingBackendOptions): Promise<QueueingBackend> {
  const backend = new QueueingBackend(options);
  await backend.listen();
  return backend;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      workers: { type: 'string', default: '4' },
      'service-ms': { type: 'string', default: '50' },
      queue: { type: 'string', default: '500' },
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      name: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: npx tsx examples/backends/queueing-backend.ts [--workers 4] [--service-ms 50] [--queue 500] [--port 0] [--host 127.0.0.1] [--name NAME]\n');
    return;
  }
  const backend = await startQueueingBackend({
    workers: Number(values.workers),
    meanServiceMs: Number(values['service-ms']),
    queueLimit: Number(values.queue),
    port: Number(values.port),
    host: values.host,
    ...(values.name !== undefined ? { name: values.name } : {}),
  });
  process.stdout.write(`queueing backend ${backend.name} on ${backend.key}: ${backend.workers} workers, ${backend.capacityRps.toFixed(0)} rps capacity\n`);
  const stop = (): void => void backend.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

runIfMain(import.meta.url, main);
