/**
 * A prefix watch through a real etcd survives a compaction that happened while it was cut off:
 * etcd cancels the resumed watch, and the watch lists the prefix again and follows it on. It
 * also follows etcd restored to an earlier revision.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Etcd3, type IKeyValue } from 'etcd3';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { PrefixWatch } from '../../src/catalog/store/etcd-prefix-watch.js';
import { describeEtcd, etcdForBlock, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay.js';
import { waitFor } from '../support/wait.js';

const log = pino({ level: 'silent' });

/** A watch that keeps what is under `prefix` (name → value) and counts its listings. */
function following(client: Etcd3, prefix: string): { watch: PrefixWatch; known: Map<string, string>; listings: () => number } {
  const known = new Map<string, string>();
  let listings = 0;
  const text = (kv: IKeyValue): [string, string] => [kv.key.toString().slice(prefix.length), kv.value.toString()];
  const watch = new PrefixWatch({
    client,
    prefix,
    listed: (kvs) => {
      listings++;
      known.clear();
      for (const kv of kvs) known.set(...text(kv));
    },
    put: (kv) => known.set(...text(kv)),
    deleted: (kv) => known.delete(text(kv)[0]),
    log,
    what: 'test watch',
    retryMs: 100,
  });
  return { watch, known, listings: () => listings };
}

describeEtcd('a prefix watch across a compaction', () => {
  const etcd = etcdForBlock();
  let relay: TcpRelay;
  let cutOff: Etcd3;
  let watch: PrefixWatch | undefined;
  let n = 0;

  afterEach(async () => {
    await watch?.stop();
    cutOff?.close();
    await relay?.close();
  });

  async function through(): Promise<Etcd3> {
    const url = new URL(etcd.etcd.endpoints[0] as string);
    relay = await startTcpRelay({ host: url.hostname, port: Number(url.port) });
    const quick = { duration: 100, next: () => quick };
    cutOff = new Etcd3({ hosts: [relay.url], dialTimeout: 2_000, faultHandling: { watchBackoff: quick } });
    return cutOff;
  }

  /** Cuts the watching client off, runs `meanwhile` directly, compacts the history, and lets the client back. */
  async function gap(meanwhile: () => Promise<void>): Promise<void> {
    relay.cut();
    await meanwhile();
    const { header } = await etcd.client.put('/elsewhere').value('x');
    await etcd.client.kv.compact({ revision: header.revision, physical: true });
    relay.restore();
  }

  test('lists again after the gap: keys deleted meanwhile are gone, keys put meanwhile are there, later puts arrive', async () => {
    const prefix = `/watch-${++n}/`;
    const client = await through();
    await etcd.client.put(`${prefix}a`).value('1');
    await etcd.client.put(`${prefix}b`).value('1');
    const f = following(client, prefix);
    const { known } = f;
    watch = f.watch;
    await watch.start();
    expect(Object.fromEntries(known)).toEqual({ a: '1', b: '1' });
    await gap(async () => {
      await etcd.client.delete().key(`${prefix}a`);
      await etcd.client.put(`${prefix}b`).value('2');
      await etcd.client.put(`${prefix}c`).value('1');
    });
    await waitFor(() => f.listings() === 2, { what: 'the prefix listed again', timeoutMs: 20_000 });
    expect(Object.fromEntries(known)).toEqual({ b: '2', c: '1' });
    await etcd.client.put(`${prefix}d`).value('1');
    await waitFor(() => known.has('d'), { what: 'a put after the gap', timeoutMs: 10_000 });
  });

  test('resumes from the revision after the listing, not from where etcd was when the watch was created', async () => {
    const prefix = `/watch-${++n}/`;
    const client = await through();
    let listedAt = 0;
    // Writes land between the listing and the watch's creation (another replica busy meanwhile).
    const racing = Object.create(client) as Etcd3;
    racing.getAll = () => {
      const all = client.getAll();
      const exec = all.exec.bind(all);
      all.exec = async () => {
        const res = await exec();
        listedAt = Number(res.header.revision);
        for (const k of ['x', 'y', 'z']) await etcd.client.put(`${prefix}${k}`).value('1');
        // And one elsewhere: the replayed response's header is past the last event the watch sees.
        await etcd.client.put('/elsewhere').value('1');
        return res;
      };
      return all;
    };
    const seen: string[] = [];
    watch = new PrefixWatch({ client: racing, prefix, listed: () => undefined, put: (kv) => seen.push(kv.key.toString().slice(prefix.length)), log, what: 'test watch', retryMs: 100 });
    await watch.start();
    // Were the stream to break now, before etcd has replayed x, y and z, they must come again.
    expect(watch.resumesFrom()).toBe(String(listedAt + 1));
    await waitFor(() => seen.length === 3, { what: 'the writes after the listing', timeoutMs: 10_000 });
    expect(seen).toEqual(['x', 'y', 'z']);
    // After the replay: from the revision after z, not after the response's header.
    expect(Number(watch.resumesFrom())).toBe(listedAt + 4);
  });

  test('without a listing, watches again from the present', async () => {
    const prefix = `/watch-${++n}/`;
    const client = await through();
    const seen: string[] = [];
    watch = new PrefixWatch({ client, prefix, put: (kv) => seen.push(kv.key.toString().slice(prefix.length)), log, what: 'test watch', retryMs: 100 });
    await watch.start();
    await etcd.client.put(`${prefix}a`).value('1');
    await waitFor(() => seen.length === 1, { what: 'the first put', timeoutMs: 10_000 });
    await gap(() => etcd.client.put(`${prefix}missed`).value('1').then(() => undefined));
    // The watch resumes with some delay: keep putting until one arrives.
    await waitFor(
      async () => {
        await etcd.client.put(`${prefix}later`).value('1');
        return seen.includes('later');
      },
      { what: 'puts after the gap', timeoutMs: 20_000 },
    );
    expect(seen).not.toContain('missed');
  });
});

describeEtcd('a prefix watch across a restore of etcd', () => {
  let etcd: EtcdCluster;
  let client: Etcd3 | undefined;
  let watch: PrefixWatch | undefined;
  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
  }, 120_000);
  afterAll(async () => {
    await watch?.stop();
    client?.close();
    await etcd?.stop();
  });

  // Restored from an older snapshot without --bump-revision, etcd's revisions start again below
  // those delivered: resumed from the revision after them, the watch waited in etcd's future.
  test('lists again once etcd\'s history ends below what it delivered, and follows the new history', async () => {
    const prefix = '/watch-restore/';
    const quick = { duration: 100, next: () => quick };
    client = new Etcd3({ hosts: [...etcd.endpoints], dialTimeout: 2_000, faultHandling: { watchBackoff: quick } });
    const f = following(client, prefix);
    const { known } = f;
    watch = f.watch;
    await watch.start();
    for (let i = 0; i < 20; i++) await client.put(`${prefix}old-${i}`).value('1');
    await waitFor(() => known.size === 20, { what: 'the old keys', timeoutMs: 10_000 });
    await etcd.stopMember(0, 'SIGTERM');
    await rm(path.join(etcd.dir, 'm0'), { recursive: true, force: true });
    await etcd.startMember(0);
    await waitFor(
      async () => {
        await client?.put(`${prefix}fresh`).value('1');
        return known.has('fresh') && !known.has('old-0');
      },
      { what: 'the restored etcd followed', timeoutMs: 20_000, intervalMs: 500 },
    );
    expect(f.listings()).toBe(2);
    expect([...known.keys()]).toEqual(['fresh']);
  });
});
