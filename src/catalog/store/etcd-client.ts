/**
 * The etcd client every part of fulcrum that talks to etcd builds from the config file's
 * `store.etcd` block (the store, weight ownership, shared proxy status), so they all reach the
 * same cluster with the same credentials.
 */
import { readFileSync } from 'node:fs';
import { handleWhen, retry } from 'cockatiel';
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';

export const DEFAULT_ETCD_PREFIX = '/fulcrum';

export interface EtcdTls {
  /** PEM CA bundle that signed the etcd servers' certificates. */
  readonly ca?: string;
  /** Client certificate and key (PEM files) for etcd's --client-cert-auth. */
  readonly cert?: string;
  readonly key?: string;
}

export interface EtcdSettings {
  /** Client URLs, e.g. `http://10.0.0.1:2379`; https needs `tls.ca`. */
  readonly endpoints: readonly string[];
  /** Every key fulcrum writes starts with it (default `/fulcrum`), so several fulcrums can share an etcd. */
  readonly prefix: string;
  readonly tls?: EtcdTls;
  readonly username?: string;
  readonly password?: string;
  /** A file holding the password (a mounted Secret); read at start. */
  readonly passwordFile?: string;
  /** How long a write may take before it fails with 503 (default 3000). */
  readonly writeTimeoutMs?: number;
}

/** `store:` in the config file. */
export type StoreConfig = { readonly kind: 'sqlite' } | { readonly kind: 'etcd'; readonly etcd: EtcdSettings };

export const DEFAULT_STORE_CONFIG: StoreConfig = { kind: 'sqlite' };

type ReadFile = (path: string) => Buffer;

const DEFAULT_CALL_TIMEOUT_MS = 3_000;

/** gRPC's words for a call that timed out before it left this process. */
export function neverSent(err: Error): boolean {
  return /DEADLINE_EXCEEDED|deadline exceeded/i.test(err.message) && /waiting for (name resolution|LB pick|connection)/.test(err.message);
}

/** The etcd3 client options: files are read here, so a missing certificate fails at start with its path. */
export function etcdClientOptions(settings: EtcdSettings, read: ReadFile = readFileSync): IOptions {
  const file = (path: string, what: string): Buffer => {
    try {
      return read(path);
    } catch (err) {
      throw new Error(`store.etcd.${what}: cannot read ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const { tls } = settings;
  const password =
    settings.passwordFile !== undefined ? file(settings.passwordFile, 'passwordFile').toString('utf8').trim() : settings.password;
  return {
    hosts: [...settings.endpoints],
    dialTimeout: 3_000,
    grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 200, 'grpc.max_reconnect_backoff_ms': 2_000 },
    // Every unary call gets its own deadline (a watch or lease stream none), so a retry has time.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: new Date(Date.now() + (settings.writeTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS)) }),
    // etcd3 retries a call on another member when gRPC reports it unavailable. A call routed to a
    // member that just died can also stall until its deadline without ever being sent (gRPC-js
    // waits on the dead connection's name resolution): that is safe to send elsewhere too.
    faultHandling: { global: retry(handleWhen((err) => isRecoverableError(err) || neverSent(err)), { maxAttempts: 3 }) },
    ...(tls?.ca !== undefined
      ? {
          credentials: {
            rootCertificate: file(tls.ca, 'tls.ca'),
            ...(tls.cert !== undefined ? { certChain: file(tls.cert, 'tls.cert') } : {}),
            ...(tls.key !== undefined ? { privateKey: file(tls.key, 'tls.key') } : {}),
          },
        }
      : {}),
    ...(settings.username !== undefined && password !== undefined ? { auth: { username: settings.username, password } } : {}),
  };
}

/** A connected-on-demand etcd3 client for these settings (close it with `client.close()`). */
export function buildEtcdClient(settings: EtcdSettings, read?: ReadFile): Etcd3 {
  return new Etcd3(etcdClientOptions(settings, read));
}
