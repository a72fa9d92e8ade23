/**
 * The durable store on etcd v3, for several fulcrum replicas: the same records, ownership rules
 * and revisions contract as the SQLite store (store.ts), with etcd's revisions as ETags.
 *
 * - Reads come from an in-memory mirror kept by a watch (etcd-mirror.ts): synchronous, identical on
 *   every replica once caught up, and still served while etcd is down (fail static).
 * - A write is planned from the mirror (etcd-plans.ts: ownership, If-Match) and committed as one
 *   transaction that compares the mod_revision of every key the plan read: if another replica
 *   wrote in between, the compare fails, the mirror catches up and the write is planned again,
 *   which either applies it on top or answers 412 (the caller's If-Match is stale now). No lost
 *   update, and the audit entry is in the same transaction as the change.
 * - A write resolves only after etcd committed it AND the mirror reflects it (read your writes).
 * - No quorum / unreachable: writes fail fast with StoreUnavailableError (503); see etcd-health.ts.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3, ICompare, IOperation, ITxnResponse, Namespace } from 'etcd3';
import type { Catalog, Cluster, Listener, NodeGroup } from '../types.js';
import { sameItems } from '../changed-clusters.js';
import type { CatalogStore, ChangeListener, StoreDescription, StoreHealth } from './catalog-store.js';
import { buildEtcdClient, type EtcdSettings } from './etcd-client.js';
import { EtcdHealth, errorText } from './etcd-health.js';
import {
  auditEntryWithin,
  auditId,
  AUDIT_SEQ_SPAN,
  clusterRecord,
  endpointRecord,
  keyOf,
  listenerRecord,
  nodeGroupRecord,
  overrideRecordOf,
  type Entry,
  type StoredAudit,
  type StoredCluster,
  type StoredOverride,
  type StoredSpec,
  type StoredWeights,
} from './etcd-layout.js';
import { EtcdMirror, type MirrorBatch } from './etcd-mirror.js';
import { planDeleteOverride, planPutOverride } from './etcd-override-plans.js';
import type { OverrideOptions, OverrideRecord, OverrideTarget, OverrideValue } from './override-records.js';
import {
  mergePlans,
  planDeleteCluster,
  planDeleteSpec,
  planPutCluster,
  planPutEndpoint,
  planDeleteListener,
  planPutListener,
  planPutNodeGroup,
  planRemoveEndpoint,
  planSeed,
  planSetState,
  guardCompares,
  withCompares,
  type Compare,
  type Outcome,
  type Plan,
  type SeededMods,
} from './etcd-plans.js';
import { ETCD_NO_SPACE, StoreLimitError, StoreUnavailableError } from './errors.js';
import { servedHealth } from './ownership.js';
import { auditedAction, guardOf } from './records.js';
import { WriteLanes } from './write-lanes.js';
import type {
  AuditEntry,
  AuditReadOptions,
  Writing,
  Change,
  ClusterInput,
  ClusterRecord,
  DeleteClusterOptions,
  DeleteListenerOptions,
  EndpointRecord,
  EndpointSpec,
  ListenerRecord,
  NodeGroupRecord,
  OperatorState,
  ResourceKind,
  SeedOptions,
  SeedResult,
  StateOptions,
  StoreChange,
  WriteOptions,
  WriteGuard,
  WriteResult,
  Owner,
} from './records.js';

export interface EtcdStoreOptions {
  readonly now?: () => Date;
  readonly onListenerError?: (err: unknown) => void;
  readonly onWrite?: (ms: number, kind: 'catalog' | 'weights') => void;
  /** Writes refused / resumed (for logs). */
  readonly onHealth?: (health: StoreHealth) => void;
  /** Health probe period (default 1000 ms). */
  readonly probeIntervalMs?: number;
  /** etcd's --max-request-bytes (default 1.5 MiB): larger writes get a StoreLimitError first. */
  readonly maxRequestBytes?: number;
  /** The store's watch of etcd changed state (for logs): once per change, not at every retry. */
  readonly onWatch?: (state: WatchState, reason?: string) => void;
}

/** `lost`: etcd unreachable, the last state read is served; `rewound`: etcd's history went back (a restore), listing again. */
export type WatchState = 'watching' | 'lost' | 'rewound';

const DEFAULT_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
const NO_SPACE_ADVICE =
  'Its space quota is full: compact its history (etcdctl compact), defragment its members (etcdctl defrag) and clear the alarm (etcdctl alarm disarm); ' +
  'then keep it compacted (--auto-compaction-retention, or store.etcd.compactEveryMs)';
/** Room for the transaction's framing, compares and keys around the values. */
const REQUEST_OVERHEAD_BYTES = 16 * 1024;
/** etcd's --max-txn-ops default is 128; stay under it with the audit puts counted. */
const MAX_OPS_PER_TXN = 100;
/** An audit entry's key, time, actor and sequence number, added at commit (an upper bound). */
const AUDIT_STAMP_BYTES = 256;
/** Planning again after losing a race: more than this in a row means heavy contention. */
const MAX_ATTEMPTS = 16;
/** The pause after a lost race: uniform up to RACE_PAUSE_MS × 2^losses, at most RACE_PAUSE_MAX_MS. */
const RACE_PAUSE_MS = 5;
const RACE_PAUSE_MAX_MS = 250;
const DEFAULT_WRITE_TIMEOUT_MS = 3_000;

type Committed = { readonly ok: true; readonly revision: number } | { readonly ok: false };

/** Connects, lists the prefix into the mirror and starts watching: the store is ready to serve. */
export async function openEtcdStore(settings: EtcdSettings, options: EtcdStoreOptions = {}): Promise<EtcdStore> {
  const client = buildEtcdClient(settings);
  const store = new EtcdStore(client, settings, options);
  try {
    await store.start();
  } catch (err) {
    await store.close();
    throw new Error(`store.etcd: cannot read ${settings.prefix} from ${settings.endpoints.join(', ')}: ${errorText(err)}`, { cause: err });
  }
  return store;
}

/**
 * The revision this transaction was applied at by an earlier attempt, if its own audit entry (the
 * read after the compared keys) exists. The etcd client sends a transaction again when its answer
 * was lost (a deadline, "leader changed": etcd-client.ts); the compare then fails on the keys the
 * first attempt wrote, and without this check an applied If-Match write answered 409 and an
 * applied delete 404.
 */
function appliedEarlier(res: ITxnResponse, compares: number): number | undefined {
  const kv = res.responses[compares]?.response_range?.kvs?.[0];
  return kv === undefined ? undefined : Number(kv.mod_revision);
}

export class EtcdStore implements CatalogStore {
  private readonly ns: Namespace;
  private readonly mirror: EtcdMirror;
  /** What the last seed found each file cluster matching (etcd-plans.ts planSeed): not compared again while it holds. */
  private seeded: SeededMods = new Map();
  /** Rewinds of etcd's history seen (a restore): a seed planning across one forgets what it found before. */
  private rewinds = 0;
  private watchState: WatchState = 'watching';
  private readonly health_: EtcdHealth;
  private readonly listeners = new Set<ChangeListener>();
  private readonly weightListeners = new Set<(clusters: readonly string[]) => void>();
  /** Writes to one resource from this replica, one after another (write-lanes.ts). */
  private readonly lanes = new WriteLanes();
  private readonly now: () => Date;
  private readonly writeTimeoutMs: number;
  private readonly maxBytes: number;
  private closed = false;
  /** Parsed records by mirror entry: an entry is replaced, never changed, when its key changes. */
  private readonly records = new WeakMap<Entry<StoredCluster>, ClusterRecord>();
  /** Per mirror entry, the cluster as catalog() serves it. */
  private readonly served = new WeakMap<Entry<StoredCluster>, Cluster>();
  /** Per mirror entry, the listener or node group as catalog() serves it. */
  private readonly servedSpecs = new WeakMap<Entry<StoredSpec>, Listener | NodeGroup>();
  /** The lists catalog() served last. */
  private lastSpecs: { listeners: readonly Listener[]; nodeGroups: readonly NodeGroup[] } = { listeners: [], nodeGroups: [] };

  constructor(
    private readonly client: Etcd3,
    private readonly settings: EtcdSettings,
    private readonly options: EtcdStoreOptions = {},
  ) {
    this.ns = client.namespace(`${settings.prefix}/`);
    this.now = options.now ?? (() => new Date());
    this.writeTimeoutMs = settings.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
    this.maxBytes = options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
    this.mirror = new EtcdMirror(this.ns, { onBatch: (b) => this.applied(b), onWatchState: (up, reason, rewound) => {
      if (rewound === true) this.forgetSeeded();
      this.watchChanged(up ? 'watching' : rewound === true ? 'rewound' : 'lost', reason);
    } });
    this.health_ = new EtcdHealth((deadline) => this.ns.get('health').options({ deadline }).exec(), {
      intervalMs: options.probeIntervalMs ?? 1_000,
      timeoutMs: Math.min(this.writeTimeoutMs, 2_000),
      ...(options.onHealth ? { onChange: options.onHealth } : {}),
    });
  }

  async start(): Promise<void> {
    await this.mirror.start();
    this.health_.up();
    this.health_.start();
  }

  // ---------------------------------------------------------------- reads (from the mirror)

  /**
   * See Store.catalog: draining endpoints served DRAINING, disabled ones left out. A cluster whose
   * mirror entry did not change is the same object as in the previous catalog (later stages skip
   * it by identity), so a write costs what it changed, not the catalog.
   */
  catalog(): Catalog {
    const clusters = this.mirror.list<StoredCluster>('clusters').map(([name, e]) => this.servedCluster(name, e));
    // Unchanged entries serve the same objects, and the same lists when every item is: the
    // translator keeps a listener's resources and a node group's selection by identity.
    const listeners = this.mirror.list<StoredSpec>('listeners').map(([name, e]) => this.servedSpec(e, (): Listener => {
      const { owner: _o, revision: _r, updatedAt: _u, ...l } = listenerRecord(name, e.value, e.mod);
      return l;
    }));
    const nodeGroups = this.mirror.list<StoredSpec>('node-groups').map(([name, e]) => this.servedSpec(e, (): NodeGroup => {
      const { owner: _o, revision: _r, updatedAt: _u, ...g } = nodeGroupRecord(name, e.value, e.mod);
      return g;
    }));
    const last = this.lastSpecs;
    this.lastSpecs = { listeners: sameItems(last.listeners, listeners) ? last.listeners : listeners, nodeGroups: sameItems(last.nodeGroups, nodeGroups) ? last.nodeGroups : nodeGroups };
    return { clusters, listeners: this.lastSpecs.listeners, nodeGroups: this.lastSpecs.nodeGroups };
  }

  private servedSpec<T extends Listener | NodeGroup>(e: Entry<StoredSpec>, build: () => T): T {
    let served = this.servedSpecs.get(e) as T | undefined;
    if (served === undefined) this.servedSpecs.set(e, (served = build()));
    return served;
  }

  private servedCluster(name: string, e: Entry<StoredCluster>): Cluster {
    let served = this.served.get(e);
    if (served) return served;
    const { endpoints: _e, owner: _o, revision: _r, updatedAt: _u, ...spec } = this.clusterRecord(name, e);
    const endpoints = e.value.endpoints.flatMap((x) => {
      const health = servedHealth(x.state, x.health);
      return health === undefined ? [] : [{ address: x.address, port: x.port, locality: x.locality, priority: x.priority, weight: x.weight, health }];
    });
    served = { ...spec, endpoints };
    this.served.set(e, served);
    return served;
  }

  revision(): number {
    return this.mirror.revision;
  }

  getCluster(name: string): ClusterRecord | undefined {
    const e = this.mirror.get<StoredCluster>('clusters', name);
    return e && this.clusterRecord(name, e);
  }

  clusterOwner(name: string): Owner | undefined {
    return this.mirror.get<StoredCluster>('clusters', name)?.value.owner;
  }

  listClusters(): ClusterRecord[] {
    return this.mirror.list<StoredCluster>('clusters').map(([name, e]) => this.clusterRecord(name, e));
  }

  private clusterRecord(name: string, e: Entry<StoredCluster>): ClusterRecord {
    let rec = this.records.get(e);
    if (!rec) this.records.set(e, (rec = clusterRecord(name, e.value, e.mod)));
    return rec;
  }

  getEndpoint(cluster: string, address: string, port: number): EndpointRecord | undefined {
    const c = this.mirror.get<StoredCluster>('clusters', cluster);
    const e = c?.value.endpoints.find((x) => x.address === address && x.port === port);
    return c && e && endpointRecord(cluster, c.value.owner, e, c.mod);
  }

  getListener(name: string): ListenerRecord | undefined {
    const e = this.mirror.get<StoredSpec>('listeners', name);
    return e && listenerRecord(name, e.value, e.mod);
  }

  listListeners(): ListenerRecord[] {
    return this.mirror.list<StoredSpec>('listeners').map(([name, e]) => listenerRecord(name, e.value, e.mod));
  }

  getNodeGroup(nodeCluster: string): NodeGroupRecord | undefined {
    const e = this.mirror.get<StoredSpec>('node-groups', nodeCluster);
    return e && nodeGroupRecord(nodeCluster, e.value, e.mod);
  }

  listNodeGroups(): NodeGroupRecord[] {
    return this.mirror.list<StoredSpec>('node-groups').map(([name, e]) => nodeGroupRecord(name, e.value, e.mod));
  }

  /** Only the page's entries are turned into records (each resolves its whole stored cluster). */
  audit(limit = 100, before?: number, options: AuditReadOptions = {}): AuditEntry[] {
    const bound = before ?? Number.MAX_SAFE_INTEGER;
    return this.mirror
      .list<StoredAudit>('audit')
      .map(([, e]) => ({ e, id: auditId(e) }))
      .filter((a) => a.id < bound)
      .sort((a, b) => b.id - a.id)
      .slice(0, Math.max(0, Math.floor(limit)))
      .map((a) => auditEntryWithin(a.e, options.trimOver));
  }

  loadWeights(): Map<string, Map<string, number>> {
    return new Map(this.mirror.list<StoredWeights>('weights').map(([cluster, e]) => [cluster, new Map(Object.entries(e.value.weights))]));
  }

  weightedClusters(): string[] {
    return this.mirror.list<StoredWeights>('weights').map(([cluster]) => cluster);
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Published weights changed (written by any replica): the clusters whose weights changed. */
  onWeights(listener: (clusters: readonly string[]) => void): () => void {
    this.weightListeners.add(listener);
    return () => this.weightListeners.delete(listener);
  }

  health(): StoreHealth {
    return this.closed ? { writable: false, reason: 'store closed' } : this.health_.current;
  }

  describe(): StoreDescription {
    return { kind: 'etcd', endpoints: [...this.settings.endpoints], prefix: this.settings.prefix };
  }

  /** The etcd client, for parts that keep their own keys under the same prefix (leases, proxy status). */
  get etcd(): Etcd3 {
    return this.client;
  }

  get prefix(): string {
    return this.settings.prefix;
  }

  replication(): { readonly client: Etcd3; readonly prefix: string } {
    return { client: this.client, prefix: this.settings.prefix };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.health_.stop();
    await this.mirror.stop();
    this.client.close();
    this.listeners.clear();
    this.weightListeners.clear();
  }

  // ---------------------------------------------------------------- writes

  putCluster(input: ClusterInput, opts: WriteOptions): Promise<WriteResult> {
    return this.write(opts, () => planPutCluster(this.mirror, input, opts, this.at()), `cluster/${input.name}`);
  }

  /** A hand-over (opts.successor) is one transaction: the key rewritten with the file's definition, never absent. */
  deleteCluster(name: string, opts: DeleteClusterOptions): Promise<WriteResult> {
    return this.write(opts, () => planDeleteCluster(this.mirror, name, opts, this.at()), `cluster/${name}`);
  }

  putEndpoint(cluster: string, endpoint: EndpointSpec, opts: WriteOptions): Promise<WriteResult> {
    return this.write(opts, () => planPutEndpoint(this.mirror, cluster, endpoint, opts, this.at()), `cluster/${cluster}`);
  }

  removeEndpoint(cluster: string, address: string, port: number, opts: WriteOptions): Promise<WriteResult> {
    return this.write(opts, () => planRemoveEndpoint(this.mirror, cluster, address, port, opts, this.at()), `cluster/${cluster}`);
  }

  setEndpointState(cluster: string, address: string, port: number, state: OperatorState, opts: StateOptions): Promise<WriteResult> {
    return this.write(opts.actor, () => planSetState(this.mirror, cluster, address, port, state, opts, this.at()), `cluster/${cluster}`);
  }

  putListener(listener: Listener, opts: WriteOptions): Promise<WriteResult> {
    return this.write(opts, () => planPutListener(this.mirror, listener, opts, this.at()), `listener/${listener.name}`);
  }

  /** A hand-over (opts.successor) is one transaction: the key rewritten with the file's definition, never absent. */
  deleteListener(name: string, opts: DeleteListenerOptions): Promise<WriteResult> {
    return this.write(opts, () => planDeleteListener(this.mirror, name, opts, this.at()), `listener/${name}`);
  }

  putNodeGroup(group: NodeGroup, opts: WriteOptions): Promise<WriteResult> {
    return this.write(opts, () => planPutNodeGroup(this.mirror, group, opts, this.at()));
  }

  deleteNodeGroup(nodeCluster: string, opts: WriteOptions): Promise<WriteResult> {
    return this.write(opts, () => planDeleteSpec(this.mirror, 'node-group', nodeCluster, opts));
  }

  listOverrides(): OverrideRecord[] {
    return this.mirror.list<StoredOverride>('overrides').map(([name, e]) => overrideRecordOf(name, e.value, e.mod));
  }

  getOverride(name: string): OverrideRecord | undefined {
    const e = this.mirror.get<StoredOverride>('overrides', name);
    return e && overrideRecordOf(name, e.value, e.mod);
  }

  putOverride(target: OverrideTarget, value: OverrideValue, opts: OverrideOptions): Promise<WriteResult> {
    return this.write(opts.actor, () => planPutOverride(this.mirror, target, value, opts, this.at()));
  }

  deleteOverride(name: string, opts: OverrideOptions): Promise<WriteResult> {
    return this.write(opts.actor, () => planDeleteOverride(this.mirror, name, opts));
  }

  /**
   * Makes the `file` resources match the file. Several replicas seeding the same file at once
   * converge: each batch compares the mod_revision of everything it read, so one replica's batch
   * commits and the others, planning again on the caught-up mirror, find nothing left to do.
   * Batches hold up to ~50 resources (etcd's per-transaction operation limit) and fit in one request. A cluster given as
   * the very object an earlier plan found unchanged, its key unwritten since, is not compared again
   * (etcd-plans.ts planSeed; the catalog's objects must not change once handed over).
   */
  async seedFromConfig(catalog: Catalog, opts: SeedOptions = { actor: 'config-file' }): Promise<SeedResult> {
    const changes: Change[] = [];
    // A failed seed forgets what the earlier ones found: it is compared whole next time.
    let earlier = this.seeded;
    this.seeded = new Map();
    let rewinds = this.rewinds;
    for (let attempt = 1; ; attempt++) {
      this.assertWritable();
      // etcd's history went back meanwhile: the mod_revisions found before may name other values now.
      if (rewinds !== this.rewinds) [earlier, rewinds] = [new Map(), this.rewinds];
      const { plans, conflicts, seeded } = planSeed(this.mirror, catalog, this.at(), earlier);
      earlier = seeded;
      if (plans.length === 0) {
        this.seeded = seeded;
        return { revision: this.mirror.revision, changes, conflicts };
      }
      const batch = takeBatch(plans, this.maxBytes - REQUEST_OVERHEAD_BYTES);
      const done = await this.commit(opts.actor, batch);
      if (done.ok) {
        changes.push(...batch.audits.map((a) => ({ kind: a.kind, name: a.name, action: a.action })));
        attempt = 0;
      } else if (attempt >= MAX_ATTEMPTS) {
        throw new StoreUnavailableError(`seeding from the config file lost ${attempt} races in a row to other writers`);
      }
    }
  }

  /** Weights are derived state: no audit, no compare (each replica writes only the clusters it owns). */
  async saveAllWeights(all: ReadonlyMap<string, ReadonlyMap<string, number>>): Promise<void> {
    const at = this.at();
    const puts = [...all].map(([cluster, weights]) => ({ key: keyOf('weights', cluster), value: weightsValue(cluster, weights, at) }));
    for (let i = 0; i < puts.length; i += MAX_OPS_PER_TXN) {
      this.assertWritable();
      const started = performance.now();
      const chunk = puts.slice(i, i + MAX_OPS_PER_TXN);
      const texts = chunk.map((p) => ({ key: p.key, text: JSON.stringify(p.value) }));
      this.checkSize('weights', chunk.map((p) => p.key).join(', '), texts);
      const ops = texts.map((p) => this.ns.put(p.key).value(p.text));
      const res = await this.send(() => this.unconditional(chunk[0]?.key ?? 'weights').then(...ops).commit());
      await this.caughtUp(Number(res.header.revision));
      this.wrote(started, 'weights');
    }
  }

  /** Deletes the published weights of `clusters` (derived state, as saveAllWeights: no audit, no compare). */
  async deleteWeights(clusters: readonly string[]): Promise<void> {
    const keys = clusters.map((c) => keyOf('weights', c));
    for (let i = 0; i < keys.length; i += MAX_OPS_PER_TXN) {
      this.assertWritable();
      const started = performance.now();
      const chunk = keys.slice(i, i + MAX_OPS_PER_TXN);
      const res = await this.send(() => this.unconditional(chunk[0] ?? 'weights').then(...chunk.map((k) => this.ns.delete().key(k))).commit());
      await this.caughtUp(Number(res.header.revision));
      this.wrote(started, 'weights');
    }
  }

  /**
   * Deletes all but the newest `keepLast` audit entries (every replica holds the log in memory),
   * at most `maxRows` of the oldest per call; returns how many were deleted. Safe to run on several
   * replicas at once.
   */
  async pruneAudit(keepLast: number, maxRows = Number.MAX_SAFE_INTEGER): Promise<number> {
    const keep = Math.max(0, Math.floor(keepLast));
    const old = this.mirror
      .list<StoredAudit>('audit')
      .map(([name, e]) => ({ name, id: auditId(e) }))
      .sort((a, b) => a.id - b.id);
    old.splice(Math.min(Math.max(0, old.length - keep), Math.max(0, Math.floor(maxRows))));
    for (let i = 0; i < old.length; i += MAX_OPS_PER_TXN) {
      this.assertWritable();
      const chunk = old.slice(i, i + MAX_OPS_PER_TXN).map((a) => keyOf('audit', a.name));
      const res = await this.send(() => this.unconditional(chunk[0] ?? 'audit').then(...chunk.map((k) => this.ns.delete().key(k))).commit());
      await this.caughtUp(Number(res.header.revision));
    }
    return old.length;
  }

  // ---------------------------------------------------------------- internals

  /** A transaction that always applies (etcd3 builds one from a compare: a key's version is never negative). */
  private unconditional(key: string): ReturnType<Namespace['if']> {
    return this.ns.if(key, 'Version', '>', -1);
  }

  private at(): string {
    return this.now().toISOString();
  }

  private assertWritable(): void {
    const h = this.health();
    if (!h.writable) throw new StoreUnavailableError(h.reason ?? 'etcd unavailable');
  }

  /** `lane`: the resource written, whose writes from this replica go one after another (write-lanes.ts). */
  private write(writing: Writing, plan: () => Outcome, lane?: string): Promise<WriteResult> {
    return lane === undefined ? this.attempts(writing, plan) : this.lanes.run(lane, () => this.attempts(writing, plan));
  }

  /**
   * Plans and commits until a commit's compares hold. A race lost to another replica is followed by
   * a random pause growing with the losses: replicas that lost to the same winner re-planned at
   * once and collided again, and eight writers on one cluster lost eight races in a row a quarter
   * of the time. Given up after MAX_ATTEMPTS or twice the write timeout.
   */
  private async attempts(writing: Writing, plan: () => Outcome): Promise<WriteResult> {
    const actor = typeof writing === 'string' ? writing : writing.actor;
    const started = performance.now();
    for (let attempt = 1; ; attempt++) {
      this.assertWritable();
      const outcome = this.guarded(plan(), guardOf(writing));
      if ('noop' in outcome) return { revision: outcome.noop };
      const audits = outcome.plan.audits.map((a) => ({ ...a, action: auditedAction(a.action, writing) }));
      const done = await this.commit(actor, { ...outcome.plan, audits });
      if (done.ok) return { revision: done.revision };
      if (attempt >= MAX_ATTEMPTS || performance.now() - started > 2 * this.writeTimeoutMs) {
        throw new StoreUnavailableError(`lost ${attempt} races in a row to other replicas writing the same resource; retry`);
      }
      await sleep(Math.random() * Math.min(RACE_PAUSE_MAX_MS, RACE_PAUSE_MS * 2 ** attempt));
    }
  }

  /**
   * The write's guard checked against the mirror the plan was made from (it throws to refuse), and
   * what the check read added to the plan's compares: if another write changed it meanwhile, the
   * transaction fails, the mirror catches up and the write is planned, and checked, again.
   */
  private guarded(outcome: Outcome, guard: WriteGuard | undefined): Outcome {
    if (guard === undefined || 'noop' in outcome) return outcome;
    const revision = this.mirror.revision;
    guard.check();
    return { plan: withCompares(outcome.plan, guardCompares(this.mirror, revision, guard.reads)) };
  }

  /** One transaction: the plan's compares, then its puts, deletes and audit entries. */
  private async commit(actor: string, plan: Plan): Promise<Committed> {
    const started = performance.now();
    const at = this.at();
    const tag = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
    const audits = plan.audits.map((a, seq): { key: string; value: StoredAudit } => ({ key: `audit/${tag}-${seq}`, value: { ...a, at, actor: a.actor ?? actor, seq } }));
    if (audits.length >= AUDIT_SEQ_SPAN) throw new TypeError(`one transaction may hold at most ${AUDIT_SEQ_SPAN - 1} changes`);
    const texts = [...plan.puts, ...audits].map((p) => ({ key: p.key, text: JSON.stringify(p.value) }));
    this.checkSize(plan.audits[0]?.kind ?? 'cluster', plan.audits[0]?.name ?? '', texts);
    const puts = texts.map((p) => this.ns.put(p.key).value(p.text));
    const deletes = plan.deletes.map((k) => this.ns.delete().key(k));
    if (plan.compares.length === 0) throw new TypeError('a catalog write compares at least one key');
    // Audit keys are unique to this commit: on a failed compare, reading the first says whether an
    // earlier attempt of this very transaction applied.
    const own = audits[0]?.key;
    const reads = [...plan.compares.map((c) => this.readOf(c)), ...(own !== undefined ? [this.ns.get(own)] : [])];
    const res = await this.send(() => this.txn(plan.compares, [...puts, ...deletes], reads));
    const revision = res.succeeded ? Number(res.header.revision) : appliedEarlier(res, plan.compares.length);
    if (revision === undefined) {
      // Someone else wrote what we read: wait until the mirror shows their write, then plan again.
      const seen = res.responses.slice(0, plan.compares.length).flatMap((r) => r.response_range?.kvs ?? []).map((kv) => Number(kv.mod_revision));
      await this.mirror.waitFor(seen.length === plan.compares.length ? Math.max(...seen) : Number(res.header.revision), this.writeTimeoutMs);
      return { ok: false };
    }
    await this.caughtUp(revision);
    this.wrote(started, 'catalog');
    return { ok: true, revision };
  }

  /**
   * Sends a transaction (the client gives it the write timeout, and sends it to another member
   * if it never left for a dead one: etcd-client.ts). Any failure is a 503 whose outcome is unknown.
   */
  private async send(commit: () => Promise<ITxnResponse>): Promise<ITxnResponse> {
    try {
      return await commit();
    } catch (err) {
      const text = errorText(err);
      // etcd's NOSPACE alarm: it answers, reads work, and it refuses every write (not applied).
      if (ETCD_NO_SPACE.test(text)) throw new StoreUnavailableError(`etcd is out of space: ${text}; the write was not applied. ${NO_SPACE_ADVICE}`);
      this.health_.down(text);
      throw new StoreUnavailableError(`etcd did not confirm the write: ${text}; it may or may not have been applied, re-read before retrying`);
    }
  }

  /**
   * A transaction sent as etcd's own request: etcd3's builder compares single keys only, and a
   * guard compares a whole section (no listener written since, a new one included).
   */
  private async txn(compares: readonly Compare[], success: readonly IOperation[], failure: readonly IOperation[]): Promise<ITxnResponse> {
    const ops = (list: readonly IOperation[]) => Promise.all(list.map((o) => o.op()));
    return this.ns.kv.txn({ compare: compares.map((c) => this.compareOf(c)), success: await ops(success), failure: await ops(failure) });
  }

  private compareOf(c: Compare): ICompare {
    if ('section' in c) {
      // Every key in [section/, section0): '0' follows '/'. The mod of an empty range reads as 0.
      return { key: this.rawKey(`${c.section}/`), range_end: this.rawKey(`${c.section}0`), target: 'Mod', result: 'Less', mod_revision: c.notAfter + 1 };
    }
    if ('create' in c) return { key: this.rawKey(c.key), target: 'Create', result: 'Equal', create_revision: c.create };
    return { key: this.rawKey(c.key), target: 'Mod', result: 'Equal', mod_revision: c.mod };
  }

  /** What a failed compare is read back as: the key, or the section's latest written key. */
  private readOf(c: Compare): IOperation {
    if (!('section' in c)) return this.ns.get(c.key);
    return this.ns.getAll().prefix(`${c.section}/`).sort('Mod', 'Descend').limit(1);
  }

  /** A key of this store's prefix as etcd names it (what the namespace's builders prepend). */
  private rawKey(key: string): Buffer {
    return Buffer.from(`${this.settings.prefix}/${key}`);
  }

  private async caughtUp(revision: number): Promise<void> {
    if (await this.mirror.waitFor(revision, this.writeTimeoutMs)) return;
    throw new StoreUnavailableError(`etcd committed revision ${revision} but this replica's view has not caught up within ${this.writeTimeoutMs} ms`);
  }

  /** Refuses, with a clear error, a transaction etcd would reject for its size (a change is sent with its audit entry). */
  private checkSize(kind: ResourceKind | 'weights', name: string, puts: readonly { key: string; text: string }[]): void {
    const bytes = puts.reduce((n, p) => n + Buffer.byteLength(p.text) + Buffer.byteLength(p.key), 0);
    const limit = this.maxBytes - REQUEST_OVERHEAD_BYTES;
    if (bytes > limit) throw new StoreLimitError(kind, name, bytes, limit);
  }

  private wrote(started: number, kind: 'catalog' | 'weights'): void {
    this.guard(() => this.options.onWrite?.(performance.now() - started, kind));
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      (this.options.onListenerError ?? ((e: unknown) => process.emitWarning(`fulcrum store change listener failed: ${String(e)}`)))(err);
    }
  }

  /** Revisions are reused after a restore without --bump-revision: what the last seed found unchanged is unknown. */
  private forgetSeeded(): void {
    this.seeded = new Map();
    this.rewinds++;
  }

  /** A lost watch is told once, not at each reconnection attempt; a rewind is told even while lost. */
  private watchChanged(state: WatchState, reason: string | undefined): void {
    if (state === this.watchState || (state === 'lost' && this.watchState === 'rewound')) return;
    this.watchState = state;
    this.guard(() => this.options.onWatch?.(state, reason));
  }

  /** Turns what the watch applied into change events: one per committed transaction, from its audit entries. */
  private applied(batch: MirrorBatch): void {
    if (batch.rewound === true) this.forgetSeeded();
    for (const change of storeChanges(batch)) for (const l of [...this.listeners]) this.guard(() => l(change));
    const weights = [...new Set([...batch.puts, ...batch.deletes].filter((x) => x.section === 'weights').map((x) => x.name))];
    if (weights.length > 0) for (const l of [...this.weightListeners]) this.guard(() => l(weights));
  }
}

/** Change events of one watch batch: grouped by revision from the audit entries, or, after a re-list, from the keys that differ. */
function storeChanges(batch: MirrorBatch): StoreChange[] {
  if (batch.resync) {
    const kinds = { clusters: 'cluster', listeners: 'listener', 'node-groups': 'node-group', overrides: 'override' } as const;
    const changes: Change[] = [];
    for (const p of batch.puts) if (p.section in kinds) changes.push({ kind: kinds[p.section as keyof typeof kinds], name: p.name, action: 'update' });
    for (const d of batch.deletes) if (d.section in kinds) changes.push({ kind: kinds[d.section as keyof typeof kinds], name: d.name, action: 'delete' });
    return changes.length > 0 ? [{ revision: batch.revision, actor: 'etcd-resync', changes }] : [];
  }
  const byRevision = new Map<number, Entry<StoredAudit>[]>();
  for (const p of batch.puts) {
    if (p.section !== 'audit') continue;
    const e = p.entry as Entry<StoredAudit>;
    byRevision.set(e.mod, [...(byRevision.get(e.mod) ?? []), e]);
  }
  return [...byRevision]
    .sort(([a], [b]) => a - b)
    .map(([revision, entries]) => {
      const sorted = entries.sort((a, b) => a.value.seq - b.value.seq);
      return { revision, actor: sorted[0]?.value.actor ?? '', changes: sorted.map((e) => ({ kind: e.value.kind, name: e.value.name, action: e.value.action })) };
    });
}

/** Whole resources' plans, up to the per-transaction operation and byte limits (at least one). */
function takeBatch(plans: readonly Plan[], maxBytes: number): Plan {
  const batch: Plan[] = [];
  let ops = 0;
  let bytes = 0;
  for (const p of plans) {
    const n = p.puts.length + p.deletes.length + p.audits.length;
    const b = planBytes(p);
    // A plan too large alone goes alone, and commit() refuses it by name.
    if (batch.length > 0 && (ops + n > MAX_OPS_PER_TXN || bytes + b > maxBytes)) break;
    batch.push(p);
    ops += n;
    bytes += b;
  }
  return mergePlans(batch);
}

/** About what a plan adds to a transaction (as commit() checks it): its puts, and its audit entries with their keys and stamps. */
function planBytes(p: Plan): number {
  const puts = p.puts.reduce((n, x) => n + Buffer.byteLength(x.key) + Buffer.byteLength(JSON.stringify(x.value)), 0);
  return p.audits.reduce((n, a) => n + Buffer.byteLength(JSON.stringify(a)) + AUDIT_STAMP_BYTES, puts);
}

function weightsValue(cluster: string, weights: ReadonlyMap<string, number>, at: string): StoredWeights {
  const out: Record<string, number> = {};
  for (const [endpoint, weight] of weights) {
    if (!Number.isInteger(weight) || weight < 0) throw new TypeError(`weights of ${cluster}: ${endpoint} has weight ${weight}; published weights are integers >= 0`);
    out[endpoint] = weight;
  }
  return { at, weights: out };
}
