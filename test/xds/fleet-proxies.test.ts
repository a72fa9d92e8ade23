/**
 * Fleet-wide proxy status through a real etcd: each replica shares its proxies under its lease and
 * sees the others'; a replica that stops leaves the listing.
 */
import { Etcd3, type Lease } from 'etcd3';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { FleetProxies, IN_FLIGHT, listWithin, sameShape, parseReplicaProxies, type FleetProxiesOptions, type LocalProxies, type SharedProxy } from '../../src/xds/fleet-proxies.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { waitFor } from '../support/wait.js';

const log = pino({ level: 'silent' });

describeEtcd('fleet proxy status through etcd', () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  const running: FleetProxies[] = [];
  let prefix = '';
  let n = 0;

  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
    client = new Etcd3({ hosts: [...etcd.endpoints], dialTimeout: 2_000 });
  }, 120_000);
  afterEach(async () => {
    await Promise.all(running.splice(0).map((f) => f.stop()));
  });
  afterAll(async () => {
    client?.close();
    await etcd?.stop();
  });

  type Extra = Partial<Pick<FleetProxiesOptions, 'maxProxies' | 'maxBytes' | 'version' | 'refreshMs' | 'clock'>> & { shape?: () => string };
  const shapeOf = (text: string): ReadonlyMap<string, string> => new Map([['stream', text]]);

  /** A replica whose proxies are `local()`; their shape is their JSON unless `extra.shape` says otherwise. */
  function replica(id: string, local: () => SharedProxy[], extra: Extra = {}): FleetProxies {
    const { shape, ...options } = extra;
    const all = (max: number): LocalProxies => {
      const proxies = local();
      return { total: proxies.length, shape: shapeOf(shape?.() ?? JSON.stringify(proxies.slice(0, max))), proxies: () => proxies.slice(0, max) };
    };
    const f = new FleetProxies({ client, prefix, replica: id, local: all, log, intervalMs: 50, ...options });
    f.start();
    running.push(f);
    return f;
  }

  test('each replica lists the others\' proxies with their replica, and follows changes', async () => {
    prefix = `/fleet-${++n}/`;
    let onA: SharedProxy[] = [{ nodeId: 'envoy-1', protocol: 'sotw' }];
    const a = replica('a', () => onA);
    const b = replica('b', () => [{ nodeId: 'envoy-2', protocol: 'delta' }]);
    await waitFor(() => b.remote().length === 1 && a.remote().length === 1, { what: 'both replicas see each other', timeoutMs: 10_000 });
    expect(b.remote()).toEqual([{ nodeId: 'envoy-1', protocol: 'sotw', replica: 'a' }]);
    expect(a.remote()).toEqual([{ nodeId: 'envoy-2', protocol: 'delta', replica: 'b' }]);

    onA = [...onA, { nodeId: 'envoy-3', protocol: 'sotw' }];
    await waitFor(() => b.remote().length === 2, { what: 'b sees a\'s new proxy', timeoutMs: 10_000 });
    onA = [];
    await waitFor(() => b.remote().length === 0, { what: 'b sees a\'s proxies leave', timeoutMs: 10_000 });
    expect(b.replicas()).toEqual([expect.objectContaining({ replica: 'a', total: 0 })]);
  });

  test('writes only when the status changed', async () => {
    prefix = `/fleet-${++n}/`;
    let looks = 0;
    replica('a', () => {
      looks++;
      return [{ nodeId: 'still' }];
    });
    const key = `${prefix}ha/proxies/a`;
    await waitFor(async () => (await client.get(key).string()) !== null, { what: 'the first write', timeoutMs: 10_000 });
    const rev = (await client.get(key).exec()).kvs[0]?.mod_revision;
    const seen = looks;
    await waitFor(() => looks >= seen + 20, { what: 'twenty more intervals', timeoutMs: 20_000 });
    // Nothing changed in those intervals, so nothing was written.
    expect((await client.get(key).exec()).kvs[0]?.mod_revision).toBe(rev);
  });

  test('a stopped replica leaves the listing at once (a killed one when its lease expires: test/e2e/ha-envoy)', async () => {
    prefix = `/fleet-${++n}/`;
    const a = replica('a', () => [{ nodeId: 'x' }]);
    const c = replica('c', () => []);
    await waitFor(() => c.remote().length === 1, { what: 'c sees a', timeoutMs: 10_000 });
    await a.stop();
    await waitFor(() => c.remote().length === 0, { what: 'a leaves on stop', timeoutMs: 5_000 });
    expect(await client.get(`${prefix}ha/proxies/a`).string()).toBeNull();
  });

  test('builds nothing while the proxies\' version stands', async () => {
    prefix = `/fleet-${++n}/`;
    let looks = 0;
    let version = 1;
    replica('a', () => (looks++, [{ nodeId: 'x' }]), { version: () => version });
    // b has no version: it looks every interval, the clock this test reads.
    let ticks = 0;
    const b = replica('b', () => (ticks++, []));
    await waitFor(() => b.remote().length === 1, { what: 'b sees a', timeoutMs: 10_000 });
    const still = looks;
    const from = ticks;
    await waitFor(() => ticks >= from + 20, { what: 'twenty intervals', timeoutMs: 20_000 });
    expect(looks).toBe(still);
    version = 2;
    await waitFor(() => looks > still, { what: 'a looks again once the version moves', timeoutMs: 10_000 });
  });

  test('writes its status again under a new lease when the old one is lost, even if the first write under it fails', async () => {
    prefix = `/fleet-${++n}/`;
    // A client whose next put under a lease fails once (a leader change, a reset connection).
    let failNext = false;
    const flaky = Object.create(client) as Etcd3;
    flaky.lease = (ttl: number): Lease => {
      const lease = client.lease(ttl);
      const put = lease.put.bind(lease);
      lease.put = (key) => {
        const builder = put(key);
        const value = builder.value.bind(builder);
        builder.value = (v) => {
          if (!failNext) return value(v);
          failNext = false;
          return Promise.reject(new Error('transient: leader changed')) as never;
        };
        return builder;
      };
      return lease;
    };
    // The proxies never change: only the lost lease can make it write again.
    const f = new FleetProxies({ client: flaky, prefix, replica: 'a', local: () => ({ total: 1, shape: new Map([['1', 's']]), proxies: () => [{ nodeId: 'x' }] }), version: () => 7, log, intervalMs: 50, leaseTtlSeconds: 2 });
    f.start();
    running.push(f);
    const key = `${prefix}ha/proxies/a`;
    await waitFor(async () => (await client.get(key).string()) !== null, { what: 'the first write', timeoutMs: 10_000 });
    const first = (await client.get(key).exec()).kvs[0];
    failNext = true;
    await client.leaseClient.leaseRevoke({ ID: first?.lease ?? '0' });
    await waitFor(() => !failNext, { what: 'the failing write under the new lease', timeoutMs: 10_000 });
    await waitFor(async () => (await client.get(key).string()) !== null, { what: 'the status written again', timeoutMs: 10_000 });
  });

  test('bounds what one replica writes in bytes, below etcd\'s request limit, so 3,000 Envoys are shared', async () => {
    prefix = `/fleet-${++n}/`;
    // ~1.1 KB each, as an Envoy's view without node metadata: 3.3 MB in all, which etcd refuses whole.
    const many = Array.from({ length: 3_000 }, (_, i) => ({ nodeId: `sidecar~10.0.${i >> 8}.${i & 255}~pod-${i}`, detail: 'x'.repeat(1_050) }));
    replica('a', () => many, { maxProxies: 3_000 });
    const b = replica('b', () => []);
    await waitFor(() => b.remote().length > 0, { what: 'b sees a\'s proxies', timeoutMs: 10_000 });
    const listed = b.remote().length;
    expect(listed).toBeGreaterThan(800);
    expect(listed).toBeLessThan(1_000);
    expect(b.remote().map((p) => p.nodeId)).toEqual(many.slice(0, listed).map((p) => p.nodeId));
    expect(b.replicas()).toEqual([expect.objectContaining({ replica: 'a', total: 3_000 })]);
  });

  test('writes a change of versions or times only every refresh, a change of shape at once', async () => {
    prefix = `/fleet-${++n}/`;
    let now = 1_000_000;
    let detail = 0;
    let shape = 'one';
    let looks = 0;
    replica('a', () => (looks++, [{ nodeId: 'x', detail: ++detail }]), { shape: () => shape, refreshMs: 10_000, clock: () => now });
    const key = `${prefix}ha/proxies/a`;
    const writes = async (): Promise<number> => Number((await client.get(key).exec()).kvs[0]?.version ?? 0);
    await waitFor(async () => (await writes()) === 1, { what: 'the first write', timeoutMs: 10_000 });
    const seen = looks;
    await waitFor(() => looks >= seen + 20, { what: 'twenty intervals with new details', timeoutMs: 20_000 });
    expect(await writes()).toBe(1);
    now += 10_000;
    await waitFor(async () => (await writes()) === 2, { what: 'the refresh', timeoutMs: 10_000 });
    shape = 'two';
    await waitFor(async () => (await writes()) === 3, { what: 'the new shape written at once', timeoutMs: 10_000 });
    const after = looks;
    await waitFor(() => looks >= after + 10, { what: 'ten intervals more', timeoutMs: 20_000 });
    expect(await writes()).toBe(3);
  });

  test('bounds what one replica writes', async () => {
    prefix = `/fleet-${++n}/`;
    const many = Array.from({ length: 50 }, (_, i) => ({ nodeId: `n${i}` }));
    replica('a', () => many, { maxProxies: 10 });
    const b = replica('b', () => []);
    await waitFor(() => b.remote().length === 10, { what: 'b sees a bounded list', timeoutMs: 10_000 });
    expect(b.replicas()).toEqual([expect.objectContaining({ replica: 'a', total: 50 })]);
  });
});

test('a shape is the same when each stream\'s types read as written or in flight, and no stream came or went', () => {
  const written = new Map([['1', 'ss-'], ['2', 'tn-']]);
  expect(sameShape(written, new Map([['1', 'ss-'], ['2', 'tn-']]))).toBe(true);
  expect(sameShape(written, new Map([['1', `s${IN_FLIGHT}-`], ['2', `${IN_FLIGHT}n-`]]))).toBe(true);
  // Settled into another state (ACKed after a STALE write, NACKed, sent for the first time), or another set of streams.
  expect(sameShape(written, new Map([['1', 'ss-'], ['2', 'sn-']]))).toBe(false);
  expect(sameShape(written, new Map([['1', 'sn-'], ['2', 'tn-']]))).toBe(false);
  expect(sameShape(written, new Map([['1', 'sss'], ['2', 'tn-']]))).toBe(false);
  expect(sameShape(written, new Map([['1', 'ss-']]))).toBe(false);
  expect(sameShape(written, new Map([['1', 'ss-'], ['3', 'tn-']]))).toBe(false);
  // A written in-flight state is corrected once it settles.
  expect(sameShape(new Map([['1', IN_FLIGHT]]), new Map([['1', 's']]))).toBe(false);
});

test('a list within a byte bound keeps the order and what fits, counted in UTF-8', () => {
  const proxies = [{ nodeId: 'a' }, { nodeId: 'ü' }, { nodeId: 'c' }];
  const whole = listWithin(proxies, 1_000);
  expect(JSON.parse(whole)).toEqual(proxies);
  const bytes = Buffer.byteLength(whole);
  expect(listWithin(proxies, bytes)).toBe(whole);
  // One byte less leaves out the last (the ü takes two bytes, not one).
  expect(JSON.parse(listWithin(proxies, bytes - 1))).toEqual(proxies.slice(0, 2));
  expect(listWithin(proxies, 10)).toBe('[]');
  // One that does not fit is skipped, not the end of the list.
  expect(JSON.parse(listWithin([{ nodeId: 'a' }, { nodeId: 'x'.repeat(100) }, { nodeId: 'c' }], 50))).toEqual([{ nodeId: 'a' }, { nodeId: 'c' }]);
});

test('a malformed value from etcd is refused, naming nothing it cannot read', () => {
  expect(parseReplicaProxies('not json')).toBeUndefined();
  expect(parseReplicaProxies(JSON.stringify({ replica: 'a', at: 'now', total: 1, proxies: [{ id: 'x' }] }))).toBeUndefined();
  expect(parseReplicaProxies(JSON.stringify({ replica: 'a', at: 'now', total: 1, proxies: [{ nodeId: 'x' }] }))?.proxies).toEqual([{ nodeId: 'x' }]);
});
