/**
 * A queueing fleet for the weight engine, simulated request by request: Poisson arrivals split by
 * the published weights, each backend a FIFO queue in front of `workers` servers with exponential
 * service times (plus a dependency wait that holds no worker, as the scenario backends' slow
 * dependency does). Every `reportMs` each backend reports what the scenario backends put in their
 * ORCA reports: its busy fraction and the mean latency of the requests it finished over the last
 * `windowMs`. Deterministic for a seed.
 *
 * Why not the fleet model (fleet.ts): there utilization is a linear function of the weights and
 * latency is whatever the test sets, so nothing in it queues. Near saturation a backend's latency
 * climbs steeply with its load and lags it (a queue takes time to drain), which is what a
 * latency-driven controller has to live with.
 */
import { seededRandom } from '../../../examples/backends/poisson-load.js';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { WeightingPolicy } from '../../../src/balancing/engine/types.js';

export interface QueueFleetOptions {
  /** Workers per backend (its capacity). */
  readonly workers: readonly number[];
  /** Offered load as a fraction of the fleet's capacity. */
  readonly load: number;
  readonly policy: WeightingPolicy;
  readonly seed: number;
  /** Mean service time, ms (default 100). */
  readonly serviceMs?: number;
  /** Report interval, ms (default 2000, Envoy's load reports in the scenarios). */
  readonly reportMs?: number;
}

/** A backend's mutable state: what events change. */
export interface Backend {
  workers: number;
  /** Extra wait after the service, in service times, that holds no worker (a slow dependency). */
  slowFactor: number;
}

interface Done {
  readonly at: number;
  readonly end: number;
  readonly latency: number;
  readonly busyFrom: number;
  readonly busyTo: number;
}

const TICK_MS = 1000;
/** Arrivals are drawn in slices of this, so a weight change applies from the next slice. */
const SLICE_MS = 250;
/** A report's utilization and latency cover this much (the scenario backends' window). */
const WINDOW_MS = 1000;

export class QueueFleet {
  readonly engine = new WeightEngine({});
  readonly keys: string[];
  readonly backends: Backend[];
  load: number;
  /** Per tick, whether each backend's weight was a backlog drain's (tick/backlog.ts), not the controller's. */
  readonly drained: boolean[][] = [];
  /** Published weights, after each tick. */
  readonly weights: number[][] = [];
  /** Each backend's busy fraction over the last window, after each tick. */
  readonly utilization: number[][] = [];
  private current: number[];
  private now = 0;
  private readonly rand: () => number;
  private readonly free: number[][];
  private readonly done: Done[][];
  /** Every request's arrival and latency (ms), for tail figures (requestLatencies). */
  private readonly served: { readonly at: number; readonly latency: number }[] = [];

  constructor(private readonly o: QueueFleetOptions) {
    this.keys = o.workers.map((_, i) => `10.0.0.${i + 1}:8080`);
    this.backends = o.workers.map((workers) => ({ workers, slowFactor: 0 }));
    this.load = o.load;
    this.current = o.workers.map(() => 1);
    this.rand = seededRandom(o.seed);
    this.free = o.workers.map(() => []);
    this.done = o.workers.map(() => []);
    this.engine.setCluster('svc', this.keys.map((key) => ({ key, weight: 1 })), o.policy);
  }

  private get serviceMs(): number {
    return this.o.serviceMs ?? 100;
  }

  private exponential(mean: number): number {
    return -Math.log(1 - this.rand()) * mean;
  }

  /** Runs `seconds` of traffic, one engine tick a second. */
  run(seconds: number): void {
    for (let s = 0; s < seconds; s++) {
      for (let t = 0; t < TICK_MS; t += SLICE_MS) this.arrive(this.now + t, this.now + t + SLICE_MS);
      this.now += TICK_MS;
      this.tick();
    }
  }

  /** Requests arriving in [from, to), each queued at its backend. */
  private arrive(from: number, to: number): void {
    const capacity = this.backends.reduce((a, b) => a + b.workers, 0);
    const perMs = (this.load * capacity) / this.serviceMs;
    const total = this.current.reduce((a, b) => a + b, 0);
    this.backends.forEach((b, i) => {
      const rate = (perMs * (this.current[i] as number)) / total;
      if (!(rate > 0)) return;
      for (let at = from + this.exponential(1 / rate); at < to; at += this.exponential(1 / rate)) this.serve(i, b, at);
    });
  }

  /** The first free worker takes the request (FIFO: arrivals are served in order). */
  private serve(i: number, b: Backend, at: number): void {
    const free = this.free[i] as number[];
    while (free.length < b.workers) free.push(at);
    let k = 0;
    for (let j = 1; j < b.workers; j++) if ((free[j] as number) < (free[k] as number)) k = j;
    const start = Math.max(at, free[k] as number);
    const busyTo = start + this.exponential(this.serviceMs);
    free[k] = busyTo;
    const end = busyTo + b.slowFactor * this.serviceMs;
    (this.done[i] as Done[]).push({ at, end, latency: end - at, busyFrom: start, busyTo });
    this.served.push({ at, latency: end - at });
  }

  /** The latencies (ms) of the requests that arrived from `fromMs` on, sorted. */
  requestLatencies(fromMs: number): number[] {
    return this.served.filter((r) => r.at >= fromMs).map((r) => r.latency).sort((a, b) => a - b);
  }

  private tick(): void {
    const now = this.now;
    const util = this.backends.map((b, i) => this.busy(i, now) / (b.workers * WINDOW_MS));
    this.utilization.push(util);
    if (now % (this.o.reportMs ?? 2000) === 0) this.report(now, util);
    const tick = this.engine.tick(now).clusters.get('svc');
    if (tick === undefined) throw new Error('no tick for svc');
    this.drained.push(this.keys.map((k) => tick.explanations.get(k)?.rules.includes('backlog-drain') === true));
    this.current = this.keys.map((k) => tick.weights.get(k) as number);
    this.weights.push(this.current);
    for (const d of this.done) while (d.length > 0 && (d[0] as Done).end < now - 10 * WINDOW_MS) d.shift();
  }

  private busy(i: number, now: number): number {
    let ms = 0;
    for (const d of this.done[i] as Done[]) ms += Math.max(0, Math.min(d.busyTo, now) - Math.max(d.busyFrom, now - WINDOW_MS));
    return ms;
  }

  /**
   * Each backend's report: cpu and mean latency over the last window (its ORCA), and what one
   * Envoy's load report carries over the report interval: requests sent and answered per second,
   * in progress now, and the same of its peers.
   */
  private report(now: number, util: number[]): void {
    const period = this.o.reportMs ?? 2000;
    const flows = this.done.map((d) => flowOf(d, now, period));
    const total = flows.reduce((a, x) => ({ inflight: a.inflight + x.inflight, answered: a.answered + x.answered }), { inflight: 0, answered: 0 });
    this.keys.forEach((key, i) => {
      const finished = (this.done[i] as Done[]).filter((d) => d.end <= now && d.end > now - WINDOW_MS);
      const latencyMs = finished.length > 0 ? finished.reduce((a, d) => a + d.latency, 0) / finished.length : undefined;
      const x = flows[i] as Flow;
      this.engine.observeSample('svc', key, {
        at: now,
        cpu: Math.min(1, util[i] as number),
        rps: x.sent,
        errors: 0,
        successes: x.answered,
        inflight: x.inflight,
        peerInflight: total.inflight - x.inflight,
        peerCompletions: total.answered - x.answered,
        ...(latencyMs !== undefined ? { latencyMs } : {}),
      });
    });
  }
}

interface Flow {
  /** Requests sent and answered per second over the report interval. */
  readonly sent: number;
  readonly answered: number;
  readonly inflight: number;
}

function flowOf(done: readonly Done[], now: number, period: number): Flow {
  let sent = 0;
  let answered = 0;
  let inflight = 0;
  for (const d of done) {
    if (d.at > now) continue;
    if (d.at > now - period) sent++;
    if (d.end <= now && d.end > now - period) answered++;
    if (d.end > now) inflight++;
  }
  return { sent: (sent * 1000) / period, answered: (answered * 1000) / period, inflight };
}

/**
 * The largest ratio between one backend's highest and lowest published weight over ticks
 * from..end, leaving out the ticks `skip` marks for it (a backlog drain's: QueueFleet.drained).
 */
export function weightSwing(weights: readonly number[][], from: number, skip?: readonly boolean[][]): number {
  const tail = weights.slice(from);
  const n = (tail[0] ?? []).length;
  let swing = 1;
  for (let i = 0; i < n; i++) {
    const ws = tail.filter((_, t) => skip?.[from + t]?.[i] !== true).map((w) => w[i] as number);
    swing = Math.max(swing, Math.max(...ws) / Math.max(1, Math.min(...ws)));
  }
  return swing;
}

/** Mean over ticks from..end of max ÷ mean utilization (the Robinhood figure). */
export function meanMaxOverAvg(utilization: readonly number[][], from: number): number {
  const tail = utilization.slice(from);
  const ratios = tail.map((u) => Math.max(...u) / (u.reduce((a, b) => a + b, 0) / u.length));
  return ratios.reduce((a, b) => a + b, 0) / ratios.length;
}
