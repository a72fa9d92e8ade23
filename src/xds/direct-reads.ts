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
 * data, chunk by chunk. A message inside one chunk is a view of it; one split over chunks is
 * joined once, when its last byte arrived (not at every chunk: a 4 MiB message in 16 KiB frames
 * would be copied 256 times). A length over the limit is refused before anything of it is kept.
 */
export class MessageCutter {
  /** The start of an incomplete message (header included), in order. */
  private held: Buffer[] = [];
  private heldBytes = 0;

  constructor(private readonly maxMessageBytes: number) {}

  cut(chunk: Buffer): Cut {
    let data = chunk;
    if (this.heldBytes > 0) {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      if (this.heldBytes < this.awaited()) return NOTHING;
      data = Buffer.concat(this.held, this.heldBytes);
      this.held = [];
      this.heldBytes = 0;
    }
    const messages: Buffer[] = [];
    let at = 0;
    while (data.length - at >= FRAME_HEADER_BYTES) {
      const length = data.readUInt32BE(at + 1);
      if (this.tooLarge(length)) return { messages, tooLarge: length };
      if (data[at] !== 0) return { messages, compressed: data.subarray(at) };
      const end = at + FRAME_HEADER_BYTES + length;
      if (end > data.length) break;
      messages.push(data.subarray(at + FRAME_HEADER_BYTES, end));
      at = end;
    }
    if (at < data.length) {
      // A copy: the chunk is the HTTP/2 stream's, and a view would keep all of it alive.
      this.held.push(Buffer.from(data.subarray(at)));
      this.heldBytes = data.length - at;
    }
    return { messages };
  }

  private tooLarge(length: number): boolean {
    return this.maxMessageBytes !== -1 && length > this.maxMessageBytes;
  }

  /** How many bytes the held message needs in all: its header, then its header and body (0: refuse it now). */
  private awaited(): number {
    if (this.heldBytes < FRAME_HEADER_BYTES) return FRAME_HEADER_BYTES;
    const first = this.held[0] as Buffer;
    const header = first.length >= FRAME_HEADER_BYTES ? first : Buffer.concat(this.held, this.heldBytes).subarray(0, FRAME_HEADER_BYTES);
    const length = header.readUInt32BE(1);
    return this.tooLarge(length) ? 0 : FRAME_HEADER_BYTES + length;
  }
}

const NOTHING: Cut = Object.freeze({ messages: Object.freeze([]) });

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
  const deserialize = t.handler.deserialize;
  // An own property shadows the prototype's method, which grpc-js's data listener calls through `this`.
  t.handleDataFrame = (data: Buffer): void => {
    if (t.checkCancelled()) return;
    const cut = cutter.cut(data);
    for (const bytes of cut.messages) {
      let req: Req;
      try {
        req = deserialize(bytes) as Req;
      } catch {
        t.sendStatus({ code: grpc.status.INTERNAL, details: 'Error deserializing request' });
        return;
      }
      // This runs in the HTTP/2 stream's data event: a throw must end the call, not the process.
      try {
        deliver(req);
      } catch {
        t.sendStatus({ code: grpc.status.INTERNAL, details: 'internal error' });
        return;
      }
      if (t.checkCancelled()) return;
    }
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
