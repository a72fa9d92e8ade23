/**
 * Handing a cluster name from the API to the config file (README: "delete it through the API to
 * hand the name to the file") in a real fulcrum that publishes at once (debounce 0). Every
 * snapshot published between the API's delete and the file's definition is watched: one without
 * the cluster, or with its endpoints missing, tells every proxy to drop them (Envoy removes the
 * cluster and its traffic fails until the file's definition arrives).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { CDS, decodeAny, EDS } from '../support/xds-client.js';
import { capturedLog } from '../support/captured-log.js';
import { waitFor } from '../support/wait.js';

const json = { 'content-type': 'application/json' };
const FILE = {
  clusters: [
    { name: 'api', endpoints: [{ address: '10.0.0.2', port: 8080, weight: 3 }] },
    { name: 'web', endpoints: [{ address: '10.0.0.1', port: 8080 }] },
  ],
};
const WITHOUT_API = { clusters: FILE.clusters.filter((c) => c.name !== 'api') };

/** What one published snapshot holds of cluster "api": whether CDS has it, and its endpoints as EDS sends them. */
interface Seen {
  readonly cds: boolean;
  readonly endpoints: readonly string[];
}

/** The endpoints of `cluster` in an EDS resource, as address:port/weight. */
function assignmentEndpoints(bytes: Uint8Array | undefined): string[] {
  if (!bytes) return [];
  const cla = decodeAny({ type_url: EDS, value: Buffer.from(bytes) }) as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } }; load_balancing_weight: { value: number } | null }[] }[] };
  return cla.endpoints.flatMap((l) => l.lb_endpoints.map((e) => `${e.endpoint.address.socket_address.address}:${e.endpoint.address.socket_address.port_value}/${e.load_balancing_weight?.value ?? 1}`));
}

function seenIn(f: Fulcrum): Seen {
  const snapshot = f.cache.snapshotFor('');
  return { cds: snapshot.resources(CDS).has('api'), endpoints: assignmentEndpoints(snapshot.resources(EDS).get('api')?.bytes) };
}

let dir: string | undefined;
let fulcrum: Fulcrum | undefined;
afterEach(async () => {
  await fulcrum?.stop();
  fulcrum = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/**
 * fulcrum on `store` (undefined: SQLite) with an API cluster "api" the file then defines too,
 * the DELETE that hands it over, and every snapshot published meanwhile checked.
 */
async function handOver(store: object | undefined): Promise<void> {
  dir = await mkdtemp(join(tmpdir(), 'fulcrum-hand-over-'));
  const configPath = join(dir, 'fulcrum.yaml');
  const file = (f: object): string => stringify(store ? { store, ...f } : f);
  await writeFile(configPath, file(WITHOUT_API));
  const { log, lines } = capturedLog();
  const f = (fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminPort: 0, adminAddress: '127.0.0.1', logger: log, debounce: { quietMs: 0, maxMs: 0 } }));
  const url = (path: string): string => `http://127.0.0.1:${f.adminPort}${path}`;
  const has = (address: string): boolean => seenIn(f).endpoints.some((e) => e.startsWith(`${address}/`));
  expect((await fetch(url('/v1/clusters/api'), { method: 'PUT', headers: json, body: JSON.stringify({ endpoints: [{ address: '10.0.0.9', port: 80 }] }) })).status).toBe(201);
  await writeFile(configPath, file(FILE));
  // What the delete asks (does the file take the name?) is known once the seed's conflict is logged.
  await waitFor(() => lines.some((l) => l.name === 'api' && String(l.msg).startsWith('config file defines a name another source owns')), { what: 'the file defining "api" too', timeoutMs: 15_000 });
  await waitFor(() => has('10.0.0.9:80'), { what: "the API's api published", timeoutMs: 15_000 });

  const seen: Seen[] = [];
  const unsubscribe = f.cache.subscribe(() => seen.push(seenIn(f)));
  try {
    const deleted = await fetch(url('/v1/clusters/api'), { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    const answer = (await deleted.json()) as { deleted: string; revision: number };
    expect(answer.deleted).toBe('api');
    await waitFor(() => has('10.0.0.2:8080'), { what: "the file's api published", timeoutMs: 15_000 });
    expect(seen.filter((s) => !s.cds || s.endpoints.length === 0)).toEqual([]);
  } finally {
    unsubscribe();
  }
  const record = (await (await fetch(url('/v1/clusters/api'))).json()) as { owner: string; revision: number; endpoints: { address: string; weight: number }[] };
  expect(record).toMatchObject({ owner: 'file', endpoints: [{ address: '10.0.0.2', weight: 3 }] });
  const audit = (await (await fetch(url('/v1/audit?limit=2'))).json()) as { entries: { actor: string; action: string; kind: string; name: string; revision: number }[] };
  expect(audit.entries.map((e) => [e.actor, e.action, e.kind, e.name, e.revision])).toEqual([
    ['config-file', 'create', 'cluster', 'api', record.revision],
    ['api', 'delete', 'cluster', 'api', record.revision],
  ]);
}

const NEVER_ABSENT = "never publishes a snapshot without the cluster or its endpoints, and audits the delete and the file's definition at one revision";

describe('handing a cluster from the API to the config file (SQLite store)', () => {
  it(NEVER_ABSENT, () => handOver(undefined));
});

describeEtcd('handing a cluster from the API to the config file (etcd store)', () => {
  let etcd: EtcdCluster | undefined;
  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
  }, 120_000);
  afterAll(() => etcd?.stop());
  it(NEVER_ABSENT, () => handOver({ kind: 'etcd', etcd: { endpoints: etcd?.endpoints, prefix: `/hand-over-${randomBytes(4).toString('hex')}` } }), 60_000);
});
