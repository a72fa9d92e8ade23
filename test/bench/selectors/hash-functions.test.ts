import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { fnv1a32, md5Hash32, murmur3Hash32 } from '../../../bench/selectors/hash-functions.js';

describe('hash functions', () => {
  it('murmur3 matches the reference x86_32 vectors', () => {
    expect(murmur3Hash32('')).toBe(0);
    expect(murmur3Hash32('', 1)).toBe(0x514e28b7);
    expect(murmur3Hash32('hello')).toBe(0x248bfa47);
    expect(murmur3Hash32('The quick brown fox jumps over the lazy dog')).toBe(0x2e4ff723);
  });

  it('FNV-1a 32 matches the reference vectors', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('MD5 takes the first four digest bytes, little-endian (ketama)', () => {
    // md5("") = d41d8cd98f00b204e9800998ecf8427e
    expect(md5Hash32('')).toBe(0xd98c1dd4);
  });

  it('hashes UTF-8 bytes, so non-ASCII keys agree with other implementations', () => {
    // "é" is C3 A9 in UTF-8; the FNV-1a of those two bytes, computed by hand.
    let h = 0x811c9dc5;
    for (const b of [0xc3, 0xa9]) h = Math.imul(h ^ b, 0x01000193);
    expect(fnv1a32('é')).toBe(h >>> 0);
  });

  it('property: all hashes return uint32 and are deterministic, for any string including long ones', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'grapheme', maxLength: 400 })), (key) => {
        for (const f of [fnv1a32, md5Hash32, (k: string) => murmur3Hash32(k)]) {
          const h = f(key);
          expect(Number.isInteger(h) && h >= 0 && h <= 0xffffffff).toBe(true);
          expect(f(key)).toBe(h);
        }
      }),
      { numRuns: 300 },
    );
  });
});
