/**
 * A checkout's compiled fulcrum run as `npm start` runs it, on a given config, for benches that
 * compare two builds from outside (bench/config-reload.ts, bench/admin-reads.ts): start it and wait
 * until it serves, probe its admin port while something happens, read its RSS, generate a large
 * block-style config. Not a bench by itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

export interface Served {
  readonly child: ChildProcess;
  readonly admin: number;
  readonly xds: number;
  /** From spawn until /readyz answered 200. */
  readonly startMs: number;
  stop(): Promise<void>;
}

export async function until(what: string, ready: () => Promise<boolean>, ms = 300_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * `repo`'s dist/main.js with `npm start`'s V8 flags, on free ports, until /readyz answers 200.
 * FULCRUM_BENCH_NODE_ARGS (space-separated) adds node flags, e.g. `--cpu-prof --cpu-prof-dir=DIR`
 * to profile the server, or `--import=<abs>/bench/push-trace.mjs` with FULCRUM_PUSH_TRACE.
 */
export async function startBuild(repo: string, configPath: string, dataDir: string): Promise<Served> {
  const began = performance.now();
  const extra = (process.env.FULCRUM_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const args = ['--max-semi-space-size=4', '--v8-pool-size=1', ...extra, join(repo, 'dist/main.js'), '--config', configPath, '--xds-port', '0', '--admin-port', '0', '--data-dir', dataDir];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: repo });
  let out = '';
  const keep = (d: Buffer): void => void (out = (out + d.toString()).slice(-100_000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  };
  let admin = 0;
  let xds = 0;
  try {
    await until('fulcrum to start', async () => {
      if (child.exitCode !== null) throw new Error(`fulcrum exited ${child.exitCode}:\n${out}`);
      admin = Number(/"adminPort":(\d+)/.exec(out)?.[1] ?? 0);
      xds = Number(/"xdsPort":(\d+)/.exec(out)?.[1] ?? 0);
      return admin > 0;
    });
    await until('/readyz', () => fetch(`http://127.0.0.1:${admin}/readyz`).then((r) => r.ok, () => false));
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, admin, xds, startMs: performance.now() - began, stop };
}

/** Probes /healthz back to back (5 ms apart) until stopped; the longest single wait, ms. */
export function probeHealthz(admin: number): { stop(): Promise<number> } {
  let running = true;
  let longest = 0;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      await fetch(`http://127.0.0.1:${admin}/healthz`).then((r) => r.arrayBuffer());
      longest = Math.max(longest, performance.now() - t0);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return longest;
    },
  };
}

const PROBE_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
let running = true;
let longest = 0;
parentPort.on('message', () => { running = false; });
(async () => {
  // The first fetch loads the HTTP client: not a wait on the server.
  await fetch('http://127.0.0.1:' + workerData.admin + '/healthz').then((r) => r.arrayBuffer());
  parentPort.postMessage('ready');
  while (running) {
    const t0 = performance.now();
    await fetch('http://127.0.0.1:' + workerData.admin + '/healthz').then((r) => r.arrayBuffer());
    longest = Math.max(longest, performance.now() - t0);
    await new Promise((r) => setTimeout(r, 5));
  }
  parentPort.postMessage(longest);
})();
`;

/**
 * probeHealthz on a worker thread: for a bench whose own event loop is busy (driving a browser),
 * so that its stalls are not counted as the server's.
 */
export async function probeHealthzOffThread(admin: number): Promise<{ stop(): Promise<number> }> {
  const worker = new Worker(PROBE_WORKER, { eval: true, workerData: { admin } });
  const messages: unknown[] = [];
  let wake: (() => void) | undefined;
  let failed: unknown;
  worker.on('message', (m: unknown) => void (messages.push(m), wake?.()));
  worker.once('error', (err) => void ((failed = err), wake?.()));
  const next = async (): Promise<unknown> => {
    while (messages.length === 0) {
      if (failed !== undefined) throw failed;
      await new Promise<void>((r) => (wake = r));
    }
    return messages.shift();
  };
  await next(); // 'ready'
  return {
    async stop() {
      worker.postMessage('stop');
      const ms = (await next()) as number;
      await worker.terminate();
      return ms;
    },
  };
}

/** RSS and peak RSS (VmHWM), MiB. */
export async function rssMiB(pid: number): Promise<{ now: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { now: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** A block-style config of `clusters` × `endpoints` (the first endpoint's weight `weight`, or with `every` every endpoint's), as an operator's file is written. */
export function blockConfig(clusters: number, endpoints: number, weight = 1, every = false): string {
  // Addresses 10.<cluster>.<endpoint>: up to 65,536 clusters of 254 endpoints.
  if (endpoints > 254 || clusters > 65_536) throw new RangeError('blockConfig: at most 65,536 clusters of 254 endpoints');
  const lines = ['clusters:'];
  for (let c = 0; c < clusters; c++) {
    lines.push(`  - name: c${c}`, '    endpoints:');
    for (let e = 0; e < endpoints; e++) {
      lines.push(`      - address: 10.${c >> 8}.${c & 255}.${e + 1}`, '        port: 8080', `        weight: ${every || (c === 0 && e === 0) ? weight : 1}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
