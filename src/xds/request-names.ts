import protobuf from 'protobufjs';
import { TYPE } from './envoy-api.js';
import { InternTable } from './intern-table.js';
import type { PartDecoder } from './request-entries.js';

/**
 * A SotW request's resource_names, kept as the bytes they arrived in and decoded only when read.
 * Every proxy ACKs every push, and Envoy's EDS ACKs repeat all the cluster names (100 strings per
 * ACK: a million strings and their garbage per push to 10,000 proxies, a sixth of the push's
 * server CPU in a profile, bench/RESULTS.md). A stream compares the bytes with the last request's
 * (`sameBytes`) and decodes nothing when they are equal.
 */

/** Field 3 (resource_names), wire type 2 (length-delimited). */
const NAMES_TAG = (3 << 3) | 2;

/** A DiscoveryRequest's fields as protobufjs decodes them, with the names left encoded. */
export interface RequestFields {
  version_info: string;
  node: unknown;
  type_url: string;
  response_nonce: string;
  error_detail: unknown;
  /** [start, end) of the contiguous resource_names fields; undefined when they are not. */
  names: readonly [number, number] | undefined;
  /** When they are not (rare): [start, end) of each run of them, flat, to decode without a second pass. */
  scattered: number[] | undefined;
}

/**
 * One pass over an encoded DiscoveryRequest: the scalar fields read in place, the messages (node,
 * error_detail) decoded by protobufjs, the names only located. No copy of the request is made.
 * Every proxy's ACK of every push comes through here, so the usual shape (a Buffer holding the
 * known fields, short varints) is scanned by hand; anything else takes protobufjs's reader.
 */
export function decodeRequestFields(buf: Uint8Array, types: RequestTypes): RequestFields {
  return (Buffer.isBuffer(buf) && scanRequestFields(buf, types)) || readRequestFields(buf, types);
}

interface RequestTypes {
  readonly node: PartDecoder;
  readonly status: PartDecoder;
}

/** The protobufjs reading of `decodeRequestFields` (every input protobufjs accepts). */
function readRequestFields(buf: Uint8Array, types: RequestTypes): RequestFields {
  const r = protobuf.Reader.create(buf);
  const out: RequestFields = { version_info: '', node: undefined, type_url: '', response_nonce: '', error_detail: undefined, names: [0, 0], scattered: undefined };
  let start = -1;
  let end = -1;
  while (r.pos < r.len) {
    const at = r.pos;
    const tag = r.uint32();
    switch (tag) {
      case (1 << 3) | 2: out.version_info = r.string(); break;
      case (2 << 3) | 2: out.node = types.node.decode(r, r.uint32()); break;
      case NAMES_TAG:
        if (start < 0) start = at;
        else if (end !== at) start = closeRun(out, start, end, at);
        r.skip(r.uint32());
        end = r.pos;
        break;
      case (4 << 3) | 2: out.type_url = r.string(); break;
      case (5 << 3) | 2: out.response_nonce = r.string(); break;
      case (6 << 3) | 2: out.error_detail = types.status.decode(r, r.uint32()); break;
      default: r.skipType(tag & 7);
    }
  }
  return withNames(out, start, end);
}

/**
 * Names fields with another field between them (rare): the run [start, end) of them so far is
 * listed in `scattered`, and a new run starts `at` the next one. The names are then decoded from
 * the runs, not by a second decode of the whole request.
 */
function closeRun(out: RequestFields, start: number, end: number, at: number): number {
  (out.scattered ??= []).push(start, end);
  return at;
}

/** `out` with its names' place: the one run [start, end) (start -1: no names), or the last run listed. */
function withNames(out: RequestFields, start: number, end: number): RequestFields {
  if (out.scattered) {
    out.scattered.push(start, end);
    out.names = undefined;
  } else if (start >= 0) out.names = [start, end];
  return out;
}

/**
 * `readRequestFields` for the usual request, without a reader call per name (an EDS ACK names
 * every cluster: 100 names, three reader calls each, were most of the decode). Undefined when the
 * request holds anything else (another field, a long varint, a length past the end): the caller
 * then reads it with protobufjs, so what is accepted, refused or thrown stays protobufjs's.
 */
function scanRequestFields(buf: Buffer, types: RequestTypes): RequestFields | undefined {
  const out: RequestFields = { version_info: '', node: undefined, type_url: '', response_nonce: '', error_detail: undefined, names: [0, 0], scattered: undefined };
  let start = -1;
  let end = -1;
  let pos = 0;
  while (pos < buf.length) {
    const at = pos;
    const tag = buf[pos++];
    // Names are short: their one-byte length is read here, a longer one by readLength.
    const b = buf[pos] ?? 0x80;
    const varint = b < 0x80 ? b * 4 + 1 : readLength(buf, pos);
    if (varint < 0) return undefined;
    pos += varint & 3;
    const next = pos + (varint >>> 2);
    if (next > buf.length) return undefined;
    switch (tag) {
      case (1 << 3) | 2: out.version_info = buf.toString('utf8', pos, next); break;
      case (2 << 3) | 2: out.node = types.node.decode(buf.subarray(pos, next)); break;
      case NAMES_TAG:
        if (start < 0) start = at;
        else if (end !== at) start = closeRun(out, start, end, at);
        end = next;
        break;
      case (4 << 3) | 2: out.type_url = typeUrl(buf, pos, next); break;
      case (5 << 3) | 2: out.response_nonce = buf.toString('utf8', pos, next); break;
      case (6 << 3) | 2: out.error_detail = types.status.decode(buf.subarray(pos, next)); break;
      default: return undefined;
    }
    pos = next;
  }
  return withNames(out, start, end);
}

/** The served type URLs, as literals and as bytes. */
const TYPE_URLS = Object.values(TYPE).map((url) => ({ url, bytes: Buffer.from(url) }));

/**
 * The type URL at [pos, next): one of the served ones is returned as its literal without decoding
 * (a decoded copy would be hashed again by every lookup keyed on it); any other is decoded.
 */
function typeUrl(buf: Buffer, pos: number, next: number): string {
  const len = next - pos;
  for (const t of TYPE_URLS) if (t.bytes.length === len && buf.compare(t.bytes, 0, len, pos, next) === 0) return t.url;
  return buf.toString('utf8', pos, next);
}

/**
 * The length varint at `pos`, of at most three bytes (values below 2 MiB), as value × 4 + its
 * width in bytes; -1 when it is longer or runs past the end.
 */
function readLength(buf: Buffer, pos: number): number {
  let value = 0;
  for (let i = 0; i < 3 && pos + i < buf.length; i++) {
    const b = buf[pos + i] ?? 0;
    value |= (b & 0x7f) << (7 * i);
    if (b < 0x80) return value * 4 + i + 1;
  }
  return -1;
}

/** The names in the spans [start, end) found by `decodeRequestFields` (`names`, or `scattered`'s pairs). */
export function decodeNames(buf: Uint8Array, spans: readonly number[]): string[] {
  const names: string[] = [];
  for (let i = 0; i + 1 < spans.length; i += 2) {
    const r = protobuf.Reader.create(buf.subarray(spans[i], spans[i + 1]));
    while (r.pos < r.len) {
      r.uint32();
      names.push(r.string());
    }
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
const interned = new InternTable<Uint8Array>();

export function internNames(bytes: Uint8Array): Uint8Array {
  const key = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  return interned.get(key, () => Uint8Array.from(bytes));
}

/** The names an interned encoding holds, decoded once: read-only, shared by every stream that sent them. */
const decodedNames = new WeakMap<Uint8Array, readonly string[]>();

/**
 * `decodeNames` of an encoding `internNames` returned. In a reconnect storm every proxy's first
 * EDS request names the same clusters: one decode of those strings serves them all, and the frozen
 * list's identity lets later steps (limit checks, shared subscriptions) remember their results too.
 */
export function namesOf(interned: Uint8Array): readonly string[] {
  let names = decodedNames.get(interned);
  if (names === undefined) {
    names = Object.freeze(decodeNames(interned, [0, interned.byteLength]));
    decodedNames.set(interned, names);
  }
  return names;
}
