/**
 * Open-loop HTTP load with Poisson arrivals: inter-arrival times are exponential with mean
 * 1 / rate, whatever the responses do (a slow backend does not slow the sender down). Every
 * request ends in exactly one outcome, reported with its time to outcome:
 *
 * - `ok`: a 2xx/3xx response; `http5xx` / `http4xx`: an error status (Envoy's 503 for a refused
 *   upstream lands here); `refused` / `reset`: the connection was refused or dropped;
 *   `timeout`: no response within `timeoutMs` (its time is the timeout).
 *
 *   const load = poissonLoad({ url: 'http://127.0.0.1:10000/', rps: 200, onResult: (r) => ... });
 *   load.setRate(300); ... await load.stop();
 *
 * The response's `x-backend` header names the backend that answered.
 *
 * On its own, printing a line of outcomes and answering backends every 10 s:
 *   npx tsx examples/backends/poisson-load.ts --url http://127.0.0.1:10000/ --rps 50
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { runIfMain } from './run-main.js';

export type Outcome = 'ok' | 'http4xx' | 'http5xx' | 'refused' | 'reset' | 'timeout';

export interface RequestResult {
  /** performance.now() when the request was sent. */
  readonly sentAt: number;
  /** Time to outcome, ms. */
  readonly ms: number;
  readonly outcome: Outcome;
  readonly status?: number;
  /** `x-backend` of the response, if any. */
  readonly backend?: string;
}

export interface PoissonLoadOptions {
  readonly url: string;
  /** Mean arrivals per second. */
  readonly rps: number;
  readonly onResult: (r: RequestResult) => void;
  /** Per request (default 10 s). */
  readonly timeoutMs?: number;
  /** Uniform random numbers in [0, 1) (default Math.random); a seeded one gives every run the same arrivals. */
  readonly random?: () => number;
}

export interface PoissonLoad {
  readonly sent: number;
  setRate(rps: number): void;
  /** Stops sending and waits for every request in flight. */
  stop(): Promise<void>;
}

/** A small deterministic generator (mulberry32): the same seed gives the same arrivals. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function classify(err: NodeJS.ErrnoException, timedOut: boolean): Outcome {
  if (timedOut) return 'timeout';
  return err.code === 'ECONNREFUSED' ? 'refused' : 'reset';
}

export function poissonLoad(o: PoissonLoadOptions): PoissonLoad {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4096 });
  const random = o.random ?? Math.random;
  const timeoutMs = o.timeoutMs ?? 10_000;
  const inflight = new Set<Promise<void>>();
  let rate = o.rps;
  let sent = 0;
  const gap = (): number => (rate > 0 ? (-Math.log(1 - random()) * 1000) / rate : 1000);
  let next = performance.now() + gap();

  const fire = (): void => {
    sent++;
    const sentAt = performance.now();
    let timedOut = false;
    const p = new Promise<void>((resolve) => {
      const done = (r: Omit<RequestResult, 'sentAt' | 'ms'>, ms = performance.now() - sentAt): void => {
        o.onResult({ sentAt, ms, ...r });
        resolve();
      };
      const req = http.get(o.url, { agent }, (res) => {
        res.resume();
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const b = res.headers['x-backend'];
          const outcome: Outcome = status >= 500 ? 'http5xx' : status >= 400 ? 'http4xx' : 'ok';
          done({ outcome, status, ...(typeof b === 'string' ? { backend: b } : {}) });
        });
        res.on('error', () => done({ outcome: timedOut ? 'timeout' : 'reset' }, timedOut ? timeoutMs : undefined));
      });
      req.on('error', (err: NodeJS.ErrnoException) => done({ outcome: classify(err, timedOut) }, timedOut ? timeoutMs : undefined));
      req.setTimeout(timeoutMs, () => {
        timedOut = true;
        req.destroy();
      });
    });
    inflight.add(p);
    void p.then(() => inflight.delete(p));
  };

  // Timers fire every few ms; each firing sends every arrival that is due, so the mean rate is exact.
  const timer = setInterval(() => {
    const now = performance.now();
    while (next <= now) {
      fire();
      next += gap();
    }
  }, 2);

  return {
    get sent() {
      return sent;
    },
    setRate(rps) {
      rate = rps;
      next = Math.min(next, performance.now() + gap());
    },
    async stop() {
      clearInterval(timer);
      await Promise.all([...inflight]);
      agent.destroy();
    },
  };
}

/** Outcomes and backends answered over the last period, as one line. */
function summarize(results: readonly RequestResult[], seconds: number): string {
  const by = (f: (r: RequestResult) => string | undefined): string =>
    [...results.reduce((m, r) => m.set(f(r) ?? '-', (m.get(f(r) ?? '-') ?? 0) + 1), new Map<string, number>())]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, n]) => `${k}=${n}`)
      .join(' ');
  return `${(results.length / seconds).toFixed(1)} rps  outcomes: ${by((r) => r.outcome)}  backends: ${by((r) => r.backend)}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      rps: { type: 'string', default: '50' },
      'report-every': { type: 'string', default: '10' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help || values.url === undefined) {
    process.stdout.write('usage: npx tsx examples/backends/poisson-load.ts --url http://127.0.0.1:10000/ [--rps 50] [--report-every 10]\n');
    return;
  }
  let window: RequestResult[] = [];
  const load = poissonLoad({ url: values.url, rps: Number(values.rps), onResult: (r) => void window.push(r) });
  const every = Number(values['report-every']);
  const timer = setInterval(() => {
    process.stdout.write(`${summarize(window, every)}\n`);
    window = [];
  }, every * 1000);
  const stop = (): void => {
    clearInterval(timer);
    void load.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

runIfMain(import.meta.url, main);
