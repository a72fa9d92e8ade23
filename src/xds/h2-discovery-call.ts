import * as grpc from '@grpc/grpc-js';
import type { OutgoingHttpHeaders, ServerHttp2Stream, ServerStreamResponseOptions } from 'node:http2';
import { TLSSocket } from 'node:tls';
import type { CallAuthContext } from './authz.js';
import type { CallListener, DiscoveryCall } from './discovery-call.js';
import { deliverMessages, MessageCutter, type ReadingCall } from './direct-reads.js';
import { framedBytes, WriteCounts } from './framed-writes.js';

/**
 * A discovery stream served on its HTTP/2 stream by fulcrum itself, without grpc-js's call.
 *
 * grpc-js builds, per call, a transport call (metadata parsed into a Metadata object, a deadline
 * check, a stream decoder, a `getsockname` for the local address), one intercepting call per
 * interceptor, and an object-mode Duplex for the handler. Without them a connected proxy keeps
 * ~2.3 KiB less JS heap (13 % of the heap at 2,000 proxies) and a reconnect storm costs a median
 * 12 % less server CPU (bench/RESULTS.md, raw29).
 * A discovery stream uses none of it: fulcrum already read its requests and wrote its responses
 * below grpc-js (direct-reads.ts, framed-writes.ts). What grpc-js's call did for it is here:
 * the response headers before the first message, the status as trailers (or a trailers-only
 * response when nothing was sent), the size limit from the length prefix, and the end of the
 * call however it ends. Admission (the stream gate, authz) runs before this is built
 * (discovery-router.ts); the connection (keepalive, idle timeout, max streams) stays grpc-js's.
 */

/** The response headers grpc-js sends (its defaults), but only identity: nothing here decompresses. */
const RESPONSE_HEADERS = { ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-accept-encoding': 'identity', 'grpc-encoding': 'identity' } as const;

/**
 * No `date` header: gRPC has no use for it, and node would keep it with the stream's sent headers.
 * (node's respond() takes `sendDate`; @types/node leaves it out.)
 */
type RespondOptions = ServerStreamResponseOptions & { readonly sendDate: boolean };
const RESPOND_FOR_MESSAGES: RespondOptions = { waitForTrailers: true, sendDate: false };
const RESPOND_TRAILERS_ONLY: RespondOptions = { endStream: true, sendDate: false };

/** What every call shares: what it refuses of what it reads and writes, and the server's admission. */
export interface H2CallLimits {
  readonly maxRequestBytes: number;
  readonly maxResponseBytes: number;
  /** The status for a message over a size limit, and counts it. */
  readonly tooLarge: (limit: 'maxRequestBytes' | 'maxResponseBytes', bytes: number) => string;
  /** Gives back an admitted call's place (the stream gate's), once: at its status, or when its stream closes. */
  readonly release: (peerAddress: string) => void;
}

export class H2DiscoveryCall<Req> implements DiscoveryCall<Req>, ReadingCall {
  readonly peer: string;
  private readonly counts = new WriteCounts();
  /** One completion callback per call, not a closure per write (see framed-writes.ts). */
  private readonly completed = (): void => this.on?.written(this.counts.shift());
  private statusSent = false;
  /** The server's side of the call, from `listen` on. */
  private on: CallListener<Req> | undefined;
  /** The peer address whose place the call holds, once admitted. */
  private admittedAs: string | undefined;
  /** Read once: admission and the first node's check both ask for it (the connection's certificate does not change). */
  private auth: CallAuthContext | undefined;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly deserialize: (bytes: Buffer) => Req,
    private readonly limits: H2CallLimits,
  ) {
    this.peer = peerOf(stream);
    // Every stream error also closes it ('close' follows); without a listener it would be thrown.
    stream.on('error', ignore);
    // One listener for all the close means here (`on`: a stream closes once; a once wrapper costs ~200 bytes per stream).
    stream.on('close', () => this.closed());
  }

  /** The call holds a place of `peerAddress`'s, given back with its status or when its stream closes. */
  admitted(peerAddress: string): void {
    this.admittedAs = peerAddress;
  }

  get over(): boolean {
    return this.statusSent || this.stream.destroyed || this.stream.closed;
  }

  authContext(): CallAuthContext {
    this.auth ??= authOf(this.stream);
    return this.auth;
  }

  listen(on: CallListener<Req>): void {
    const cutter = new MessageCutter(this.limits.maxRequestBytes);
    this.on = on;
    this.stream.on('data', (chunk: Buffer) => this.read(cutter, chunk, on));
    this.stream.on('end', () => {
      if (!this.over) on.end();
    });
  }

  write(parts: readonly Uint8Array[], bytes: number): void {
    this.counts.push(bytes);
    const s = this.stream;
    if (this.over) return this.dropped();
    if (bytes > this.limits.maxResponseBytes) {
      this.dropped();
      return this.fail(grpc.status.RESOURCE_EXHAUSTED, this.limits.tooLarge('maxResponseBytes', bytes));
    }
    if (!s.headersSent && !this.respond(RESPONSE_HEADERS, RESPOND_FOR_MESSAGES)) return this.dropped();
    s.write(framedBytes(parts, bytes), this.completed);
  }

  /** A write that goes nowhere: its count comes back, later, as from a write the stream dropped. */
  private dropped(): void {
    process.nextTick(this.completed);
  }

  fail(code: grpc.status, message: string): void {
    this.sendStatus(code, message);
  }

  end(): void {
    this.sendStatus(grpc.status.OK, 'OK');
  }

  /**
   * The call's status: trailers after what was sent, or a trailers-only response (the message
   * encoded as grpc-js does). The call is over then, as a grpc-js call is once its status is sent.
   */
  private sendStatus(code: grpc.status, details: string): void {
    if (this.over) return;
    this.statusSent = true;
    // The call's place is given back with its status (grpc-js gives it back once the status is
    // written), not when the client closes its side: a client keeping it open would hold it.
    this.release();
    const s = this.stream;
    const trailers = { 'grpc-status': String(code), 'grpc-message': statusMessage(details) };
    if (!s.headersSent) {
      this.respond({ ':status': 200, 'content-type': RESPONSE_HEADERS['content-type'], ...trailers }, RESPOND_TRAILERS_ONLY);
    } else {
      s.once('wantTrailers', () => s.sendTrailers(trailers));
      s.end();
    }
    this.on?.closed();
  }

  private closed(): void {
    this.release();
    this.on?.closed();
  }

  private release(): void {
    if (this.admittedAs === undefined) return;
    this.limits.release(this.admittedAs);
    this.admittedAs = undefined;
  }

  /**
   * Sends the response headers. node throws when the stream or its session is going away between
   * the checks and here; a push must not throw into the cache's subscribers for that, so the
   * stream is reset instead (its close ends the call). False when it was.
   */
  private respond(headers: OutgoingHttpHeaders, options: RespondOptions): boolean {
    try {
      this.stream.respond(headers, options);
      return true;
    } catch {
      this.stream.destroy();
      return false;
    }
  }

  /** Cuts `chunk` into messages and hands each on, in this data event; stops at the first refusal. */
  private read(cutter: MessageCutter, chunk: Buffer, on: CallListener<Req>): void {
    if (this.over) return;
    const cut = cutter.cut(chunk);
    if (!deliverMessages(cut, this.deserialize, on, this)) return;
    if (cut.tooLarge !== undefined) this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, this.limits.tooLarge('maxRequestBytes', cut.tooLarge));
    // The router hands calls with a grpc-encoding to grpc-js; a compressed flag without one is a broken client.
    else if (cut.compressed !== undefined) this.sendStatus(grpc.status.INTERNAL, 'a compressed message on a call without grpc-encoding');
  }
}

const ignore = (): void => undefined;

/** grpc-js's encoding of a status message; a lone surrogate (encodeURI refuses it) becomes U+FFFD. */
function statusMessage(details: string): string {
  try {
    return encodeURI(details);
  } catch {
    return encodeURI(details.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD'));
  }
}

/** The verified client certificate's SANs of the stream's connection, if any. */
function authOf(stream: ServerHttp2Stream): CallAuthContext {
  const socket = stream.session?.socket;
  if (!(socket instanceof TLSSocket) || !socket.authorized) return {};
  // Not getPeerCertificate(): it builds every field of the certificate as JavaScript, ~60 µs a
  // connection in a storm over mTLS; the SANs are all the identity needs (authz.ts).
  const cert = socket.getPeerX509Certificate();
  return cert ? { sslPeerCertificate: { subjectaltname: cert.subjectAltName } } : {};
}

/** "address:port" of the stream's connection, as grpc-js's getPeer says it. */
function peerOf(stream: ServerHttp2Stream): string {
  const socket = stream.session?.socket;
  if (!socket?.remoteAddress) return 'unknown';
  return socket.remotePort ? `${socket.remoteAddress}:${socket.remotePort}` : socket.remoteAddress;
}
