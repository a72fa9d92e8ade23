/**
 * Fleet-wide proxy status through a real etcd: each replica shares its proxies under its lease and
 * sees the others'; a replica that stops leaves the listing.
 */
import { Etcd3, type Lease } from 'etcd3';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { FleetProxies, parseReplicaProxies, type SharedProxy } from '../../src/xds/fleet-proxies.js';
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

  function replica(id: string, local: () => SharedProxy[], extra: { maxProxies?: number; version?: () => number } = {}): FleetProxies {
    const all = (max: number): { total: number; proxies: SharedProxy[] } => {
      const proxies = local();
      return { total: proxies.length, proxies: proxies.slice(0, max) };
    };
    const f = new FleetProxies({ client, prefix, replica: id, local: all, log, intervalMs: 50, ...extra });
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
    const f = new FleetProxies({ client: flaky, prefix, replica: 'a', local: () => ({ total: 1, proxies: [{ nodeId: 'x' }] }), version: () => 7, log, intervalMs: 50, leaseTtlSeconds: 2 });
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

  test('bounds what one replica writes', async () => {
    prefix = `/fleet-${++n}/`;
    const many = Array.from({ length: 50 }, (_, i) => ({ nodeId: `n${i}` }));
    replica('a', () => many, { maxProxies: 10 });
    const b = replica('b', () => []);
    await waitFor(() => b.remote().length === 10, { what: 'b sees a bounded list', timeoutMs: 10_000 });
    expect(b.replicas()).toEqual([expect.objectContaining({ replica: 'a', total: 50 })]);
  });
});

test('a malformed value from etcd is refused, naming nothing it cannot read', () => {
  expect(parseReplicaProxies('not json')).toBeUndefined();
  expect(parseReplicaProxies(JSON.stringify({ replica: 'a', at: 'now', total: 1, proxies: [{ id: 'x' }] }))).toBeUndefined();
  expect(parseReplicaProxies(JSON.stringify({ replica: 'a', at: 'now', total: 1, proxies: [{ nodeId: 'x' }] }))?.proxies).toEqual([{ nodeId: 'x' }]);
});
