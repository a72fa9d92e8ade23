import * as grpc from '@grpc/grpc-js';
import { FRAME_HEADER_BYTES, underInterceptors } from './framed-writes.js';

/**
 * Requests read below grpc-js: the messages of a call are cut out of its HTTP/2 data frames and
 * deserialized here, and handed to fulcrum's handler in the same turn, without grpc-js's read path.
 * That path copies every message out of its frame, queues it, deserializes it in a promise of its
 * own, pauses and resumes the HTTP/2 stream around it, and passes it through every interceptor and
 * an object-mode Readable: in a push to 10,000 SotW streams, reading their ACKs (each repeats every
 * subscribed name) was ~20 % of the server's CPU per change (bench/RESULTS.md, fan16).
 *
 * What that path gives is kept: no message is read before the interceptors admitted the call on
 * its metadata (grpc-js calls the method's handler only then, and this is installed there), a
 * request over the size limit is refused from its length prefix with grpc-js's own status (the
 * stream gate names the limit from its words), an undecodable one ends the call as grpc-js
 * would, and the client's half-close still arrives after the messages sent before it (grpc-js
 * reports it, and every message before it was handled in its own data event).
 *
 * This reaches grpc-js internals (the transport call under the interceptors), so it checks their
 * shape at run time and leaves the call to grpc-js when they are not what this expects, or when
 * a client compresses a message (grpc-js then reads the rest of the call, in order). A test
 * (test/xds/direct-reads.test.ts) fails if the direct path is no longer taken.
 */

/** What grpc-js's transport call (BaseServerInterceptingCall, 1.14) has that this uses. */
interface TransportCall {
  handleDataFrame(data: Buffer): void;
  sendStatus(status: { code: grpc.status; details: string }): void;
  checkCancelled(): boolean;
  readonly maxReceiveMessageSize: number;
  readonly handler: { readonly deserialize: (bytes: Buffer) => unknown };
  readonly readQueue: readonly unknown[];
  readonly stream: { listenerCount(event: string): number };
}

function isTransportCall(x: unknown): x is TransportCall {
  const c = x as Partial<TransportCall> | null;
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof c.handleDataFrame === 'function' &&
    typeof c.sendStatus === 'function' &&
    typeof c.checkCancelled === 'function' &&
    typeof c.maxReceiveMessageSize === 'number' &&
    typeof c.handler?.deserialize === 'function' &&
    Array.isArray(c.readQueue) &&
    typeof c.stream?.listenerCount === 'function'
  );
}

/**
 * What cutting a chunk into messages found: the whole messages, in order, then possibly a reason
 * to stop there (a length over the limit, or a compressed message and all the data from it on).
 */
export interface Cut {
  readonly messages: readonly Buffer[];
  readonly tooLarge?: number;
  readonly compressed?: Buffer;
}

/**
 * Cuts gRPC messages (a 5-byte header: the compressed flag, a big-endian length) out of a call's
 * data, chunk by chunk. A message inside one chunk is a view of it. One split over chunks is
 * copied into a buffer as its bytes arrive (grown as they do, see `room`): an Envoy's ~61 KB
 * first request comes in four 16 KiB frames, and holding a copy of each part to join them at the
 * end copied all of it twice (bench/RESULTS.md, gate27). Copied, not viewed: a chunk is a view of
 * the HTTP/2 session's read buffer, which a view would keep alive. A length over the limit is
 * refused before anything of it is kept.
 */
export class MessageCutter {
  /** The header of the message being held; `headerHave` of its bytes are in. */
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerHave = 0;
  /** The held message's body once its header is complete (room for some or all of it); `bodyHave` bytes in. */
  private body: Buffer | undefined;
  private bodyHave = 0;

  constructor(private readonly maxMessageBytes: number) {}

  cut(chunk: Buffer): Cut {
    const messages: Buffer[] = [];
    let at = 0;
    if (this.headerHave > 0) {
      const held = this.continueHeld(chunk);
      if (typeof held !== 'number') return held;
      at = held;
      if (this.headerHave > 0) return NOTHING;
      messages.push(this.taken());
    }
    while (chunk.length - at >= FRAME_HEADER_BYTES) {
      const length = chunk.readUInt32BE(at + 1);
      if (this.tooLarge(length)) return { messages, tooLarge: length };
      if (chunk[at] !== 0) return { messages, compressed: chunk.subarray(at) };
      const end = at + FRAME_HEADER_BYTES + length;
      if (end > chunk.length) break;
      messages.push(chunk.subarray(at + FRAME_HEADER_BYTES, end));
      at = end;
    }
    if (at < chunk.length) this.hold(chunk, at);
    return { messages };
  }

  /** Starts holding the incomplete message at `at` (its header may be incomplete too). */
  private hold(chunk: Buffer, at: number): void {
    const n = Math.min(FRAME_HEADER_BYTES, chunk.length - at);
    chunk.copy(this.header, 0, at, at + n);
    this.headerHave = n;
    if (n === FRAME_HEADER_BYTES) this.fill(chunk, at + n);
  }

  /**
   * Feeds the held message from the start of `chunk`: where its bytes end (the message is
   * complete when headerHave is 0 again, taken() gives it), or the chunk's verdict when the
   * completed header refuses the message or hands the call back (compressed).
   */
  private continueHeld(chunk: Buffer): number | Cut {
    let at = 0;
    if (this.headerHave < FRAME_HEADER_BYTES) {
      const n = Math.min(FRAME_HEADER_BYTES - this.headerHave, chunk.length);
      chunk.copy(this.header, this.headerHave, 0, n);
      this.headerHave += n;
      at = n;
      if (this.headerHave < FRAME_HEADER_BYTES) return chunk.length;
      const length = this.header.readUInt32BE(1);
      if (this.tooLarge(length)) return { messages: [], tooLarge: length };
      if (this.header[0] !== 0) return { messages: [], compressed: Buffer.concat([this.header, chunk.subarray(at)]) };
    }
    return this.fill(chunk, at);
  }

  /** Copies what `chunk` has of the held body from `at`; returns where that ends. */
  private fill(chunk: Buffer, at: number): number {
    const length = this.header.readUInt32BE(1);
    const n = Math.min(length - this.bodyHave, chunk.length - at);
    const body = this.room(length, this.bodyHave + n);
    chunk.copy(body, this.bodyHave, at, at + n);
    this.bodyHave += n;
    if (this.bodyHave === length) this.headerHave = 0;
    return at + n;
  }

  /**
   * The held body's buffer, room for `need` bytes of its `length`: twice what has arrived, at
   * most the length, grown (and copied) as more does. Not allocated at the length the header
   * claims: a header is only a claim, and a client may send one and stall (up to maxRequestBytes
   * per stream, on every stream it may open). An Envoy's first request, 61 KB in 16 KiB frames, is
   * copied into two buffers this way (bench/RESULTS.md, gate27).
   */
  private room(length: number, need: number): Buffer {
    const body = this.body;
    if (body !== undefined && body.length >= need) return body;
    const grown = Buffer.allocUnsafeSlow(Math.min(length, 2 * Math.max(need, body?.length ?? 0)));
    body?.copy(grown, 0, 0, this.bodyHave);
    this.body = grown;
    return grown;
  }

  /** The completed held message; nothing held after it. */
  private taken(): Buffer {
    const body = this.body === undefined ? Buffer.alloc(0) : this.body.subarray(0, this.bodyHave);
    this.body = undefined;
    this.bodyHave = 0;
    return body;
  }

  private tooLarge(length: number): boolean {
    return this.maxMessageBytes !== -1 && length > this.maxMessageBytes;
  }
}

const NOTHING: Cut = Object.freeze({ messages: Object.freeze([]) });

/** The call a cut's messages are read for: whether it ended, and how it ends with a status. */
export interface ReadingCall {
  readonly over: boolean;
  fail(code: grpc.status, details: string): void;
}

/**
 * Decodes each of `cut`'s messages and hands it to `to`, in order, in this data event. A message
 * that cannot be decoded, or whose handling throws, ends the call with INTERNAL (this runs in the
 * HTTP/2 stream's data event: a throw must end the call, not the process). False when reading
 * stopped there, or because the call ended meanwhile; the cut's refusal (too large, compressed) is
 * the caller's to act on when it returns true.
 */
export function deliverMessages<Req>(cut: Cut, deserialize: (bytes: Buffer) => Req, to: { request(req: Req): void }, call: ReadingCall): boolean {
  for (const bytes of cut.messages) {
    let req: Req;
    try {
      req = deserialize(bytes);
    } catch {
      call.fail(grpc.status.INTERNAL, 'Error deserializing request');
      return false;
    }
    try {
      to.request(req);
    } catch {
      call.fail(grpc.status.INTERNAL, 'internal error');
      return false;
    }
    if (call.over) return false;
  }
  return true;
}

/**
 * Reads `call`'s requests below grpc-js and hands each to `deliver`, decoded by the method's own
 * deserializer, in the data event that completed it. Returns false (nothing changed: grpc-js reads
 * the call, and its messages arrive as the call's 'data' events) when grpc-js's internals are not
 * what this expects. Install it in the method's handler, before anything reads the call. The
 * caller keeps its 'data' listener: a call handed back to grpc-js (a compressed message) goes on
 * there, and its 'end' event, the client's half-close, comes either way.
 */
export function readDirectly<Req>(call: grpc.ServerDuplexStream<Req, unknown>, deliver: (req: Req) => void): boolean {
  const t = underInterceptors(call, isTransportCall);
  // grpc-js's own data listener only, and nothing queued by it yet.
  if (t === undefined || t.readQueue.length > 0 || t.stream.listenerCount('data') !== 1) return false;
  const cutter = new MessageCutter(t.maxReceiveMessageSize);
  const deserialize = t.handler.deserialize as (bytes: Buffer) => Req;
  const to = { request: deliver };
  const reading: ReadingCall = {
    get over() {
      return t.checkCancelled();
    },
    fail: (code, details) => t.sendStatus({ code, details }),
  };
  // An own property shadows the prototype's method, which grpc-js's data listener calls through `this`.
  t.handleDataFrame = (data: Buffer): void => {
    if (t.checkCancelled()) return;
    const cut = cutter.cut(data);
    if (!deliverMessages(cut, deserialize, to, reading)) return;
    if (cut.tooLarge !== undefined) {
      t.sendStatus({ code: grpc.status.RESOURCE_EXHAUSTED, details: `Received message larger than max (${cut.tooLarge} vs ${t.maxReceiveMessageSize})` });
    } else if (cut.compressed !== undefined) {
      // Back to grpc-js for good, from this message on: it decompresses, and keeps the order.
      delete (t as Partial<TransportCall>).handleDataFrame;
      t.handleDataFrame(cut.compressed);
    }
  };
  return true;
}
