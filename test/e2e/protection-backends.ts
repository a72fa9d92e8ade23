/**
 * Backends and a load loop for the Envoy-side protection tests: each backend can be killed (its
 * port refuses connections) and revived on the same port, fail the next N requests, fail a
 * seeded-random share of requests with a quick 503, or report ORCA load (`endpoint-load-metrics`)
 * for Envoy's client-side weighted round robin.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort } from '../support/ports.js';

export interface Misbehaviour {
  /** Answer the next N requests with 503. */
  failNext?: number;
  /** Reset the connection (no response) on the next N requests, after reading them. */
  resetNext?: number;
  /** Answer this share of requests with an immediate 503 (seeded, so runs repeat). */
  failRate?: number;
  /** ORCA report on every response: `TEXT cpu_utilization=<cpu>, rps_fractional=<rps>`. */
  orca?: { cpu: number; rps: number };
}

export interface TestBackend {
  readonly index: number;
  readonly port: number;
  /** `127.0.0.1:<port>` as Envoy prints it. */
  readonly address: string;
  /** Requests answered 2xx / 503 since start. */
  readonly ok: number;
  readonly failed: number;
  /** Requests answered by a connection reset. */
  readonly resets: number;
  behave(m: Misbehaviour): void;
  /** Stop listening and drop every connection: the port refuses connections. */
  kill(): Promise<void>;
  /** Listen again on the same port. */
  revive(): Promise<void>;
}

/** Park–Miller minimal standard generator: seeded, so a failure pattern is the same on every run. */
function seeded(seed: number): () => number {
  let state = seed % 2_147_483_647 || 1;
  return () => (state = (state * 48_271) % 2_147_483_647) / 2_147_483_647;
}

function listen(server: http.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

async function startOne(index: number): Promise<TestBackend> {
  let behaviour: Misbehaviour = {};
  const random = seeded(1_000 + index);
  let ok = 0;
  let failed = 0;
  let resets = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.once('end', () => {
      if ((behaviour.resetNext ?? 0) > 0) {
        behaviour = { ...behaviour, resetNext: (behaviour.resetNext ?? 0) - 1 };
        resets++;
        req.socket.destroy();
        return;
      }
      let fail = false;
      if ((behaviour.failNext ?? 0) > 0) {
        behaviour = { ...behaviour, failNext: (behaviour.failNext ?? 0) - 1 };
        fail = true;
      } else if (behaviour.failRate !== undefined) {
        fail = random() < behaviour.failRate;
      }
      const headers: http.OutgoingHttpHeaders = { 'x-backend': String(index), 'content-type': 'text/plain' };
      if (behaviour.orca && !fail) headers['endpoint-load-metrics'] = `TEXT cpu_utilization=${behaviour.orca.cpu}, rps_fractional=${behaviour.orca.rps}`;
      if (fail) failed++;
      else ok++;
      res.writeHead(fail ? 503 : 200, headers);
      res.end(fail ? 'unavailable' : `backend-${index}`);
    });
  });
  server.keepAliveTimeout = 30_000;
  // A killed backend's port is free while the test runs on. Drawn from outside the kernel's
  // ephemeral range, no other test's `listen(0)` can take it and receive the traffic this test's
  // Envoy still sends there (or make `revive()` fail).
  const port = await listen(server, await freePort());
  return {
    index,
    port,
    address: `127.0.0.1:${port}`,
    get ok() {
      return ok;
    },
    get failed() {
      return failed;
    },
    get resets() {
      return resets;
    },
    behave(m) {
      behaviour = { ...behaviour, ...m };
    },
    kill: () =>
      new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
    revive: async () => {
      if (!server.listening) await listen(server, port);
    },
  };
}

export async function startTestBackends(n: number): Promise<{ list: TestBackend[]; close(): Promise<void> }> {
  const list: TestBackend[] = [];
  for (let i = 0; i < n; i++) list.push(await startOne(i));
  return { list, close: async () => void (await Promise.all(list.map((b) => b.kill()))) };
}

export interface Outcome {
  /** ms since the load started. */
  readonly at: number;
  readonly status: number;
  /** `x-backend` of the answer, -1 when there was none (Envoy's own 503, transport error). */
  readonly backend: number;
}

export interface LoadSummary {
  readonly sent: number;
  readonly errors: number;
  readonly errorRate: number;
  /** Successful answers per backend index. */
  readonly okBy: Record<number, number>;
}

export function summarize(outcomes: readonly Outcome[]): LoadSummary {
  const okBy: Record<number, number> = {};
  let errors = 0;
  for (const o of outcomes) {
    if (o.status >= 200 && o.status < 300) okBy[o.backend] = (okBy[o.backend] ?? 0) + 1;
    else errors++;
  }
  return { sent: outcomes.length, errors, errorRate: outcomes.length === 0 ? 0 : errors / outcomes.length, okBy };
}

function once(agent: http.Agent, url: URL): Promise<{ status: number; backend: number }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode ?? 0, backend: Number(res.headers['x-backend'] ?? -1) }));
    });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', () => resolve({ status: 0, backend: -1 }));
  });
}

/** A closed-loop load: `concurrency` workers send requests back to back until `stop()`. */
export function startLoad(url: string, concurrency = 4): { outcomes: Outcome[]; since(ms: number): Outcome[]; stop(): Promise<Outcome[]> } {
  const target = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const outcomes: Outcome[] = [];
  const started = Date.now();
  let running = true;
  const worker = async (): Promise<void> => {
    while (running) {
      const r = await once(agent, target);
      outcomes.push({ at: Date.now() - started, ...r });
    }
  };
  const workers = Array.from({ length: concurrency }, () => worker());
  return {
    outcomes,
    since: (ms) => outcomes.filter((o) => o.at >= ms - started),
    stop: async () => {
      running = false;
      await Promise.all(workers);
      agent.destroy();
      return outcomes;
    },
  };
}

/** Sends exactly `n` requests, `concurrency` at a time. */
export async function sendN(url: string, n: number, concurrency = 4): Promise<Outcome[]> {
  const target = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const outcomes: Outcome[] = [];
  const started = Date.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const r = await once(agent, target);
      outcomes.push({ at: Date.now() - started, ...r });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, () => worker()));
  agent.destroy();
  return outcomes;
}
