import * as grpc from '@grpc/grpc-js';
import { createHash, hkdfSync, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';

/**
 * TLS (and with a client CA, mTLS) on the xDS port, with certificates that rotate.
 *
 * grpc-js 1.14 lets a ServerCredentials push new secure-context options to the servers bound with
 * it (`updateSecureContextOptions` → `Http2SecureServer.setSecureContext`): connections made after
 * that use the new certificate, established ones keep theirs. Its own FileWatcherCertificateProvider
 * publishes whatever it read, so a rotation caught half-written (the new certificate beside the
 * old key) would leave the port without credentials; here the files are polled, and a new set
 * is applied only once it forms a usable context, else the last good one stays (and it is logged).
 *
 * Session resumption: a proxy that reconnects with a session ticket skips the certificate
 * exchange and its signatures, most of a full handshake's CPU. node gives each process (and each
 * rotation) random ticket keys, so after a restart, or against another replica, every proxy does
 * a full handshake again, all at once. With `sessionTicketKeyFile` every replica and every restart
 * derives the same key from the file (and the client CA: a new CA voids every ticket, so no
 * session made under the old one resumes).
 */

export interface XdsTlsSettings {
  /** PEM certificate chain served to proxies. */
  readonly certFile: string;
  /** PEM private key of `certFile`. */
  readonly keyFile: string;
  /** PEM CA bundle that client certificates must chain to; set, proxies may present certificates (mTLS). */
  readonly clientCaFile?: string;
  /** With `clientCaFile`: refuse a handshake without a valid client certificate (default true). */
  readonly requireClientCert?: boolean;
  /** How often the files are checked for a change (default 10 000 ms). */
  readonly reloadIntervalMs?: number;
  /**
   * A secret (at least 32 random bytes) the session-ticket key is derived from: replicas and
   * restarts that share it resume each other's TLS sessions. Guard it as the server key: who holds
   * it can answer a resumption as the server.
   */
  readonly sessionTicketKeyFile?: string;
  /** How long a session ticket may be resumed, seconds (default 2 days, TLS 1.3 allows 7). */
  readonly sessionLifetimeSeconds?: number;
}

export const DEFAULT_TLS_RELOAD_MS = 10_000;
/** BoringSSL's (so Envoy's) default lifetime of a TLS 1.3 session: a proxy connected a day ago still resumes after a restart. */
export const DEFAULT_SESSION_LIFETIME_S = 2 * 24 * 3600;
/** What a ticket-key file must hold at least: a key for a 128-bit cipher and its MAC, with margin. */
export const MIN_TICKET_SECRET_BYTES = 32;
/** A ticket-key file is a secret, not a document: anything larger is a wrong path. */
const MAX_TICKET_SECRET_BYTES = 64 * 1024;
/** node takes a 48-byte ticket key: 16 bytes of name, 16 of HMAC secret, 16 of AES key. */
const TICKET_KEY_BYTES = 48;
const TICKET_KEY_SALT = 'fulcrum xds tls session tickets v1';
/**
 * Fixed rather than node's default (a hash of the process's argv): resuming a session made with a
 * client certificate needs the same context on both ends, and replicas started with other
 * arguments would otherwise refuse each other's sessions.
 */
const SESSION_ID_CONTEXT = createHash('sha256').update('fulcrum xds').digest('hex').slice(0, 32);

interface PemSet {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
  /** The derived session-ticket key, with `sessionTicketKeyFile`. */
  readonly ticketKeys?: Buffer;
}

export type TlsReload =
  | { readonly result: 'unchanged' }
  | { readonly result: 'reloaded'; readonly fingerprint: string; readonly validTo: string }
  | { readonly result: 'failed'; readonly error: string };

/** Reads the PEM files; an unreadable one is an error naming its setting and path. */
function readPemSet(s: XdsTlsSettings): PemSet {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`server.xds.tls.${what}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  const cert = read(s.certFile, 'certFile');
  const key = read(s.keyFile, 'keyFile');
  const ca = s.clientCaFile === undefined ? undefined : read(s.clientCaFile, 'clientCaFile');
  const secret = s.sessionTicketKeyFile === undefined ? undefined : ticketSecret(s.sessionTicketKeyFile, read(s.sessionTicketKeyFile, 'sessionTicketKeyFile'));
  return { cert, key, ...(ca ? { ca } : {}), ...(secret ? { ticketKeys: ticketKeyOf(secret, ca) } : {}) };
}

function ticketSecret(file: string, bytes: Buffer): Buffer {
  if (bytes.length < MIN_TICKET_SECRET_BYTES || bytes.length > MAX_TICKET_SECRET_BYTES) {
    throw new Error(
      `server.xds.tls.sessionTicketKeyFile: ${file} holds ${bytes.length} bytes; it must hold ${MIN_TICKET_SECRET_BYTES} to ${MAX_TICKET_SECRET_BYTES} random bytes (e.g. openssl rand 48)`,
    );
  }
  return bytes;
}

/**
 * The 48-byte ticket key from the secret, bound to the client CA: the same files give the same key
 * in every replica, and another CA gives another key, so sessions verified under a CA that was
 * replaced no longer resume.
 */
export function ticketKeyOf(secret: Buffer, clientCa: Buffer | undefined): Buffer {
  const info = createHash('sha256').update(clientCa ?? '').digest();
  return Buffer.from(hkdfSync('sha256', secret, TICKET_KEY_SALT, info, TICKET_KEY_BYTES));
}

const lifetimeOf = (s: XdsTlsSettings): number => s.sessionLifetimeSeconds ?? DEFAULT_SESSION_LIFETIME_S;

/** Throws (naming the files) unless the set makes a TLS context: PEM that parses, a key that matches. */
function checkPemSet(s: XdsTlsSettings, pems: PemSet): X509Certificate {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(pems.cert);
    if (pems.ca) new X509Certificate(pems.ca);
    createSecureContext(contextOptions(pems, lifetimeOf(s)));
  } catch (err) {
    const files = [s.certFile, s.keyFile, ...(s.clientCaFile ? [s.clientCaFile] : [])].join(' / ');
    throw new Error(`server.xds.tls: ${files}: not a usable certificate, key and CA: ${(err as Error).message}`, { cause: err });
  }
  return leaf;
}

/** Also what a rotation hands to node's setSecureContext, which resets what it is not given (the session context, the ticket key). */
const contextOptions = (pems: PemSet, lifetimeS: number): SecureContextOptions => ({
  cert: pems.cert,
  key: pems.key,
  ...(pems.ca ? { ca: pems.ca } : {}),
  ...(pems.ticketKeys ? { ticketKeys: pems.ticketKeys } : {}),
  sessionIdContext: SESSION_ID_CONTEXT,
  sessionTimeout: lifetimeS,
});
const digestOf = (pems: PemSet): string =>
  createHash('sha256').update(pems.cert).update(pems.key).update(pems.ca ?? '').update(pems.ticketKeys ?? '').digest('hex');

/** Server credentials whose certificate, key and client CA are re-read from disk when they change. */
export class ReloadingServerCredentials extends grpc.ServerCredentials {
  private digest: string;
  /** The last set that failed, so an unusable set is reported once, not at every poll. */
  private failedDigest: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** Reads and checks the files now: a bad certificate fails startup rather than the first handshake. */
  constructor(private readonly settings: XdsTlsSettings) {
    const pems = readPemSet(settings);
    checkPemSet(settings, pems);
    const requireCert = settings.clientCaFile !== undefined && settings.requireClientCert !== false;
    // requestCert asks proxies for a certificate; rejectUnauthorized refuses the handshake without a valid one.
    super({ requestCert: settings.clientCaFile !== undefined, rejectUnauthorized: requireCert }, contextOptions(pems, lifetimeOf(settings)));
    this.digest = digestOf(pems);
  }

  get mutual(): boolean {
    return this.settings.clientCaFile !== undefined;
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }

  /** Re-reads the files; applies them when they changed and form a usable context. */
  reload(): TlsReload {
    let digest: string | undefined;
    try {
      const pems = readPemSet(this.settings);
      digest = digestOf(pems);
      if (digest === this.digest || digest === this.failedDigest) return { result: 'unchanged' };
      const leaf = checkPemSet(this.settings, pems);
      this.updateSecureContextOptions(contextOptions(pems, lifetimeOf(this.settings)));
      this.digest = digest;
      return { result: 'reloaded', fingerprint: leaf.fingerprint256, validTo: leaf.validTo };
    } catch (err) {
      this.failedDigest = digest;
      return { result: 'failed', error: (err as Error).message };
    }
  }

  /** Polls the files (polling survives the symlink swaps of Kubernetes Secret mounts, which fs.watch misses). */
  watch(onReload: (outcome: TlsReload) => void): void {
    if (this.timer) return;
    const every = this.settings.reloadIntervalMs ?? DEFAULT_TLS_RELOAD_MS;
    this.timer = setInterval(() => {
      const outcome = this.reload();
      if (outcome.result !== 'unchanged') onReload(outcome);
    }, every);
    this.timer.unref();
  }

  unwatch(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
