import * as grpc from '@grpc/grpc-js';
import { createHash, X509Certificate } from 'node:crypto';
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
}

export const DEFAULT_TLS_RELOAD_MS = 10_000;

interface PemSet {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
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
  return s.clientCaFile === undefined ? { cert, key } : { cert, key, ca: read(s.clientCaFile, 'clientCaFile') };
}

/** Throws (naming the files) unless the set makes a TLS context: PEM that parses, a key that matches. */
function checkPemSet(s: XdsTlsSettings, pems: PemSet): X509Certificate {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(pems.cert);
    if (pems.ca) new X509Certificate(pems.ca);
    createSecureContext(contextOptions(pems));
  } catch (err) {
    const files = [s.certFile, s.keyFile, ...(s.clientCaFile ? [s.clientCaFile] : [])].join(' / ');
    throw new Error(`server.xds.tls: ${files}: not a usable certificate, key and CA: ${(err as Error).message}`, { cause: err });
  }
  return leaf;
}

const contextOptions = (pems: PemSet): SecureContextOptions => ({ cert: pems.cert, key: pems.key, ...(pems.ca ? { ca: pems.ca } : {}) });
const digestOf = (pems: PemSet): string => createHash('sha256').update(pems.cert).update(pems.key).update(pems.ca ?? '').digest('hex');

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
    super({ requestCert: settings.clientCaFile !== undefined, rejectUnauthorized: requireCert }, contextOptions(pems));
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
      this.updateSecureContextOptions(contextOptions(pems));
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
