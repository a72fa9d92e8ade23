/**
 * One etcd member that hangs (SIGSTOP: it answers nothing and closes nothing, as a frozen process
 * or a host that went dark) while the others keep quorum: a watch through fulcrum's etcd client
 * must leave it and follow the others. Without keepalive pings the watch on that member stayed
 * silent, never an error, and the replica served a stale catalog for as long as it hung; with them
 * alone, a stream opened again on the hung member (a third of the time) waited there for good
 * (watch-reopen.ts).
 */
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { afterAll, expect, test } from 'vitest';
import { buildEtcdClient } from '../../src/catalog/store/etcd-client.js';
import { PrefixWatch } from '../../src/catalog/store/etcd-prefix-watch.js';
import { describeEtcd, etcdForBlock } from '../support/etcd-cluster.js';
import { scaled } from '../support/timing.js';
import { waitFor } from '../support/wait.js';

const PREFIX = '/hung/';

describeEtcd('a watch when one etcd member hangs', () => {
  const held = etcdForBlock(3);
  const closers: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  test('follows the other members within seconds, whichever member its stream was on', async () => {
    const { etcd } = held;
    const client = buildEtcdClient({ endpoints: etcd.endpoints, prefix: '/fulcrum' });
    closers.push(() => client.close());
    const seen = new Set<string>();
    const watch = new PrefixWatch({
      client,
      prefix: PREFIX,
      listed: (kvs) => kvs.forEach((kv) => seen.add(kv.key.toString())),
      put: (kv) => seen.add(kv.key.toString()),
      deleted: () => undefined,
      log: pino({ level: 'silent' }),
      what: 'test watch',
      retryMs: 100,
    });
    closers.push(() => watch.stop());
    await watch.start();
    // The stream sits on one member, chosen by the client: freezing each in turn freezes it once.
    for (let i = 0; i < etcd.members.length; i++) {
      const others = new Etcd3({ hosts: etcd.endpoints.filter((_, j) => j !== i) });
      closers.push(() => others.close());
      etcd.freezeMember(i, true);
      try {
        const key = `${PREFIX}while-m${i}-hung`;
        await others.put(key).value('1');
        const since = Date.now();
        // ~9 s to leave the hung member (keepalive 6 s + 3 s); 10 s more each time its stream is opened on it again.
        await waitFor(() => seen.has(key), { what: `the watch to see ${key} with member ${i} hung`, timeoutMs: scaled(30_000), intervalMs: 50 });
        expect(Date.now() - since).toBeLessThan(scaled(30_000));
      } finally {
        etcd.freezeMember(i, false);
      }
    }
  }, scaled(150_000));
});
