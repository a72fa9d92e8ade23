/** etcd's history compacted in turns through a real etcd: one replica per interval, one interval of history kept. */
import { pino } from 'pino';
import { expect, test } from 'vitest';
import { EtcdCompactor } from '../../src/catalog/store/etcd-compactor.js';
import { describeEtcd, etcdForBlock } from '../support/etcd-cluster.js';
import { waitFor } from '../support/wait.js';

const log = pino({ level: 'silent' });

describeEtcd('etcd history compaction', () => {
  const etcd = etcdForBlock();

  /** Whether `revision` can still be read (not compacted away). */
  const readable = async (revision: number): Promise<boolean> =>
    etcd.client
      .get('/any')
      .revision(String(revision))
      .exec()
      .then(
        () => true,
        (err: Error) => {
          if (/compacted/.test(err.message)) return false;
          throw err;
        },
      );
  const put = async (): Promise<number> => Number((await etcd.client.put('/history').value(String(Math.random()))).header.revision);

  test('replicas take turns: each interval one of them compacts to the revision of the interval before', async () => {
    const key = '/turns/compaction';
    const [a, b] = [new EtcdCompactor({ client: etcd.client, key, everyMs: 60_000, log }), new EtcdCompactor({ client: etcd.client, key, everyMs: 60_000, log })];
    // Interval 1: a takes the turn (nothing noted before it), b learns it was taken.
    const early = await put();
    expect(await a.turn()).toBeUndefined();
    expect(await b.turn()).toBeUndefined();
    const noted = early + 1; // a's turn was the write after `early`
    for (let i = 0; i < 5; i++) await put();
    // Interval 2: a again (b is one version behind): compacts to what it noted in interval 1.
    const first = await a.turn();
    expect(first).toBe(noted);
    expect(await b.turn()).toBeUndefined();
    expect(await readable(noted - 1)).toBe(false);
    // What came after the noted revision (this interval's history) is still there.
    expect(await readable(noted + 1)).toBe(true);
    // Interval 3: b's turn now, compacting further; a learns it.
    await put();
    const second = await b.turn();
    expect(second).toBeGreaterThan(first as number);
    expect(await a.turn()).toBeUndefined();
  });

  test('a revision compacted already (etcd\'s own auto-compaction) is no failure', async () => {
    const key = '/already/compaction';
    const c = new EtcdCompactor({ client: etcd.client, key, everyMs: 60_000, log });
    await c.turn();
    const latest = await put();
    await etcd.client.kv.compact({ revision: String(latest), physical: true });
    expect(await c.turn()).toBeUndefined();
    await put();
    // And the next turn compacts as usual.
    expect(await c.turn()).toBeGreaterThan(latest);
  });

  test('started, compacts on its own every interval', async () => {
    const c = new EtcdCompactor({ client: etcd.client, key: '/timer/compaction', everyMs: 100, log });
    const start = await put();
    c.start();
    try {
      await waitFor(async () => (await put(), !(await readable(start))), { what: 'the history compacted past the start', timeoutMs: 10_000 });
    } finally {
      await c.stop();
    }
  });
});
