/**
 * Who is in the cluster during a row, and the three ways an autoscaler or an operator changes it:
 * backends join (the config file rewritten, as any source adds endpoints), a backend is drained
 * (DRAINING through the admin API, as an operator or a terminating pod does) and a backend is
 * removed (the file rewritten without it). Fleet indexes never change: a removed backend keeps its
 * index (its `x-backend` name) and listens until an event kills it.
 */
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { seededRandom } from '../../examples/backends/poisson-load.js';
import { QueueingBackend, type ColdStart } from '../../examples/backends/queueing-backend.js';

export interface Membership {
  readonly fleet: QueueingBackend[];
  /** Fleet indexes in the cluster, in fleet order. */
  readonly members: number[];
  readonly dir: string;
  /** The config file's text for these ports and capacities (the row decides their weights). */
  configFor(ports: readonly number[], workers: readonly number[]): string;
  readonly adminPort: number;
  readonly cluster: string;
  readonly meanServiceMs: number;
  readonly noise: number;
}

/** Starts a backend at the fleet's next index, named and seeded by it (as the initial fleet is). */
export async function startBackend(m: Pick<Membership, 'fleet' | 'meanServiceMs' | 'noise'>, workers: number, coldStart?: ColdStart): Promise<QueueingBackend> {
  const i = m.fleet.length;
  const b = new QueueingBackend({ workers, meanServiceMs: m.meanServiceMs, name: String(i), random: seededRandom(1000 + i), ...(coldStart ? { coldStart } : {}) });
  b.noise = m.noise;
  m.fleet.push(b);
  await b.listen();
  return b;
}

/**
 * Rewrites the watched config file with the members, atomically (a rename: the watcher never
 * reads half a file); `workers` overrides their capacities (the oracle's truth).
 */
export async function writeMembers(m: Membership, workers?: readonly number[]): Promise<void> {
  const ports = m.members.map((i) => (m.fleet[i] as QueueingBackend).port);
  const capacities = workers ?? m.members.map((i) => (m.fleet[i] as QueueingBackend).workers);
  await writeFile(join(m.dir, 'next.yaml'), m.configFor(ports, capacities));
  await rename(join(m.dir, 'next.yaml'), join(m.dir, 'fulcrum.yaml'));
}

export async function joinBackends(m: Membership, workers: readonly number[], coldStart?: ColdStart): Promise<void> {
  for (const w of workers) {
    await startBackend(m, w, coldStart);
    m.members.push(m.fleet.length - 1);
  }
  await writeMembers(m);
}

export async function drainBackend(m: Membership, i: number): Promise<void> {
  const b = backendAt(m, i);
  const url = `http://127.0.0.1:${m.adminPort}/v1/clusters/${m.cluster}/endpoints/127.0.0.1/${b.port}/drain`;
  const res = await fetch(url, { method: 'POST' });
  if (!res.ok) throw new Error(`drain of backend ${i}: ${res.status} ${await res.text()}`);
}

export async function removeBackend(m: Membership, i: number): Promise<void> {
  backendAt(m, i);
  const at = m.members.indexOf(i);
  if (at < 0) throw new Error(`backend ${i} is not in the cluster`);
  m.members.splice(at, 1);
  await writeMembers(m);
}

function backendAt(m: Membership, i: number): QueueingBackend {
  const b = m.fleet[i];
  if (!b) throw new Error(`no backend ${i}`);
  return b;
}
