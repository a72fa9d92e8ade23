/**
 * Streams charge the subscription budget per peer and in all (review, "oom-one-connection": every
 * limit was per request or per stream, and one connection of 100 streams held 426 MiB): each
 * distinct holding once, refused over a budget, given back when a stream closes. The budget
 * alone is tested in limits.test.ts.
 */
import { describe, expect, test } from 'vitest';
import { TYPE } from '../../src/xds/envoy-api.js';
import { SUBSCRIPTION_BYTES_PER_NAME, SubscriptionBudget, withDefaults } from '../../src/xds/limits.js';
import { base, deltaReq, deltaRig, NODE, sotwReq, sotwRig } from './stream-fixture.js';

const { cluster: CDS, endpoint: EDS } = TYPE;
const limits = withDefaults({ maxSubscriptionNameBytes: 10_000, maxSubscriptionNameBytesPerPeer: 1_000, maxSubscriptionNameBytesTotal: 2_500 });


describe('streams charge the budget', () => {
  const names = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`.padEnd(40, '-'));

  test('SotW: streams of one peer naming distinct lists are refused past the per-peer budget; the same list costs once', () => {
    const budget = new SubscriptionBudget(limits);
    const open = (peer: string) => sotwRig(base(), { limits, budget, peer });
    // 10 names of 40 bytes: 720 bytes charged each.
    const a = open('10.0.0.1:1');
    a.stream.onRequest(sotwReq(EDS, names('a', 10), { node: NODE }));
    const same = open('10.0.0.1:2');
    same.stream.onRequest(sotwReq(EDS, names('a', 10), { node: NODE }));
    expect(budget.peerBytes('10.0.0.1')).toBe(10 * (40 + SUBSCRIPTION_BYTES_PER_NAME));
    const other = open('10.0.0.1:3');
    other.stream.onRequest(sotwReq(EDS, names('b', 10), { node: NODE }));
    expect(other.io.failure).toMatchObject({ code: 8, message: expect.stringContaining('maxSubscriptionNameBytesPerPeer (1000)') as unknown });
    // Another address is not this one's budget; once a's and same's streams close, this one fits.
    open('10.0.0.2:1').stream.onRequest(sotwReq(EDS, names('b', 10), { node: NODE }));
    a.stream.close();
    same.stream.close();
    const again = open('10.0.0.1:4');
    again.stream.onRequest(sotwReq(EDS, names('b', 10), { node: NODE }));
    expect(again.io.failure).toBeUndefined();
    expect(budget.bytes).toBe(720); // 'b' list, shared by both addresses' streams
  });

  test('SotW over IPv6 with ipv6PeerPrefixLength 64: every address of one /64 is one peer, so new source addresses do not add budget', () => {
    const by64 = { ...limits, ipv6PeerPrefixLength: 64 };
    const budget = new SubscriptionBudget(by64);
    const open = (peer: string) => sotwRig(base(), { limits: by64, budget, peer });
    open('[2001:db8:1:2::1]:5000').stream.onRequest(sotwReq(EDS, names('a', 10), { node: NODE }));
    const other = open('[2001:db8:1:2::2]:5000');
    other.stream.onRequest(sotwReq(EDS, names('b', 10), { node: NODE }));
    expect(other.io.failure).toMatchObject({ code: 8, message: expect.stringContaining("2001:db8:1:2::/64's streams") as unknown });
    expect(budget.peerBytes('2001:db8:1:2::/64')).toBe(10 * (40 + SUBSCRIPTION_BYTES_PER_NAME));
    // Another /64 is another peer.
    const elsewhere = open('[2001:db8:1:3::1]:5000');
    elsewhere.stream.onRequest(sotwReq(EDS, names('b', 10), { node: NODE }));
    expect(elsewhere.io.failure).toBeUndefined();
  });

  test('SotW: a stream that changes its list moves its charge; closing gives it back', () => {
    const budget = new SubscriptionBudget(limits);
    const r = sotwRig(base(), { limits, budget, peer: '10.0.0.1:1' });
    r.stream.onRequest(sotwReq(EDS, names('a', 10), { node: NODE }));
    r.stream.onRequest(sotwReq(EDS, names('b', 12)));
    expect(budget.bytes).toBe(12 * (40 + SUBSCRIPTION_BYTES_PER_NAME));
    r.stream.close();
    expect(budget.bytes).toBe(0);
  });

  test('Delta: subscriptions are charged per peer, changes move the charge, close gives it back', () => {
    const budget = new SubscriptionBudget(limits);
    const a = deltaRig(base(), { limits, budget, peer: '10.0.0.1:1' });
    a.stream.onRequest(deltaReq(EDS, { node: NODE, resource_names_subscribe: names('a', 10) }));
    a.stream.onRequest(deltaReq(EDS, { resource_names_subscribe: names('c', 2) }));
    expect(budget.peerBytes('10.0.0.1')).toBe(12 * (40 + SUBSCRIPTION_BYTES_PER_NAME));
    const b = deltaRig(base(), { limits, budget, peer: '10.0.0.1:2' });
    b.stream.onRequest(deltaReq(EDS, { node: NODE, resource_names_subscribe: names('b', 3) }));
    expect(b.io.failure).toMatchObject({ code: 8, message: expect.stringContaining('maxSubscriptionNameBytesPerPeer') as unknown });
    a.stream.onRequest(deltaReq(EDS, { resource_names_unsubscribe: names('a', 10) }));
    expect(budget.peerBytes('10.0.0.1')).toBe(2 * (40 + SUBSCRIPTION_BYTES_PER_NAME));
    a.stream.close();
    expect(budget.bytes).toBe(0);
  });

  test('Delta: reported versions are charged until answered, then given back', () => {
    const budget = new SubscriptionBudget(limits);
    const r = deltaRig(base(), { limits, budget, peer: '10.0.0.1:1' });
    r.io.full = true;
    r.stream.onRequest(deltaReq(CDS, { node: NODE, initial_resource_versions: { api: 'v'.repeat(100), gone: 'v1' } }));
    expect(budget.bytes).toBe(100 + 'gone'.length + 2 + 'api'.length + 2 * SUBSCRIPTION_BYTES_PER_NAME);
    r.io.full = false;
    r.stream.onCacheChange();
    r.stream.onRequest(deltaReq(CDS, { response_nonce: 'x' })); // any next request sees it answered
    expect(budget.bytes).toBe(0);
  });
});
