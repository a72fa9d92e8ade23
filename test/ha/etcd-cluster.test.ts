import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { waitFor } from '../support/wait.js';

describeEtcd('the etcd test cluster', () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
    client = new Etcd3({ hosts: [...etcd.endpoints], dialTimeout: 2_000 });
  }, 120_000);
  afterAll(async () => {
    client?.close();
    await etcd?.stop();
  });

  test('a write on one member is read on every member, and survives the loss of one member', async () => {
    await client.put('/t/a').value('1');
    for (const url of etcd.endpoints) {
      const one = new Etcd3({ hosts: url });
      expect(await one.get('/t/a').string()).toBe('1');
      one.close();
    }
    await etcd.stopMember(0);
    await waitFor(async () => {
      await client.put('/t/b').value('2');
      return (await client.get('/t/b').string()) === '2';
    }, { what: 'a write with one member down', timeoutMs: 30_000 });
    await etcd.startMember(0);
    const first = new Etcd3({ hosts: etcd.endpoints[0]! });
    await waitFor(async () => (await first.get('/t/b').string().catch(() => null)) === '2', { what: 'member 0 caught up', timeoutMs: 30_000 });
    first.close();
  });
});
