/**
 * A new owner continues from the last owner's state before its first tick, also when reading
 * that state failed at the first attempt (etcd slow or electing a leader: when owners change).
 */
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { haKeys } from '../../src/ha/keys.js';
import { Ownership, type Members } from '../../src/ha/ownership.js';
import { describeEtcd, etcdForBlock } from '../support/etcd-cluster.js';
import { waitFor } from '../support/wait.js';

const log = pino({ level: 'silent' });

describeEtcd('ownership: the state import before the first tick', () => {
  const etcd = etcdForBlock();

  it('a cluster whose import failed is owned only once an import succeeded', async () => {
    const { client } = etcd;
    const lease = client.lease(30);
    const leaseId = await lease.grant();
    const members: Members = { live: () => new Set(['a']), currentLease: () => leaseId, fenced: () => false };
    const imports: string[] = [];
    const ownership = new Ownership({
      client,
      keys: haKeys('/ownership-import'),
      replicaId: 'a',
      members,
      log,
      hooks: {
        acquired: async (cluster) => {
          imports.push(cluster);
          if (imports.length === 1) throw new Error('etcd: request timed out');
        },
        releasing: async () => undefined,
      },
    });
    await ownership.start();
    try {
      ownership.setClusters(['web']);
      // Passes run on every change and every second (HaReplica's timer): drive them here.
      await waitFor(
        async () => {
          ownership.reconcile();
          await ownership.settle();
          return ownership.owns('web');
        },
        { what: 'web owned', timeoutMs: 10_000, intervalMs: 100 },
      );
      expect(imports).toEqual(['web', 'web']);
    } finally {
      await ownership.stop();
      await lease.revoke();
    }
  });
});
