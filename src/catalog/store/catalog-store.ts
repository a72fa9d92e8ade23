/**
 * What every durable store offers (SQLite on one node, etcd for several replicas), and so what
 * the admin API, the config-file source, the catalog feed and the weight loop may rely on.
 *
 * Reads are synchronous: SQLite reads its file, the etcd store its in-memory mirror (kept by a
 * watch). Writes may be asynchronous: callers always `await` them. A write that resolves has
 * committed and is visible to this process's reads (read your writes).
 */
import type { Etcd3 } from 'etcd3';
import type { Catalog } from '../types.js';
import type {
  AuditEntry,
  AuditReadOptions,
  ClusterInput,
  ClusterRecord,
  DeleteClusterOptions,
  DeleteListenerOptions,
  EndpointRecord,
  EndpointSpec,
  ListenerRecord,
  NodeGroupRecord,
  OperatorState,
  SeedOptions,
  SeedResult,
  StateOptions,
  StoreChange,
  WriteOptions,
  WriteResult,
  Owner,
} from './records.js';
import type { Listener, NodeGroup } from '../types.js';
import type { OverrideOptions, OverrideRecord, OverrideTarget, OverrideValue } from './override-records.js';

export type ChangeListener = (change: StoreChange) => void;

/** A value now or later: SQLite answers synchronously, etcd after a round trip. */
export type MaybePromise<T> = T | Promise<T>;

/** Whether writes are possible now, and if not why (for /readyz and the 503 of a refused write). */
export interface StoreHealth {
  readonly writable: boolean;
  /** Set when not writable, e.g. "etcd unreachable: deadline exceeded (last success 4.2 s ago)". */
  readonly reason?: string;
}

/** How the store is set up, for diagnostics (the kind tells which fields are there). */
export type StoreDescription =
  | { readonly kind: 'sqlite'; readonly file: string; readonly journalMode: string; readonly synchronous: number; readonly schemaVersion: number }
  | { readonly kind: 'etcd'; readonly endpoints: readonly string[]; readonly prefix: string };

export interface CatalogStore {
  /** The desired state as every later stage sees it (operator state applied; see Store.catalog). */
  catalog(): Catalog;
  /** Highest revision this process has seen; only grows. */
  revision(): number;
  getCluster(name: string): ClusterRecord | undefined;
  /**
   * Whose the cluster is, undefined when there is none: the check an endpoint request makes before
   * touching one endpoint, without reading the cluster's endpoints (20k rows for a big cluster).
   */
  clusterOwner(name: string): Owner | undefined;
  listClusters(): ClusterRecord[];
  /**
   * listClusters read a few clusters at a time with `turn` awaited between (a store whose list
   * holds its event loop for long: SQLite reads every endpoint row), the same snapshot: read again
   * whole if any write landed in between. Absent: listClusters is cheap (an in-memory mirror).
   */
  listClustersInTurns?(turn: () => Promise<void>): Promise<ClusterRecord[]>;
  getEndpoint(cluster: string, address: string, port: number): EndpointRecord | undefined;
  getListener(name: string): ListenerRecord | undefined;
  listListeners(): ListenerRecord[];
  getNodeGroup(nodeCluster: string): NodeGroupRecord | undefined;
  listNodeGroups(): NodeGroupRecord[];
  /** Newest first; `before` (an audit id) pages backwards; large entries trimmed on request. */
  audit(limit?: number, before?: number, options?: AuditReadOptions): AuditEntry[];
  /** Deletes all but the newest `keepLast` audit entries, at most `maxRows` of the oldest; how many it deleted. */
  pruneAudit(keepLast: number, maxRows?: number): MaybePromise<number>;
  /** Once per committed change of desired state, whoever made it. Returns an unsubscribe function. */
  onChange(listener: ChangeListener): () => void;

  putCluster(input: ClusterInput, opts: WriteOptions): MaybePromise<WriteResult>;
  /** With `opts.successor`, the config file's definition replaces the cluster in the same transaction (a hand-over: never a state without it). */
  deleteCluster(name: string, opts: DeleteClusterOptions): MaybePromise<WriteResult>;
  putEndpoint(cluster: string, endpoint: EndpointSpec, opts: WriteOptions): MaybePromise<WriteResult>;
  removeEndpoint(cluster: string, address: string, port: number, opts: WriteOptions): MaybePromise<WriteResult>;
  setEndpointState(cluster: string, address: string, port: number, state: OperatorState, opts: StateOptions): MaybePromise<WriteResult>;
  putListener(listener: Listener, opts: WriteOptions): MaybePromise<WriteResult>;
  /** With `opts.successor`, the config file's definition replaces the listener in the same transaction (unless another source's listener binds its socket). */
  deleteListener(name: string, opts: DeleteListenerOptions): MaybePromise<WriteResult>;
  putNodeGroup(group: NodeGroup, opts: WriteOptions): MaybePromise<WriteResult>;
  deleteNodeGroup(nodeCluster: string, opts: WriteOptions): MaybePromise<WriteResult>;
  /**
   * Makes the `file`-owned resources match the config file's catalog (see Store.seedFromConfig).
   * The catalog's objects must not be changed once handed over: a later seed given one of them
   * again may skip it as already written (Store.seeded, etcd-plans.ts planSeed).
   */
  seedFromConfig(catalog: Catalog, opts?: SeedOptions): MaybePromise<SeedResult>;

  /** Operator overrides on discovered (Kubernetes) clusters and endpoints, sorted by name; kept while their target is gone. */
  listOverrides(): OverrideRecord[];
  getOverride(name: string): OverrideRecord | undefined;
  /** Creates or replaces an override (audited as kind `override`); the same value again is a no-op. */
  putOverride(target: OverrideTarget, value: OverrideValue, opts: OverrideOptions): MaybePromise<WriteResult>;
  /** Throws NotFoundError when there is none. */
  deleteOverride(name: string, opts: OverrideOptions): MaybePromise<WriteResult>;

  /** Replaces the published weights of every cluster in `all`; others keep theirs. */
  saveAllWeights(all: ReadonlyMap<string, ReadonlyMap<string, number>>): MaybePromise<void>;
  /** cluster → endpoint key → weight, as last saved (by any replica). */
  loadWeights(): Map<string, Map<string, number>>;
  /** Deletes the published weights of `clusters` (clusters gone from the catalog without a store delete: discovered ones). */
  deleteWeights(clusters: readonly string[]): MaybePromise<void>;
  /** The clusters that have published weights saved. */
  weightedClusters(): string[];

  health(): StoreHealth;
  describe(): StoreDescription;
  /**
   * The shared client and key prefix when the store lives in etcd, so replication (leases,
   * ownership, proxy status) reuses the store's connection instead of opening a second one.
   */
  replication?(): { readonly client: Etcd3; readonly prefix: string };
  close(): MaybePromise<void>;
}

/** The store's clusters read in turns when it offers that (CatalogStore.listClustersInTurns), else at once. */
export function listClustersInTurnsOf(store: CatalogStore, turn: () => Promise<void>): Promise<ClusterRecord[]> {
  return store.listClustersInTurns?.(turn) ?? Promise.resolve(store.listClusters());
}
