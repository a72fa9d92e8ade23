import type { ServerHttp2Stream } from 'node:http2';
import { TLSSocket } from 'node:tls';

/**
 * How a TLS connection on the xDS port began: a full handshake (certificates exchanged and
 * verified), a resumed session (a ticket from an earlier connection, to this process or, with a
 * shared ticket key, to another replica or before a restart), or a resumed session refused (the
 * connection is closed): its client certificate is no longer within its validity, or it has none
 * where one is required.
 */
export type TlsHandshake = 'full' | 'resumed' | 'resumed_refused';

export interface TlsSessionDeps {
  /** Wall clock, ms since the epoch (certificates' validity is in wall-clock time). */
  readonly now: () => number;
  /** The port refuses a handshake without a valid client certificate. */
  readonly requireCert: boolean;
  readonly onHandshake: (handshake: TlsHandshake) => void;
}

/**
 * Looks at each TLS connection once, at its first stream, before any request on it is read.
 *
 * A session ticket carries the client certificate that was verified at the full handshake, and
 * OpenSSL does not verify it again when the session resumes; tickets live for days, client
 * certificates often for hours. node has no hook to refuse a ticket during the handshake, so a
 * resumed connection whose certificate has expired since is closed at its first stream (Go's
 * crypto/tls refuses such a ticket outright), and so is one without a certificate where one is
 * required (tickets are bound to the policy they were made under, transport-security.ts; this
 * holds even if that binding failed). A client that keeps offering such a session is closed each
 * time: an Envoy starts a new session cache when its certificate changes.
 */
export class TlsSessions {
  /** Sessions already looked at (weakly: a closed connection leaves nothing here). */
  private readonly seen = new WeakSet<object>();

  constructor(private readonly deps: TlsSessionDeps) {}

  /** False when the stream's connection was closed here (the stream with it), or is gone. */
  admit(stream: ServerHttp2Stream): boolean {
    const session = stream.session;
    // A stream whose session is gone has nothing to serve.
    if (session === undefined) return false;
    if (this.seen.has(session)) return true;
    this.seen.add(session);
    // node's proxy of the session's socket: reads go to the TLSSocket, and so does instanceof.
    const socket: unknown = session.socket;
    // This port serves TLS only: anything else is closed rather than served unchecked.
    const handshake = socket instanceof TLSSocket ? handshakeOf(socket, this.deps.now(), this.deps.requireCert) : 'resumed_refused';
    this.deps.onHandshake(handshake);
    if (handshake !== 'resumed_refused') return true;
    session.destroy();
    return false;
  }
}

/** Which handshake began the connection of `socket`, judged at `now`; `requireCert`: the port requires a client certificate. */
export function handshakeOf(socket: TLSSocket, now: number, requireCert: boolean): TlsHandshake {
  if (!socket.isSessionReused()) return 'full';
  // The X509Certificate, not getPeerCertificate(): that one builds every field of the certificate
  // as JavaScript (~190 µs a connection in a storm of resumed sessions), this one reads two.
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) return requireCert ? 'resumed_refused' : 'resumed';
  // A certificate that failed verification (an optional one) makes an anonymous connection, as
  // in a full handshake: its dates change nothing.
  if (!socket.authorized) return 'resumed';
  return withinValidity(cert.validFrom, cert.validTo, now) ? 'resumed' : 'resumed_refused';
}

/** OpenSSL's dates ("Dec  5 21:40:00 2026 GMT"); one that does not parse counts as outside. */
export function withinValidity(validFrom: string, validTo: string, now: number): boolean {
  const from = Date.parse(validFrom);
  const to = Date.parse(validTo);
  return Number.isFinite(from) && Number.isFinite(to) && now >= from && now <= to;
}
