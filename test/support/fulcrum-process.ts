import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { fulcrumCommand } from './fulcrum-command.js';
import { Proc } from './proc.js';
import { scaled, waitFor } from './wait.js';

const repo = new URL('../../', import.meta.url).pathname;

export interface FulcrumProcess {
  readonly proc: Proc;
  readonly pid: number;
  readonly xdsPort: number;
  readonly adminPort: number;
  /** Resident set size now, in bytes (VmRSS of /proc/<pid>/status). */
  rss(): number;
  stop(): Promise<void>;
}

/** VmRSS of a process, in bytes (0 once it has exited). */
export function rssOf(pid: number): number {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return 0;
  }
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return m?.[1] ? Number(m[1]) * 1024 : 0;
}

/**
 * Starts `fulcrum` as its own process (through tsx; `npm start` runs the compiled dist/) with the given Node
 * options (e.g. the shipped `--max-old-space-size=384`), free xDS and admin ports, and waits for
 * both "listening" log lines. Loading the TypeScript takes seconds on a loaded machine.
 */
export async function startFulcrumProcess(opts: {
  readonly config: string;
  readonly dataDir: string;
  readonly nodeOptions?: readonly string[];
  readonly startMs?: number;
  /** The checkout whose fulcrum runs (default this one). */
  readonly cwd?: string;
}): Promise<FulcrumProcess> {
  const args = [...(opts.nodeOptions ?? []), ...fulcrumCommand(), '--config', opts.config, '--xds-port', '0', '--admin-port', '0', '--data-dir', opts.dataDir];
  const child = spawn(process.execPath, args, { cwd: opts.cwd ?? repo, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = new Proc('fulcrum', child);
  const pid = child.pid;
  if (pid === undefined) throw new Error('fulcrum did not start');
  const found = (re: RegExp) => (): number | undefined => {
    if (proc.exit !== undefined) throw new Error(`fulcrum ${proc.exit} before listening:\n${proc.tail()}`);
    const m = re.exec(proc.output.join(''));
    return m?.[1] ? Number(m[1]) : undefined;
  };
  const timeoutMs = opts.startMs ?? 90_000;
  const xdsPort = await waitFor(found(/"port":(\d+),"msg":"xDS server listening"/), { what: 'xDS server listening', timeoutMs, intervalMs: 100 });
  const adminPort = await waitFor(found(/"port":(\d+)[^\n]*"msg":"admin (?:API|server) listening"/), { what: 'admin listening', timeoutMs, intervalMs: 100 });
  return { proc, pid, xdsPort, adminPort, rss: () => rssOf(pid), stop: () => proc.stop() };
}

/** The heap cap the Kubernetes manifest ships (deploy/kubernetes/base/statefulset.yaml). */
export const POD_HEAP_OPTIONS = ['--max-old-space-size=384'] as const;

/**
 * A fulcrum process under the shipped heap cap, serving one cluster `web` (127.0.0.1:9001), in a
 * fresh directory; `stop()` ends it and removes the directory. For attacks that must not kill it.
 */
export async function startCappedFulcrum(prefix: string): Promise<FulcrumProcess> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    await writeFile(join(dir, 'fulcrum.yaml'), 'clusters:\n  - name: web\n    endpoints: [{ address: 127.0.0.1, port: 9001 }]\n');
    const f = await startFulcrumProcess({ config: join(dir, 'fulcrum.yaml'), dataDir: join(dir, 'data'), nodeOptions: POD_HEAP_OPTIONS });
    return { ...f, stop: () => f.stop().finally(() => rm(dir, { recursive: true, force: true })) };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * startCappedFulcrum for a whole test file: started before its tests, stopped after them. Returns
 * a getter for the tests, which throws when the start failed (beforeAll reported why).
 */
export function cappedFulcrumForFile(prefix: string): () => FulcrumProcess {
  let fulcrum: FulcrumProcess | undefined;
  beforeAll(async () => {
    fulcrum = await startCappedFulcrum(prefix);
  }, scaled(120_000));
  afterAll(async () => {
    await fulcrum?.stop();
  });
  return () => {
    if (!fulcrum) throw new Error('setup failed');
    return fulcrum;
  };
}
