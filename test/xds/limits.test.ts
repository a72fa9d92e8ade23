import { describe, expect, test } from 'vitest';
import { classify } from '../../src/xds/connection-gate.js';
import { checkRequestNames, DEFAULT_LIMITS, LimitError, SubscriptionBytes, withDefaults } from '../../src/xds/limits.js';

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
