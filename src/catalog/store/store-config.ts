/**
 * The config file's `store:` settings, apart from the etcd client (etcd-client.ts) so that reading
 * a config that names SQLite never loads etcd3 (its own gRPC copy and .proto parse: ~28 MiB and
 * ~300 ms of a cold start).
 */

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
  /** etcd's history is compacted this often, keeping one interval of it (default 5 min; 0: never, etcd compacts itself). */
  readonly compactEveryMs?: number;
}

export const DEFAULT_COMPACT_EVERY_MS = 300_000;

/** `store:` in the config file. `auditKeepLast`: audit entries kept (0: all); default by kind (auditKeepLastOf). */
export type StoreConfig = ({ readonly kind: 'sqlite' } | { readonly kind: 'etcd'; readonly etcd: EtcdSettings }) & { readonly auditKeepLast?: number };

/**
 * Audit entries kept by default. The log grew without bound: a controller writing 20 times a
 * second added ~60 MiB an hour to the SQLite file (bench/soak.ts), and on etcd every replica holds
 * the whole log in memory (~1–3 KiB per entry of a 20-endpoint cluster as parsed JSON), so etcd
 * keeps ten times fewer. Entries beyond are deleted oldest first, about once a minute.
 */
export const DEFAULT_AUDIT_KEEP_LAST = { sqlite: 100_000, etcd: 10_000 } as const;

export function auditKeepLastOf(c: StoreConfig): number {
  return c.auditKeepLast ?? DEFAULT_AUDIT_KEEP_LAST[c.kind];
}

export const DEFAULT_STORE_CONFIG: StoreConfig = { kind: 'sqlite' };
