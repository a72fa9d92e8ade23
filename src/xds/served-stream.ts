import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { XdsAuthz } from './authz.js';
import type { CallListener, DiscoveryCall } from './discovery-call.js';
import type { ProxyRecord } from './proxy-status.js';
import type { StreamIo, XdsStream } from './stream-common.js';
import type { RawNode } from './wire.js';
import { clientFormOf, type ClientForm } from './client-form.js';

/** Requests a stream may send before its first is answered (from the initial-sync queue). */
export const MAX_WAITING_REQUESTS = 32;

/** What the server holds of a SotW or Delta stream. */
export interface ServedStreamView {
  readonly proxy: ProxyRecord | undefined;
  onCacheChange(): void;
  /** Ends the call with OK (the server stopping). */
  finish(): void;
}

/** What every served stream shares of its server. */
export interface ServingContext {
  readonly log: Logger;
  /** Response bytes written but not flushed, and the streams at their mark, across the server. */
  readonly queue: { bytes: number; congested: number };
  readonly maxQueuedBytesPerStream: number;
  /**
   * Where a stream's first answer is queued (the initial-sync queue, behind HeldAnswers and, for a
   * gRPC client, GrpcFormGate), by the form its first request names; returns what drops it unrun.
   */
  readonly initialSyncs: { pushFor(form: ClientForm, task: () => void): () => void };
  /** Set when identities are bound to nodes (authz.checksNodes): each stream's node is checked. */
  readonly authz: XdsAuthz | undefined;
  opened(s: ServedStreamView): void;
  /** The stream named its proxy, and so its node group and the form it is sent (client-form.ts). */
  grouped(s: ServedStreamView, nodeCluster: string, form: ClientForm): void;
  closed(s: ServedStreamView): void;
  isOpen(s: ServedStreamView): boolean;
}

/**
 * The gRPC side of one discovery stream: between its call (grpc-js's or fulcrum's own) and its
 * state machine. One object with its methods on the prototype, not a dozen closures: a fleet
 * keeps one per proxy (bench/RESULTS.md, raw29).
 *
 * A proxy that stops reading must not make the server buffer every push for it: bytes written
 * but not yet flushed are counted, and at `maxQueuedBytesPerStream` the stream is congested and
 * its responses wait. When its writes complete below the mark the stream is sent what its
 * subscriptions resolve to then (the state machines coalesce; nothing is lost), so a stalled
 * proxy holds at most the mark plus one response.
 *
 * Requests wait behind the stream's first, which is answered from the initial-sync queue.
 */
export class ServedStream<Req extends { readonly node?: RawNode }> implements StreamIo, CallListener<Req>, ServedStreamView {
  readonly machine: XdsStream<Req>;
  private queued = 0;
  private congested_ = false;
  private released = false;
  /** Requests before the first answer; undefined once it was sent. */
  private waiting: Req[] | undefined = [];
  /** Drops the queued first answer of a stream closed before it ran (HeldAnswers.push). */
  private unqueue: () => void = () => undefined;
  /**
   * Half-closed while its first requests still wait (a one-shot client such as grpcurl): they are
   * answered first, then the call ends with OK, as it would without the queue.
   */
  private endWhenAnswered = false;
  /** Throws when the connection's certificate may not claim `node`: a closure, but only where identities are bound. */
  readonly admit?: (node: { readonly id: string; readonly cluster: string }) => void;

  constructor(
    private readonly ctx: ServingContext,
    private readonly call: DiscoveryCall<Req>,
    make: (io: StreamIo) => XdsStream<Req>,
  ) {
    const authz = ctx.authz;
    if (authz) this.admit = (node) => authz.admitNode(call.authContext(), node, call.peer);
    this.machine = make(this);
    ctx.opened(this);
    call.listen(this);
  }

  get peer(): string {
    return this.call.peer;
  }

  get proxy(): ProxyRecord | undefined {
    return this.machine.proxy;
  }

  onCacheChange(): void {
    this.machine.onCacheChange();
  }

  // ── StreamIo: what the state machine writes ──────────────────────────────────────────────────

  send(parts: readonly Uint8Array[]): void {
    if (this.released) return;
    let bytes = 0;
    for (const p of parts) bytes += p.byteLength;
    this.queued += bytes;
    this.ctx.queue.bytes += bytes;
    this.call.write(parts, bytes);
    // The write may have ended the call (a response over the size limit): nothing is held then.
    if (this.released) return;
    if (!this.congested_ && this.queued >= this.ctx.maxQueuedBytesPerStream) {
      this.congested_ = true;
      this.ctx.queue.congested += 1;
    }
  }

  congested(): boolean {
    return this.congested_;
  }

  fail(code: number, message: string): void {
    this.call.fail(code, message);
  }

  // ── CallListener: what the call reports ──────────────────────────────────────────────────────

  request(req: Req): void {
    const waiting = this.waiting;
    if (!waiting) return this.handle(req);
    if (waiting.length >= MAX_WAITING_REQUESTS) {
      // Envoy sends a handful before its first answer; this many is a client flooding a queue.
      // fail() ends the call, and its `closed` runs before it returns.
      return this.call.fail(grpc.status.RESOURCE_EXHAUSTED, `more than ${MAX_WAITING_REQUESTS} requests before the first response`);
    }
    waiting.push(req);
    if (waiting.length === 1) this.unqueue = this.ctx.initialSyncs.pushFor(clientFormOf(req.node?.user_agent_name ?? ''), () => this.answerWaiting());
  }

  end(): void {
    if (this.waiting !== undefined && this.waiting.length > 0) this.endWhenAnswered = true;
    else this.finish();
  }

  /** The call is over, however it ended; runs at least once, maybe more. */
  closed(): void {
    this.unqueue();
    this.ctx.closed(this);
    this.release();
    this.machine.close();
  }

  /** Runs once per write, once its bytes left this process (or the call ended). */
  written(bytes: number): void {
    if (this.released) return;
    this.queued -= bytes;
    this.ctx.queue.bytes -= bytes;
    if (!this.congested_ || this.queued >= this.ctx.maxQueuedBytesPerStream) return;
    this.congested_ = false;
    this.ctx.queue.congested -= 1;
    if (!this.call.over) this.machine.onCacheChange();
  }

  /** Ends the call with OK (the server stopping, or the client half-closed). */
  finish(): void {
    this.closed();
    this.call.end();
  }

  private answerWaiting(): void {
    const requests = this.waiting ?? [];
    this.waiting = undefined;
    for (const r of requests) this.handle(r);
    if (this.endWhenAnswered && this.ctx.isOpen(this)) this.finish();
  }

  private handle(req: Req): void {
    try {
      this.machine.onRequest(req);
      // The first request names the proxy and so its group; a stream that failed is gone already.
      const proxy = this.machine.proxy;
      if (proxy && this.ctx.isOpen(this)) this.ctx.grouped(this, proxy.node.cluster, this.machine.form);
    } catch (err) {
      // A bug must cost one stream, never the process.
      this.ctx.log.error({ err, stream: this.machine.id }, 'xds stream failed');
      this.call.fail(grpc.status.INTERNAL, 'internal error');
    }
  }

  /** The call ended: what it still held is gone with it, whether or not its callbacks run. */
  private release(): void {
    if (this.released) return;
    this.released = true;
    this.ctx.queue.bytes -= this.queued;
    if (this.congested_) this.ctx.queue.congested -= 1;
  }
}
