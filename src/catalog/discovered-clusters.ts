import { endpointName } from './endpoint-key.js';
import { withPolicy } from './discovered-overrides.js';
import { listClustersInTurnsOf, type CatalogStore, type MaybePromise } from './store/catalog-store.js';
import { NotFoundError } from './store/errors.js';
import type { OverrideOptions, OverrideRecord, OverrideTarget, OverrideValue } from './store/override-records.js';
import type { ClusterInput, ClusterRecord, DeleteClusterOptions, DeleteListenerOptions, EndpointRecord, EndpointSpec, OperatorState, Owner, SeedOptions, SeedResult, StateOptions, WriteOptions, WriteResult } from './store/records.js';
import type { Catalog, Cluster, Listener, NodeGroup } from './types.js';

/** The clusters discovery contributes now (before overrides), and when that view last changed. */
export class DiscoveredView {
  private current: readonly Cluster[] = [];
  private at = new Date().toISOString();

  constructor(private readonly now: () => Date = () => new Date()) {}

  set(clusters: readonly Cluster[]): void {
    this.current = clusters;
    this.at = this.now().toISOString();
  }

  clusters(): readonly Cluster[] {
    return this.current;
  }

  updatedAt(): string {
    return this.at;
  }
}

/**
 * The durable store as the admin API sees it: discovered clusters (those no store cluster
 * shadows) are listed and read as records with owner `kubernetes`, their overrides applied; an
 * endpoint state change on one becomes an override (the store never holds discovered clusters).
 *
 * A discovered cluster's revision is its policy override's, an endpoint's its state override's,
 * 0 while there is none (so `If-Match: "0"` means: no override yet). Unlike a store cluster's, a
 * discovered cluster's revision does not cover its endpoints (they have overrides of their own).
 */
export class DiscoveryAwareStore implements CatalogStore {
  constructor(
    private readonly store: CatalogStore,
    private readonly view: DiscoveredView,
  ) {}

  getCluster(name: string): ClusterRecord | undefined {
    return this.store.getCluster(name) ?? this.discovered(name);
  }

  clusterOwner(name: string): Owner | undefined {
    return this.store.clusterOwner(name) ?? (this.isDiscovered(name) ? 'kubernetes' : undefined);
  }

  listClusters(): ClusterRecord[] {
    return this.withDiscovered(this.store.listClusters());
  }

  async listClustersInTurns(turn: () => Promise<void>): Promise<ClusterRecord[]> {
    // The discovered ones are read after the store's (in memory, at once): one view of them.
    return this.withDiscovered(await listClustersInTurnsOf(this.store, turn));
  }

  /** The store's clusters and the discovered ones no store cluster shadows, by name. */
  private withDiscovered(own: ClusterRecord[]): ClusterRecord[] {
    const names = new Set(own.map((c) => c.name));
    const overrides = this.overrides();
    const found = this.view.clusters().filter((c) => !names.has(c.name)).map((c) => this.record(c, overrides));
    return [...own, ...found].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  getEndpoint(cluster: string, address: string, port: number): EndpointRecord | undefined {
    if (this.store.clusterOwner(cluster) !== undefined) return this.store.getEndpoint(cluster, address, port);
    return this.discovered(cluster)?.endpoints.find((e) => e.address === address && e.port === port);
  }

  /** On a discovered endpoint: stored as its override (`active` too, so its ETag stays the override's). */
  setEndpointState(cluster: string, address: string, port: number, state: OperatorState, opts: StateOptions): MaybePromise<WriteResult> {
    if (this.store.clusterOwner(cluster) !== undefined || !this.isDiscovered(cluster)) return this.store.setEndpointState(cluster, address, port, state, opts);
    const e = this.getEndpoint(cluster, address, port);
    if (!e) throw new NotFoundError('endpoint', endpointName(cluster, { address, port }));
    // Enabling an endpoint nothing overrides changes nothing (and stores nothing).
    if (e.revision === 0 && state === 'active') return { revision: 0 };
    // opts.ifMatch is the revision the caller saw (0: no override yet), re-checked by the store.
    return this.store.putOverride({ cluster, endpoint: { address, port } }, { state }, opts);
  }

  /** Whether discovery contributes `name`: without building its record (every override read, every endpoint's record). */
  private isDiscovered(name: string): boolean {
    return this.view.clusters().some((x) => x.name === name);
  }

  private discovered(name: string): ClusterRecord | undefined {
    const c = this.view.clusters().find((x) => x.name === name);
    return c && this.record(c, this.overrides());
  }

  /** Every override by name, read once per answer (a cluster may have thousands of endpoints). */
  private overrides(): ReadonlyMap<string, OverrideRecord> {
    return new Map(this.store.listOverrides().map((o) => [o.name, o]));
  }

  private record(c: Cluster, overrides: ReadonlyMap<string, OverrideRecord>): ClusterRecord {
    const policy = overrides.get(c.name);
    const updatedAt = policy?.updatedAt ?? this.view.updatedAt();
    const { endpoints, ...spec } = withPolicy(c, policy?.value.policy);
    return {
      ...spec,
      owner: 'kubernetes',
      revision: policy?.revision ?? 0,
      updatedAt,
      endpoints: endpoints.map((e): EndpointRecord => {
        const o = overrides.get(endpointName(c.name, e));
        return { ...e, cluster: c.name, state: o?.value.state ?? 'active', owner: 'kubernetes', revision: o?.revision ?? 0, updatedAt: o?.updatedAt ?? updatedAt };
      }),
    };
  }

  // ---------------------------------------------------------------- the store's own, unchanged

  catalog(): Catalog {
    return this.store.catalog();
  }
  revision(): number {
    return this.store.revision();
  }
  getListener(name: string) {
    return this.store.getListener(name);
  }
  listListeners() {
    return this.store.listListeners();
  }
  getNodeGroup(nodeCluster: string) {
    return this.store.getNodeGroup(nodeCluster);
  }
  listNodeGroups() {
    return this.store.listNodeGroups();
  }
  pruneAudit(keepLast: number, maxRows?: number): MaybePromise<number> {
    return this.store.pruneAudit(keepLast, maxRows);
  }
  // The read options too: without `trimOver` a page of the log decoded every large entry in full
  // (5 × 9 MB of a 20k-endpoint cluster's changes: 400–550 ms of one task) to summarise it.
  audit(...args: Parameters<CatalogStore['audit']>) {
    return this.store.audit(...args);
  }
  onChange(listener: Parameters<CatalogStore['onChange']>[0]): () => void {
    return this.store.onChange(listener);
  }
  putCluster(input: ClusterInput, opts: WriteOptions) {
    return this.store.putCluster(input, opts);
  }
  deleteCluster(name: string, opts: DeleteClusterOptions) {
    return this.store.deleteCluster(name, opts);
  }
  putEndpoint(cluster: string, endpoint: EndpointSpec, opts: WriteOptions) {
    return this.store.putEndpoint(cluster, endpoint, opts);
  }
  removeEndpoint(cluster: string, address: string, port: number, opts: WriteOptions) {
    return this.store.removeEndpoint(cluster, address, port, opts);
  }
  putListener(listener: Listener, opts: WriteOptions) {
    return this.store.putListener(listener, opts);
  }
  deleteListener(name: string, opts: DeleteListenerOptions) {
    return this.store.deleteListener(name, opts);
  }
  putNodeGroup(group: NodeGroup, opts: WriteOptions) {
    return this.store.putNodeGroup(group, opts);
  }
  deleteNodeGroup(nodeCluster: string, opts: WriteOptions) {
    return this.store.deleteNodeGroup(nodeCluster, opts);
  }
  seedFromConfig(catalog: Catalog, opts?: SeedOptions): MaybePromise<SeedResult> {
    return this.store.seedFromConfig(catalog, opts);
  }
  listOverrides(): OverrideRecord[] {
    return this.store.listOverrides();
  }
  getOverride(name: string): OverrideRecord | undefined {
    return this.store.getOverride(name);
  }
  putOverride(target: OverrideTarget, value: OverrideValue, opts: OverrideOptions) {
    return this.store.putOverride(target, value, opts);
  }
  deleteOverride(name: string, opts: OverrideOptions) {
    return this.store.deleteOverride(name, opts);
  }
  saveAllWeights(all: ReadonlyMap<string, ReadonlyMap<string, number>>) {
    return this.store.saveAllWeights(all);
  }
  loadWeights() {
    return this.store.loadWeights();
  }
  deleteWeights(clusters: readonly string[]) {
    return this.store.deleteWeights(clusters);
  }
  weightedClusters() {
    return this.store.weightedClusters();
  }
  health() {
    return this.store.health();
  }
  describe() {
    return this.store.describe();
  }
  close() {
    return this.store.close();
  }
}
