import { describe, expect, test } from 'vitest';
import { classify } from '../../src/xds/connection-gate.js';
import { parseConfig } from '../../src/sources/config-file.js';
import {
  checkRequestNames, DEFAULT_LIMITS, LimitError, peerAddress, SUBSCRIPTION_BYTES_PER_NAME, SubscriptionBudget, SubscriptionBytes, withDefaults,
} from '../../src/xds/limits.js';

const limits = withDefaults({ maxNameBytes: 100, maxRequestNameBytes: 250, maxSubscriptionNameBytes: 300 });
const caught = (fn: () => unknown): LimitError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof LimitError) return err;
    throw err;
  }
  throw new Error('expected a LimitError');
};

describe('resource-name limits', () => {
  test('a name over maxNameBytes is INVALID_ARGUMENT naming the setting and its value, counted in UTF-8 bytes', () => {
    expect(checkRequestNames(['a'.repeat(100)], limits)).toBe(100);
    // 34 three-byte characters: 102 bytes although 34 UTF-16 units.
    const err = caught(() => checkRequestNames(['€'.repeat(34)], limits));
    expect(err).toMatchObject({ code: 3, limit: 'maxNameBytes' });
    expect(err.message).toBe('a resource name of 102 bytes exceeds server.xds.limits.maxNameBytes (100)');
  });

  test("a request's names over maxRequestNameBytes are RESOURCE_EXHAUSTED", () => {
    expect(checkRequestNames(['a'.repeat(100), 'b'.repeat(100), 'c'.repeat(50)], limits)).toBe(250);
    const err = caught(() => checkRequestNames(['a'.repeat(100), 'b'.repeat(100), 'c'.repeat(51)], limits));
    expect(err).toMatchObject({ code: 8, limit: 'maxRequestNameBytes' });
    expect(err.message).toContain('server.xds.limits.maxRequestNameBytes (250)');
  });

  test('a stream subscription is bounded across types; replacing a type (SotW) and removing names (Delta) give bytes back', () => {
    const sub = new SubscriptionBytes(limits);
    sub.set('cds', 200);
    sub.set('eds', 100);
    expect(() => sub.set('eds', 101)).toThrow(/server\.xds\.limits\.maxSubscriptionNameBytes \(300\)/);
    sub.set('cds', 100);
    sub.add('eds', 100);
    expect(caught(() => sub.add('lds', 1))).toMatchObject({ code: 8, limit: 'maxSubscriptionNameBytes' });
    sub.add('eds', -150);
    sub.add('lds', 150);
  });

  test('defaults: requests a few MiB, responses 64 MiB as before', () => {
    expect(DEFAULT_LIMITS.maxRequestBytes).toBe(4 * 1024 * 1024);
    expect(DEFAULT_LIMITS.maxResponseBytes).toBe(64 * 1024 * 1024);
    expect(withDefaults({ maxStreams: 7 })).toEqual({ ...DEFAULT_LIMITS, maxStreams: 7 });
  });
});

describe('first bytes of a connection', () => {
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
  test('HTTP/2 in clear: the whole preface is needed; any wrong byte refuses at once', () => {
    expect(classify(Buffer.alloc(0), 'h2')).toBe('more');
    expect(classify(preface.subarray(0, 5), 'h2')).toBe('more');
    expect(classify(Buffer.concat([preface, Buffer.from([0, 0, 0])]), 'h2')).toBe('accept');
    expect(classify(Buffer.from('GET / HTTP/1.1\r\n'), 'h2')).toBe('refuse');
    expect(classify(Buffer.from('PRX'), 'h2')).toBe('refuse');
    expect(classify(Buffer.from([0x16, 3, 1]), 'h2')).toBe('refuse');
  });

  test('TLS: a handshake record starts the connection; anything else (a clear-text preface) is refused', () => {
    expect(classify(Buffer.from([0x16, 3, 1]), 'tls')).toBe('accept');
    expect(classify(preface, 'tls')).toBe('refuse');
  });
});

test('name bytes are counted as their UTF-8 encoding, including surrogate pairs and lone surrogates', () => {
  const bytes = new SubscriptionBytes(DEFAULT_LIMITS);
  const names = ['', 'svc-42.default.svc.cluster.local', 'é', '€', '😀', 'a😀b', '\ud800', '\udc00', '\ud800x', 'x\udbff', '\udbff\udfff', '\udc00\ud800', 'ß€😀\ud800\udc00\udc00'];
  // A fixed pseudo-random sample of every UTF-16 code unit, surrogates included.
  let seed = 13;
  for (let i = 0; i < 2_000; i++) {
    let s = '';
    for (let j = 0; j < i % 7; j++) s += String.fromCharCode((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) % 0x10000);
    names.push(s);
  }
  for (const name of names) expect(bytes.nameBytes(name)).toBe(Buffer.byteLength(name, 'utf8'));
});

// Review ("oom-one-connection"): nothing bounded what a connection, a peer or the process held.
describe('SubscriptionBudget: subscription bytes per peer and in all', () => {
  const limits = withDefaults({ maxSubscriptionNameBytes: 10_000, maxSubscriptionNameBytesPerPeer: 1_000, maxSubscriptionNameBytesTotal: 2_500 });

  test('a holding is charged once however many streams of a peer or of everyone hold it', () => {
    const budget = new SubscriptionBudget(limits);
    const shared = {};
    const a = budget.move('p1', undefined, shared, 600);
    const b = budget.move('p1', undefined, shared, 600);
    const c = budget.move('p2', undefined, shared, 600);
    expect([budget.bytes, budget.peerBytes('p1'), budget.peerBytes('p2')]).toEqual([600, 600, 600]);
    budget.release('p1', a);
    expect([budget.bytes, budget.peerBytes('p1')]).toEqual([600, 600]);
    budget.release('p1', b);
    budget.release('p2', c);
    expect([budget.bytes, budget.peerBytes('p1'), budget.peerBytes('p2')]).toEqual([0, 0, 0]);
  });

  test('per peer: distinct holdings over maxSubscriptionNameBytesPerPeer are refused; another peer is not', () => {
    const budget = new SubscriptionBudget(limits);
    budget.move('p1', undefined, {}, 600);
    const err = caught(() => budget.move('p1', undefined, {}, 401));
    expect(err).toMatchObject({ code: 8, limit: 'maxSubscriptionNameBytesPerPeer' });
    expect(err.message).toBe("the subscribed resource names of p1's streams would total 1001 bytes, over server.xds.limits.maxSubscriptionNameBytesPerPeer (1000)");
    expect([budget.bytes, budget.peerBytes('p1')]).toEqual([600, 600]);
    budget.move('p2', undefined, {}, 1_000);
  });

  test('process-wide: holdings over maxSubscriptionNameBytesTotal are refused, whichever peer asks', () => {
    const budget = new SubscriptionBudget(limits);
    budget.move('p1', undefined, {}, 1_000);
    budget.move('p2', undefined, {}, 1_000);
    const err = caught(() => budget.move('p3', undefined, {}, 501));
    expect(err).toMatchObject({ code: 8, limit: 'maxSubscriptionNameBytesTotal' });
    expect(err.message).toContain('server.xds.limits.maxSubscriptionNameBytesTotal (2500)');
    budget.move('p3', undefined, {}, 500);
  });

  test('moving to another holding gives the old one back first; a private holding grows and shrinks in place', () => {
    const budget = new SubscriptionBudget(limits);
    const own = {};
    let charge = budget.move('p1', undefined, own, 900);
    charge = budget.move('p1', charge, {}, 1_000); // 900 freed, 1,000 taken: fits
    expect(budget.peerBytes('p1')).toBe(1_000);
    charge = budget.move('p1', charge, charge.holding, 400);
    expect([budget.bytes, budget.peerBytes('p1')]).toEqual([400, 400]);
    expect(() => budget.move('p1', charge, charge.holding, 1_001)).toThrow(/maxSubscriptionNameBytesPerPeer/);
  });

  test("a stream's SubscriptionBytes charge its holdings and give them all back on release", () => {
    const budget = new SubscriptionBudget(limits);
    const stream = new SubscriptionBytes(limits, budget, 'p1');
    stream.set('eds', 100, 2, {});
    stream.set('cds', 50, 1, {});
    expect(budget.bytes).toBe(150 + 3 * SUBSCRIPTION_BYTES_PER_NAME);
    stream.release();
    expect([budget.bytes, budget.peerBytes('p1')]).toEqual([0, 0]);
  });

  test('peers are addresses: the port (and IPv6 brackets) are not part of one', () => {
    expect(['127.0.0.2:5000', '[::1]:443', '::ffff:10.0.0.1:80', 'unknown'].map(peerAddress)).toEqual(['127.0.0.2', '::1', '::ffff:10.0.0.1', 'unknown']);
  });

  test('both budgets are set under server.xds.limits in the config file, and bounded there', () => {
    const yaml = 'server: { xds: { limits: { maxSubscriptionNameBytesPerPeer: 4194304, maxSubscriptionNameBytesTotal: 134217728 } } }\n';
    expect(parseConfig(yaml, 'f.yaml').server.xds.limits).toEqual({ maxSubscriptionNameBytesPerPeer: 4194304, maxSubscriptionNameBytesTotal: 134217728 });
    expect(() => parseConfig('server: { xds: { limits: { maxSubscriptionNameBytesTotal: 10 } } }\n', 'f.yaml')).toThrow(/\/server\/xds\/limits\/maxSubscriptionNameBytesTotal/);
  });

  // The figures limits.ts gives for the defaults.
  test('defaults: legitimate fleets fit, one connection of 2 MB subscriptions does not', () => {
    const cost = (names: number, bytes: number): number => names * (bytes + SUBSCRIPTION_BYTES_PER_NAME);
    // 10,000 Envoys naming the same 1,000 clusters of 30 bytes: one shared list.
    expect(cost(1_000, 30)).toBeLessThan(DEFAULT_LIMITS.maxSubscriptionNameBytesPerPeer);
    // 10,000 proxyless clients each naming their own 50; 2,000 of them behind one address.
    expect(10_000 * cost(50, 30)).toBeLessThan(DEFAULT_LIMITS.maxSubscriptionNameBytesTotal);
    expect(DEFAULT_LIMITS.maxStreamsPerPeer * cost(50, 30)).toBeLessThan(DEFAULT_LIMITS.maxSubscriptionNameBytesPerPeer);
    // The review's streams: 4 per address, not 100 per connection.
    expect(Math.floor(DEFAULT_LIMITS.maxSubscriptionNameBytesPerPeer / cost(2_000, 1_000))).toBe(4);
  });
});
