import protobuf from 'protobufjs';

/**
 * A SotW request's resource_names, kept as the bytes they arrived in and decoded only when read.
 * Every proxy ACKs every push, and Envoy's EDS ACKs repeat all the cluster names (100 strings per
 * ACK: a million strings and their garbage per push to 10,000 proxies, a sixth of the push's
 * server CPU in a profile, bench/RESULTS.md). A stream compares the bytes with the last request's
 * (`sameBytes`) and decodes nothing when they are equal.
 */

/** Field 3 (resource_names), wire type 2 (length-delimited). */
const NAMES_TAG = (3 << 3) | 2;

/**
 * Where the resource_names fields lie in an encoded DiscoveryRequest, if they are contiguous (as
 * every encoder writes repeated fields): [start, end), or undefined to decode the usual way.
 */
export function namesSpan(buf: Uint8Array): readonly [number, number] | undefined {
  const r = protobuf.Reader.create(buf);
  let start = -1;
  let end = -1;
  while (r.pos < r.len) {
    const at = r.pos;
    const tag = r.uint32();
    if (tag === NAMES_TAG) {
      if (start < 0) start = at;
      else if (end !== at) return undefined;
      r.skip(r.uint32());
      end = r.pos;
    } else {
      r.skipType(tag & 7);
    }
  }
  return start < 0 ? [0, 0] : [start, end];
}

/** The names in a span found by `namesSpan`. */
export function decodeNames(buf: Uint8Array, span: readonly [number, number]): string[] {
  const r = protobuf.Reader.create(buf.subarray(span[0], span[1]));
  const names: string[] = [];
  while (r.pos < r.len) {
    r.uint32();
    names.push(r.string());
  }
  return names;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

/**
 * One copy of each distinct names encoding: thousands of streams that subscribe alike hold the
 * same bytes, not a copy each (bounded like the other memos).
 */
const interned = new Map<string, Uint8Array>();
const INTERNED_LIMIT = 4096;

export function internNames(bytes: Uint8Array): Uint8Array {
  const key = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  const known = interned.get(key);
  if (known) return known;
  if (interned.size >= INTERNED_LIMIT) interned.clear();
  const copy = Uint8Array.from(bytes);
  interned.set(key, copy);
  return copy;
}
