/**
 * A cluster write with thousands of endpoints that lets the event loop turn (SQLite store).
 *
 * One synchronous transaction of 20k upserts plus an audit record holding the cluster before and
 * after (~9 MB of JSON) held the event loop for seconds: every admin request and xDS stream
 * waited. This does the same write on a second connection to the same file, in one IMMEDIATE
 * transaction that stays open across turns of the event loop: it works in slices of about
 * `sliceMs` and yields between them. WAL keeps the store's own connection reading the last
 * committed state meanwhile, so nothing sees half a write; the caller (write-lane.ts) keeps other
 * writes queued until it commits, since they would wait for the same lock. The result, the rows,
 * the revision and the audit record are exactly those of Store.putCluster.
 */
import { SLICE_MS, Slicer } from '../../runtime/slicer.js';
import type Database from 'better-sqlite3';
import { prepared } from './statements.js';
import { auditedAction, type AuditAction, type Change, type ClusterInput, type ClusterRecord, type EndpointRecord, type Owner, type ResourceKind, type WriteOptions } from './records.js';
import { checkWrite, clusterSpecJson } from './ownership.js';
import type { TrimmedRecord } from './audit-trim.js';
import { endpointColumns, parseClusterSpec, sameColumns, toCluster, toEndpointRecord, UPSERT_ENDPOINT, type EndpointRow } from './endpoint-rows.js';
import type { Cluster } from '../types.js';
import { auditSummary, summaryIfLarge } from './audit-summary.js';
import { packJoined, type PackedText } from './packed-text.js';

/** Rows per read: small enough that a page is one short slice on a loaded machine. */
const PAGE = 100;

export interface ClusterRow {
  readonly name: string;
  readonly spec: string;
  readonly owner: 'file' | 'api' | 'kubernetes';
  readonly revision: number;
  readonly updated_at: string;
}

export interface SlicedOutcome {
  /** The cluster's revision afterwards (unchanged on a no-op). */
  readonly revision: number;
  /** Empty when nothing changed. */
  readonly changes: readonly Change[];
  /** After the write (absent when nothing changed): the cluster as the catalog serves it, and its record. */
  readonly served?: Cluster;
  readonly record?: ClusterRecord;
}

/** Cluster writes (and config-file seeds) with more endpoints than this are sliced (write-lane.ts). */
export const SLICED_OVER = 1000;

/** A big write's slice of the event loop (runtime/slicer.ts SLICE_MS says why 4 ms). */
export const WRITE_SLICE_MS = SLICE_MS;

/** The write itself, on `db` (a connection of its own): checks, upserts, deletes, audit, commit. */
export async function putClusterSliced(
  db: Database.Database,
  input: ClusterInput,
  opts: WriteOptions,
  at: string,
  sliceMs: number,
): Promise<SlicedOutcome> {
  return inSlicedTransaction(db, sliceMs, (slicer) => writeCluster(db, input, opts, at, slicer));
}

/**
 * Runs `body` in one IMMEDIATE transaction on `db` that stays open across the turns `body` takes,
 * and commits in a step of its own; any throw (or a closed connection) rolls it all back, so a
 * write cut short leaves the store as it was. The caller keeps other writes off the store meanwhile.
 */
export async function inSlicedTransaction<T>(db: Database.Database, sliceMs: number, body: (slicer: Slicer) => Promise<T>): Promise<T> {
  db.exec('BEGIN IMMEDIATE');
  try {
    const slicer = new Slicer(sliceMs);
    const outcome = await body(slicer);
    // COMMIT writes the transaction's last dirty pages to the WAL: a step of its own.
    await slicer.step();
    // `db` commits with synchronous = NORMAL: no fsync on the event loop here (on a shared disk
    // one took 45–745 ms, every request waiting); the caller fsyncs the WAL off it (Store.putClusterSliced).
    db.exec('COMMIT');
    return outcome;
  } catch (err) {
    if (db.open && db.inTransaction) db.exec('ROLLBACK');
    throw err;
  }
}

async function writeCluster(db: Database.Database, input: ClusterInput, opts: WriteOptions, at: string, slicer: Slicer): Promise<SlicedOutcome> {
  const row = clusterRow(db, input.name);
  checkWrite('cluster', input.name, row, opts);
  let rev: number | undefined;
  const revision = (): number => (rev ??= nextRevision(db));
  return writeClusterRows(db, input, row, { owner: opts.owner, actor: opts.actor, at, revision, slicer, action: (change) => auditedAction(change, opts), pack: true });
}

/** How a cluster's rows are written in a sliced transaction: by whom, under which revision, with which audit texts. */
export interface ClusterWriting {
  readonly owner: Owner;
  readonly actor: string;
  readonly at: string;
  /** The transaction's revision, taken at its first change (shared by every resource a seed writes). */
  readonly revision: () => number;
  readonly slicer: Slicer;
  /** The audited action of a create or an update (a PATCH's update is a 'patch'). */
  readonly action: (change: 'create' | 'update') => AuditAction;
  /** Pack the audit texts (packed-text.ts), as big writes do; else plain TEXT, as every other write. */
  readonly pack: boolean;
}

/**
 * Makes the cluster `input` names what `input` says, over its current `row` (undefined: none),
 * after the writer's checks: its row, its endpoint rows, its revision and its audit row, or
 * nothing at all when nothing differs (its revision stays `row`'s).
 */
export async function writeClusterRows(db: Database.Database, input: ClusterInput, row: ClusterRow | undefined, w: ClusterWriting): Promise<SlicedOutcome> {
  const old = new Map<string, EndpointRow>();
  const beforeParts = await readEndpoints(db, input.name, w.slicer, (r) => old.set(`${r.address}|${r.port}`, r));
  let changed = false;
  const revision = (): number => ((changed = true), w.revision());
  const spec = clusterSpecJson(input);
  if (!row || row.spec !== spec || row.owner !== w.owner)
    prepared(
      db,
      `INSERT INTO clusters (name, spec, owner, revision, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, owner = excluded.owner`,
    ).run(input.name, spec, w.owner, revision(), w.at);
  if (input.endpoints) await replaceEndpoints(db, input, w.owner, old, { at: w.at, revision, slicer: w.slicer });
  if (!changed) return { revision: (row as ClusterRow).revision, changes: [] };
  const rev = w.revision();
  prepared(db, 'UPDATE clusters SET revision = ?, updated_at = ? WHERE name = ?').run(rev, w.at, input.name);
  const afterRow = clusterRow(db, input.name) as ClusterRow;
  const rows: EndpointRow[] = [];
  const records: EndpointRecord[] = [];
  const afterParts = await readEndpoints(db, input.name, w.slicer, (r, rec) => {
    rows.push(r);
    records.push(rec);
  });
  const action = w.action(row ? 'update' : 'create');
  await auditCluster(db, { row, beforeParts, afterRow, afterParts }, w, { action, rev });
  const record: ClusterRecord = { ...parseClusterSpec(afterRow), owner: afterRow.owner, revision: afterRow.revision, updatedAt: afterRow.updated_at, endpoints: records };
  return { revision: rev, changes: [{ kind: 'cluster', name: input.name, action }], served: toCluster(afterRow, rows), record };
}

/** A cluster's rows before and after a write, and its endpoints' record texts. */
interface BeforeAfter {
  readonly row: ClusterRow | undefined;
  readonly beforeParts: readonly string[];
  readonly afterRow: ClusterRow;
  readonly afterParts: readonly string[];
}

/**
 * The write's audit row. Packed: in steps (the transaction is still open: readers see the state
 * before it), the record texts (~4.5 MB each at 20k endpoints) made a slice at a time and deflated
 * off the event loop (packed-text.ts), then the row. Plain: the texts Store.putCluster's audit
 * row holds, for a cluster small enough to write in one piece.
 */
async function auditCluster(db: Database.Database, b: BeforeAfter, w: ClusterWriting, a: { readonly action: AuditAction; readonly rev: number }): Promise<void> {
  const name = b.afterRow.name;
  if (!w.pack) {
    const before = b.row ? recordText(b.row, b.beforeParts) : null;
    const after = recordText(b.afterRow, b.afterParts);
    insertPlainAudit(db, [w.at, w.actor, a.action, 'cluster', name, a.rev, before, after]);
    return;
  }
  await w.slicer.step();
  const turn = (): Promise<void> => w.slicer.turn();
  const before = b.row ? await packRecord(b.row, b.beforeParts, turn) : null;
  const after = await packRecord(b.afterRow, b.afterParts, turn);
  await w.slicer.step();
  insertAudit(db, [w.at, w.actor, a.action, name, a.rev, before?.text ?? null, after.text, auditSummaryOf(before, after)]);
  await w.slicer.step();
}

interface Writing {
  readonly at: string;
  readonly revision: () => number;
  readonly slicer: Slicer;
}

/** Upserts what changed and deletes what is no longer listed, a slice at a time. */
async function replaceEndpoints(db: Database.Database, input: ClusterInput, owner: Owner, old: Map<string, EndpointRow>, w: Writing): Promise<void> {
  const upsert = prepared(db, UPSERT_ENDPOINT);
  const keep = new Set<string>();
  for (const e of input.endpoints ?? []) {
    const key = `${e.address}|${e.port}`;
    keep.add(key);
    const prior = old.get(key);
    const next = endpointColumns(input.name, e, owner, prior);
    if (!sameColumns(prior, next)) upsert.run({ ...next, revision: w.revision(), updated_at: w.at });
    await w.slicer.turn();
  }
  const remove = prepared(db, 'DELETE FROM endpoints WHERE cluster = ? AND address = ? AND port = ?');
  for (const [key, e] of old) {
    if (keep.has(key)) continue;
    w.revision();
    remove.run(input.name, e.address, e.port);
    await w.slicer.turn();
  }
}

export function clusterRow(db: Database.Database, name: string): ClusterRow | undefined {
  return prepared<[string], ClusterRow>(db, 'SELECT name, spec, owner, revision, updated_at FROM clusters WHERE name = ?').get(name);
}

export function nextRevision(db: Database.Database): number {
  return (prepared(db, `UPDATE store_meta SET value = value + 1 WHERE key = 'revision' RETURNING value`).get() as { value: number }).value;
}

/**
 * A page of a cluster's endpoints after (address, port). The row-value bound is a range on the
 * primary key's index, so each page starts where the last ended; `address > ? OR (address = ?
 * AND port > ?)` was not, and every page scanned the cluster's rows from its first (20k
 * endpoints: 200 pages over ~2M rows, seconds of a write's slices).
 */
export const ENDPOINT_PAGE = 'SELECT * FROM endpoints WHERE cluster = ? AND (address, port) > (?, ?) ORDER BY address, port LIMIT ?';

/** The cluster's endpoint rows in store order, a page per slice; returns each as record JSON. */
export async function readEndpoints(db: Database.Database, cluster: string, slicer: Slicer, each: (row: EndpointRow, record: EndpointRecord) => void): Promise<string[]> {
  const page = prepared<[string, string, number, number], EndpointRow>(db, ENDPOINT_PAGE);
  const parts: string[] = [];
  let last: EndpointRow | undefined;
  for (;;) {
    const rows = page.all(cluster, last?.address ?? '', last?.port ?? 0, PAGE);
    for (const r of rows) {
      const record = toEndpointRecord(r);
      each(r, record);
      parts.push(JSON.stringify(record));
    }
    last = rows[rows.length - 1];
    if (rows.length < PAGE || !last) return parts;
    await slicer.turn();
  }
}

export interface RecordText {
  /** What JSON.stringify gives the store's ClusterRecord (settings, meta, endpoints last), packed. */
  readonly text: PackedText;
  /** The record without its endpoints, and their count: its audit summary's side. */
  readonly trimmed: TrimmedRecord;
}

/** The settings part of a cluster's record (as Store's records have them, endpoints last). */
function recordSettings(row: ClusterRow): Record<string, unknown> {
  return { name: row.name, ...(JSON.parse(row.spec) as object), owner: row.owner, revision: row.revision, updatedAt: row.updated_at };
}

/** A cluster record's text (what JSON.stringify gives Store's record) from its endpoints' texts. */
export function recordText(row: ClusterRow, endpoints: readonly string[]): string {
  const head = JSON.stringify({ ...recordSettings(row), endpoints: [] });
  return `${head.slice(0, -2)}${endpoints.join(',')}${head.slice(-2)}`;
}

/** A cluster record's text built from its endpoints' texts, packed a slice at a time. */
export async function packRecord(row: ClusterRow, endpoints: readonly string[], turn: () => Promise<void>): Promise<RecordText> {
  const settings = recordSettings(row);
  const head = JSON.stringify({ ...settings, endpoints: [] });
  // The endpoints go just inside the head's closing `[]}`.
  const text = await packJoined(head, head.length - 2, endpoints, turn);
  return { text, trimmed: { record: settings, endpoints: endpoints.length } };
}

/** The audit summary, from the parts the texts were built from (no scan of megabytes of text). */
function auditSummaryOf(before: RecordText | null, after: RecordText): string | null {
  return summaryIfLarge((before?.text.bytes ?? 0) + after.text.bytes, () => before?.trimmed ?? null, () => after.trimmed);
}

type PlainAuditValues = [at: string, actor: string, action: string, kind: ResourceKind, name: string, revision: number, before: string | null, after: string | null];

/** An audit row with its texts as TEXT, as Store's own writes insert them. */
export function insertPlainAudit(db: Database.Database, values: PlainAuditValues): void {
  const [at, actor, action, kind, name, revision, before, after] = values;
  prepared(db, 'INSERT INTO audit (at, actor, action, kind, name, revision, before, after, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)').run(
    at,
    actor,
    action,
    kind,
    name,
    revision,
    before,
    after,
    auditSummary(before, after),
  );
}

type AuditValues = [at: string, actor: string, action: string, name: string, revision: number, before: PackedText | null, after: PackedText | null, summary: string | null];

/** A big write's audit row: its texts packed (packed-text.ts), with their size as stored text would have. */
export function insertAudit(db: Database.Database, values: AuditValues): void {
  const [at, actor, action, name, revision, before, after, summary] = values;
  prepared(
    db,
    `INSERT INTO audit (at, actor, action, kind, name, revision, summary, before_packed, after_packed, packed_bytes)
     VALUES (?, ?, ?, 'cluster', ?, ?, ?, ?, ?, ?)`,
  ).run(at, actor, action, name, revision, summary, before?.packed ?? null, after?.packed ?? null, (before?.bytes ?? 0) + (after?.bytes ?? 0));
}
