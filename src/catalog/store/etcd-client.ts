/**
 * The etcd client every part of fulcrum that talks to etcd builds from the config file's
 * `store.etcd` block (the store, weight ownership, shared proxy status), so they all reach the
 * same cluster with the same credentials.
 */
import { readFileSync } from 'node:fs';
import { handleWhen, retry } from 'cockatiel';
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';
import type { EtcdSettings } from './store-config.js';

export { DEFAULT_ETCD_PREFIX, DEFAULT_STORE_CONFIG, type EtcdSettings, type EtcdTls, type StoreConfig } from './store-config.js';

type ReadFile = (path: string) => Buffer;

const DEFAULT_CALL_TIMEOUT_MS = 3_000;

/** gRPC's words for a call that timed out before it left this process. */
export function neverSent(err: Error): boolean {
  return /DEADLINE_EXCEEDED|deadline exceeded/i.test(err.message) && /waiting for (name resolution|LB pick|connection)/.test(err.message);
}

/** The etcd3 client options: files are read here, so a missing certificate fails at start with its path. */
/** A constant 300 ms back-off (cockatiel's IBackoff shape: a duration and the next one). */
const QUICK_WATCH_BACKOFF = { duration: 300, next: () => QUICK_WATCH_BACKOFF };

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
    faultHandling: {
      global: retry(handleWhen((err) => isRecoverableError(err) || neverSent(err)), { maxAttempts: 3 }),
      // Watches (the mirror, replication) come back within 300 ms of a member's return; etcd3's
      // default back-off grows to 30 s, which would keep a replica stale long after etcd healed.
      watchBackoff: QUICK_WATCH_BACKOFF,
    },
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
