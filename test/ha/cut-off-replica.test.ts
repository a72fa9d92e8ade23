/**
 * A replica cut off from etcd while the fleet changes and etcd compacts its history (routine:
 * `--auto-compaction-retention`) learns of the changes when it is back: its watches, cancelled by
 * etcd because the revision they would resume from is gone, list again. Before, they died for good:
 * the replica kept a departed replica in its member list, so the clusters it saw as that replica's
 * were owned by nobody.
 */
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, test } from 'vitest';
import { rendezvousOwner } from '../../src/ha/rendezvous.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay.js';
import { scaled, waitFor } from '../support/wait.js';
import { etcdClient, fleetCatalog, startReplica, stopReplica, type TestReplica } from './replicas.js';

const CLUSTERS = 12;
const PREFIX = '/fulcrum-cut-off-test';
const names = Array.from({ length: CLUSTERS }, (_, c) => `svc-${c}`);

describeEtcd('HA: a replica cut off from etcd across a compaction', () => {
  let etcd: EtcdCluster;
  let relay: TcpRelay;
  let admin: Etcd3;
  const replicas: TestReplica[] = [];
  const alive = (): TestReplica[] => replicas.filter((r) => r.alive);
  const ownersOf = (cluster: string): string[] => alive().filter((r) => r.ha.status().owned.includes(cluster)).map((r) => r.id);

  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
    const url = new URL(etcd.endpoints[0] as string);
    relay = await startTcpRelay({ host: url.hostname, port: Number(url.port) });
    admin = etcdClient(etcd.endpoints);
    const catalog = fleetCatalog(CLUSTERS);
    replicas.push(await startReplica('r1', [relay.url], catalog, PREFIX));
    for (const id of ['r2', 'r3']) replicas.push(await startReplica(id, etcd.endpoints, catalog, PREFIX));
  }, scaled(120_000));

  afterAll(async () => {
    for (const r of replicas) await stopReplica(r).catch(() => undefined);
    admin?.close();
    await relay?.close();
    await etcd?.stop();
  }, scaled(60_000));

  const settled = (ids: readonly string[]) => () => names.every((c) => ownersOf(c).length === 1 && ownersOf(c)[0] === rendezvousOwner(c, ids));

  test('sees a replica that left while it was away, and the clusters that replica held get an owner', async () => {
    await waitFor(settled(['r1', 'r2', 'r3']), { what: 'one owner per cluster', timeoutMs: scaled(30_000) });
    const r1 = replicas[0] as TestReplica;
    const r2 = replicas[1] as TestReplica;
    relay.cut();
    await waitFor(() => r1.ha.status().owned.length === 0, { what: 'r1 fenced', timeoutMs: scaled(20_000) });
    await stopReplica(r2);
    await waitFor(async () => (await admin.getAll().prefix(`${PREFIX}/ha/replicas/`).keys()).length === 2, { what: 'r2 unregistered', timeoutMs: scaled(10_000) });
    const { header } = await admin.put(`${PREFIX}-filler`).value('x');
    await admin.kv.compact({ revision: header.revision, physical: true });
    relay.restore();
    await waitFor(() => r1.ha.status().live.join() === 'r1,r3', { what: 'r1 sees r2 gone', timeoutMs: scaled(30_000) });
    await waitFor(settled(['r1', 'r3']), { what: 'every cluster owned by its owner among r1 and r3', timeoutMs: scaled(30_000) });
  }, scaled(120_000));
});
