/**
 * Responses that carry their gRPC message prefix already, so grpc-js writes them as they are.
 *
 * grpc-js frames every response by allocating a buffer of the message's size plus 5 and copying
 * the serialized message into it (BaseServerInterceptingCall.serializeMessage). A reconnect storm
 * sends the same shared CDS and EDS responses to thousands of streams: that was one private copy
 * of each (~100 KiB for 100 clusters' endpoints) per stream, the largest allocation of a storm and
 * what its in-flight writes held. A shared response is instead built once with the prefix in
 * front, and the framing step hands that very buffer to HTTP/2 (written, never modified).
 */

/** gRPC's message prefix: 1 byte compressed flag (0), 4 bytes big-endian length. */
const PREFIX = 5;
const framed = new WeakSet<Uint8Array>();

/** A buffer for a `length`-byte message with the gRPC prefix written; the message goes at offset 5. */
export function framedBuffer(length: number): Buffer {
  // Not from the small-buffer pool: a shared response lives as long as its cache entry.
  const out = Buffer.allocUnsafeSlow(PREFIX + length);
  out[0] = 0;
  out.writeUInt32BE(length, 1);
  framed.add(out);
  return out;
}

/** The message inside a framed buffer (prefix dropped); any other part as it is. */
export function messageOf(part: Uint8Array): Uint8Array {
  return framed.has(part) ? part.subarray(PREFIX) : part;
}

/** The framed buffer when a response is exactly one. */
function framedOf(value: unknown): Buffer | undefined {
  if (!Array.isArray(value) || value.length !== 1) return undefined;
  const only: unknown = value[0];
  return only instanceof Buffer && framed.has(only) ? only : undefined;
}

const patched = new WeakSet<object>();

/**
 * Lets grpc-js's transport call send framed responses without its copy: its class's
 * `serializeMessage` returns a framed response itself and frames anything else as before. Runs
 * for the first call and is a no-op afterwards. Should a grpc-js release drop that method, the
 * responses still go out correctly (services.ts strips the prefix before grpc-js frames them),
 * only copied again.
 */
export function sendFramedUncopied(transportCall: object): void {
  const proto: unknown = Object.getPrototypeOf(transportCall);
  if (typeof proto !== 'object' || proto === null || patched.has(proto)) return;
  patched.add(proto);
  const original: unknown = Reflect.get(proto, 'serializeMessage');
  if (typeof original !== 'function') return;
  Reflect.set(proto, 'serializeMessage', function serializeMessage(this: unknown, value: unknown): unknown {
    return framedOf(value) ?? Reflect.apply(original, this, [value]);
  });
}
