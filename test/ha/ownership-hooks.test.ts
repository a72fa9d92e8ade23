/**
 * Ownership's hooks against a real etcd: a new owner continues from the last owner's state before
 * its first tick, also when reading that state failed at the first attempt (etcd slow or electing
 * a leader: when owners change); a replica that stops hands its clusters over with their final
 * state, never as clusters gone from the catalog (their records deleted).
 */
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { haKeys } from '../../src/ha/keys.js';
import { Ownership, type Members } from '../../src/ha/ownership.js';
import { describeEtcd, etcdForBlock } from '../support/etcd-cluster.js';
import { waitFor } from '../support/wait.js';

const log = pino({ level: 'silent' });

describeEtcd('ownership hooks', () => {
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

  it('a stop while a pass is in flight and another is due hands the clusters over, it does not retire them', async () => {
    const { client } = etcd;
    const lease = client.lease(30);
    const leaseId = await lease.grant();
    const members: Members = { live: () => new Set(['a']), currentLease: () => leaseId, fenced: () => false };
    let entered = false;
    let open = (): void => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const released: [string, boolean][] = [];
    const ownership = new Ownership({
      client,
      keys: haKeys('/ownership-stop'),
      replicaId: 'a',
      members,
      log,
      hooks: {
        // The import of the last owner's state is slow (a large record, a slow etcd).
        acquired: async () => {
          entered = true;
          await gate;
        },
        releasing: async (cluster, _revision, gone) => void released.push([cluster, gone]),
      },
    });
    await ownership.start();
    try {
      ownership.setClusters(['web']);
      await waitFor(() => entered, { what: 'the import under way', timeoutMs: 10_000 });
      // An event meanwhile (a member, another owner key) asks for one more pass after this one.
      ownership.reconcile();
      const stopped = ownership.stop();
      open();
      await stopped;
      expect(released).toEqual([['web', false]]);
    } finally {
      await lease.revoke();
    }
  });

  it('a cluster removed while the replica was fenced has its owner key released once the fence lifts', async () => {
    const { client } = etcd;
    const keys = haKeys('/ownership-fenced');
    const lease = client.lease(30);
    const leaseId = await lease.grant();
    let fenced = false;
    const members: Members = { live: () => new Set(['a']), currentLease: () => (fenced ? undefined : leaseId), fenced: () => fenced };
    const released: [string, boolean][] = [];
    const ownership = new Ownership({
      client,
      keys,
      replicaId: 'a',
      members,
      log,
      hooks: { acquired: async () => undefined, releasing: async (cluster, _revision, gone) => void released.push([cluster, gone]) },
    });
    const pass = async (): Promise<void> => {
      ownership.reconcile();
      await ownership.settle();
    };
    await ownership.start();
    try {
      ownership.setClusters(['web']);
      await waitFor(async () => (await pass(), ownership.owns('web')), { what: 'web owned', timeoutMs: 10_000, intervalMs: 100 });
      // Keep-alives late for 2/3 of the TTL: fenced, though the lease (and the owner key) lives on.
      fenced = true;
      await pass();
      // The cluster is deleted meanwhile (the catalog catches up before the keep-alives do).
      ownership.setClusters([]);
      await pass();
      fenced = false;
      await waitFor(async () => (await pass(), (await client.get(keys.owner('web')).string()) === null), { what: 'the owner key of web released', timeoutMs: 10_000, intervalMs: 100 });
      expect(released).toEqual([['web', true]]);
    } finally {
      await ownership.stop();
      await lease.revoke();
    }
  });
});
