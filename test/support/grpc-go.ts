/**
 * The grpc-go proxyless client (test/support/grpc-go-client, built by
 * scripts/build-grpc-go-client.sh into .tools/bin): where it is, and a handle on one run.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAX_LOG = 200_000;

/** GRPC_GO_CLIENT_BIN, else .tools/bin/grpc-go-client. */
export function locateGrpcGoClient(): { readonly ok: boolean; readonly detail: string; readonly bin: string } {
  const bin = process.env.GRPC_GO_CLIENT_BIN ?? path.join(REPO_ROOT, '.tools', 'bin', 'grpc-go-client');
  try {
    accessSync(bin, constants.X_OK);
    return { ok: true, detail: bin, bin };
  } catch {
    return { ok: false, detail: `${bin} is missing: run scripts/build-grpc-go-client.sh (or set GRPC_GO_CLIENT_BIN)`, bin };
  }
}

export interface GrpcGoRunOptions {
  readonly xdsPort: number;
  readonly nodeId: string;
  /** e.g. `xds:///sessions` */
  readonly target: string;
  readonly count: number;
  /** A header carrying a distinct key per call (user-0, user-1, ...), for ring hash. */
  readonly hashHeader?: string;
  /** Headers on every call (`x-delay-ms` makes the WhoAmI server answer later). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Per-call deadline (default 30 000 ms: the first call waits for xDS and a connection). */
  readonly deadlineMs?: number;
  /** Keep the channel (and its load reports) up after the calls, until `stop()`. */
  readonly hold?: boolean;
  /** How long to wait for the result line (default 120 000 ms). */
  readonly timeoutMs?: number;
  readonly env?: Record<string, string>;
}

export interface GrpcGoResult {
  /** Calls answered, by server id. */
  readonly counts: Record<string, number>;
  /** Failed calls, by gRPC status code name. */
  readonly errors: Record<string, number>;
}

export interface GrpcGoRun {
  readonly result: Promise<GrpcGoResult>;
  stderr(): string;
  /** Close stdin (ends a held run) and wait for the exit; SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export function runGrpcGoClient(bin: string, opts: GrpcGoRunOptions): GrpcGoRun {
  const args = ['--xds-port', String(opts.xdsPort), '--node-id', opts.nodeId, '--target', opts.target, '--count', String(opts.count)];
  args.push('--deadline', `${opts.deadlineMs ?? 30_000}ms`);
  if (opts.hashHeader) args.push('--hash-header', opts.hashHeader);
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push('--header', `${k}=${v}`);
  if (opts.hold) args.push('--hold');
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  delete env.GRPC_XDS_BOOTSTRAP;
  delete env.GRPC_XDS_BOOTSTRAP_CONFIG;
  const child = spawn(bin, args, { env, stdio: 'pipe' });
  let log = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    log = (log + chunk).slice(-MAX_LOG);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const result = new Promise<GrpcGoResult>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`grpc-go-client: no result within ${opts.timeoutMs ?? 120_000} ms\n${log.slice(-8_000)}`)), opts.timeoutMs ?? 120_000);
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line) as GrpcGoResult);
      } catch {
        reject(new Error(`grpc-go-client printed ${line}\n${log.slice(-8_000)}`));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`grpc-go-client exited (${code}) before its result\n${log.slice(-8_000)}`));
    });
  });
  return {
    result,
    stderr: () => log,
    async stop(graceMs = 5_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
