/**
 * Local HTTP/1.1 backends and a bounded load generator for traffic tests.
 * Everything listens on / sends to 127.0.0.1 only.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface BackendBehavior {
  /** Status code to answer with (default 200). */
  status?: number;
  /** Delay before answering, in ms (default 0). */
  delayMs?: number;
}

export interface Backend {
  /** 0-based index: the body is `backend-<index>`, the `x-backend` header is `<index>`. */
  readonly index: number;
  readonly name: string;
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Requests received since start or the last reset(). */
  readonly count: number;
}

export interface Backends {
  readonly list: readonly Backend[];
  /** Per-backend request counts, by index. */
  counts(): number[];
  /** Sum of counts(). */
  total(): number;
  /** Zero every count. */
  reset(): void;
  /** Change how backend `index` answers from now on (merged into its current behaviour). */
  behave(index: number, behavior: BackendBehavior): void;
  /** Stop listening and drop open (keep-alive) connections. */
  close(): Promise<void>;
}

/**
 * Start `n` HTTP/1.1 servers on 127.0.0.1 with kernel-chosen ports. Each
 * answers every request with 200, body `backend-<i>` and header
 * `x-backend: <i>`, and counts requests.
 */
export async function startBackends(n: number): Promise<Backends> {
  const counts = new Array<number>(n).fill(0);
  const behaviors: BackendBehavior[] = Array.from({ length: n }, () => ({}));
  const servers: http.Server[] = [];
  const list: Backend[] = [];

  try {
    for (let i = 0; i < n; i++) {
      const server = http.createServer((req, res) => {
        counts[i] = (counts[i] ?? 0) + 1;
        const behavior = behaviors[i] ?? {};
        const body = `backend-${i}`;
        const answer = (): void => {
          res.writeHead(behavior.status ?? 200, {
            'content-type': 'text/plain',
            'content-length': Buffer.byteLength(body),
            'x-backend': String(i),
          });
          res.end(body);
        };
        // Drain the request body before answering so keep-alive stays usable.
        req.resume();
        req.once('end', () => {
          if ((behavior.delayMs ?? 0) > 0) setTimeout(answer, behavior.delayMs);
          else answer();
        });
      });
      server.keepAliveTimeout = 30_000;
      servers.push(server);
      const port = await new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: '127.0.0.1', port: 0 }, () => resolve((server.address() as AddressInfo).port));
      });
      const index = i;
      list.push({
        index,
        name: `backend-${index}`,
        host: '127.0.0.1',
        port,
        url: `http://127.0.0.1:${port}`,
        get count() {
          return counts[index] ?? 0;
        },
      });
    }
  } catch (err) {
    await Promise.all(servers.map((s) => closeServer(s)));
    throw err;
  }

  return {
    list,
    counts: () => [...counts],
    total: () => counts.reduce((a, b) => a + b, 0),
    reset: () => counts.fill(0),
    behave(index, behavior) {
      const current = behaviors[index];
      if (current === undefined) throw new RangeError(`no backend ${index} (have ${n})`);
      behaviors[index] = { ...current, ...behavior };
    },
    close: () => Promise.all(servers.map((s) => closeServer(s))).then(() => undefined),
  };
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export interface SendRequestsOptions {
  /** Requests in flight at once (default 8). */
  concurrency?: number;
  /** Request headers, fixed or per request number (0-based), e.g. to vary a hash key. */
  headers?: http.OutgoingHttpHeaders | ((i: number) => http.OutgoingHttpHeaders);
  /** HTTP method (default GET). */
  method?: string;
  /** Per-request timeout in ms (default 10 000). */
  timeoutMs?: number;
  /** Keep connections alive between requests (default true). */
  keepAlive?: boolean;
}

export interface SendRequestsResult {
  /** Requests attempted. */
  sent: number;
  /** Responses with a 2xx status. */
  ok: number;
  /** Requests without a 2xx response: transport errors, timeouts, non-2xx statuses. */
  errors: number;
  /** Responses by `x-backend` value (responses without the header are not counted here). */
  distribution: Record<string, number>;
  /** Responses by status code. */
  statuses: Record<number, number>;
  /** Up to 10 distinct error descriptions, for assertion messages. */
  errorSamples: string[];
  durationMs: number;
}

/**
 * Send `n` requests to `url` (bounded: exactly `n`, each with a timeout) with
 * up to `concurrency` in flight over a keep-alive agent, and report where they
 * landed by the `x-backend` response header.
 */
export async function sendRequests(url: string, n: number, opts: SendRequestsOptions = {}): Promise<SendRequestsResult> {
  const concurrency = Math.max(1, Math.min(opts.concurrency ?? 8, n));
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const agent = new http.Agent({ keepAlive: opts.keepAlive ?? true, maxSockets: concurrency });
  const target = new URL(url);
  const result: SendRequestsResult = {
    sent: 0,
    ok: 0,
    errors: 0,
    distribution: {},
    statuses: {},
    errorSamples: [],
    durationMs: 0,
  };
  const sample = (msg: string): void => {
    if (result.errorSamples.length < 10 && !result.errorSamples.includes(msg)) result.errorSamples.push(msg);
  };

  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      let answered = false;
      let settled = false;
      const settle = (): void => {
        if (!settled) {
          settled = true;
          resolve();
        }
      };
      const headers = typeof opts.headers === 'function' ? opts.headers(i) : (opts.headers ?? {});
      const req = http.request(
        target,
        { method: opts.method ?? 'GET', agent, headers, timeout: timeoutMs },
        (res) => {
          answered = true;
          const status = res.statusCode ?? 0;
          result.statuses[status] = (result.statuses[status] ?? 0) + 1;
          const backend = res.headers['x-backend'];
          if (typeof backend === 'string') result.distribution[backend] = (result.distribution[backend] ?? 0) + 1;
          if (status >= 200 && status < 300) result.ok++;
          else {
            result.errors++;
            sample(`HTTP ${status}`);
          }
          res.resume();
          res.once('end', settle);
          res.once('close', settle);
          res.once('error', settle);
        },
      );
      req.once('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
      req.once('error', (err) => {
        if (!answered) {
          result.errors++;
          sample(err.message);
        }
        settle();
      });
      req.end();
    });

  const started = Date.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      result.sent++;
      await one(i);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
  result.durationMs = Date.now() - started;
  return result;
}

/** Share of each `x-backend` value in a distribution (values sum to 1). */
export function shares(distribution: Record<string, number>): Record<string, number> {
  const total = Object.values(distribution).reduce((a, b) => a + b, 0);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(distribution)) out[k] = total === 0 ? 0 : v / total;
  return out;
}
