/**
 * Test-side handle on a proxyless gRPC client process (test/support/grpc-xds-client.ts):
 * spawn it against an xDS port, send it batches of calls, read back which server answered.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { CallResult, ClientCommand, ClientReply } from './grpc-xds-client.js';
import { scaled } from './timing.js';

export type { CallResult } from './grpc-xds-client.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..');
const CLIENT_SCRIPT = path.join(HERE, 'grpc-xds-client.ts');
const MAX_LOG = 400_000;

export interface XdsClientOptions {
  readonly xdsPort: number;
  readonly nodeId: string;
  readonly nodeCluster?: string;
  /** e.g. `xds_client,xds_resolver` (sets GRPC_TRACE and GRPC_VERBOSITY=DEBUG); stderr is kept for diagnostics. */
  readonly trace?: string;
  /** Extra environment for the client process. */
  readonly env?: Record<string, string>;
  /** How long to wait for the process to load grpc-js-xds (default 30 000 ms). */
  readonly startTimeoutMs?: number;
  /** The bootstrap's `xds_servers[0].channel_creds` (default `[{ type: 'insecure' }]`). */
  readonly channelCreds?: readonly Record<string, unknown>[];
}

export interface CallBatch {
  readonly count?: number;
  readonly metadata?: Record<string, string>;
  readonly perCall?: readonly Record<string, string>[];
  readonly concurrency?: number;
  readonly deadlineMs?: number;
  /** How long to wait for the whole batch's reply (default 60 000 ms). */
  readonly timeoutMs?: number;
}

export interface XdsClientHandle {
  readonly pid: number;
  /** Make a batch of unary WhoAmI calls on the channel for `target` (channels are reused). */
  call(target: string, batch: CallBatch): Promise<CallResult[]>;
  /** The channel's connectivity state (`IDLE`, `CONNECTING`, `READY`, …). */
  state(target: string): Promise<string>;
  /** What the process wrote to stderr so far (bounded); traces go here. */
  stderr(): string;
  /**
   * The last `max` characters of stderr with multi-line dumps (whole resources, as the
   * xds_client tracer prints them) cut down to their first line: the trace's narrative.
   */
  traceSummary(max?: number): string;
  /** Close stdin and wait for the exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

export async function startXdsClient(opts: XdsClientOptions): Promise<XdsClientHandle> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  delete env.GRPC_XDS_BOOTSTRAP;
  delete env.GRPC_XDS_BOOTSTRAP_CONFIG;
  if (opts.channelCreds) env.FULCRUM_TEST_XDS_CHANNEL_CREDS = JSON.stringify(opts.channelCreds);
  if (opts.trace) {
    env.GRPC_TRACE = opts.trace;
    env.GRPC_VERBOSITY = 'DEBUG';
  }
  const args = [
    '--import',
    'tsx',
    CLIENT_SCRIPT,
    '--xds-port',
    String(opts.xdsPort),
    '--node-id',
    opts.nodeId,
    '--node-cluster',
    opts.nodeCluster ?? 'proxyless',
  ];
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: 'pipe' });
  let log = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    log += chunk;
    if (log.length > MAX_LOG) log = log.slice(log.length - MAX_LOG);
  });
  const pending = new Map<number, { resolve: (r: ClientReply) => void; reject: (e: Error) => void }>();
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      for (const [, p] of pending) p.reject(new Error(`grpc-xds-client exited (${code ?? signal})\n${tail(log)}`));
      pending.clear();
      resolve();
    }),
  );

  let onReady: (() => void) | undefined;
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    let msg: ClientReply & { ready?: boolean };
    try {
      msg = JSON.parse(line) as ClientReply & { ready?: boolean };
    } catch {
      log += `[stdout] ${line}\n`;
      return;
    }
    if (msg.ready) {
      onReady?.();
      return;
    }
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.error !== undefined) p.reject(new Error(`grpc-xds-client: ${msg.error}`));
    else p.resolve(msg);
  });

  const startTimeoutMs = scaled(opts.startTimeoutMs ?? 30_000);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`grpc-xds-client not ready after ${startTimeoutMs} ms\n${tail(log)}`));
    }, startTimeoutMs);
    onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    void exit.then(() => {
      clearTimeout(timer);
      reject(new Error(`grpc-xds-client exited during startup (${exited?.code ?? exited?.signal})\n${tail(log)}`));
    });
  });

  let nextId = 1;
  const send = (cmd: Omit<ClientCommand, 'id'>, baseTimeoutMs: number): Promise<ClientReply> => {
    const timeoutMs = scaled(baseTimeoutMs);
    if (exited) return Promise.reject(new Error(`grpc-xds-client has exited\n${tail(log)}`));
    const id = nextId++;
    return new Promise<ClientReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`grpc-xds-client: no reply to command ${id} within ${timeoutMs} ms\n${tail(log)}`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      child.stdin.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  };

  return {
    pid: child.pid ?? -1,
    async call(target, batch) {
      const { timeoutMs = 60_000, ...rest } = batch;
      const reply = await send({ target, ...rest }, timeoutMs);
      return reply.results ?? [];
    },
    async state(target) {
      const reply = await send({ target, state: true }, 10_000);
      return reply.state ?? 'UNKNOWN';
    },
    stderr: () => log,
    traceSummary: (max = 20_000) => tail(summarizeTrace(log), max),
    async stop(graceMs = 5_000) {
      if (exited) return;
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exit;
      clearTimeout(timer);
    },
  };
}

/** Keep grpc-js trace headers (`D 2026-…Z | v1.14.7 123 | tracer | text`) and other one-line output; drop dump bodies. */
function summarizeTrace(text: string): string {
  const out: string[] = [];
  let inDump = false;
  for (const line of text.split('\n')) {
    if (/^[DIE] \d{4}-\d\d-\d\dT/.test(line)) {
      out.push(line);
      inDump = /[{[:]\s*$/.test(line);
    } else if (!inDump && line.trim() !== '') {
      out.push(line);
    }
  }
  return out.join('\n');
}

function tail(text: string, max = 8_000): string {
  return text.length > max ? `…${text.slice(text.length - max)}` : text;
}

/** Calls per answering server id; failed calls are counted under `error <code>: <details>`. */
export function tally(results: readonly CallResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) {
    const key = r.server ?? `error ${r.code ?? '?'}: ${r.error ?? ''}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}
