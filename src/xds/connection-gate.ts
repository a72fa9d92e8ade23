import net from 'node:net';
import type { LimitHit, XdsLimits } from './limits.js';
import { peerGroup } from './peer-group.js';

/** The HTTP/2 client connection preface (RFC 9113 §3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** A timer this late says the event loop was blocked, not that the client was slow. */
const LATE_MS = 1_000;
/** nghttp2's error for a connection that does not start with the preface. */
const NGHTTP2_ERR_BAD_CLIENT_MAGIC = -903;
/** The first byte of a TLS record carrying a handshake (a ClientHello). */
const TLS_HANDSHAKE = 0x16;

export type Expect = 'h2' | 'tls';
export type Verdict = 'accept' | 'more' | 'refuse';

/** Whether a connection's first bytes start what the port serves: HTTP/2 in clear, or TLS. */
export function classify(head: Uint8Array, expect: Expect): Verdict {
  if (head.length === 0) return 'more';
  if (expect === 'tls') return head[0] === TLS_HANDSHAKE ? 'accept' : 'refuse';
  const n = Math.min(head.length, PREFACE.length);
  for (let i = 0; i < n; i++) if (head[i] !== PREFACE[i]) return 'refuse';
  return head.length >= PREFACE.length ? 'accept' : 'more';
}

export type Refusal = 'not-grpc';

export interface ConnectionGateOptions {
  readonly limits: XdsLimits;
  /** The kernel's queue of connections not yet accepted: a reconnect storm must not overflow it. */
  readonly backlog: number;
  readonly expect: Expect;
  readonly onLimit: LimitHit;
  readonly onRefused: (reason: Refusal) => void;
  /** Hands an accepted connection (its first bytes put back) to the gRPC server. */
  readonly inject: (socket: net.Socket) => void;
  /**
   * Runs a new connection's setup later (default: now). Accepting is then all the accept
   * callback does, so a storm waits in fulcrum's queue rather than overflowing the kernel's.
   */
  readonly defer?: (task: () => void) => void;
}

/**
 * Owns the xDS port's listening socket, in front of grpc-js: a large listen backlog, connection
 * limits per peer (its address, or its IPv6 prefix) and in total (checked at accept, before any HTTP/2 state exists), and
 * a quick end for connections that speak something else or nothing at all: TLS is sniffed here,
 * HTTP/2 in clear is refused by nghttp2 on its first wrong byte (counted here).
 */
export class ConnectionGate {
  private readonly server: net.Server;
  private readonly perPeer = new Map<string, number>();
  private readonly sockets = new Set<net.Socket>();
  /** Connections inside their handshake deadline, each with what tells whether its handshake has started. */
  private readonly handshaking = new Map<net.Socket, () => boolean>();

  constructor(private readonly options: ConnectionGateOptions) {
    this.server = net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.accept(socket));
  }

  get connections(): number {
    return this.sockets.size;
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, backlog: this.options.backlog }, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
  }

  /** Stops accepting. Open connections stay: the gRPC server drains its own. */
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /**
   * Ends the connections whose preface (or TLS handshake) has not started: a clear-text one is
   * already a grpc-js session, whose graceful shutdown waits for a peer that may never read or
   * answer, so a stop would wait its whole grace period for a silent client.
   */
  destroyUnready(): void {
    for (const [socket, started] of this.handshaking) if (!started()) socket.destroy();
  }

  /** Ends every connection still open (after the gRPC server's drain). */
  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  private accept(socket: net.Socket): void {
    const { limits } = this.options;
    const peer = peerGroup(socket.remoteAddress ?? 'unknown', limits.ipv6PeerPrefixLength);
    const mine = this.perPeer.get(peer) ?? 0;
    const refused = this.sockets.size >= limits.maxConnections ? 'maxConnections' : mine >= limits.maxConnectionsPerPeer ? 'maxConnectionsPerPeer' : undefined;
    if (refused) {
      this.options.onLimit(refused);
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    this.perPeer.set(peer, mine + 1);
    // `on`, not `once`: a socket closes once, and a once wrapper is ~200 bytes kept per connection.
    socket.on('close', () => this.forget(socket, peer));
    // Until the gRPC server owns the socket, its errors (a reset) are only the end of it.
    socket.on('error', destroyEmitter);
    const { defer } = this.options;
    if (!defer) return this.admit(socket);
    defer(() => {
      if (!socket.destroyed) this.admit(socket);
    });
  }

  private admit(socket: net.Socket): void {
    if (this.options.expect === 'h2') this.handOver(socket);
    else this.sniff(socket);
  }

  private forget(socket: net.Socket, peer: string): void {
    this.sockets.delete(socket);
    const left = (this.perPeer.get(peer) ?? 1) - 1;
    if (left > 0) this.perPeer.set(peer, left);
    else this.perPeer.delete(peer);
  }

  /**
   * HTTP/2 in clear: handed to grpc-js unread, so node's HTTP/2 session reads the first request
   * straight from the socket. Reading it here first (to check the preface) and putting it back made
   * node copy every byte again into the session: an Envoy's first request is ~61 KB (its Node
   * lists every extension compiled in), and in a storm of 10,000 that path cost ~1.9 s of CPU and
   * ~600 MB of peak memory (bench/RESULTS.md, gate27). nghttp2 checks the preface on its first
   * bytes itself; its refusal is counted here. A connection whose preface has not arrived by the
   * deadline is closed (node's session would keep it).
   */
  private handOver(socket: net.Socket): void {
    socket.on('error', this.countBadPreface);
    this.options.inject(socket);
    socket.resume();
    this.deadline(socket, () => socket.destroyed || socket.bytesRead >= PREFACE.length);
  }

  /** One listener for every handed-over socket: nghttp2's refusal of a wrong preface is counted. */
  private readonly countBadPreface = (err: NodeJS.ErrnoException): void => {
    if (err.code === 'ERR_HTTP2_ERROR' && err.errno === NGHTTP2_ERR_BAD_CLIENT_MAGIC) this.options.onRefused('not-grpc');
  };

  /**
   * Closes `socket` at the handshake deadline unless `done()` by then. A deadline that fires late
   * means fulcrum itself was busy (a reconnect storm's initial syncs): the client's bytes may be
   * waiting unread, so it gets another period instead. Otherwise the verdict waits one I/O phase
   * (setImmediate) for bytes that did arrive. Returns what cancels it. Once decided, nothing of
   * it stays on the socket (its timer and closures would otherwise live as long as the connection).
   */
  private deadline(socket: net.Socket, done: () => boolean): () => void {
    const timeoutMs = this.options.limits.handshakeTimeoutMs;
    let due = performance.now() + timeoutMs;
    const finish = (): void => {
      clearTimeout(timer);
      this.handshaking.delete(socket);
      socket.off('close', finish);
    };
    const expire = (): void => {
      if (done()) return finish();
      if (performance.now() - due > LATE_MS) {
        due = performance.now() + timeoutMs;
        timer.refresh();
        return;
      }
      setImmediate(() => {
        if (done()) return finish();
        this.options.onLimit('handshakeTimeoutMs');
        socket.destroy();
      });
    };
    const timer = setTimeout(expire, timeoutMs);
    timer.unref();
    this.handshaking.set(socket, done);
    socket.on('close', finish);
    return finish;
  }

  /** TLS: reads until the first bytes show a handshake (a ClientHello, small), then hands the socket over with them put back. */
  private sniff(socket: net.Socket): void {
    let decided = false;
    const cancel = this.deadline(socket, () => decided);
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const verdict = classify(head, this.options.expect);
      if (verdict === 'more') return;
      decided = true;
      cancel();
      socket.off('data', onData);
      socket.pause();
      if (verdict === 'refuse') {
        this.options.onRefused('not-grpc');
        socket.destroy();
        return;
      }
      socket.unshift(head);
      this.options.inject(socket);
    };
    socket.on('data', onData);
    socket.resume();
  }
}

function destroyEmitter(this: net.Socket): void {
  this.destroy();
}
