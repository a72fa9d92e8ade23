/**
 * The store's mirror through a real etcd, over a connection that breaks: what was written while
 * this replica was cut off reaches its mirror, also when the resumed stream breaks again before
 * etcd replayed the gap; a waiter for a revision with no event under the prefix is released.
 */
import { Etcd3 } from 'etcd3';
import { afterEach, expect, test } from 'vitest';
import { EtcdMirror } from '../../src/catalog/store/etcd-mirror.js';
import { describeEtcd, etcdForBlock } from '../support/etcd-cluster.js';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay.js';
import { waitFor } from '../support/wait.js';

describeEtcd('the etcd mirror across broken watch streams', () => {
  const etcd = etcdForBlock();
  let relay: TcpRelay | undefined;
  let cutOff: Etcd3 | undefined;
  let mirror: EtcdMirror | undefined;

  afterEach(async () => {
    await mirror?.stop();
    cutOff?.close();
    await relay?.close();
  });

  test('a change made while cut off is applied although the stream broke again right after resuming', async () => {
    const url = new URL(etcd.etcd.endpoints[0] as string);
    const through = await startTcpRelay({ host: url.hostname, port: Number(url.port) });
    relay = through;
    const quick = { duration: 100, next: () => quick };
    cutOff = new Etcd3({ hosts: [through.url], dialTimeout: 2_000, faultHandling: { watchBackoff: quick } });
    const prefix = '/mirror-1/';
    let breakOnResume = false;
    mirror = new EtcdMirror(cutOff.namespace(prefix), {
      onBatch: () => undefined,
      // The stream breaks again as soon as the watch is re-created: etcd replays the gap only after
      // its create response (unsynced watchers are served every 100 ms), so the replay is cut short.
      onWatchState: (connected) => {
        if (!connected || !breakOnResume) return;
        breakOnResume = false;
        through.cut();
        setTimeout(() => through.restore(), 300);
      },
    });
    await mirror.start();
    const put = (name: string, v: number) => etcd.client.put(`${prefix}clusters/${name}`).value(JSON.stringify({ v }));
    const seen = (name: string): unknown => mirror?.get<{ v: number }>('clusters', name)?.value.v;
    await put('a', 1);
    await waitFor(() => seen('a') === 1, { what: 'the first write in the mirror', timeoutMs: 10_000 });
    // Three rounds: etcd may now and then replay a gap before the stream is cut again.
    for (let round = 1; round <= 3; round++) {
      through.cut();
      await put('a', round + 1);
      await put(`b${round}`, 1);
      breakOnResume = true;
      through.restore();
      await waitFor(() => !breakOnResume, { what: 'the watch resumed (and was cut again)', timeoutMs: 20_000 });
    }
    // After the gaps, a later write arrives: by then the gaps' writes must have too.
    await waitFor(
      async () => {
        await put('later', 1);
        return seen('later') === 1;
      },
      { what: 'a write after the gaps reaches the mirror', timeoutMs: 20_000, intervalMs: 200 },
    );
    expect([seen('a'), seen('b1'), seen('b2'), seen('b3')]).toEqual([4, 1, 1, 1]);
  });

  // A transaction that changed nothing, or etcd shared with other prefixes, answers with a
  // revision no event under the prefix carries: waiting for the watch alone waited out the timeout.
  test('a waiter for a revision with no event under the prefix is released once the watch has passed it', async () => {
    const prefix = '/mirror-2/';
    mirror = new EtcdMirror(etcd.client.namespace(prefix), { onBatch: () => undefined });
    await mirror.start();
    await etcd.client.put(`${prefix}clusters/a`).value(JSON.stringify({ v: 1 }));
    await waitFor(() => mirror?.get('clusters', 'a') !== undefined, { what: 'the write in the mirror', timeoutMs: 10_000 });
    const { header } = await etcd.client.put('/elsewhere/x').value('1');
    expect(await mirror.waitFor(Number(header.revision), 20_000)).toBe(true);
    expect(mirror.revision).toBeGreaterThanOrEqual(Number(header.revision));
    expect(mirror.list('clusters').map(([name]) => name)).toEqual(['a']);
  });
});
