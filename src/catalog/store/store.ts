/**
 * The durable store: desired state (clusters, endpoints, listeners, node groups), the audit log
 * and the last published weights, in one SQLite file.
 *
 * A thin adapter: it checks ownership and revisions (optimistic concurrency) and nothing else.
 * Validation (names, IPs, routes to existing clusters) belongs to the callers (config-file
 * parser, admin API), which already own the error messages.
 *
 * ## Who owns what (config file vs admin API vs Kubernetes)
 *
 * Every cluster, listener and node group has exactly one owner: `file`, `api` or `kubernetes`.
 * - Resources defined in the config file are owned by `file`. `seedFromConfig` runs at start-up
 *   and on every reload and makes the `file` rows match the file exactly: it creates, replaces
 *   and deletes `file` rows. It never touches a row owned by another source.
 * - Through the API (or Kubernetes), `file` resources are read-only: changing or deleting one
 *   throws OwnershipError, and so does creating a resource under a name the file owns.
 * - Resources created through the API are owned by `api` and survive file reloads untouched.
 *   If the file later defines a name the API already owns, the API's resource stays and the
 *   file's definition is skipped (reported in `SeedResult.conflicts`, for a warning log). To
 *   hand a name over to the file, delete it through the API; the next reload creates it.
 * - The same rule separates `kubernetes` from `api`: a source changes only what it owns.
 * - Endpoints belong to their cluster's owner: only that source adds, changes or removes them.
 * - Exception: an endpoint's operator state (`active` / `draining` / `disabled`) is operator
 *   intent layered over any endpoint, whoever owns it, so an operator can drain a file-defined
 *   backend without editing the file. A file reload keeps the state of endpoints it keeps.
 *
 * ## Revisions
 *
 * One store-wide counter: each committed transaction that changes something takes the next
 * value, and each resource it changed records it as its `revision`. Revisions therefore only
 * grow, and are never reused after delete + re-create. A cluster's revision covers its endpoints.
 * A write that changes nothing (same spec, same owner) is a no-op: no revision, no audit row,
 * no change event, so re-applying an unchanged config file is invisible.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { endpointName } from '../endpoint-key.js';
import type { Catalog, Cluster, Listener, NodeGroup } from '../types.js';
import { NotDurableError, NotFoundError, OwnershipError } from './errors.js';
import type { CatalogStore, ChangeListener, StoreDescription, StoreHealth } from './catalog-store.js';
import { socketClashes } from './seed-sockets.js';
import { assertWriter, canonicalJson, checkIfMatch, checkSuccessor, checkWrite, clusterSpecJson, listenerSpecJson, nodeGroupSpecJson, seedSkips, servedHealth } from './ownership.js';
import { COUNT_ENDPOINTS, endpointColumns, parseClusterSpec, sameColumns, toCluster, toEndpoint, toEndpointRecord, UPSERT_ENDPOINT, type EndpointColumns, type EndpointRow } from './endpoint-rows.js';
import { withEndpoint } from './endpoint-patch.js';
import { migrate } from './migrations.js';
import { checkOverride, overrideName, type OverrideOptions, type OverrideRecord, type OverrideTarget, type OverrideValue } from './override-records.js';
import { trimRecordText } from './audit-trim.js';
import { auditSummary, parseSummary } from './audit-summary.js';
import { unpackText } from './packed-text.js';
import { ENDPOINT_PAGE, putClusterSliced, SLICED_OVER, WRITE_SLICE_MS } from './sliced-write.js';
import { seededAsIs, seedSliced, type Seeded } from './sliced-seed.js';
import { deleteSpecSql, meta, parseListener, parseNodeGroup, selectSpecRow, selectSpecRows, specRecord, upsertSpecSql, type SpecKind, type SpecRow } from './spec-rows.js';
import { deleteClusterSliced, prepareDelete, type PreparedDelete } from './sliced-delete.js';
import { nextTurn } from '../../runtime/next-turn.js';
import { CHECKPOINT_EVERY_COMMITS, LOOP_CHECKPOINT_PAGES, WalCheckpointer } from './wal-checkpointer.js';
import { CatalogView } from './catalog-view.js';
import { WalFile, WalSync } from './wal-sync.js';
import { auditedAction, guardOf } from './records.js';
import type {
  AuditAction,
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
  ListenerSuccessor,
  NodeGroupRecord,
  OperatorState,
  Owner,
  ResourceKind,
  SeedConflict,
  SeedOptions,
  SeedResult,
  StateOptions,
  StoreChange,
  WriteOptions,
  WriteResult,
} from './records.js';

export const DEFAULT_DATA_DIR = './data';
export const DB_FILE = 'fulcrum.db';
/** Cluster records kept for repeated reads (see Store.clusterRecord). */
const RECORDS_KEPT = 16;
/** Endpoint rows listClustersInTurns reads per turn (~3 µs each: ~6 ms). */
const LIST_SLICE_ENDPOINTS = 2_000;
/** Tries of listClustersInTurns before it reads the list whole (each try ends at a write). */
const LIST_ATTEMPTS = 3;

export interface StoreOptions {
  /** Defaults to `fulcrum.db`. */
  readonly fileName?: string;
  /** How long a write waits for another connection's lock before failing (SQLITE_BUSY). */
  readonly busyTimeoutMs?: number;
  /** Clock for `at` / `updatedAt` columns. */
  readonly now?: () => Date;
  /** A change listener threw. The write had committed already; default: a process warning. */
  readonly onListenerError?: (err: unknown) => void;
  /**
   * After every committed write transaction, its duration (ms, fsync included): `catalog` for
   * desired-state writes, `weights` for saveAllWeights. For metrics; a throw goes to onListenerError.
   */
  readonly onWrite?: (ms: number, kind: 'catalog' | 'weights') => void;
  /** How `durably` makes the WAL durable; default: fdatasync of `<file>-wal` (tests replace it). */
  readonly flushWal?: () => Promise<void>;
}

export type { ChangeListener };
export { canonicalJson };

export interface StoreSettings {
  readonly file: string;
  readonly journalMode: string;
  /** 2 = FULL. */
  readonly synchronous: number;
  readonly foreignKeys: boolean;
  readonly busyTimeoutMs: number;
  readonly schemaVersion: number;
}

/** Opens (creating if needed) `<dir>/fulcrum.db`, applies pending migrations and returns the store. */
export function openStore(dir: string = DEFAULT_DATA_DIR, options: StoreOptions = {}): Store {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, options.fileName ?? DB_FILE);
  const fresh = !existsSync(file);
  const busyTimeoutMs = options.busyTimeoutMs ?? 5_000;
  const db = new Database(file, { timeout: busyTimeoutMs });
  try {
    // WAL: readers never block the writer and a commit appends to one file.
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`${file}: cannot enable WAL journal mode (got ${String(mode)})`);
    // FULL, not the usual WAL pairing NORMAL: with NORMAL a commit is only written to the WAL and
    // fsynced at the next checkpoint, which survives a process crash (SIGKILL) but can lose the
    // last transactions on power loss or kernel panic. An admin API write is acknowledged to an
    // operator (200 + ETag) and the audit log says it happened: it must not silently roll back.
    // FULL fsyncs the WAL on every commit; the price (one fsync per write, ~ms) is irrelevant at
    // operator write rates, and the weight engine batches its writes (saveAllWeights).
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    // Checkpoints run on a worker (wal-checkpointer.ts); a COMMIT copies pages only past the backstop.
    db.pragma(`wal_autocheckpoint = ${LOOP_CHECKPOINT_PAGES}`);
    migrate(db, file);
  } catch (err) {
    db.close();
    throw err;
  }
  // Make the new file's directory entry durable too (SQLite syncs the directory for the WAL).
  if (fresh) fsyncDirectory(dir);
  return new Store(db, file, options);
}

function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Not supported on every platform/filesystem; SQLite's own syncs still apply.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

interface AuditRow {
  readonly id: number;
  readonly at: string;
  readonly actor: string;
  readonly action: AuditAction;
  readonly kind: ResourceKind;
  readonly name: string;
  readonly revision: number;
  readonly before: string | null;
  readonly after: string | null;
  /** A big write's texts, packed (packed-text.ts); before/after are then null. */
  readonly before_packed: Buffer | null;
  readonly after_packed: Buffer | null;
  /** The texts' size: packed_bytes, or octet_length(before) + octet_length(after) (O(1) in SQLite, so large rows are known unread). */
  readonly bytes: number;
  /** Set (and before/after then null) when the row is over the trim size and has a summary. */
  readonly summary: string | null;
}

const AUDIT_BYTES = 'coalesce(packed_bytes, coalesce(octet_length(before), 0) + coalesce(octet_length(after), 0))';

/** What a cluster write does to its endpoint rows (Store.endpointPlan). */
interface EndpointPlan {
  readonly upserts: readonly EndpointColumns[];
  readonly deletes: readonly EndpointRow[];
}
const NO_ENDPOINT_CHANGES: EndpointPlan = { upserts: [], deletes: [] };

/** A one-endpoint write: its cluster as it was before, and the endpoint's row after (undefined: removed). */
interface EndpointWrite {
  readonly cluster: SpecRow;
  readonly address: string;
  readonly port: number;
  readonly row: EndpointRow | undefined;
}

/** How the catalog view follows a write without reading the cluster again: a whole cluster or one endpoint. */
interface ViewPatch {
  readonly cluster: string;
  /** The whole cluster as it is now (else a change relative to the view's copy). */
  readonly whole: boolean;
  apply(view: CatalogView): void;
}

/** One write transaction: lazily takes a revision, records audit rows and change events. */
class Tx {
  private rev: number | undefined;
  readonly changes: Change[] = [];
  /** Set by a one-endpoint write: what the kept record and the view are patched with after commit. */
  endpoint: EndpointWrite | undefined;
  /** Whom the audit rows name while `as` runs (else the writer). */
  private auditActor: string | undefined;
  constructor(
    private readonly nextRevision: () => number,
    private readonly insertAudit: (tx: Tx, kind: ResourceKind, name: string, action: AuditAction, before: unknown, after: unknown) => void,
    private readonly writing: Writing,
    readonly at: string,
  ) {}

  get actor(): string {
    return this.auditActor ?? (typeof this.writing === 'string' ? this.writing : this.writing.actor);
  }

  /** Runs `fn` with its audit rows naming `actor`: a hand-over's file side is the config file's doing, not the deleter's. */
  as<T>(actor: string, fn: () => T): T {
    this.auditActor = actor;
    try {
      return fn();
    } finally {
      this.auditActor = undefined;
    }
  }

  revision(): number {
    this.rev ??= this.nextRevision();
    return this.rev;
  }

  get changed(): boolean {
    return this.rev !== undefined;
  }

  audit(kind: ResourceKind, name: string, change: AuditAction, before: unknown, after: unknown): void {
    const action = auditedAction(change, this.writing);
    this.insertAudit(this, kind, name, action, before, after);
    this.changes.push({ kind, name, action });
  }
}

export class Store implements CatalogStore {
  private readonly listeners = new Set<ChangeListener>();
  private readonly now: () => Date;
  private readonly onListenerError: (err: unknown) => void;
  private readonly onWrite: ((ms: number, kind: 'catalog' | 'weights') => void) | undefined;
  private readonly stmt;
  private readonly cache = new Map<string, Database.Statement>();
  /** The cluster records read last, by name, least recently read first (see clusterRecord). */
  private readonly records = new Map<string, ClusterRecord>();
  /**
   * What the last seeds wrote, by file cluster: the catalog's object each was seeded from and the
   * cluster's revision after it. Every write through this store to a cluster or its endpoints
   * moves that revision, so while it stands the rows are still what that object made them, and a
   * reload handing the same object again (config-diff.ts keeps unchanged clusters' objects) has
   * nothing to compare: reading and comparing every endpoint row was ~65 ms of one task per
   * reload at 20k endpoints. (A row edited behind the store, with another SQLite client, stays
   * until the file's cluster or its revision changes.)
   */
  private seeded: Seeded = new Map();
  /** The last catalog read, and what this process changed since (see catalog()). */
  private view: CatalogView | undefined;
  /** The connection of putClusterSliced and deleteClusterSliced, once used. */
  private writerDb: Database.Database | undefined;
  /** Checkpoints the WAL on a worker thread (started on the first checkpoint). */
  private checkpointer: WalCheckpointer | undefined;
  /** Commits on this connection since the last checkpoint was asked of the worker. */
  private commitsSinceCheckpoint = 0;
  private readonly busyTimeoutMs: number;
  private readonly walSync: WalSync;
  private readonly walFile: WalFile;
  /** Set while `durably` runs a write: where write() puts the fsync it starts at COMMIT. */
  private durableCommit: { synced?: Promise<void> } | undefined;

  constructor(
    private readonly db: Database.Database,
    readonly file: string,
    options: StoreOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.onListenerError =
      options.onListenerError ??
      ((err) => process.emitWarning(`fulcrum store change listener failed: ${err instanceof Error ? err.stack : String(err)}`));
    this.onWrite = options.onWrite;
    this.busyTimeoutMs = Math.max(0, Math.floor(options.busyTimeoutMs ?? 5_000));
    this.walFile = new WalFile(`${file}-wal`);
    this.walSync = new WalSync(options.flushWal ?? this.walFile.flush);
    this.stmt = {
      nextRevision: db.prepare<[], { value: number }>(
        `UPDATE store_meta SET value = value + 1 WHERE key = 'revision' RETURNING value`,
      ),
      revision: db.prepare<[], { value: number }>(`SELECT value FROM store_meta WHERE key = 'revision'`),
      audit: db.prepare(
        `INSERT INTO audit (at, actor, action, kind, name, revision, before, after, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      // A row over the trim size (@trim) with a summary is read as its summary: its text stays in SQLite.
      auditPage: db.prepare<[{ before: number; limit: number; trim: number }], AuditRow>(
        `SELECT id, at, actor, action, kind, name, revision, ${AUDIT_BYTES} AS bytes,
           CASE WHEN ${AUDIT_BYTES} > @trim THEN summary END AS summary,
           CASE WHEN ${AUDIT_BYTES} > @trim AND summary IS NOT NULL THEN NULL ELSE before END AS before,
           CASE WHEN ${AUDIT_BYTES} > @trim AND summary IS NOT NULL THEN NULL ELSE after END AS after,
           CASE WHEN ${AUDIT_BYTES} > @trim AND summary IS NOT NULL THEN NULL ELSE before_packed END AS before_packed,
           CASE WHEN ${AUDIT_BYTES} > @trim AND summary IS NOT NULL THEN NULL ELSE after_packed END AS after_packed
         FROM audit WHERE id < @before ORDER BY id DESC LIMIT @limit`,
      ),
      endpointsOf: db.prepare<[string], EndpointRow>(`SELECT * FROM endpoints WHERE cluster = ? ORDER BY address, port`),
      endpointPage: db.prepare<[string, string, number, number], EndpointRow>(ENDPOINT_PAGE),
      endpointCount: db.prepare<[string]>(COUNT_ENDPOINTS),
      allEndpoints: db.prepare<[], EndpointRow>(`SELECT * FROM endpoints ORDER BY cluster, address, port`),
      endpoint: db.prepare<[string, string, number], EndpointRow>(
        `SELECT * FROM endpoints WHERE cluster = ? AND address = ? AND port = ?`,
      ),
      upsertEndpoint: db.prepare(UPSERT_ENDPOINT),
      deleteEndpoint: db.prepare<[string, string, number]>(`DELETE FROM endpoints WHERE cluster = ? AND address = ? AND port = ?`),
      setState: db.prepare<[OperatorState, number, string, string, string, number]>(
        `UPDATE endpoints SET state = ?, revision = ?, updated_at = ? WHERE cluster = ? AND address = ? AND port = ?`,
      ),
      touchCluster: db.prepare<[number, string, string]>(`UPDATE clusters SET revision = ?, updated_at = ? WHERE name = ?`),
      deleteWeightsOf: db.prepare<[string]>(`DELETE FROM published_weights WHERE cluster = ?`),
      insertWeight: db.prepare<[string, string, number, string]>(
        `INSERT INTO published_weights (cluster, endpoint, weight, at) VALUES (?, ?, ?, ?)`,
      ),
      weightedClusters: db.prepare<[], { cluster: string }>(`SELECT DISTINCT cluster FROM published_weights ORDER BY cluster`),
      allWeights: db.prepare<[], { cluster: string; endpoint: string; weight: number }>(
        `SELECT cluster, endpoint, weight FROM published_weights ORDER BY cluster, endpoint`,
      ),
    };
  }

  // ---------------------------------------------------------------- reads

  /**
   * The domain catalog, assembled in one read transaction (a consistent snapshot). Incremental:
   * after this process's own writes only the clusters they changed are read again, and the
   * others are the same objects as in the previous catalog (so later stages can skip them by
   * identity); a revision this process did not write (another connection) reads everything.
   *
   * Operator state: `draining` endpoints are served with health DRAINING (Envoy sends them no new
   * requests but lets in-flight ones finish); `disabled` endpoints are left out. Left out rather
   * than sent UNHEALTHY because Envoy's panic threshold routes to unhealthy hosts when too few
   * are healthy: "disabled" must mean no traffic, whatever the rest of the cluster looks like.
   * Disabling every endpoint of a cluster is an explicit operator decision and yields an empty
   * cluster (fail-static protects against missing data, not against operator intent).
   */
  catalog(): Catalog {
    return this.db.transaction((): Catalog => {
      const view = this.view?.revision === this.revision() ? this.view : this.fullView();
      this.view = view;
      return view.refresh({
        cluster: (name) => this.readCluster(name),
        listeners: () => this.specRows('listener').map((row) => parseListener(row)),
        nodeGroups: () => this.specRows('node-group').map((row) => parseNodeGroup(row)),
      });
    })();
  }

  /** Every cluster read afresh: at the first read, and after a write this process did not make. */
  private fullView(): CatalogView {
    const byCluster = new Map<string, EndpointRow[]>();
    for (const row of this.stmt.allEndpoints.all()) {
      let list = byCluster.get(row.cluster);
      if (!list) byCluster.set(row.cluster, (list = []));
      list.push(row);
    }
    const clusters = new Map(this.specRows('cluster').map((row) => [row.name, toCluster(row, byCluster.get(row.name) ?? [])]));
    return new CatalogView(this.revision(), clusters);
  }

  /** One cluster as the catalog serves it, or undefined when it no longer exists. */
  private readCluster(name: string): Cluster | undefined {
    const row = this.specRow('cluster', name);
    return row && toCluster(row, this.stmt.endpointsOf.all(name));
  }

  /** Current store revision (the highest revision of any change so far). */
  revision(): number {
    return (this.stmt.revision.get() as { value: number }).value;
  }

  getCluster(name: string): ClusterRecord | undefined {
    return this.db.transaction(() => {
      const row = this.specRow('cluster', name);
      return row && this.clusterRecord(row);
    })();
  }

  clusterOwner(name: string): Owner | undefined {
    return this.specRow('cluster', name)?.owner;
  }

  listClusters(): ClusterRecord[] {
    return this.db.transaction(() => this.specRows('cluster').map((row) => this.clusterRecord(row)))();
  }

  /**
   * listClusters about LIST_SLICE_ENDPOINTS endpoint rows at a time (at 100,000 endpoints the whole
   * read held the event loop ~300 ms). The store's revision covers every write to a cluster or
   * its endpoints, this process's or another connection's: unchanged after every turn and at the
   * end, nothing was written in between and the slices are one snapshot; changed, the list is read
   * again (in turns up to LIST_ATTEMPTS times, then whole).
   */
  async listClustersInTurns(turn: () => Promise<void>): Promise<ClusterRecord[]> {
    // Writes are rare next to a list: a few tries in turns before the whole read.
    for (let attempt = 0; attempt < LIST_ATTEMPTS; attempt++) {
      const listed = await this.listOnceInTurns(turn);
      if (listed) return listed;
    }
    return this.listClusters();
  }

  /** One try of listClustersInTurns: undefined when a write landed while it read (the slices would mix states). */
  private async listOnceInTurns(turn: () => Promise<void>): Promise<ClusterRecord[] | undefined> {
    const revision = this.revision();
    const moved = async (): Promise<boolean> => (await turn(), this.revision() !== revision);
    const out: ClusterRecord[] = [];
    let read = 0;
    for (const row of this.specRows('cluster')) {
      const kept = this.keptRecord(row);
      if (kept) {
        out.push(kept);
        continue;
      }
      // A big cluster's rows in pages too (20k rows in one read held the loop ~60 ms).
      const endpoints: EndpointRecord[] = [];
      for (let last: EndpointRow | undefined; ; ) {
        if (read >= LIST_SLICE_ENDPOINTS) {
          if (await moved()) return undefined;
          read = 0;
        }
        const rows = this.stmt.endpointPage.all(row.name, last?.address ?? '', last?.port ?? 0, LIST_SLICE_ENDPOINTS);
        for (const r of rows) endpoints.push(toEndpointRecord(r));
        read += rows.length + 1;
        last = rows.at(-1);
        if (rows.length < LIST_SLICE_ENDPOINTS) break;
      }
      out.push(this.keep(recordOf(row, endpoints)));
    }
    // Another process's commit can land between two statements of one slice too.
    return this.revision() === revision ? out : undefined;
  }

  getEndpoint(cluster: string, address: string, port: number): EndpointRecord | undefined {
    const row = this.stmt.endpoint.get(cluster, address, port);
    return row && toEndpointRecord(row);
  }

  getListener(name: string): ListenerRecord | undefined {
    const row = this.specRow('listener', name);
    return row && { ...parseListener(row), ...meta(row) };
  }

  listListeners(): ListenerRecord[] {
    return this.specRows('listener').map((row) => ({ ...parseListener(row), ...meta(row) }));
  }

  getNodeGroup(nodeCluster: string): NodeGroupRecord | undefined {
    const row = this.specRow('node-group', nodeCluster);
    return row && { ...parseNodeGroup(row), ...meta(row) };
  }

  listNodeGroups(): NodeGroupRecord[] {
    return this.specRows('node-group').map((row) => ({ ...parseNodeGroup(row), ...meta(row) }));
  }

  /** Newest first; `before` (an audit id) pages backwards; rows over `trimOver` bytes come back trimmed. */
  audit(limit = 100, before?: number, options: AuditReadOptions = {}): AuditEntry[] {
    const rows = this.stmt.auditPage.all({ before: before ?? Number.MAX_SAFE_INTEGER, limit: Math.max(0, Math.floor(limit)), trim: options.trimOver ?? Number.MAX_SAFE_INTEGER });
    return rows.map((r) => {
      const base = { id: r.id, at: r.at, actor: r.actor, action: r.action, kind: r.kind, name: r.name, revision: r.revision };
      if (r.summary !== null) {
        const s = parseSummary(r.summary);
        return { ...base, before: s.before, after: s.after, trimmed: { bytes: r.bytes, endpoints: s.endpoints } };
      }
      const before = r.before_packed ? unpackText(r.before_packed, r.bytes) : r.before;
      const after = r.after_packed ? unpackText(r.after_packed, r.bytes) : r.after;
      const parse = (text: string | null) => (text === null ? null : (JSON.parse(text) as unknown));
      if (options.trimOver === undefined || r.bytes <= options.trimOver) return { ...base, before: parse(before), after: parse(after) };
      const b = before === null ? null : trimRecordText(before);
      const a = after === null ? null : trimRecordText(after);
      const trimmed = { bytes: r.bytes, endpoints: { before: b?.endpoints ?? null, after: a?.endpoints ?? null } };
      return { ...base, before: b?.record ?? null, after: a?.record ?? null, trimmed };
    });
  }

  /**
   * Deletes all but the newest `keepLast` audit rows, at most `maxRows` of the oldest per call (one
   * transaction holds the event loop: a first prune of a long log goes in pieces); returns how many
   * were deleted.
   */
  pruneAudit(keepLast: number, maxRows = Number.MAX_SAFE_INTEGER): number {
    const keep = Math.max(0, Math.floor(keepLast));
    return this.db
      .prepare(`DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE id <= (SELECT coalesce(max(id), 0) FROM audit) - ? ORDER BY id LIMIT ?)`)
      .run(keep, Math.max(0, Math.floor(maxRows))).changes;
  }

  settings(): StoreSettings {
    return {
      file: this.file,
      journalMode: String(this.db.pragma('journal_mode', { simple: true })),
      synchronous: Number(this.db.pragma('synchronous', { simple: true })),
      foreignKeys: Number(this.db.pragma('foreign_keys', { simple: true })) === 1,
      busyTimeoutMs: Number(this.db.pragma('busy_timeout', { simple: true })),
      schemaVersion: (this.db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number }).v,
    };
  }

  /** A local file: writable whenever the process runs. */
  health(): StoreHealth {
    return { writable: true };
  }

  describe(): StoreDescription {
    const { file, journalMode, synchronous, schemaVersion } = this.settings();
    return { kind: 'sqlite', file, journalMode, synchronous, schemaVersion };
  }

  // ---------------------------------------------------------------- change events

  /** Called after each committed transaction that changed desired state. Returns an unsubscribe function. */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---------------------------------------------------------------- clusters and endpoints

  /**
   * Creates or replaces a cluster's settings. With `input.endpoints`, also replaces its endpoint
   * set (endpoints kept keep their operator state unless the input sets one).
   */
  putCluster(input: ClusterInput, opts: WriteOptions): WriteResult {
    assertWriter(opts.owner);
    return this.write(opts, (tx) => {
      const row = this.specRow('cluster', input.name);
      checkWrite('cluster', input.name, row, opts);
      return { revision: this.upsertCluster(tx, input, opts.owner, row) };
    });
  }

  /**
   * putCluster for thousands of endpoints without holding the event loop: the same write on a
   * second connection, in slices of about `sliceMs` (sliced-write.ts). Until it settles, no other
   * write may be made on this store (they would wait for its lock): write-lane.ts queues them.
   */
  async putClusterSliced(input: ClusterInput, opts: WriteOptions, sliceMs = WRITE_SLICE_MS): Promise<WriteResult> {
    assertWriter(opts.owner);
    // As deleteClusterSliced: checked on what is committed now, nothing else commits until this settles.
    opts.guard?.check();
    const started = performance.now();
    const { revision, changes, served, record } = await putClusterSliced(this.writer(), input, opts, this.now().toISOString(), sliceMs);
    // Before anything queued behind this write commits: that commit would run the checkpoint of this one's pages.
    if (changes.length > 0) void this.walCheckpointer().checkpoint();
    // Read back by the write already: the route's answer and later reads need not read 20k rows again.
    if (record) this.keep(record);
    const known = served && { cluster: served.name, whole: true, apply: (view: CatalogView) => view.known(served) };
    this.committed(started, changes.length > 0 ? revision : undefined, opts.actor, changes, known);
    // Committed without an fsync (see writer()): durable, as `durably`'s writes, once the WAL is fsynced off the event loop.
    if (changes.length > 0) await this.madeDurable(this.walSync.synced());
    return { revision };
  }

  /**
   * After a one-endpoint write: the kept cluster record (if it was the one before this write) gets
   * the endpoint's new record, and the view's cluster its served endpoint, instead of both reading
   * every row of the cluster again (see endpoint-patch.ts).
   */
  private endpointPatch(w: EndpointWrite, revision: number, at: string): ViewPatch {
    const rec = this.records.get(w.cluster.name);
    if (rec && rec.revision === w.cluster.revision && rec.updatedAt === w.cluster.updated_at) {
      const endpoints = withEndpoint(rec.endpoints, w.address, w.port, w.row && toEndpointRecord(w.row));
      if (endpoints) this.keep({ ...rec, revision, updatedAt: at, endpoints });
      else this.records.delete(w.cluster.name);
    }
    const health = w.row && servedHealth(w.row.state, w.row.health);
    const served = w.row && health !== undefined ? toEndpoint(w.row, health) : undefined;
    return { cluster: w.cluster.name, whole: false, apply: (view) => view.patchEndpoint(w.cluster.name, w.address, w.port, served) };
  }

  /**
   * The second connection big writes use (opened on first use; settings as openStore's, but its
   * commits never checkpoint, nor fsync: putClusterSliced fsyncs the WAL off the event loop, as
   * `durably` does, before the write settles).
   */
  private writer(): Database.Database {
    if (this.writerDb) return this.writerDb;
    // A big write prepared across turns (deleteClusterSliced) may reach here after close(): it
    // must fail as on a closed connection, not open the files again and commit.
    if (!this.db.open) throw new TypeError('The database connection is not open');
    const db = new Database(this.file, { timeout: this.busyTimeoutMs });
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
    db.pragma('wal_autocheckpoint = 0');
    this.writerDb = db;
    return db;
  }

  private walCheckpointer(): WalCheckpointer {
    this.checkpointer ??= new WalCheckpointer(this.file, this.db, (message) => process.emitWarning(`fulcrum store: WAL checkpoint on the worker failed: ${message}`));
    return this.checkpointer;
  }

  /**
   * Runs `write` (one of this store's writes) with its COMMIT not waiting for the disk, so its
   * change listeners (catalog feed, publisher, the push) run at once, and resolves with its result
   * only once the WAL is fsynced off the event loop (wal-sync.ts says why this is safe).
   */
  async durably<T>(write: () => T): Promise<T> {
    const commit: { synced?: Promise<void> } = {};
    this.durableCommit = commit;
    this.db.pragma('synchronous = NORMAL');
    let result: T;
    try {
      result = write();
    } catch (err) {
      commit.synced?.catch(() => undefined); // the write's own error is the one to report
      throw err;
    } finally {
      this.durableCommit = undefined;
      this.db.pragma('synchronous = FULL');
    }
    // The fsync started at COMMIT, so it ran while the listeners pushed; else (a write that does
    // not go through write(), e.g. saveAllWeights) one starts now.
    await this.madeDurable(commit.synced ?? this.walSync.synced());
    return result;
  }

  /** Waits for the fsync of a committed write; its failure says the change is applied but maybe not durable. */
  private async madeDurable(synced: Promise<void>): Promise<void> {
    await synced.catch((err: unknown) => {
      // The change is committed and served already; say so, so nobody retries it as if lost.
      throw new NotDurableError(err);
    });
  }

  /** Deletes a cluster, its endpoints and its published weights; with `opts.successor`, the file's definition takes its place in the same transaction. */
  deleteCluster(name: string, opts: DeleteClusterOptions): WriteResult {
    return this.deleteClusterWith(name, opts);
  }

  /**
   * deleteCluster of a big cluster (WriteLane, over its sliced size) without holding the event
   * loop: the record read (20k rows, unless kept), its audit texts made in slices from a turn
   * later, then the delete as steps of a transaction on the second connection (sliced-delete.ts),
   * which uses the texts only if the cluster is still as it was read. One task of it all took
   * 63–123 ms of CPU at 20k endpoints under load (bench/admin-100k.ts). Until it settles no other
   * write may be made on this store: write-lane.ts queues them. The rows, revision, audit row and
   * change events are deleteCluster's; it resolves once the WAL holding its commit is fsynced.
   */
  async deleteClusterSliced(name: string, opts: DeleteClusterOptions, sliceMs = WRITE_SLICE_MS): Promise<WriteResult> {
    assertWriter(opts.owner);
    if (opts.successor) checkSuccessor('cluster', name, opts.successor.cluster.name);
    // Checked on what is committed now: nothing else commits until this settles (write-lane.ts).
    opts.guard?.check();
    const record = this.getCluster(name);
    let prepared: PreparedDelete | undefined;
    if (record) {
      await nextTurn();
      prepared = await prepareDelete(record, nextTurn);
      await nextTurn();
    }
    const started = performance.now();
    const { revision, changes, successor } = await deleteClusterSliced(this.writer(), name, opts, { at: this.now().toISOString(), sliceMs, prepared });
    // As putClusterSliced: checkpointed on the worker, before anything queued behind it commits.
    void this.walCheckpointer().checkpoint();
    this.records.delete(name);
    // A hand-over's successor, read back by the write already (as putClusterSliced's).
    if (successor?.record) this.keep(successor.record);
    const served = successor?.served;
    const known = served && { cluster: served.name, whole: true, apply: (view: CatalogView) => view.known(served) };
    this.committed(started, revision, opts.actor, changes, known);
    await this.madeDurable(this.walSync.synced());
    return { revision };
  }

  /** Whether the clusters the config file owns hold more than `n` endpoints as stored (what a seed may rewrite or delete); counts at most n + 1. */
  fileEndpointsOver(n: number): boolean {
    const sql = `SELECT count(*) AS n FROM (SELECT 1 FROM clusters c JOIN endpoints e ON e.cluster = c.name WHERE c.owner = 'file' LIMIT ?)`;
    return (this.sql<[number], { n: number }>(sql).get(n + 1) as { n: number }).n > n;
  }

  /** Endpoints of a cluster as stored (0 when there is no such cluster): an index count, no rows read. */
  endpointCount(cluster: string): number {
    return (this.stmt.endpointCount.get(cluster) as { n: number }).n;
  }

  private deleteClusterWith(name: string, opts: DeleteClusterOptions): WriteResult {
    assertWriter(opts.owner);
    const successor = opts.successor;
    if (successor) checkSuccessor('cluster', name, successor.cluster.name);
    return this.write(opts, (tx) => {
      const row = this.specRow('cluster', name);
      if (!row) throw new NotFoundError('cluster', name);
      checkWrite('cluster', name, row, opts);
      this.removeCluster(tx, row);
      if (successor) tx.as(successor.actor, () => this.upsertCluster(tx, successor.cluster, 'file', undefined));
      return { revision: tx.revision() };
    });
  }

  /** Adds or replaces one endpoint of an existing cluster owned by the writer. */
  putEndpoint(cluster: string, endpoint: EndpointSpec, opts: WriteOptions): WriteResult {
    assertWriter(opts.owner);
    const name = endpointName(cluster, endpoint);
    return this.write(opts, (tx) => {
      const c = this.specRow('cluster', cluster);
      if (!c) throw new NotFoundError('cluster', cluster);
      if (c.owner !== opts.owner) throw new OwnershipError('endpoint', name, c.owner, opts.owner);
      const old = this.stmt.endpoint.get(cluster, endpoint.address, endpoint.port);
      checkIfMatch('endpoint', name, opts.ifMatch, old?.revision);
      if (!this.upsertEndpoint(tx, cluster, endpoint, opts.owner, old)) return { revision: (old as EndpointRow).revision };
      this.stmt.touchCluster.run(tx.revision(), tx.at, cluster);
      const row = this.stmt.endpoint.get(cluster, endpoint.address, endpoint.port);
      tx.endpoint = { cluster: c, address: endpoint.address, port: endpoint.port, row };
      tx.audit('endpoint', name, old ? 'update' : 'create', old ? toEndpointRecord(old) : null, row && toEndpointRecord(row));
      return { revision: tx.revision() };
    });
  }

  removeEndpoint(cluster: string, address: string, port: number, opts: WriteOptions): WriteResult {
    assertWriter(opts.owner);
    const name = endpointName(cluster, { address, port });
    return this.write(opts, (tx) => {
      const old = this.stmt.endpoint.get(cluster, address, port);
      if (!old) throw new NotFoundError('endpoint', name);
      const c = this.specRow('cluster', cluster) as SpecRow;
      if (c.owner !== opts.owner) throw new OwnershipError('endpoint', name, c.owner, opts.owner);
      checkIfMatch('endpoint', name, opts.ifMatch, old.revision);
      this.stmt.deleteEndpoint.run(cluster, address, port);
      this.stmt.touchCluster.run(tx.revision(), tx.at, cluster);
      tx.endpoint = { cluster: c, address, port, row: undefined };
      tx.audit('endpoint', name, 'delete', toEndpointRecord(old), null);
      return { revision: tx.revision() };
    });
  }

  /** Operator state overlay: allowed on any endpoint, whichever source owns it. */
  setEndpointState(cluster: string, address: string, port: number, state: OperatorState, opts: StateOptions): WriteResult {
    const name = endpointName(cluster, { address, port });
    return this.write(opts.actor, (tx) => {
      const old = this.stmt.endpoint.get(cluster, address, port);
      if (!old) throw new NotFoundError('endpoint', name);
      checkIfMatch('endpoint', name, opts.ifMatch, old.revision);
      if (old.state === state) return { revision: old.revision };
      const c = this.specRow('cluster', cluster);
      this.stmt.setState.run(state, tx.revision(), tx.at, cluster, address, port);
      this.stmt.touchCluster.run(tx.revision(), tx.at, cluster);
      const row = this.stmt.endpoint.get(cluster, address, port);
      if (c) tx.endpoint = { cluster: c, address, port, row };
      tx.audit('endpoint', name, 'set-state', toEndpointRecord(old), row && toEndpointRecord(row));
      return { revision: tx.revision() };
    });
  }

  // ---------------------------------------------------------------- listeners and node groups

  putListener(listener: Listener, opts: WriteOptions): WriteResult {
    return this.putSpec('listener', listener.name, listenerSpecJson(listener), opts);
  }

  /** With `opts.successor`, the file's definition takes the listener's place in the same transaction. */
  deleteListener(name: string, opts: DeleteListenerOptions): WriteResult {
    const successor = opts.successor;
    if (successor) checkSuccessor('listener', name, successor.listener.name);
    return this.deleteSpec('listener', name, opts, successor && ((tx) => this.writeListenerSuccessor(tx, successor)));
  }

  putNodeGroup(group: NodeGroup, opts: WriteOptions): WriteResult {
    return this.putSpec('node-group', group.nodeCluster, nodeGroupSpecJson(group), opts);
  }

  deleteNodeGroup(nodeCluster: string, opts: WriteOptions): WriteResult {
    return this.deleteSpec('node-group', nodeCluster, opts);
  }

  // ---------------------------------------------------------------- config file

  /**
   * Makes the `file`-owned rows match `catalog` (the parsed config file), in one transaction:
   * creates and replaces what the file defines, deletes `file` rows the file no longer defines,
   * and leaves rows owned by other sources alone (a file definition whose name another source
   * owns is skipped and reported in `conflicts`). Unchanged resources are not rewritten; a
   * cluster given as the very object an earlier seed wrote it from, untouched since, is not even
   * read (Store.seeded).
   */
  seedFromConfig(catalog: Catalog, opts: SeedOptions = { actor: 'config-file' }): SeedResult {
    const conflicts: SeedConflict[] = [];
    const seeded: Seeded = new Map();
    let changes: readonly Change[] = [];
    let revision: number;
    try {
      revision = this.write(opts.actor, (tx) => {
        this.seedRows(tx, catalog, conflicts, seeded);
        changes = tx.changes;
        return tx.changed ? tx.revision() : this.revision();
      });
    } catch (err) {
      // Rolled back: the revisions it took may be taken again by other content.
      this.seeded.clear();
      throw err;
    }
    this.seeded = seeded;
    return { revision, changes, conflicts };
  }

  /**
   * seedFromConfig without holding the event loop: the same seed as steps of one transaction on
   * the second connection (sliced-seed.ts), clusters of more than `packOver` endpoints audited
   * with packed texts as putClusterSliced's. Until it settles no other write may be made on this
   * store: write-lane.ts queues them. Resolves once the WAL holding its commit is fsynced.
   */
  async seedFromConfigSliced(catalog: Catalog, opts: SeedOptions = { actor: 'config-file' }, slicing: { readonly sliceMs?: number; readonly packOver?: number } = {}): Promise<SeedResult> {
    const started = performance.now();
    const { sliceMs = WRITE_SLICE_MS, packOver = SLICED_OVER } = slicing;
    let out: Awaited<ReturnType<typeof seedSliced>>;
    try {
      out = await seedSliced(this.writer(), catalog, { actor: opts.actor, at: this.now().toISOString(), sliceMs, earlier: this.seeded, packOver, keepRecords: RECORDS_KEPT });
    } catch (err) {
      // Rolled back, as a failed write() (whose revisions may be taken again by other content).
      this.seeded.clear();
      this.records.clear();
      throw err;
    }
    this.seeded = out.seeded;
    const { revision, changes, conflicts, written, records } = out;
    if (revision === undefined) {
      this.wrote(started, 'catalog');
      return { revision: this.revision(), changes, conflicts };
    }
    // As putClusterSliced: checkpointed on the worker, before anything queued behind it commits.
    void this.walCheckpointer().checkpoint();
    // Read back by the seed already (as putClusterSliced's): neither the view nor a read reads them again.
    for (const r of records) this.keep(r);
    const viewPatch = { cluster: '', whole: true, apply: (view: CatalogView) => written.forEach((c) => view.known(c)) };
    this.committed(started, revision, opts.actor, changes, written.size > 0 ? viewPatch : undefined);
    await this.madeDurable(this.walSync.synced());
    return { revision, changes, conflicts };
  }

  /** seedFromConfig's writes, in its transaction; `seeded` gets each file cluster's object and revision after. */
  private seedRows(tx: Tx, catalog: Catalog, conflicts: SeedConflict[], seeded: Seeded): void {
    const seen: Record<SpecKind, Set<string>> = { cluster: new Set(), listener: new Set(), 'node-group': new Set() };
    const owned = (kind: SpecKind, name: string): SpecRow | undefined | false => {
      seen[kind].add(name);
      const row = this.specRow(kind, name);
      if (row && seedSkips(row)) {
        conflicts.push({ kind, name, owner: row.owner });
        return false;
      }
      return row;
    };
    for (const c of catalog.clusters) {
      const row = owned('cluster', c.name);
      if (row === false) continue;
      const earlier = seededAsIs(this.seeded, c, row);
      seeded.set(c.name, earlier ?? { input: c, revision: this.upsertCluster(tx, c, 'file', row) });
    }
    const clashes = socketClashes(catalog.listeners, this.listListeners());
    for (const l of catalog.listeners) {
      const row = owned('listener', l.name);
      const clash = clashes.get(l.name);
      if (clash && row !== false) conflicts.push(clash);
      else if (row !== false) this.upsertSpec(tx, 'listener', l.name, listenerSpecJson(l), 'file', row);
    }
    for (const g of catalog.nodeGroups) {
      const row = owned('node-group', g.nodeCluster);
      if (row !== false) this.upsertSpec(tx, 'node-group', g.nodeCluster, nodeGroupSpecJson(g), 'file', row);
    }
    for (const kind of ['node-group', 'listener', 'cluster'] as const) {
      for (const row of this.specRows(kind)) {
        if (row.owner !== 'file' || seen[kind].has(row.name)) continue;
        if (kind === 'cluster') this.removeCluster(tx, row);
        else this.removeSpec(tx, kind, row);
      }
    }
  }

  // ---------------------------------------------------------------- published weights

  /** Replaces the published weights of one cluster (endpoint key → integer weight). */
  saveWeights(cluster: string, weights: ReadonlyMap<string, number>): void {
    this.saveAllWeights(new Map([[cluster, weights]]));
  }

  /**
   * Replaces the published weights of every cluster in `all` in one transaction (one fsync per
   * engine tick rather than one per cluster). Clusters not in `all` keep theirs. Weights are
   * derived state: no audit row, no revision, no change event.
   */
  saveAllWeights(all: ReadonlyMap<string, ReadonlyMap<string, number>>): void {
    const at = this.now().toISOString();
    const started = performance.now();
    this.db
      .transaction(() => {
        for (const [cluster, weights] of all) {
          this.stmt.deleteWeightsOf.run(cluster);
          for (const [endpoint, weight] of weights) this.stmt.insertWeight.run(cluster, endpoint, weight, at);
        }
      })
      .immediate();
    this.wrote(started, 'weights');
  }

  /**
   * Deletes the published weights of `clusters`, in one transaction. For clusters that left the
   * catalog without a store write (discovered ones) or before this process started: a stored
   * cluster's delete drops its weights itself (removeCluster).
   */
  deleteWeights(clusters: readonly string[]): void {
    if (clusters.length === 0) return;
    const started = performance.now();
    this.db
      .transaction(() => {
        for (const cluster of clusters) this.stmt.deleteWeightsOf.run(cluster);
      })
      .immediate();
    this.wrote(started, 'weights');
  }

  /** The clusters that have published weights saved. */
  weightedClusters(): string[] {
    return this.stmt.weightedClusters.all().map((r) => r.cluster);
  }

  /** cluster → endpoint key → weight, as last saved. */
  loadWeights(): Map<string, Map<string, number>> {
    const out = new Map<string, Map<string, number>>();
    for (const r of this.stmt.allWeights.all()) {
      let m = out.get(r.cluster);
      if (!m) out.set(r.cluster, (m = new Map()));
      m.set(r.endpoint, r.weight);
    }
    return out;
  }

  /**
   * Settles once the fsyncs of committed writes have ended (their writers get their own outcome):
   * closing the WAL's file under a running fsync would fail a write committed before the close.
   */
  fsyncsSettled(): Promise<void> {
    return this.walSync.idle();
  }

  /**
   * Ends the WAL checkpoint worker once its running checkpoint is done (no checkpoint after this).
   * For a close that waits: a sliced write's checkpoint still running at close() opened the files
   * again after they were closed (and, in tests, removed).
   */
  checkpointsEnded(): Promise<void> {
    return this.checkpointer?.close() ?? Promise.resolve();
  }

  close(): void {
    void this.checkpointer?.close();
    this.checkpointer = undefined;
    if (this.writerDb?.open) this.writerDb.close();
    if (this.db.open) this.db.close();
    this.walFile.close();
    this.listeners.clear();
  }

  // ---------------------------------------------------------------- overrides (discovered clusters)

  listOverrides(): OverrideRecord[] {
    return this.sql<[], OverrideRow>('SELECT * FROM overrides ORDER BY name').all().map(overrideRecord);
  }

  getOverride(name: string): OverrideRecord | undefined {
    const row = this.sql<[string], OverrideRow>('SELECT * FROM overrides WHERE name = ?').get(name);
    return row && overrideRecord(row);
  }

  putOverride(target: OverrideTarget, value: OverrideValue, opts: OverrideOptions): WriteResult {
    checkOverride(target, value);
    const name = overrideName(target);
    return this.write(opts.actor, (tx) => {
      const old = this.getOverride(name);
      checkIfMatch('override', name, opts.ifMatch, old?.revision);
      if (old && canonicalJson(old.value) === canonicalJson(value)) return { revision: old.revision };
      this
        .sql(
          `INSERT INTO overrides (name, target, value, revision, updated_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET value = excluded.value, revision = excluded.revision, updated_at = excluded.updated_at`,
        )
        .run(name, canonicalJson(target), canonicalJson(value), tx.revision(), tx.at);
      tx.audit('override', name, old ? 'update' : 'create', old ?? null, this.getOverride(name));
      return { revision: tx.revision() };
    });
  }

  deleteOverride(name: string, opts: OverrideOptions): WriteResult {
    return this.write(opts.actor, (tx) => {
      const old = this.getOverride(name);
      if (!old) throw new NotFoundError('override', name);
      checkIfMatch('override', name, opts.ifMatch, old.revision);
      this.sql('DELETE FROM overrides WHERE name = ?').run(name);
      tx.audit('override', name, 'delete', old, null);
      return { revision: tx.revision() };
    });
  }

  // ---------------------------------------------------------------- internals

  private nextRevision(): number {
    return (this.stmt.nextRevision.get() as { value: number }).value;
  }

  private insertAudit(tx: Tx, kind: ResourceKind, name: string, action: AuditAction, before: unknown, after: unknown): void {
    const b = before == null ? null : JSON.stringify(before);
    const a = after == null ? null : JSON.stringify(after);
    this.stmt.audit.run(tx.at, tx.actor, action, kind, name, tx.revision(), b, a, auditSummary(b, a));
  }

  /** Runs `fn` in an IMMEDIATE transaction, then (after commit) notifies change listeners. */
  private write<T>(writing: Writing, fn: (tx: Tx) => T): T {
    const tx = new Tx(
      () => this.nextRevision(),
      (...args) => this.insertAudit(...args),
      writing,
      this.now().toISOString(),
    );
    const started = performance.now();
    let result: T;
    try {
      // The guard reads this connection inside the transaction: what it checks is what commits.
      result = this.db
        .transaction(() => {
          guardOf(writing)?.check();
          return fn(tx);
        })
        .immediate();
    } catch (err) {
      // Rolled back: a revision taken inside may be taken again with other content.
      this.records.clear();
      throw err;
    }
    // Under durably: the fsync starts now, off the event loop, and overlaps the push below.
    if (this.durableCommit) this.durableCommit.synced = this.walSync.synced();
    const patch = tx.endpoint && tx.changed ? this.endpointPatch(tx.endpoint, tx.revision(), tx.at) : undefined;
    this.committed(started, tx.changed ? tx.revision() : undefined, tx.actor, tx.changes, patch);
    return result;
  }

  /** After a commit: metrics, the incremental view, change events. `revision`: undefined when nothing changed. */
  private committed(started: number, revision: number | undefined, actor: string, changes: readonly Change[], patch?: ViewPatch): void {
    this.wrote(started, 'catalog');
    // A patch applies to the view's copy only if that copy was current before this write.
    const current = patch !== undefined && (patch.whole || this.view?.isDirty(patch.cluster) === false);
    if (revision !== undefined) this.view = this.view?.follow(revision, changes);
    if (current && this.view) patch.apply(this.view);
    if (revision !== undefined && changes.length > 0) {
      const change: StoreChange = { revision, actor, changes: [...changes] };
      for (const l of [...this.listeners]) {
        try {
          l(change);
        } catch (err) {
          this.onListenerError(err);
        }
      }
    }
  }

  private wrote(started: number, kind: 'catalog' | 'weights'): void {
    try {
      this.onWrite?.(performance.now() - started, kind);
    } catch (err) {
      this.onListenerError(err);
    }
    // Not in a COMMIT on the event loop: its fsyncs would hold the push of the write that crossed SQLite's threshold.
    if (++this.commitsSinceCheckpoint >= CHECKPOINT_EVERY_COMMITS) {
      this.commitsSinceCheckpoint = 0;
      void this.walCheckpointer().checkpoint();
    }
  }

  /** Prepares `sql` once per connection. */
  private sql<P extends unknown[] = unknown[], R = unknown>(sql: string): Database.Statement<P, R> {
    let s = this.cache.get(sql);
    if (!s) this.cache.set(sql, (s = this.db.prepare(sql)));
    return s as unknown as Database.Statement<P, R>;
  }

  private specRow(kind: SpecKind, name: string): SpecRow | undefined {
    return this.sql<[string], SpecRow>(selectSpecRow(kind)).get(name);
  }

  private specRows(kind: SpecKind): SpecRow[] {
    return this.sql<[], SpecRow>(selectSpecRows(kind)).all();
  }

  /**
   * A cluster's revision covers its endpoints, so the record read at a revision stays right until
   * the revision moves: the last few are kept, and reading one endpoint of a 20k-endpoint cluster
   * (every endpoint route checks the cluster first) does not read its 20k rows each time.
   */
  private clusterRecord(row: SpecRow): ClusterRecord {
    return this.keptRecord(row) ?? this.keep(recordOf(row, this.stmt.endpointsOf.all(row.name).map(toEndpointRecord)));
  }

  /** The kept record of the cluster in `row`, if it is of the row's revision. */
  private keptRecord(row: SpecRow): ClusterRecord | undefined {
    const known = this.records.get(row.name);
    return known && known.revision === row.revision && known.updatedAt === row.updated_at ? known : undefined;
  }

  /** Keeps `rec` as the most recently read, dropping the least recently read beyond RECORDS_KEPT. */
  private keep(rec: ClusterRecord): ClusterRecord {
    this.records.delete(rec.name);
    this.records.set(rec.name, rec);
    for (const name of this.records.keys()) {
      if (this.records.size <= RECORDS_KEPT) break;
      this.records.delete(name);
    }
    return rec;
  }

  /** Writes a cluster (and, if given, its endpoint set). Returns its revision afterwards. */
  private upsertCluster(tx: Tx, input: ClusterInput, owner: Owner, row: SpecRow | undefined): number {
    const spec = clusterSpecJson(input);
    const specChanged = !row || row.spec !== spec || row.owner !== owner;
    const plan = input.endpoints ? this.endpointPlan(input.name, input.endpoints, owner) : NO_ENDPOINT_CHANGES;
    if (!specChanged && plan.upserts.length === 0 && plan.deletes.length === 0) return (row as SpecRow).revision;
    // Only now: the record before a change is the cluster with all its endpoints, and a config
    // file's seed asks this of every cluster it defines, changed or not (at start and at each edit).
    const before = row ? this.clusterRecord(row) : null;
    if (specChanged)
      this
        .sql(
          `INSERT INTO clusters (name, spec, owner, revision, updated_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, owner = excluded.owner`,
        )
        .run(input.name, spec, owner, tx.revision(), tx.at);
    for (const next of plan.upserts) this.stmt.upsertEndpoint.run({ ...next, revision: tx.revision(), updated_at: tx.at });
    for (const e of plan.deletes) this.stmt.deleteEndpoint.run(input.name, e.address, e.port);
    this.stmt.touchCluster.run(tx.revision(), tx.at, input.name);
    const after = this.clusterRecord(this.specRow('cluster', input.name) as SpecRow);
    tx.audit('cluster', input.name, before ? 'update' : 'create', before, after);
    return tx.revision();
  }

  /** The rows a cluster's new endpoint set writes (changed or new) and deletes (gone), read before anything is written. */
  private endpointPlan(cluster: string, endpoints: readonly EndpointSpec[], owner: Owner): EndpointPlan {
    const old = new Map(this.stmt.endpointsOf.all(cluster).map((e) => [`${e.address}|${e.port}`, e]));
    const keep = new Set<string>();
    const upserts: EndpointColumns[] = [];
    for (const e of endpoints) {
      const key = `${e.address}|${e.port}`;
      keep.add(key);
      // Each entry against the stored row, a repeated address:port too (the last one written wins).
      const prior = old.get(key);
      const next = endpointColumns(cluster, e, owner, prior);
      if (!sameColumns(prior, next)) upserts.push(next);
    }
    return { upserts, deletes: [...old].filter(([key]) => !keep.has(key)).map(([, row]) => row) };
  }

  /** Returns whether anything changed. */
  private upsertEndpoint(tx: Tx, cluster: string, e: EndpointSpec, owner: Owner, old: EndpointRow | undefined): boolean {
    const next = endpointColumns(cluster, e, owner, old);
    if (sameColumns(old, next)) return false;
    this.stmt.upsertEndpoint.run({ ...next, revision: tx.revision(), updated_at: tx.at });
    return true;
  }


  private removeCluster(tx: Tx, row: SpecRow): void {
    const before = this.clusterRecord(row);
    this.sql('DELETE FROM clusters WHERE name = ?').run(row.name); // endpoints: ON DELETE CASCADE
    this.stmt.deleteWeightsOf.run(row.name);
    tx.audit('cluster', row.name, 'delete', before, null);
  }

  private putSpec(kind: 'listener' | 'node-group', name: string, spec: string, opts: WriteOptions): WriteResult {
    assertWriter(opts.owner);
    return this.write(opts, (tx) => {
      const row = this.specRow(kind, name);
      checkWrite(kind, name, row, opts);
      return { revision: this.upsertSpec(tx, kind, name, spec, opts.owner, row) };
    });
  }

  /** `then`: what else the delete's transaction writes (a hand-over's successor). */
  private deleteSpec(kind: 'listener' | 'node-group', name: string, opts: WriteOptions, then?: (tx: Tx) => void): WriteResult {
    assertWriter(opts.owner);
    return this.write(opts, (tx) => {
      const row = this.specRow(kind, name);
      if (!row) throw new NotFoundError(kind, name);
      checkWrite(kind, name, row, opts);
      this.removeSpec(tx, kind, row);
      then?.(tx);
      return { revision: tx.revision() };
    });
  }

  /**
   * A hand-over's file listener, written as a seed writes it: not while a listener another source
   * owns binds its socket (Envoy would refuse both); the seed that follows the delete reports that.
   */
  private writeListenerSuccessor(tx: Tx, s: ListenerSuccessor): void {
    if (socketClashes([s.listener], this.listListeners()).size > 0) return;
    tx.as(s.actor, () => this.upsertSpec(tx, 'listener', s.listener.name, listenerSpecJson(s.listener), 'file', undefined));
  }

  private upsertSpec(tx: Tx, kind: 'listener' | 'node-group', name: string, spec: string, owner: Owner, row: SpecRow | undefined): number {
    if (row && row.spec === spec && row.owner === owner) return row.revision;
    this.sql(upsertSpecSql(kind)).run(name, spec, owner, tx.revision(), tx.at);
    const after = specRecord(kind, this.specRow(kind, name) as SpecRow);
    tx.audit(kind, name, row ? 'update' : 'create', row ? specRecord(kind, row) : null, after);
    return tx.revision();
  }

  private removeSpec(tx: Tx, kind: 'listener' | 'node-group', row: SpecRow): void {
    this.sql(deleteSpecSql(kind)).run(row.name);
    tx.audit(kind, row.name, 'delete', specRecord(kind, row), null);
  }
}

interface OverrideRow {
  readonly name: string;
  readonly target: string;
  readonly value: string;
  readonly revision: number;
  readonly updated_at: string;
}

function overrideRecord(row: OverrideRow): OverrideRecord {
  return { name: row.name, target: JSON.parse(row.target) as OverrideTarget, value: JSON.parse(row.value) as OverrideValue, revision: row.revision, updatedAt: row.updated_at };
}

/** A cluster's record: its spec row and its endpoints' records. */
function recordOf(row: SpecRow, endpoints: readonly EndpointRecord[]): ClusterRecord {
  return { ...parseClusterSpec(row), ...meta(row), endpoints };
}
