import * as grpc from '@grpc/grpc-js';
import type { CallAuthContext } from './authz.js';
import { readDirectly } from './direct-reads.js';
import { FramedWriter } from './framed-writes.js';

/**
 * One discovery stream (SotW or Delta) as the server's stream handling sees it, whichever side
 * runs its transport: fulcrum on the HTTP/2 stream itself (h2-discovery-call.ts, every plain
 * call) or grpc-js (a call fulcrum hands back: compressed, with a deadline, or when grpc-js's
 * internals are not what the hand-over expects).
 */
export interface DiscoveryCall<Req> {
  /** "address:port", as grpc-js's getPeer says it. */
  readonly peer: string;
  /** The verified client certificate, if any (authz.ts reads it). */
  authContext(): CallAuthContext;
  /**
   * Starts reading: each request in order, then `end` once the client half-closed (after the
   * requests it sent before). `closed` runs when the call is over, however it ended (status sent,
   * reset, connection lost): at least once, possibly more, so it must be idempotent. `written`
   * runs once per write, in write order, with its byte count, when its bytes left (or the call ended).
   */
  listen(on: CallListener<Req>): void;
  /** Writes one response (`bytes` long in all), after `listen`. */
  write(parts: readonly Uint8Array[], bytes: number): void;
  /** Ends the call with a status other than OK; the listener's `closed` runs before it returns. */
  fail(code: grpc.status, message: string): void;
  /** Ends the call with OK. */
  end(): void;
  /** The call is over: a write now goes nowhere. */
  readonly over: boolean;
}

/** The server's side of a call; its methods are called on it. */
export interface CallListener<Req> {
  request(req: Req): void;
  end(): void;
  closed(): void;
  written(bytes: number): void;
}

/** A grpc-js duplex call as a DiscoveryCall (reads and framed writes still below grpc-js where they can be). */
export function grpcDiscoveryCall<Req>(call: grpc.ServerDuplexStream<Req, readonly Uint8Array[]>, maxResponseBytes: number): DiscoveryCall<Req> {
  let writer: FramedWriter | undefined;
  return {
    peer: call.getPeer(),
    authContext: () => call.getAuthContext(),
    listen: (on) => {
      // The listener's methods are called on it (it may be a class instance).
      writer = new FramedWriter(call as grpc.ServerDuplexStream<unknown, readonly Uint8Array[]>, maxResponseBytes, (bytes) => on.written(bytes));
      const request = (req: Req): void => on.request(req);
      const closed = (): void => on.closed();
      readDirectly(call, request);
      call.on('data', request);
      call.on('end', () => on.end());
      call.on('error', closed);
      call.on('close', closed);
      call.on('cancelled', closed);
    },
    write: (parts, bytes) => writer?.write(parts, bytes),
    fail: (code, message) => {
      call.emit('error', { code, details: message });
    },
    end: () => call.end(),
    get over() {
      return call.cancelled;
    },
  };
}
