/**
 * Handing a cluster or listener name from the API to the config file (README: "delete it through
 * the API to hand the name to the file") in a real fulcrum that publishes at once (debounce 0).
 * Every snapshot published between the API's delete and the file's definition is watched: one
 * without the cluster, or with its endpoints missing, tells every proxy to drop them (Envoy
 * removes the cluster and its traffic fails); one without the listener tells them to drain it
 * (Envoy stops accepting on its socket) until the file's definition arrives.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { Fulcrum } from '../../src/main.js';
import { startLoopbackFulcrum } from '../support/loopback-fulcrum.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { CDS, decodeAny, EDS, LDS } from '../support/xds-client.js';
import { capturedLog } from '../support/captured-log.js';
import { waitFor } from '../support/wait.js';

const json = { 'content-type': 'application/json' };
const WEB = { name: 'web', endpoints: [{ address: '10.0.0.1', port: 8080 }] };

/** One kind of hand-over: the name both sources define, and how a published snapshot shows whose it is. */
interface Case {
  readonly kind: 'cluster' | 'listener';
  readonly name: string;
  /** The API's definition (PUT body). */
  readonly api: object;
  /** The config file without, then with, its definition of the name. */
  readonly without: object;
  readonly file: object;
  /** What the snapshot publishes of the name (undefined: nothing, or nothing usable), and that of the API's and the file's definitions. */
  readonly published: (f: Fulcrum) => string | undefined;
  readonly apiPublished: string;
  readonly filePublished: string;
  /** What GET answers once the file has it. */
  readonly record: object;
}

/** The endpoints of an EDS resource, as address:port/weight. */
function assignmentEndpoints(bytes: Uint8Array | undefined): string[] {
  if (!bytes) return [];
  const cla = decodeAny({ type_url: EDS, value: Buffer.from(bytes) }) as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } }; load_balancing_weight: { value: number } | null }[] }[] };
  return cla.endpoints.flatMap((l) => l.lb_endpoints.map((e) => `${e.endpoint.address.socket_address.address}:${e.endpoint.address.socket_address.port_value}/${e.load_balancing_weight?.value ?? 1}`));
}

/** Cluster "api" as published: its endpoints, if CDS has it and EDS gives it any. */
function publishedCluster(f: Fulcrum): string | undefined {
  const snapshot = f.cache.snapshotFor('');
  const endpoints = assignmentEndpoints(snapshot.resources(EDS).get('api')?.bytes);
  return snapshot.resources(CDS).has('api') && endpoints.length > 0 ? endpoints.join(',') : undefined;
}

/** Listener "ingress" as published: the port it binds, if LDS has it. */
function publishedListener(f: Fulcrum): string | undefined {
  const bytes = f.cache.snapshotFor('').resources(LDS).get('ingress')?.bytes;
  if (!bytes) return undefined;
  const listener = decodeAny({ type_url: LDS, value: Buffer.from(bytes) }) as { address: { socket_address: { port_value: number } } };
  return String(listener.address.socket_address.port_value);
}

const CLUSTER: Case = {
  kind: 'cluster',
  name: 'api',
  api: { endpoints: [{ address: '10.0.0.9', port: 80 }] },
  without: { clusters: [WEB] },
  file: { clusters: [{ name: 'api', endpoints: [{ address: '10.0.0.2', port: 8080, weight: 3 }] }, WEB] },
  published: publishedCluster,
  apiPublished: '10.0.0.9:80/1',
  filePublished: '10.0.0.2:8080/3',
  record: { owner: 'file', endpoints: [{ address: '10.0.0.2', weight: 3 }] },
};

/** The file's "ingress" is told from the API's by its port. */
const LISTENER: Case = {
  kind: 'listener',
  name: 'ingress',
  api: { address: '127.0.0.1', port: 10_001, routes: [{ prefix: '/', cluster: 'web' }] },
  without: { clusters: [WEB] },
  file: { clusters: [WEB], listeners: [{ name: 'ingress', address: '127.0.0.1', port: 10_002, routes: [{ prefix: '/', cluster: 'web' }] }] },
  published: publishedListener,
  apiPublished: '10001',
  filePublished: '10002',
  record: { owner: 'file', port: 10_002 },
};

let dir: string | undefined;
let fulcrum: Fulcrum | undefined;
afterEach(async () => {
  await fulcrum?.stop();
  fulcrum = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/**
 * fulcrum on `store` (undefined: SQLite) with an API resource the file then defines too, the
 * DELETE that hands it over, and every snapshot published meanwhile checked.
 */
async function handOver(c: Case, store: object | undefined): Promise<void> {
  dir = await mkdtemp(join(tmpdir(), 'fulcrum-hand-over-'));
  const configPath = join(dir, 'fulcrum.yaml');
  const file = (f: object): string => stringify(store ? { store, ...f } : f);
  await writeFile(configPath, file(c.without));
  const { log, lines } = capturedLog();
  const f = (fulcrum = await startLoopbackFulcrum(configPath, { logger: log, debounce: { quietMs: 0, maxMs: 0 } }));
  const url = (path: string): string => `http://127.0.0.1:${f.adminPort}${path}`;
  const path = `/v1/${c.kind}s/${c.name}`;
  expect((await fetch(url(path), { method: 'PUT', headers: json, body: JSON.stringify(c.api) })).status).toBe(201);
  await writeFile(configPath, file(c.file));
  // What the delete asks (does the file take the name?) is known once the seed's conflict is logged.
  await waitFor(() => lines.some((l) => l.name === c.name && String(l.msg).startsWith('config file defines a name another source owns')), { what: `the file defining "${c.name}" too`, timeoutMs: 15_000 });
  await waitFor(() => c.published(f) === c.apiPublished, { what: `the API's ${c.name} published`, timeoutMs: 15_000 });

  const seen: (string | undefined)[] = [];
  const unsubscribe = f.cache.subscribe(() => seen.push(c.published(f)));
  try {
    const deleted = await fetch(url(path), { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    expect(((await deleted.json()) as { deleted: string }).deleted).toBe(c.name);
    await waitFor(() => c.published(f) === c.filePublished, { what: `the file's ${c.name} published`, timeoutMs: 15_000 });
    expect(seen.filter((s) => s === undefined)).toEqual([]);
  } finally {
    unsubscribe();
  }
  const record = (await (await fetch(url(path))).json()) as { revision: number };
  expect(record).toMatchObject(c.record);
  const audit = (await (await fetch(url('/v1/audit?limit=2'))).json()) as { entries: { actor: string; action: string; kind: string; name: string; revision: number }[] };
  expect(audit.entries.map((e) => [e.actor, e.action, e.kind, e.name, e.revision])).toEqual([
    ['config-file', 'create', c.kind, c.name, record.revision],
    ['api', 'delete', c.kind, c.name, record.revision],
  ]);
}

const NEVER_ABSENT = {
  cluster: "never publishes a snapshot without the cluster or its endpoints, and audits the delete and the file's definition at one revision",
  listener: "never publishes a snapshot without the listener, and audits the delete and the file's definition at one revision",
};

for (const c of [CLUSTER, LISTENER]) {
  describe(`handing a ${c.kind} from the API to the config file (SQLite store)`, () => {
    it(NEVER_ABSENT[c.kind], () => handOver(c, undefined));
  });
}

describeEtcd('handing a cluster or listener from the API to the config file (etcd store)', () => {
  let etcd: EtcdCluster | undefined;
  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
  }, 120_000);
  afterAll(() => etcd?.stop());
  for (const c of [CLUSTER, LISTENER]) {
    it(NEVER_ABSENT[c.kind], () => handOver(c, { kind: 'etcd', etcd: { endpoints: etcd?.endpoints, prefix: `/hand-over-${randomBytes(4).toString('hex')}` } }), 60_000);
  }
});
