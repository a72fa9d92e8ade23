/**
 * etcd restored from an older backup (or rebuilt empty), without `--bump-revision`: its revisions
 * start again below those a replica has seen. The replica's watch resumed from the revision after
 * the last it had applied, in etcd's future: etcd held back every event until its revision got
 * there, and meanwhile the replica served what the restore undid, missed every new write, and
 * took its own writes as applied the moment etcd answered.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { EtcdStore, openEtcdStore } from '../../src/catalog/store/etcd-store.js';
import { cluster } from '../catalog/helpers.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { scaled, waitFor } from '../support/wait.js';

const API = { actor: 'alice', owner: 'api' } as const;
const PREFIX = '/restore-test';

describeEtcd('etcd store: etcd restored to an earlier revision', () => {
  let etcd: EtcdCluster;
  const open: EtcdStore[] = [];

  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
  }, scaled(120_000));

  afterAll(async () => {
    for (const s of open) await s.close();
    await etcd?.stop();
  }, scaled(60_000));

  const replica = async (): Promise<EtcdStore> => {
    const s = await openEtcdStore({ endpoints: [...etcd.endpoints], prefix: PREFIX, writeTimeoutMs: scaled(3_000) }, { probeIntervalMs: 250 });
    open.push(s);
    return s;
  };

  test('a replica lists again and follows the restored etcd: what the restore undid goes, new writes arrive, its own writes are read back', async () => {
    const [writer, survivor] = [await replica(), await replica()];
    for (let i = 0; i < 20; i++) await writer.putCluster(cluster(`old-${i}`), API);
    await waitFor(() => survivor.getCluster('old-19') !== undefined, { what: 'the survivor sees every old cluster', timeoutMs: 10_000 });

    const before = survivor.revision();
    // The restore: etcd comes back with nothing (a backup older than any of these writes).
    await etcd.stopMember(0, 'SIGTERM');
    await rm(path.join(etcd.dir, 'm0'), { recursive: true, force: true });
    await etcd.startMember(0);
    const restored = await replica();
    const { revision } = await restored.putCluster(cluster('after'), API);
    expect(revision).toBeLessThan(before);

    await waitFor(() => survivor.getCluster('after') !== undefined && survivor.getCluster('old-0') === undefined, {
      what: 'the survivor holds what etcd holds',
      timeoutMs: 20_000,
    });
    await waitFor(() => survivor.health().writable, { what: 'the survivor writable again', timeoutMs: 20_000 });
    await survivor.putCluster(cluster('mine'), API);
    expect(survivor.getCluster('mine')).toBeDefined();
    expect(survivor.listClusters().map((c) => c.name)).toEqual(['after', 'mine']);
  }, scaled(120_000));
});
