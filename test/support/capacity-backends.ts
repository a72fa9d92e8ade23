import { poissonLoad } from '../../examples/backends/poisson-load.js';
import { QueueingBackend } from '../../examples/backends/queueing-backend.js';
import { freePort } from './ports.js';

/**
 * A fleet of queueing backends (examples/backends/queueing-backend.ts) described by capacity:
 * each has a whole number of workers and exponential service times, so latency and overload
 * come from a real queue and utilization is the workers' measured busy time (≤ 1). Each answers
 * with its index in `x-backend` and, unless told not to, ORCA `endpoint-load-metrics` on
 * successes, so Envoy's load reports carry its utilization to fulcrum.
 */

export interface CapacityBackendOptions {
  /** Requests per second at 100% utilization. */
  readonly capacityRps: number;
  /**
   * Target mean service time, ms (default 50): workers = round(capacity × service), at least 1,
   * and the service time is then adjusted so the capacity is exact.
   */
  readonly baseLatencyMs?: number;
}

export interface CapacityBackend {
  readonly index: number;
  readonly port: number;
  /** `127.0.0.1:<port>`, the catalog's endpoint key. */
  readonly key: string;
  /** Total requests served successfully. */
  readonly count: number;
  /** Setting it changes the worker count (a capacity change), as in `workersFor`. */
  capacityRps: number;
  /** Busy fraction of the workers over the last second. */
  utilization(): number;
  readonly backend: QueueingBackend;
}

export interface CapacityBackends {
  readonly list: CapacityBackend[];
  /** Whether successful responses carry the ORCA header (default true). */
  orca: boolean;
  counts(): number[];
  /** Stops backend i (connections refused) until `revive(i)`. */
  kill(i: number): Promise<void>;
  revive(i: number): Promise<void>;
  close(): Promise<void>;
}

/** Whole workers for a capacity near the wanted service time, and the service time that makes it exact. */
export function workersFor(capacityRps: number, serviceMs: number): { workers: number; meanServiceMs: number } {
  if (!(capacityRps > 0)) throw new RangeError(`capacityRps must be > 0, got ${capacityRps}`);
  const workers = Math.max(1, Math.round((capacityRps * serviceMs) / 1000));
  return { workers, meanServiceMs: (workers * 1000) / capacityRps };
}

export async function startCapacityBackends(options: readonly CapacityBackendOptions[]): Promise<CapacityBackends> {
  const backends: QueueingBackend[] = [];
  for (const [index, o] of options.entries()) {
    // Outside the ephemeral range: a killed backend's port stays out of other tests' `listen(0)`.
    const port = await freePort();
    const b = new QueueingBackend({ ...workersFor(o.capacityRps, o.baseLatencyMs ?? 50), name: String(index), port });
    backends.push(b);
    await b.listen();
  }
  const service = options.map((o) => o.baseLatencyMs ?? 50);
  const list: CapacityBackend[] = backends.map((b, index) => ({
    index,
    backend: b,
    get port() {
      return b.port;
    },
    get key() {
      return b.key;
    },
    get count() {
      return b.served.ok;
    },
    get capacityRps() {
      return b.capacityRps;
    },
    set capacityRps(v: number) {
      const next = workersFor(v, service[index] ?? 50);
      b.meanServiceMs = next.meanServiceMs;
      b.setWorkers(next.workers);
    },
    utilization: () => b.utilization(),
  }));
  return {
    list,
    get orca() {
      return backends.every((b) => b.orca);
    },
    set orca(v: boolean) {
      for (const b of backends) b.orca = v;
    },
    counts: () => backends.map((b) => b.served.ok),
    kill: async (i) => backends[i]?.kill(),
    revive: async (i) => backends[i]?.revive(),
    close: async () => {
      await Promise.all(backends.map((b) => b.close()));
    },
  };
}

/** An open-loop load generator with Poisson arrivals at `rps`, whatever the latency, until stopped. */
export function openLoop(
  url: string,
  rps: number,
  onResponse: (backend: string | undefined, latencyMs: number, ok: boolean) => void,
): { stop(): Promise<void>; setRate(rps: number): void } {
  return poissonLoad({ url, rps, onResult: (r) => onResponse(r.backend, r.ms, r.outcome === 'ok') });
}
