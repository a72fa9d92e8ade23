import type { ServerHttp2Stream } from 'node:http2';
import { TLSSocket } from 'node:tls';

/**
 * How a TLS connection on the xDS port began: a full handshake (certificates exchanged and
 * verified), a resumed session (a ticket from an earlier connection, to this process or, with a
 * shared ticket key, to another replica or before a restart), or a resumed session whose client
 * certificate is no longer within its validity (the connection is closed).
 */
export type TlsHandshake = 'full' | 'resumed' | 'resumed_expired';

export interface TlsSessionDeps {
  /** Wall clock, ms since the epoch (certificates' validity is in wall-clock time). */
  readonly now: () => number;
  readonly onHandshake: (handshake: TlsHandshake) => void;
}

/**
 * Looks at each TLS connection once, at its first stream, before any request on it is read.
 *
 * A session ticket carries the client certificate that was verified at the full handshake, and
 * OpenSSL does not verify it again when the session resumes; tickets live for days, client
 * certificates often for hours. node has no hook to refuse a ticket during the handshake, so a
 * resumed connection whose certificate has expired since is closed at its first stream (Go's
 * crypto/tls refuses such a ticket outright). The proxy gets in again only with a full handshake
 * and a valid certificate, as it would have without resumption.
 */
export class TlsSessions {
  /** Sessions already looked at (weakly: a closed connection leaves nothing here). */
  private readonly seen = new WeakSet<object>();

  constructor(private readonly deps: TlsSessionDeps) {}

  /** False when the stream's connection was closed here (the stream with it). */
  admit(stream: ServerHttp2Stream): boolean {
    const session = stream.session;
    if (session === undefined || this.seen.has(session)) return true;
    this.seen.add(session);
    // node's proxy of the session's socket: reads go to the TLSSocket, and so does instanceof.
    const socket: unknown = session.socket;
    if (!(socket instanceof TLSSocket)) return true;
    const handshake = handshakeOf(socket, this.deps.now());
    this.deps.onHandshake(handshake);
    if (handshake !== 'resumed_expired') return true;
    session.destroy();
    return false;
  }
}

/** Which handshake began the connection of `socket`, judged at `now`. */
export function handshakeOf(socket: TLSSocket, now: number): TlsHandshake {
  if (!socket.isSessionReused()) return 'full';
  // The X509Certificate, not getPeerCertificate(): that one builds every field of the certificate
  // as JavaScript (~190 µs a connection in a storm of resumed sessions), this one reads two.
  const cert = socket.getPeerX509Certificate();
  // No client certificate (none asked for, or an optional one not given): nothing to expire.
  if (cert === undefined) return 'resumed';
  return withinValidity(cert.validFrom, cert.validTo, now) ? 'resumed' : 'resumed_expired';
}

/** OpenSSL's dates ("Dec  5 21:40:00 2026 GMT"); one that does not parse counts as outside. */
export function withinValidity(validFrom: string, validTo: string, now: number): boolean {
  const from = Date.parse(validFrom);
  const to = Date.parse(validTo);
  return Number.isFinite(from) && Number.isFinite(to) && now >= from && now <= to;
}
