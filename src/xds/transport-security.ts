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
 * exchange and its signatures (a fifth to a third of the event loop's time per connection in a
 * storm over mTLS: bench/RESULTS.md, tls31). node gives each process (and each rotation) random
 * ticket keys, so after a restart, or against another replica, every proxy does a full handshake
 * again, all at once. With `sessionTicketKeyFile` every replica and every restart derives the same
 * key from the file, bound to the client CA and to whether a client certificate is asked for and
 * required: a session made under another CA or policy does not resume.
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
   * restarts that share it resume each other's TLS sessions. Guard it as the client CA's signing
   * key: who holds it can make a ticket that resumes as any client identity, and can decrypt
   * recorded TLS 1.2 sessions.
   */
  readonly sessionTicketKeyFile?: string;
  /** How long a session ticket may be resumed, seconds (default: 2 days with a ticket-key file, else node's); TLS 1.3 allows 7 days. */
  readonly sessionLifetimeSeconds?: number;
}

export const DEFAULT_TLS_RELOAD_MS = 10_000;
/**
 * BoringSSL's (so Envoy's) client-side lifetime of a TLS 1.3 session. A client also keeps its own
 * limit: BoringSSL offers a TLS 1.2 session for 2 hours only, so an Envoy on its default (TLS 1.2
 * upstream) resumes within 2 hours of its last full handshake.
 */
export const DEFAULT_SESSION_LIFETIME_S = 2 * 24 * 3600;
/** What a ticket-key file must hold at least: a key for a 128-bit cipher and its MAC, with margin. */
export const MIN_TICKET_SECRET_BYTES = 32;
/** A ticket-key file is a secret, not a document: anything larger is a wrong path. */
const MAX_TICKET_SECRET_BYTES = 64 * 1024;
/** node takes a 48-byte ticket key: 16 bytes of name, 16 of HMAC secret, 16 of AES key. */
const TICKET_KEY_BYTES = 48;
const TICKET_KEY_SALT = 'fulcrum xds tls session tickets v1';
/** Whether the port asks proxies for a client certificate, and refuses a handshake without a valid one. */
export interface VerifyPolicy {
  readonly requestCert: boolean;
  readonly requireCert: boolean;
}

export function verifyPolicyOf(s: XdsTlsSettings): VerifyPolicy {
  return { requestCert: s.clientCaFile !== undefined, requireCert: s.clientCaFile !== undefined && s.requireClientCert !== false };
}

/**
 * What a session is bound to: the verification policy and the client CA. A TLS 1.3 session made
 * without a certificate where none was required resumes as authorized (node 20), so one made
 * under an optional policy must not resume where a certificate is required.
 */
function bindingOf(policy: VerifyPolicy, clientCa: Buffer | undefined): Buffer {
  return createHash('sha256').update(`request=${policy.requestCert} require=${policy.requireCert}\n`).update(clientCa ?? '').digest();
}

/**
 * The session context OpenSSL checks before it resumes a session: the same in every replica
 * (node's default hashes the process's argv, which replicas need not share) and different under
 * another policy or CA (a session made under those then does a full handshake).
 */
function sessionIdContextOf(policy: VerifyPolicy, clientCa: Buffer | undefined): string {
  return createHash('sha256').update('fulcrum xds').update(bindingOf(policy, clientCa)).digest('hex').slice(0, 32);
}

interface PemSet {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
}

export type TlsReload =
  | { readonly result: 'unchanged' }
  | {
      readonly result: 'reloaded';
      readonly fingerprint: string;
      readonly validTo: string;
      /** The session-ticket key changed (a new file, or a new CA): sessions made before do a full handshake. */
      readonly ticketKeyChanged: boolean;
      /** The ticket-key file is not usable (the previous key stays); the certificates were applied. */
      readonly ticketKeyError?: string;
    }
  | { readonly result: 'failed'; readonly error: string };

const readSetting = (file: string, what: string): Buffer => {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`server.xds.tls.${what}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
};

/** Reads the PEM files; an unreadable one is an error naming its setting and path. */
function readPemSet(s: XdsTlsSettings): PemSet {
  const cert = readSetting(s.certFile, 'certFile');
  const key = readSetting(s.keyFile, 'keyFile');
  const ca = s.clientCaFile === undefined ? undefined : readSetting(s.clientCaFile, 'clientCaFile');
  return { cert, key, ...(ca ? { ca } : {}) };
}

/** The ticket-key file's secret; throws naming the setting when unreadable, too short or too long. */
function readTicketSecret(file: string): Buffer {
  const bytes = readSetting(file, 'sessionTicketKeyFile');
  if (bytes.length < MIN_TICKET_SECRET_BYTES || bytes.length > MAX_TICKET_SECRET_BYTES) {
    throw new Error(
      `server.xds.tls.sessionTicketKeyFile: ${file} holds ${bytes.length} bytes; it must hold ${MIN_TICKET_SECRET_BYTES} to ${MAX_TICKET_SECRET_BYTES} random bytes (e.g. openssl rand 48)`,
    );
  }
  return bytes;
}

/**
 * The 48-byte ticket key from the secret, bound to the verification policy and the client CA:
 * the same files and settings give the same key in every replica; another CA or policy gives
 * another key, so sessions made under a CA that was replaced, or without the certificate now
 * required, no longer resume.
 */
export function ticketKeyOf(secret: Buffer, clientCa: Buffer | undefined, policy: VerifyPolicy): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, TICKET_KEY_SALT, bindingOf(policy, clientCa), TICKET_KEY_BYTES));
}

/** With a ticket-key file the default is long (restarts are what it is for); without, node's own. */
const lifetimeOf = (s: XdsTlsSettings): number | undefined => s.sessionLifetimeSeconds ?? (s.sessionTicketKeyFile === undefined ? undefined : DEFAULT_SESSION_LIFETIME_S);

/**
 * Throws (naming the files) unless the set makes a TLS context: PEM that parses, a key that
 * matches, and a certificate that has not expired. An expired one parses and matches its key, but
 * every proxy refuses it at the handshake: a rotation to it would cut every new connection while
 * the previous pair still serves.
 */
function checkPemSet(s: XdsTlsSettings, options: SecureContextOptions, now: number): X509Certificate {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(options.cert as Buffer);
    if (options.ca) new X509Certificate(options.ca as Buffer);
    createSecureContext(options);
  } catch (err) {
    const files = [s.certFile, s.keyFile, ...(s.clientCaFile ? [s.clientCaFile] : [])].join(' / ');
    throw new Error(`server.xds.tls: ${files}: not a usable certificate, key and CA: ${(err as Error).message}`, { cause: err });
  }
  if (Date.parse(leaf.validTo) <= now) throw new Error(`server.xds.tls.certFile: ${s.certFile}: the certificate expired on ${leaf.validTo}`);
  return leaf;
}

/**
 * The secure-context options of a set and the ticket-key secret; also what a rotation hands to
 * node's setSecureContext, which resets what it is not given (the session context to node's argv
 * hash, the ticket key to a random one).
 */
function contextOptions(s: XdsTlsSettings, pems: PemSet, secret: Buffer | undefined): SecureContextOptions {
  const policy = verifyPolicyOf(s);
  const lifetime = lifetimeOf(s);
  return {
    cert: pems.cert,
    key: pems.key,
    ...(pems.ca ? { ca: pems.ca } : {}),
    ...(secret ? { ticketKeys: ticketKeyOf(secret, pems.ca, policy) } : {}),
    sessionIdContext: sessionIdContextOf(policy, pems.ca),
    ...(lifetime !== undefined ? { sessionTimeout: lifetime } : {}),
  };
}

const digestOf = (options: SecureContextOptions): string =>
  createHash('sha256')
    .update(options.cert as Buffer)
    .update(options.key as Buffer)
    .update((options.ca as Buffer | undefined) ?? '')
    .update(options.ticketKeys ?? '')
    .digest('hex');

/** Server credentials whose certificate, key, client CA and ticket-key secret are re-read from disk when they change. */
export class ReloadingServerCredentials extends grpc.ServerCredentials {
  private digest: string;
  /** The last set that failed, so an unusable set is reported once, not at every poll. */
  private failedDigest: string | undefined;
  /** The ticket-key secret in use (the last good one when the file has gone bad since). */
  private secret: Buffer | undefined;
  /** The ticket-key file's last error, reported once; undefined while it reads well. */
  private secretError: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  /**
   * Reads and checks the files now: a bad certificate or ticket-key file fails startup rather than
   * the first handshake. `now`: the wall clock certificates' validity is read against.
   */
  constructor(
    private readonly settings: XdsTlsSettings,
    private readonly now: () => number = Date.now,
  ) {
    const pems = readPemSet(settings);
    const secret = settings.sessionTicketKeyFile === undefined ? undefined : readTicketSecret(settings.sessionTicketKeyFile);
    const options = contextOptions(settings, pems, secret);
    checkPemSet(settings, options, now());
    const policy = verifyPolicyOf(settings);
    // requestCert asks proxies for a certificate; rejectUnauthorized refuses the handshake without a valid one.
    super({ requestCert: policy.requestCert, rejectUnauthorized: policy.requireCert }, options);
    this.digest = digestOf(options);
    this.secret = secret;
  }

  get mutual(): boolean {
    return this.settings.clientCaFile !== undefined;
  }

  /** A handshake without a valid client certificate is refused. */
  get requiresClientCert(): boolean {
    return verifyPolicyOf(this.settings).requireCert;
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }

  /**
   * Re-reads the files; applies them when they changed and form a usable context. A ticket-key
   * file gone bad keeps the last good secret and does not hold back a certificate rotation; its
   * error is reported once.
   */
  reload(): TlsReload {
    let digest: string | undefined;
    try {
      const pems = readPemSet(this.settings);
      const secret = this.readSecret();
      // The ticket-key file's error, when not reported before.
      const ticketError = secret.error !== this.secretError ? secret.error : undefined;
      if (secret.error === undefined) this.secretError = undefined;
      const options = contextOptions(this.settings, pems, secret.value);
      digest = digestOf(options);
      if (digest === this.digest || digest === this.failedDigest) {
        if (ticketError === undefined) return { result: 'unchanged' };
        this.secretError = ticketError;
        return { result: 'failed', error: ticketError };
      }
      const leaf = checkPemSet(this.settings, options, this.now());
      // The key in use is in the options the credentials hold (grpc-js keeps the latest).
      const ticketKeyChanged = !sameBytes(options.ticketKeys, this._getSecureContextOptions()?.ticketKeys);
      this.updateSecureContextOptions(options);
      this.digest = digest;
      this.secret = secret.value;
      if (ticketError !== undefined) this.secretError = ticketError;
      return { result: 'reloaded', fingerprint: leaf.fingerprint256, validTo: leaf.validTo, ticketKeyChanged, ...(ticketError ? { ticketKeyError: ticketError } : {}) };
    } catch (err) {
      this.failedDigest = digest;
      return { result: 'failed', error: (err as Error).message };
    }
  }

  /** The ticket-key secret to use now: the file's, or the last good one (and the file's error). */
  private readSecret(): { value: Buffer | undefined; error?: string } {
    const file = this.settings.sessionTicketKeyFile;
    if (file === undefined) return { value: undefined };
    try {
      return { value: readTicketSecret(file) };
    } catch (err) {
      return { value: this.secret, error: `${(err as Error).message}; the previous session-ticket key stays` };
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

function sameBytes(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}
