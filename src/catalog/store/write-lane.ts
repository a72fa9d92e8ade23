/**
 * The SQLite store as the running process uses it: big cluster writes sliced, writes in order.
 *
 * A cluster write with more than `slicedOver` endpoints goes to Store.putClusterSliced, which
 * yields to the event loop while its transaction is open on a second connection; deleting such a
 * cluster, to Store.deleteClusterSliced (likewise, on the same second connection); a config file's
 * seed of more than `slicedOver` endpoints, or replacing a stored file of more, to
 * Store.seedFromConfigSliced (at the process's start, when nothing is served yet, the seed is
 * written in one go). Every other
 * write arriving meanwhile (an endpoint PUT, the weight loop's save, a config reload) is queued
 * and runs, in arrival order, once it has committed: run at once it would wait for the same
 * SQLite lock with the event loop blocked, and the big write could never finish. With nothing in
 * flight a write commits synchronously, as on the bare Store. Reads never wait: they see the last
 * committed state. Each write still resolves only once durable, but its change listeners (the
 * push to proxies) no longer wait for the fsync (Store.durably).
 */
import type { Catalog, Listener, NodeGroup } from '../types.js';
import { listClustersInTurnsOf, type CatalogStore, type ChangeListener, type MaybePromise, type StoreDescription, type StoreHealth } from './catalog-store.js';
import type { OverrideOptions, OverrideRecord, OverrideTarget, OverrideValue } from './override-records.js';
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
  WriteOptions,
  WriteResult,
  Owner,
} from './records.js';
import type { Store } from './store.js';
import { SLICED_OVER } from './sliced-write.js';
import { rethrowStoreFailure } from './sqlite-failures.js';


export class WriteLane implements CatalogStore {
  /** Settles when the last queued write has; undefined when none is in flight. */
  private tail: Promise<unknown> | undefined;
  private inFlight = 0;

  constructor(
    readonly store: Store,
    private readonly slicedOver = SLICED_OVER,
  ) {}

  // ---------------------------------------------------------------- writes

  putCluster(input: ClusterInput, opts: WriteOptions): MaybePromise<WriteResult> {
    if ((input.endpoints?.length ?? 0) > this.slicedOver) return this.queue(() => this.store.putClusterSliced(input, opts));
    return this.durable(() => this.store.putCluster(input, opts));
  }

  /** Sliced when the cluster, or a hand-over's successor, holds more than `slicedOver` endpoints. */
  deleteCluster(name: string, opts: DeleteClusterOptions): MaybePromise<WriteResult> {
    const big = this.store.endpointCount(name) > this.slicedOver || (opts.successor?.cluster.endpoints.length ?? 0) > this.slicedOver;
    if (big) return this.queue(() => this.store.deleteClusterSliced(name, opts));
    return this.durable(() => this.store.deleteCluster(name, opts));
  }

  putEndpoint(cluster: string, endpoint: EndpointSpec, opts: WriteOptions): MaybePromise<WriteResult> {
    return this.durable(() => this.store.putEndpoint(cluster, endpoint, opts));
  }

  removeEndpoint(cluster: string, address: string, port: number, opts: WriteOptions): MaybePromise<WriteResult> {
    return this.durable(() => this.store.removeEndpoint(cluster, address, port, opts));
  }

  setEndpointState(cluster: string, address: string, port: number, state: OperatorState, opts: StateOptions): MaybePromise<WriteResult> {
    return this.durable(() => this.store.setEndpointState(cluster, address, port, state, opts));
  }

  putListener(listener: Listener, opts: WriteOptions): MaybePromise<WriteResult> {
    return this.durable(() => this.store.putListener(listener, opts));
  }

  deleteListener(name: string, opts: DeleteListenerOptions): MaybePromise<WriteResult> {
    return this.durable(() => this.store.deleteListener(name, opts));
  }

  putNodeGroup(group: NodeGroup, opts: WriteOptions): MaybePromise<WriteResult> {
    return this.durable(() => this.store.putNodeGroup(group, opts));
  }

  deleteNodeGroup(nodeCluster: string, opts: WriteOptions): MaybePromise<WriteResult> {
    return this.durable(() => this.store.deleteNodeGroup(nodeCluster, opts));
  }

  /**
   * A config file of more than `slicedOver` endpoints is seeded in slices (Store.seedFromConfigSliced),
   * and so is one that replaces such a file (its seed deletes or rewrites what is stored); at the
   * process's start (nothing served yet), in one go.
   */
  seedFromConfig(catalog: Catalog, opts?: SeedOptions): MaybePromise<SeedResult> {
    const endpoints = catalog.clusters.reduce((n, c) => n + c.endpoints.length, 0);
    // Judged from what is committed now: the config source runs one seed at a time.
    if (opts?.atStart !== true && (endpoints > this.slicedOver || this.store.fileEndpointsOver(this.slicedOver))) {
      return this.queue(() => this.store.seedFromConfigSliced(catalog, opts, { packOver: this.slicedOver }));
    }
    return this.durable(() => this.store.seedFromConfig(catalog, opts));
  }

  putOverride(target: OverrideTarget, value: OverrideValue, opts: OverrideOptions): MaybePromise<WriteResult> {
    return this.durable(() => this.store.putOverride(target, value, opts));
  }

  deleteOverride(name: string, opts: OverrideOptions): MaybePromise<WriteResult> {
    return this.durable(() => this.store.deleteOverride(name, opts));
  }

  saveAllWeights(all: ReadonlyMap<string, ReadonlyMap<string, number>>): MaybePromise<void> {
    return this.durable(() => this.store.saveAllWeights(all));
  }

  /** Queued like saveAllWeights: a save queued before it (behind a sliced write) cannot bring the rows back after it. */
  deleteWeights(clusters: readonly string[]): MaybePromise<void> {
    return this.durable(() => this.store.deleteWeights(clusters));
  }

  pruneAudit(keepLast: number, maxRows?: number): MaybePromise<number> {
    return this.durable(() => this.store.pruneAudit(keepLast, maxRows));
  }

  /** The store closes once the queued writes, every committed write's fsync and a running WAL checkpoint have settled. */
  async close(): Promise<void> {
    await this.tail;
    await this.store.fsyncsSettled();
    await this.store.checkpointsEnded();
    this.store.close();
  }

  /**
   * Commits at once when nothing is in flight, else after what is; without waiting for the disk,
   * so the change is pushed at once. Settles once the WAL is fsynced (Store.durably, wal-sync.ts).
   * The lane does not wait for that fsync: the next write commits meanwhile and shares the next one.
   */
  private durable<T>(write: () => T): Promise<T> {
    return this.inFlight === 0 ? this.store.durably(write).catch(rethrowStoreFailure) : this.queue(() => this.store.durably(write));
  }

  private queue<T>(write: () => Promise<T>): Promise<T> {
    this.inFlight++;
    const run = (this.tail ?? Promise.resolve()).then(write).catch(rethrowStoreFailure);
    // The tail never rejects: a failed write fails its own caller only.
    this.tail = run.then(
      () => this.settled(),
      () => this.settled(),
    );
    return run;
  }

  private settled(): void {
    if (--this.inFlight === 0) this.tail = undefined;
  }

  // ---------------------------------------------------------------- reads (never queued)

  catalog(): Catalog {
    return this.store.catalog();
  }

  revision(): number {
    return this.store.revision();
  }

  clusterOwner(name: string): Owner | undefined {
    return this.store.clusterOwner(name);
  }

  getCluster(name: string): ClusterRecord | undefined {
    return this.store.getCluster(name);
  }

  listClusters(): ClusterRecord[] {
    return this.store.listClusters();
  }

  listClustersInTurns(turn: () => Promise<void>): Promise<ClusterRecord[]> {
    return listClustersInTurnsOf(this.store, turn);
  }

  getEndpoint(cluster: string, address: string, port: number): EndpointRecord | undefined {
    return this.store.getEndpoint(cluster, address, port);
  }

  getListener(name: string): ListenerRecord | undefined {
    return this.store.getListener(name);
  }

  listListeners(): ListenerRecord[] {
    return this.store.listListeners();
  }

  getNodeGroup(nodeCluster: string): NodeGroupRecord | undefined {
    return this.store.getNodeGroup(nodeCluster);
  }

  listNodeGroups(): NodeGroupRecord[] {
    return this.store.listNodeGroups();
  }

  audit(limit?: number, before?: number, options?: AuditReadOptions): AuditEntry[] {
    return this.store.audit(limit, before, options);
  }

  onChange(listener: ChangeListener): () => void {
    return this.store.onChange(listener);
  }

  listOverrides(): OverrideRecord[] {
    return this.store.listOverrides();
  }

  getOverride(name: string): OverrideRecord | undefined {
    return this.store.getOverride(name);
  }

  loadWeights(): Map<string, Map<string, number>> {
    return this.store.loadWeights();
  }

  weightedClusters(): string[] {
    return this.store.weightedClusters();
  }

  health(): StoreHealth {
    return this.store.health();
  }

  describe(): StoreDescription {
    return this.store.describe();
  }
}
