import protobuf from 'protobufjs';

/**
 * Counting the entries of a protobuf message's repeated (or map) message fields from their tags
 * and lengths, without decoding any. protobufjs makes ~100-200 bytes of objects of each entry,
 * even an empty one that took two bytes on the wire: a 4 MiB message of two-byte entries becomes
 * two million objects. Counted first, such a message is refused before it costs anything.
 */

/** The fields of a message whose entries count, by field number, each with its own entries' shape (or undefined: a leaf). */
export interface EntryShape {
  [field: number]: EntryShape | undefined;
}

/**
 * google.protobuf.Struct: every value, at any depth, is an entry (protobufjs builds each). For a
 * Struct field of any message a hostile client can fill: node metadata, a build version's, an
 * endpoint's in a load report.
 */
export const STRUCT_ENTRIES: EntryShape = {};
const VALUE: EntryShape = { 5: STRUCT_ENTRIES };
VALUE[6] = { 1: VALUE };
// Struct.fields is a map: entries of { key = 1, value = 2 }; ListValue.values (1); Value.struct_value (5), list_value (6).
STRUCT_ENTRIES[1] = { 2: VALUE };

/** A message refused before decoding: it holds more entries than its limit (as many as were counted). */
export interface Oversized {
  readonly oversized: number;
}

const LENGTH_DELIMITED = 2;
/** Nesting deeper than this counts as over any limit (a recursive shape, such as Struct's, on hostile bytes). */
const MAX_DEPTH = 64;

/**
 * How many entries `bytes` holds by `shape`, counted up to one past `limit` (then it stops).
 * Throws on bytes that are not protobuf, as decoding would.
 */
export function countEntries(bytes: Uint8Array, shape: EntryShape, limit: number): number {
  const reader = protobuf.Reader.create(bytes);
  return countIn(reader, bytes.length, shape, limit, 0);
}

/**
 * Whether `bytes` holds more than `limit` entries by `shape`. Every entry counted takes at least
 * two bytes (its tag and its length), so a message of at most 2 × `limit` bytes is not read at
 * all: what a discovery request's node costs on every request of every stream (~1 KiB).
 */
export function holdsMoreThan(bytes: Uint8Array, shape: EntryShape, limit: number): boolean {
  return bytes.length > 2 * limit && countEntries(bytes, shape, limit) > limit;
}

function countIn(reader: protobuf.Reader, end: number, shape: EntryShape, limit: number, depth: number): number {
  if (depth > MAX_DEPTH) return limit + 1;
  let count = 0;
  while (reader.pos < end && count <= limit) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    if ((tag & 7) !== LENGTH_DELIMITED || !(field in shape)) {
      reader.skipType(tag & 7);
      continue;
    }
    const length = reader.uint32();
    const start = reader.pos;
    const inner = shape[field];
    count += (inner === undefined ? 1 : 1 + countIn(reader, start + length, inner, limit - count, depth + 1));
    reader.pos = start + length;
  }
  if (reader.pos > end) throw new RangeError('a length runs past its message');
  return count;
}
