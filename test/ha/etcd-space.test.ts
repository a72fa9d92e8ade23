/**
 * An etcd out of space (its NOSPACE alarm: history never compacted, quota full) refuses every
 * write: the store says so, that the write was not applied, and what the operator does about it,
 * instead of calling etcd unreachable.
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pino } from 'pino';
import { etcdClientOptions } from '../../src/catalog/store/etcd-client.js';
import { EtcdCompactor } from '../../src/catalog/store/etcd-compactor.js';
import { StoreUnavailableError } from '../../src/catalog/store/errors.js';
import { openEtcdStore, type EtcdStore } from '../../src/catalog/store/etcd-store.js';
import { cluster } from '../catalog/helpers.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';

describeEtcd('etcd store on an etcd out of space', () => {
  let etcd: EtcdCluster;
  let store: EtcdStore | undefined;
  beforeAll(async () => {
    etcd = await startEtcdCluster(1, ['--quota-backend-bytes=16777216']);
  }, 120_000);
  afterAll(async () => {
    await store?.close();
    await etcd?.stop();
  });

  it('a write refused for space says the quota is full and the write was not applied', async () => {
    store = await openEtcdStore({ endpoints: [...etcd.endpoints], prefix: '/space' });
    await store.putCluster(cluster('before'), { actor: 't', owner: 'api' });
    const filler = new Etcd3({ hosts: [...etcd.endpoints] });
    try {
      const big = 'x'.repeat(1_000_000);
      for (let i = 0; i < 64; i++) {
        const full = await filler.put(`/filler/${i % 4}`).value(big).then(() => false, (err: Error) => /space/.test(err.message));
        if (full) break;
      }
    } finally {
      filler.close();
    }
    const err = await store.putCluster(cluster('after'), { actor: 't', owner: 'api' }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).message).toMatch(/etcd is out of space.*not applied.*compact/);
    expect(store.getCluster('after')).toBeUndefined();
    expect(store.getCluster('before')).toBeDefined();
  });

  it('the compactor, refused its turn for space, compacts all of etcd\'s history and says what else to do', async () => {
    // Built as fulcrum builds its client (its call policies, not etcd3's default circuit breaker).
    const client = new Etcd3(etcdClientOptions({ endpoints: [...etcd.endpoints], prefix: '/space' }));
    const lines: string[] = [];
    try {
      const compactor = new EtcdCompactor({ client, key: '/space/compaction', everyMs: 60_000, log: pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }) });
      const compacted = await compactor.turn();
      expect(compacted).toBeGreaterThan(1);
      await expect(client.get('/filler/0').revision('1').exec()).rejects.toThrow(/compacted/);
      expect(lines.join('')).toMatch(/out of space.*etcdctl defrag.*etcdctl alarm disarm/);
    } finally {
      client.close();
    }
  });
}, { timeout: 120_000 });
