import { Metadata, type ServerDuplexStream } from '@grpc/grpc-js';

/**
 * Responses written below grpc-js, already framed. grpc-js frames every message by allocating a
 * new buffer (5-byte gRPC header + message) and copying the message into it, per stream, after
 * passing it through a Writable and every interceptor. In a push to 10,000 streams that copy and
 * its allocations were the largest share of the fan-out loop (profile in bench/RESULTS.md), for
 * bytes that are the same on every stream at the same nonce. Here the framed bytes are built once
 * (joined-responses.ts) and handed straight to each call's HTTP/2 stream.
 *
 * This reaches grpc-js internals (the transport call's `stream`), so it checks their shape at
 * run time and falls back to grpc-js's own write when they are not what this expects; a test
 * (test/xds/framed-writes.test.ts) fails if the fast path is no longer taken.
 */

/** The 5-byte gRPC message header: not compressed, big-endian length. */
export const FRAME_HEADER_BYTES = 5;

export function writeFrameHeader(out: Uint8Array, messageBytes: number): void {
  out[0] = 0;
  new DataView(out.buffer, out.byteOffset, FRAME_HEADER_BYTES).setUint32(1, messageBytes);
}

/** Per message view (what grpc-js would be handed), the framed buffer it is the tail of. */
const framedOf = new WeakMap<Uint8Array, Uint8Array>();

/** `message` preceded by its gRPC header, one buffer; returns the message as a view into it. */
export function framedMessage(build: (framed: Uint8Array, offset: number) => void, messageBytes: number): Uint8Array {
  // A Buffer (node's Writable would otherwise wrap a plain Uint8Array in one per write), of its
  // own memory (not the shared pool: a response lives as long as the memo keeps it).
  const framed = Buffer.allocUnsafeSlow(FRAME_HEADER_BYTES + messageBytes);
  writeFrameHeader(framed, messageBytes);
  build(framed, FRAME_HEADER_BYTES);
  const message = framed.subarray(FRAME_HEADER_BYTES);
  framedOf.set(message, framed);
  return message;
}

/**
 * One response as the bytes of a gRPC message on the wire: the framed buffer a `framedMessage`
 * view is the tail of (no copy), or, for other parts, a new buffer with the header and the parts.
 */
export function framedBytes(parts: readonly Uint8Array[], bytes: number): Uint8Array {
  const only = parts.length === 1 ? parts[0] : undefined;
  const framed = only && framedOf.get(only);
  if (framed) return framed;
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + bytes);
  writeFrameHeader(out, bytes);
  let at = FRAME_HEADER_BYTES;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** What the transport stream (node:http2's ServerHttp2Stream) offers that this uses. */
interface TransportStream {
  readonly destroyed: boolean;
  readonly closed: boolean;
  /** grpc-js ended it (status sent): a write now would be an error event, not a no-op. */
  readonly writableEnded: boolean;
  /** The response headers went out (grpc-js sends them before a call's first message). */
  readonly headersSent: boolean;
  write(chunk: Uint8Array, cb: (err?: Error | null) => void): boolean;
}

function isTransportStream(x: unknown): x is TransportStream {
  const s = x as Partial<TransportStream> | null;
  return typeof s === 'object' && s !== null && typeof s.write === 'function' && typeof s.destroyed === 'boolean' && typeof s.headersSent === 'boolean';
}

/**
 * The first layer of grpc-js's call under the interceptors that `is` accepts (each
 * ServerInterceptingCall holds the next as `nextCall`; the transport call, BaseServerInterceptingCall,
 * is the last). Undefined when none is.
 */
export function underInterceptors<T>(call: unknown, is: (layer: unknown) => layer is T): T | undefined {
  let c = (call as { call?: unknown }).call;
  for (let depth = 0; depth < 8 && typeof c === 'object' && c !== null; depth++) {
    if (is(c)) return c;
    c = (c as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

/** The transport call's HTTP/2 stream (it holds `stream`). Undefined when the shape is not that. */
function transportStream(call: unknown): TransportStream | undefined {
  return underInterceptors(call, (c): c is { stream: TransportStream } => isTransportStream((c as { stream?: unknown }).stream))?.stream;
}

/** Runs once per write, in write order, with that write's byte count, when its bytes left (or the call ended). */
export type WriteDone = (bytes: number) => void;

/**
 * The byte counts of a stream's writes not yet completed, oldest first. Writes complete in the
 * order they were issued (a Writable runs its callbacks in order), so one callback per stream
 * takes the oldest count: no closure per write (see FramedWriter).
 */
export class WriteCounts {
  /** Bytes of the oldest write not yet completed (-1: none), then those of later ones. */
  private oldest = -1;
  private later: number[] | undefined;

  push(bytes: number): void {
    if (this.oldest < 0) this.oldest = bytes;
    else (this.later ??= []).push(bytes);
  }

  /** The oldest write's count, now completed (0 when none was pending). */
  shift(): number {
    const bytes = this.oldest;
    this.oldest = this.later !== undefined && this.later.length > 0 ? (this.later.shift() as number) : -1;
    return Math.max(bytes, 0);
  }
}

/**
 * Writes a call's responses. Messages framed by `framedMessage` go straight to the HTTP/2 stream
 * when nothing written through grpc-js is still queued in its Writable (order is kept); the
 * first one asks grpc-js to send the response headers first (its public sendMetadata), which it
 * does at once unless an interceptor holds them, and then it too is written without a copy.
 *
 * Every write completes through one callback per writer, not a closure per write: in a push to
 * 10,000 streams each write's objects live until its session flushed, so the push's scavenges
 * copy and promote them (bench/RESULTS.md, fan5 and fan8). Completions come in write order (a
 * Writable runs its callbacks in order), so the byte counts wait in a queue.
 */
export class FramedWriter {
  private readonly transport: TransportStream | undefined;
  /** Writes handed to grpc-js whose callback has not run: a framed write must not overtake them. */
  private viaGrpc = 0;
  private direct_ = 0;
  private readonly counts = new WriteCounts();
  private readonly completedDirect: () => void;
  private readonly completedViaGrpc: () => void;

  constructor(
    private readonly call: ServerDuplexStream<unknown, readonly Uint8Array[]>,
    /** grpc-js refuses larger messages (its max_send_message_length); those keep its path. */
    private readonly maxMessageBytes: number,
    done: WriteDone,
  ) {
    this.transport = transportStream(call);
    this.completedDirect = () => done(this.counts.shift());
    this.completedViaGrpc = () => {
      this.viaGrpc -= 1;
      done(this.counts.shift());
    };
  }

  /** Whether framed writes go below grpc-js on this call (false when its internals differ). */
  get direct(): boolean {
    return this.transport !== undefined;
  }

  /** Responses written below grpc-js so far. */
  get directWrites(): number {
    return this.direct_;
  }

  /** Writes `parts` (`bytes` long in all) as one response; the writer's `done` gets `bytes` back once. */
  write(parts: readonly Uint8Array[], bytes: number): void {
    this.counts.push(bytes);
    const only = parts.length === 1 ? parts[0] : undefined;
    const framed = only && framedOf.get(only);
    const t = this.transport;
    if (framed && t && this.viaGrpc === 0 && only.byteLength <= this.maxMessageBytes && this.open(t)) {
      // An error here means the stream is gone: its close handlers end the call as grpc-js would.
      this.direct_ += 1;
      t.write(framed, this.completedDirect);
      return;
    }
    this.viaGrpc += 1;
    this.call.write(parts, this.completedViaGrpc);
  }

  /** The stream takes writes, with the response headers sent (asked for if not yet). */
  private open(t: TransportStream): boolean {
    if (t.destroyed || t.closed || t.writableEnded) return false;
    if (!t.headersSent) this.call.sendMetadata(new Metadata());
    return t.headersSent;
  }
}
