/**
 * An etcd store whose prefix holds more than gRPC's default 4 MiB receive limit (a big catalog, a
 * long audit log, replication records) still opens: its mirror lists the whole prefix at start.
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { etcdClientOptions } from '../../src/catalog/store/etcd-client.js';
import { openEtcdStore } from '../../src/catalog/store/etcd-store.js';
import { cluster } from '../catalog/helpers.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';

describeEtcd('etcd store over 4 MiB', () => {
  let etcd: EtcdCluster;
  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
  }, 120_000);
  afterAll(async () => {
    await etcd?.stop();
  });

  it('opens a prefix holding 6 MB, and a client built from the same settings lists it', async () => {
    const settings = { endpoints: [...etcd.endpoints], prefix: '/big' };
    const filler = new Etcd3({ hosts: [...etcd.endpoints] });
    try {
      const value = 'x'.repeat(1_000_000);
      for (let i = 0; i < 6; i++) await filler.put(`/big/ha/proxies/replica-${i}`).value(value);
    } finally {
      filler.close();
    }
    const store = await openEtcdStore(settings);
    try {
      await store.putCluster(cluster('web'), { actor: 't', owner: 'api' });
      expect(store.getCluster('web')).toBeDefined();
    } finally {
      await store.close();
    }
    const client = new Etcd3(etcdClientOptions(settings));
    try {
      expect((await client.getAll().prefix('/big/ha/proxies/').keys()).length).toBe(6);
    } finally {
      client.close();
    }
  });
}, { timeout: 120_000 });
