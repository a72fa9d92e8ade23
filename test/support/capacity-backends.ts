import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * HTTP backends whose load depends on the traffic they get and their capacity, the way a real
 * heterogeneous fleet behaves: utilization = arrival rate over the last window ÷ capacity, and
 * latency grows as utilization nears 1 (an M/M/1-like queue: base / (1 − ρ)). Each answers with
 * its index in `x-backend` and, unless told not to, its utilization in the ORCA
 * `endpoint-load-metrics` header, so Envoy's load reports carry it to fulcrum.
 */

export interface CapacityBackendOptions {
  /** Requests per second at 100% utilization. */
  readonly capacityRps: number;
  /** Service time at zero load, ms (default 2). */
  readonly baseLatencyMs?: number;
}

export interface CapacityBackend {
  readonly index: number;
  readonly port: number;
  /** `127.0.0.1:<port>`, the catalog's endpoint key. */
  readonly key: string;
  /** Total requests served. */
  readonly count: number;
  capacityRps: number;
  /** Utilization now: arrivals in the last window ÷ (capacity × window). */
  utilization(): number;
}

export interface CapacityBackends {
  readonly list: CapacityBackend[];
  /** Whether responses carry the ORCA header (default true). */
  orca: boolean;
  counts(): number[];
  /** Stops backend i (connections refused) until `revive(i)`. */
  kill(i: number): Promise<void>;
  revive(i: number): Promise<void>;
  close(): Promise<void>;
}

const WINDOW_MS = 1_000;

export async function startCapacityBackends(options: readonly CapacityBackendOptions[]): Promise<CapacityBackends> {
  const state = { orca: true };
  const servers: http.Server[] = [];
  const list: CapacityBackend[] = [];

  const makeServer = (b: { arrivals: number[]; count: number; capacityRps: number; baseLatencyMs: number; index: number }) =>
    http.createServer((_req, res) => {
      const now = performance.now();
      b.arrivals.push(now);
      while (b.arrivals.length > 0 && (b.arrivals[0] ?? 0) < now - WINDOW_MS) b.arrivals.shift();
      b.count++;
      const rho = b.arrivals.length / (b.capacityRps * (WINDOW_MS / 1000));
      const delay = b.baseLatencyMs / (1 - Math.min(rho, 0.95));
      const headers: Record<string, string> = { 'x-backend': String(b.index), 'content-type': 'text/plain' };
      if (state.orca) headers['endpoint-load-metrics'] = `TEXT cpu_utilization=${rho.toFixed(4)}`;
      setTimeout(() => {
        res.writeHead(200, headers);
        res.end(`backend-${b.index}`);
      }, delay);
    });

  const listen = (server: http.Server, port = 0): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
    });

  const internals: { arrivals: number[]; count: number; capacityRps: number; baseLatencyMs: number; index: number; port: number }[] = [];
  for (const [index, o] of options.entries()) {
    const b = { arrivals: [] as number[], count: 0, capacityRps: o.capacityRps, baseLatencyMs: o.baseLatencyMs ?? 2, index, port: 0 };
    const server = makeServer(b);
    b.port = await listen(server);
    servers.push(server);
    internals.push(b);
    list.push({
      index,
      get port() {
        return b.port;
      },
      get key() {
        return `127.0.0.1:${b.port}`;
      },
      get count() {
        return b.count;
      },
      get capacityRps() {
        return b.capacityRps;
      },
      set capacityRps(v: number) {
        b.capacityRps = v;
      },
      utilization() {
        const now = performance.now();
        return b.arrivals.filter((t) => t >= now - WINDOW_MS).length / (b.capacityRps * (WINDOW_MS / 1000));
      },
    });
  }

  const close = (server: http.Server): Promise<void> =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });

  return {
    list,
    get orca() {
      return state.orca;
    },
    set orca(v: boolean) {
      state.orca = v;
    },
    counts: () => internals.map((b) => b.count),
    async kill(i) {
      const server = servers[i];
      if (server) await close(server);
    },
    async revive(i) {
      const b = internals[i];
      if (!b) return;
      const server = makeServer(b);
      await listen(server, b.port);
      servers[i] = server;
    },
    async close() {
      await Promise.all(servers.map(close));
    },
  };
}

/** An open-loop load generator: `rps` requests per second whatever the latency, until stopped. */
export function openLoop(
  url: string,
  rps: number,
  onResponse: (backend: string | undefined, latencyMs: number, ok: boolean) => void,
): { stop(): Promise<void>; setRate(rps: number): void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  let rate = rps;
  let stopped = false;
  const inflight = new Set<Promise<void>>();
  const tickMs = 10;
  let carry = 0;
  const fire = (): void => {
    const started = performance.now();
    const p = new Promise<void>((resolve) => {
      const req = http.get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => {
          const b = res.headers['x-backend'];
          onResponse(typeof b === 'string' ? b : undefined, performance.now() - started, (res.statusCode ?? 0) < 400);
          resolve();
        });
      });
      req.on('error', () => {
        onResponse(undefined, performance.now() - started, false);
        resolve();
      });
      req.setTimeout(10_000, () => req.destroy());
    });
    inflight.add(p);
    void p.then(() => inflight.delete(p));
  };
  const timer = setInterval(() => {
    if (stopped) return;
    carry += (rate * tickMs) / 1000;
    while (carry >= 1) {
      carry -= 1;
      fire();
    }
  }, tickMs);
  return {
    setRate(v) {
      rate = v;
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([...inflight]);
      agent.destroy();
    },
  };
}
