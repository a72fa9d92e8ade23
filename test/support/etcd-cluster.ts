/**
 * A real etcd cluster for tests: N members (3 by default) on loopback ports, in a temp dir.
 *
 *   describeEtcd('etcd store', () => {
 *     let etcd: EtcdCluster;
 *     beforeAll(async () => { etcd = await startEtcdCluster(); }, 60_000);
 *     afterAll(() => etcd?.stop());
 *     ... etcd.endpoints ...
 *   });
 *
 * Binary: `ETCD_BIN`, else `.tools/bin/etcd` as built by `scripts/install-kube-test-binaries.sh`
 * (which `.ci/run` runs). Missing: skipped with a printed reason locally, a failing test under CI
 * or with `FULCRUM_REQUIRE_ETCD=1`. Members can be stopped (SIGKILL or SIGTERM) and started again
 * on the same ports and data, to test quorum loss and recovery.
 */
import { spawn } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll } from 'vitest';
import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from './ports.js';
import { Proc } from './proc.js';
import { describeRequiring } from './requires.js';
import { waitFor } from './wait.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export function findEtcd(): { readonly ok: boolean; readonly detail: string; readonly bin: string } {
  const env = process.env.ETCD_BIN;
  const bin = env && env !== '' ? env : path.join(repoRoot, '.tools/bin/etcd');
  try {
    fs.accessSync(bin, fs.constants.X_OK);
    return { ok: true, detail: 'found', bin };
  } catch {
    return { ok: false, detail: `etcd not found at ${bin} (ETCD_BIN); run scripts/install-kube-test-binaries.sh`, bin };
  }
}

/** `describe` that needs a real etcd binary: skipped locally when missing (unless `required`), a failing test under CI. */
export function describeEtcd(name: string, fn: () => void, opts: { readonly timeout?: number; readonly required?: boolean } = {}): void {
  describeRequiring('etcd', findEtcd(), name, fn, { ...opts, requireEnv: 'FULCRUM_REQUIRE_ETCD' });
}

/**
 * An etcd of `size` members for the enclosing describe block, and a plain client of it: started
 * before its tests, stopped after them. Read the fields inside tests (they are set by then).
 */
export function etcdForBlock(size = 1): { etcd: EtcdCluster; client: Etcd3 } {
  const held = {} as { etcd: EtcdCluster; client: Etcd3 };
  beforeAll(async () => {
    held.etcd = await startEtcdCluster(size);
    held.client = new Etcd3({ hosts: [...held.etcd.endpoints] });
  }, 120_000);
  afterAll(async () => {
    held.client?.close();
    await held.etcd?.stop();
  });
  return held;
}

export interface EtcdMember {
  readonly name: string;
  /** http://127.0.0.1:<client port> */
  readonly clientUrl: string;
  readonly running: boolean;
}

export interface EtcdCluster {
  /** Client URLs of every member, for a client's `hosts`. */
  readonly endpoints: readonly string[];
  readonly members: readonly EtcdMember[];
  readonly dir: string;
  /** Stops member i (SIGKILL by default: no goodbye to its peers). */
  stopMember(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts member i again on its ports and data, and waits until it answers /health. */
  startMember(i: number): Promise<void>;
  /** Freezes member i (SIGSTOP: it answers nothing and closes nothing, as a hung process or a host gone dark) or thaws it (SIGCONT). */
  freezeMember(i: number, frozen: boolean): void;
  /** Waits until every running member reports itself healthy (quorum present). */
  waitHealthy(): Promise<void>;
  /** The index of the member the running members agree is the leader (waits for an agreement). */
  leader(): Promise<number>;
  logs(): string;
  stop(): Promise<void>;
}

interface MemberSpec {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
}

/** Starts an etcd cluster of `size` members and waits until it has a leader. */
/** `extraArgs`: more etcd flags for every member (e.g. a small `--quota-backend-bytes`). */
export async function startEtcdCluster(size = 3, extraArgs: readonly string[] = []): Promise<EtcdCluster> {
  const { ok, bin, detail } = findEtcd();
  if (!ok) throw new Error(detail);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fulcrum-etcd-'));
  const ports = await freePorts(2 * size);
  const specs: MemberSpec[] = Array.from({ length: size }, (_, i) => ({
    name: `m${i}`,
    clientUrl: `http://127.0.0.1:${ports[2 * i]}`,
    peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
    dataDir: path.join(dir, `m${i}`),
  }));
  const initialCluster = specs.map((s) => `${s.name}=${s.peerUrl}`).join(',');
  const procs: (Proc | undefined)[] = specs.map(() => undefined);
  const launch = (i: number): void => {
    const s = specs[i]!;
    procs[i] = new Proc(`etcd-${s.name}`, spawn(bin, [...memberArgs(s, initialCluster), ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] }));
  };
  const logs = (): string => specs.map((s, i) => `--- etcd ${s.name} (${procs[i]?.exit ?? 'running'}) ---\n${procs[i]?.tail(20) ?? ''}`).join('\n');
  const waitHealthy = async (): Promise<void> => {
    const live = specs.filter((_, i) => procs[i] !== undefined && procs[i]!.exit === undefined);
    for (const s of live) {
      await waitFor(async (ctx) => {
        const health = await getJson(`${s.clientUrl}/health`).catch((err: Error) => ({ error: err.message }));
        ctx.note(JSON.stringify(health));
        return (health as { health?: string }).health === 'true';
      }, { what: `etcd member ${s.name} healthy\n${logs()}`, timeoutMs: 60_000, intervalMs: 100 });
    }
  };
  const stopAll = async (): Promise<void> => {
    // A frozen member would ignore SIGTERM until its stop's deadline.
    for (const p of procs) p?.child.kill('SIGCONT');
    await Promise.all(procs.map((p) => p?.stop('SIGTERM', 5_000)));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    specs.forEach((_, i) => launch(i));
    await waitHealthy();
  } catch (err) {
    await stopAll();
    throw err;
  }
  return {
    endpoints: specs.map((s) => s.clientUrl),
    get members() {
      return specs.map((s, i) => ({ name: s.name, clientUrl: s.clientUrl, running: procs[i]?.exit === undefined }));
    },
    dir,
    async stopMember(i, signal = 'SIGKILL') {
      await procs[i]?.stop(signal, 5_000);
    },
    async startMember(i) {
      if (procs[i] && procs[i]!.exit === undefined) return;
      launch(i);
      await waitHealthy();
    },
    freezeMember(i, frozen) {
      procs[i]?.child.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
    },
    waitHealthy,
    async leader() {
      let found = -1;
      await waitFor(async (ctx) => {
        const seen = await Promise.all(specs.map((s, i) => (procs[i]?.exit === undefined ? memberStatus(s.clientUrl).catch(() => undefined) : undefined)));
        ctx.note(JSON.stringify(seen));
        const leaders = new Set(seen.filter((x) => x !== undefined).map((x) => x.leader));
        found = leaders.size === 1 ? seen.findIndex((x) => x !== undefined && leaders.has(x.id)) : -1;
        return found >= 0;
      }, { what: `etcd members agree on a leader\n${logs()}`, timeoutMs: 60_000, intervalMs: 100 });
      return found;
    },
    logs,
    stop: stopAll,
  };
}

function memberArgs(s: MemberSpec, initialCluster: string): string[] {
  return [
    `--name=${s.name}`,
    `--data-dir=${s.dataDir}`,
    `--listen-client-urls=${s.clientUrl}`,
    `--advertise-client-urls=${s.clientUrl}`,
    `--listen-peer-urls=${s.peerUrl}`,
    `--initial-advertise-peer-urls=${s.peerUrl}`,
    `--initial-cluster=${initialCluster}`,
    '--initial-cluster-state=new',
    '--initial-cluster-token=fulcrum-test',
    // Short elections keep quorum tests quick; fsync off because the data dir is throw-away.
    '--heartbeat-interval=100',
    '--election-timeout=1000',
    '--unsafe-no-fsync=true',
    '--log-level=warn',
  ];
}

/** A member's id and the leader it follows (etcd's gRPC gateway: POST /v3/maintenance/status). */
async function memberStatus(clientUrl: string): Promise<{ id: string; leader: string }> {
  const res = await fetch(`${clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(2_000) });
  const body = (await res.json()) as { header?: { member_id?: string }; leader?: string };
  if (body.header?.member_id === undefined || body.leader === undefined || body.leader === '0') throw new Error(`no leader known: ${JSON.stringify(body)}`);
  return { id: body.header.member_id, leader: body.leader };
}

function getJson(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 2_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch (err) {
          reject(err as Error);
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
