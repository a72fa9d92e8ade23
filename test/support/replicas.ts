/**
 * N fulcrum processes (the real command, `node --import tsx src/main.ts`) on one etcd, each with
 * its own xDS and admin ports, data dir and replica id, so a test can SIGKILL one (no goodbye to
 * etcd or to its Envoys) and start it again on the same ports, with its disk or an empty one.
 *
 *   const fleet = await startReplicas({ count: 3, config: (i) => yamlText });
 *   await fleet.kill(0);                    // SIGKILL
 *   await fleet.start(0, { emptyDisk: true });
 *   await fleet.api(1, 'GET', '/v1/proxies');
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from './ports.js';
import { fulcrumCommand } from './fulcrum-command.js';
import { Proc } from './proc.js';
import { waitFor } from './wait.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const ADMIN_TOKEN = 'replicas-admin-token';

export interface Replica {
  readonly id: string;
  readonly xdsPort: number;
  readonly adminPort: number;
  readonly dataDir: string;
  readonly running: boolean;
  /** The process's output so far (for failure messages). */
  tail(lines?: number): string;
}

export interface ApiResult {
  readonly status: number;
  readonly json: unknown;
  readonly headers: Headers;
}

export interface ReplicaSet {
  readonly replicas: readonly Replica[];
  readonly xdsPorts: readonly number[];
  /** Kills replica i (SIGKILL by default) and waits for it to exit. */
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts replica i again on its ports; `emptyDisk` wipes its data dir first. Waits until ready. */
  start(i: number, opts?: { emptyDisk?: boolean }): Promise<void>;
  /** An admin API call on replica i with the admin token; JSON in, JSON out. */
  api(i: number, method: string, pathname: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResult>;
  /** Waits until replica i answers /readyz with 200. */
  waitReady(i: number, timeoutMs?: number): Promise<void>;
  logs(): string;
  stop(): Promise<void>;
}

export interface ReplicaSetOptions {
  readonly count: number;
  /** The config file's text (the same for every replica, as in production). */
  readonly config: string;
  readonly env?: Record<string, string>;
  readonly readyTimeoutMs?: number;
}

interface Slot {
  readonly id: string;
  readonly xdsPort: number;
  readonly adminPort: number;
  readonly dataDir: string;
  proc: Proc | undefined;
}

export async function startReplicas(opts: ReplicaSetOptions): Promise<ReplicaSet> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fulcrum-replicas-'));
  const configPath = path.join(dir, 'fulcrum.yaml');
  await writeFile(configPath, opts.config);
  const ports = await freePorts(2 * opts.count);
  const slots: Slot[] = Array.from({ length: opts.count }, (_, i) => ({
    id: `fulcrum-${i}`,
    xdsPort: ports[2 * i] as number,
    adminPort: ports[2 * i + 1] as number,
    dataDir: path.join(dir, `data-${i}`),
    proc: undefined,
  }));
  const readyMs = opts.readyTimeoutMs ?? 60_000;
  const slot = (i: number): Slot => {
    const s = slots[i];
    if (!s) throw new Error(`no replica ${i}`);
    return s;
  };

  const spawnSlot = (s: Slot): void => {
    const args = [...fulcrumCommand(), '--config', configPath, '--xds-port', String(s.xdsPort), '--xds-address', '127.0.0.1'];
    args.push('--admin-port', String(s.adminPort), '--admin-address', '127.0.0.1', '--data-dir', s.dataDir, '--replica-id', s.id);
    const env = { ...process.env, FULCRUM_ADMIN_TOKEN: ADMIN_TOKEN, FULCRUM_READ_TOKEN: '', ...opts.env };
    s.proc = new Proc(s.id, spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] }));
  };

  const api = async (i: number, method: string, pathname: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResult> => {
    const res = await fetch(`http://127.0.0.1:${slot(i).adminPort}${pathname}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, json, headers: res.headers };
  };

  const waitReady = async (i: number, timeoutMs = readyMs): Promise<void> => {
    const s = slot(i);
    await waitFor(
      async () => {
        if (s.proc?.exit !== undefined) throw new Error(`${s.id} ${s.proc.exit}:\n${s.proc.tail()}`);
        return (await api(i, 'GET', '/readyz').catch(() => ({ status: 0 }))).status === 200;
      },
      { what: `${s.id} ready`, timeoutMs },
    );
  };

  const set: ReplicaSet = {
    replicas: slots.map((s) => ({
      id: s.id,
      xdsPort: s.xdsPort,
      adminPort: s.adminPort,
      dataDir: s.dataDir,
      get running() {
        return s.proc !== undefined && s.proc.exit === undefined;
      },
      tail: (lines?: number) => s.proc?.tail(lines) ?? '',
    })),
    xdsPorts: slots.map((s) => s.xdsPort),
    async kill(i, signal = 'SIGKILL') {
      await slot(i).proc?.stop(signal);
    },
    async start(i, o = {}) {
      const s = slot(i);
      if (s.proc?.exit === undefined && s.proc) throw new Error(`${s.id} is running`);
      if (o.emptyDisk) await rm(s.dataDir, { recursive: true, force: true });
      spawnSlot(s);
      await waitReady(i);
    },
    api,
    waitReady,
    logs: () => slots.map((s) => `── ${s.id} ──\n${s.proc?.tail(60) ?? '(not started)'}`).join('\n'),
    async stop() {
      await Promise.all(slots.map((s) => s.proc?.stop('SIGTERM', 10_000)));
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const s of slots) spawnSlot(s);
    await Promise.all(slots.map((_, i) => waitReady(i)));
  } catch (err) {
    const logs = set.logs();
    await set.stop();
    throw new Error(`${(err as Error).message}\n${logs}`, { cause: err });
  }
  return set;
}
