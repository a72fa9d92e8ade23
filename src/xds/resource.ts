import { createHash } from 'node:crypto';
import { encodeMessage, type XdsTypeUrl } from './envoy-api.js';

/**
 * A resource encoded once and shared by every stream: the message bytes, and the two wire
 * envelopes streams splice into responses (an Any for SotW, a discovery Resource for Delta).
 * All three are one buffer: `bytes` is a view into `anyBytes`, itself a view into `deltaBytes`.
 */
export interface EncodedResource {
  readonly typeUrl: XdsTypeUrl;
  readonly name: string;
  /** Hash of the bytes: equal content, equal version, whatever produced it. */
  readonly hash: string;
  readonly bytes: Uint8Array;
  readonly anyBytes: Uint8Array;
  /** The Delta envelope (`envoy.service.discovery.v3.Resource`), its version the hash. */
  readonly deltaBytes: Uint8Array;
}

export const MESSAGE_OF: Record<XdsTypeUrl, string> = {
  'type.googleapis.com/envoy.config.cluster.v3.Cluster': 'envoy.config.cluster.v3.Cluster',
  'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment': 'envoy.config.endpoint.v3.ClusterLoadAssignment',
  'type.googleapis.com/envoy.config.listener.v3.Listener': 'envoy.config.listener.v3.Listener',
  'type.googleapis.com/envoy.config.route.v3.RouteConfiguration': 'envoy.config.route.v3.RouteConfiguration',
};

export function encodeResource(typeUrl: XdsTypeUrl, name: string, value: Record<string, unknown>): EncodedResource {
  return resourceOfBytes(typeUrl, name, encodeMessage(MESSAGE_OF[typeUrl], value));
}

/** A resource whose message is already encoded: copied into its envelope. */
export function resourceOfBytes(typeUrl: XdsTypeUrl, name: string, bytes: Uint8Array): EncodedResource {
  const envelope = new ResourceEnvelope(typeUrl, name, bytes.length);
  envelope.buffer.set(bytes, envelope.valueAt);
  return envelope.seal();
}

/** A version is the first 16 characters of the bytes' SHA-256 in base64url. */
const VERSION_CHARS = 16;
const hashOf = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('base64url').slice(0, VERSION_CHARS);

/**
 * A resource's Delta envelope laid out around a message of known size, which its encoder writes
 * straight into `buffer` at `valueAt` (assignment-encoding.ts); `seal` then hashes it and writes the
 * version. An assignment is one allocation instead of three (message, Any, Resource); a message
 * protobufjs encodes (resourceOfBytes) two instead of three. A 20k-endpoint assignment is ~0.8 MB,
 * and each copy was memory outside V8's heap that brings its next full collection closer
 * (bench/RESULTS.md "external22").
 *
 *   Resource { version = 1 (the hash), resource = 2 (Any { type_url = 1, value = 2 }), name = 3 }
 */
export class ResourceEnvelope {
  readonly buffer: Buffer;
  readonly valueAt: number;
  private readonly anyAt: number;
  private readonly anyEnd: number;

  constructor(
    private readonly typeUrl: XdsTypeUrl,
    private readonly name: string,
    private readonly valueBytes: number,
  ) {
    const urlBytes = Buffer.byteLength(typeUrl);
    const nameBytes = Buffer.byteLength(name);
    const anyBytes = delimited(urlBytes) + delimited(valueBytes);
    const total = delimited(VERSION_CHARS) + delimited(anyBytes) + delimited(nameBytes);
    const b = (this.buffer = Buffer.allocUnsafe(total));
    let at = 2 + VERSION_CHARS;
    at = header(b, at, 0x12, anyBytes);
    this.anyAt = at;
    at = header(b, at, 0x0a, urlBytes);
    at += b.write(typeUrl, at, 'latin1');
    this.valueAt = header(b, at, 0x12, valueBytes);
    this.anyEnd = this.valueAt + valueBytes;
    b.write(name, header(b, this.anyEnd, 0x1a, nameBytes), 'utf8');
  }

  /** The resource, once the message is written. */
  seal(): EncodedResource {
    const b = this.buffer;
    const bytes = b.subarray(this.valueAt, this.anyEnd);
    const hash = hashOf(bytes);
    b[0] = 0x0a;
    b[1] = VERSION_CHARS;
    b.write(hash, 2, 'latin1');
    return { typeUrl: this.typeUrl, name: this.name, hash, bytes, anyBytes: b.subarray(this.anyAt, this.anyEnd), deltaBytes: b };
  }
}

/** Bytes of a varint of `v` (an unsigned 32-bit value). */
export function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** A length-delimited field's size around a body of `n` bytes (one-byte tag). */
export const delimited = (n: number): number => 1 + varintSize(n) + n;

/** Writes a one-byte tag and a length at `at`; returns the position after them. */
function header(b: Buffer, at: number, tag: number, length: number): number {
  b[at++] = tag;
  let x = length >>> 0;
  while (x > 0x7f) {
    b[at++] = (x & 0x7f) | 0x80;
    x >>>= 7;
  }
  b[at++] = x;
  return at;
}
