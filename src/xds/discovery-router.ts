import * as grpc from '@grpc/grpc-js';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { XdsAuthz } from './authz.js';
import { H2DiscoveryCall, type H2CallLimits } from './h2-discovery-call.js';
import type { StreamGate } from './stream-gate.js';

/**
 * Which HTTP/2 streams fulcrum serves itself (h2-discovery-call.ts) and which grpc-js serves.
 *
 * fulcrum takes a stream of a discovery method (SotW or Delta, ADS or per type) that is a plain
 * gRPC call: `content-type: application/grpc…`, no `grpc-encoding` other than identity (nothing
 * here decompresses), no `grpc-timeout` (no deadline to keep). Everything else (the unary
 * fetches, CSDS, reports, LRS, a compressing or deadline-bound client, an unknown path, a wrong
 * content type) goes to grpc-js as before. A taken stream is admitted as grpc-js's interceptors
 * would admit it: the stream gate first, then authz; a refusal is a trailers-only status.
 */

/** A discovery method fulcrum serves itself: its call on a stream, and the server's handler for it. */
export interface DiscoveryRoute {
  open(stream: ServerHttp2Stream, limits: H2CallLimits): { readonly call: H2DiscoveryCall<unknown>; serve(): void };
}

/** The route of a method whose requests `deserialize` decodes and `serve` handles (the types tie them). */
export function discoveryRoute<Req>(deserialize: (bytes: Buffer) => Req, serve: (call: H2DiscoveryCall<Req>) => void): DiscoveryRoute {
  return {
    open: (stream, limits) => {
      const call = new H2DiscoveryCall<Req>(stream, deserialize, limits);
      return { call, serve: () => serve(call) };
    },
  };
}

export interface RouterDeps {
  readonly routes: ReadonlyMap<string, DiscoveryRoute>;
  readonly gate: StreamGate;
  /** Undefined when it refuses nothing (as the server leaves its interceptor out then). */
  readonly authz: XdsAuthz | undefined;
  readonly limits: { readonly maxRequestBytes: number; readonly maxResponseBytes: number };
  /** A bug while taking a stream (the stream ends with INTERNAL; the process goes on). */
  readonly onError: (err: unknown) => void;
}

export class DiscoveryRouter {
  private taken_ = 0;
  private readonly callLimits: H2CallLimits;

  constructor(private readonly deps: RouterDeps) {
    const gate = deps.gate;
    this.callLimits = { ...deps.limits, tooLarge: (limit, bytes) => gate.tooLarge(limit, bytes), release: (peer) => gate.release(peer) };
  }

  /** Streams taken from grpc-js so far, admitted or refused (a test checks production takes this path). */
  get taken(): number {
    return this.taken_;
  }

  /** Serves `stream` and returns true, or returns false and leaves it to grpc-js. */
  take(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean {
    const route = this.routeOf(headers);
    if (!route) return false;
    this.taken_ += 1;
    const opened = route.open(stream, this.callLimits);
    try {
      this.admit(opened.call, stream, headers, opened.serve);
    } catch (err) {
      // In node's 'stream' event a throw would end the process: a bug costs this stream only.
      this.deps.onError(err);
      opened.call.fail(grpc.status.INTERNAL, 'internal error');
    }
    return true;
  }

  /** What grpc-js's interceptors did: the stream gate, then authz; `serve` once both admit the call. */
  private admit(call: H2DiscoveryCall<unknown>, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, serve: () => void): void {
    const { gate, authz } = this.deps;
    const peer = stream.session?.socket?.remoteAddress ?? 'unknown';
    const full = gate.admitCall(peer);
    if (full) return call.fail(grpc.status.RESOURCE_EXHAUSTED, full);
    // Given back once, with the call's status or when its stream closes.
    call.admitted(peer);
    const refusal = authz?.refuseCall(headers[':path'] ?? '', call.authContext(), headers.authorization, call.peer);
    if (refusal) call.fail(refusal.code, refusal.message);
    else serve();
  }

  private routeOf(headers: IncomingHttpHeaders): DiscoveryRoute | undefined {
    const path = headers[':path'];
    const route = path === undefined ? undefined : this.deps.routes.get(path);
    if (!route) return undefined;
    const type = headers['content-type'];
    if (typeof type !== 'string' || !type.startsWith('application/grpc')) return undefined;
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') return undefined;
    return headers['grpc-timeout'] === undefined ? route : undefined;
  }
}

/** What of grpc-js's Server (1.14) the hand-over uses. */
interface GrpcServerInternals {
  _streamHandler: (this: unknown, extraInterceptors: readonly unknown[], stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;
  onStreamOpened: (this: unknown, stream: ServerHttp2Stream) => void;
  /** With channelz on, grpc-js binds another handler (_channelzHandler), which this does not wrap. */
  channelzEnabled: boolean;
}

/**
 * Puts `take` in front of grpc-js's handler of new HTTP/2 streams. Must run before the server
 * creates its HTTP/2 server (bind or createConnectionInjector binds the handler then). A taken
 * stream still counts as an open stream of its connection for grpc-js's idle timeout. Returns
 * false (grpc-js serves everything) when grpc-js's internals are not what this expects; a test
 * (test/xds/discovery-router.test.ts) fails if production no longer takes discovery streams.
 */
export function takeStreamsFirst(
  server: grpc.Server,
  take: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => boolean,
  /** Sees every new stream first, whoever serves it; false: the stream is done with (its connection closed). */
  screen?: (stream: ServerHttp2Stream) => boolean,
): boolean {
  const s = server as unknown as Partial<GrpcServerInternals>;
  const grpcHandler = s._streamHandler;
  const opened = s.onStreamOpened;
  if (typeof grpcHandler !== 'function' || typeof opened !== 'function' || s.channelzEnabled !== false) return false;
  // An own property shadows the prototype's method, which grpc-js binds when it sets up a server.
  s._streamHandler = function (this: unknown, extraInterceptors, stream, headers) {
    if (screen !== undefined && !screen(stream)) return;
    // Interceptors that came with the credentials (createServerCredentialsWithInterceptors) run
    // only on grpc-js's call: such a connection's streams stay with grpc-js.
    if (extraInterceptors.length > 0 || !take(stream, headers)) return grpcHandler.call(this, extraInterceptors, stream, headers);
    opened.call(this, stream);
  };
  return true;
}
