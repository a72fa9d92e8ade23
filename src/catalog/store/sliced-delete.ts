/**
 * Deleting a cluster with thousands of endpoints without holding the event loop (SQLite store).
 *
 * One synchronous transaction of a 20k-endpoint cluster's delete (the cascade over 20k rows, the
 * audit row's 4.6 MB record text, the commit) held the loop 63–123 ms under load. This runs the
 * same delete as steps of one IMMEDIATE transaction on the store's second connection, as
 * putClusterSliced does (sliced-write.ts): the endpoint and weight rows in chunks (a turn every
 * `sliceMs`), the cluster row, then the audit row and the commit, each a turn of its own. Readers see the cluster whole until COMMIT;
 * a failure or a closed connection at any step rolls everything back. The rows, revision, audit
 * row and change event are exactly those of Store.deleteCluster; a hand-over's successor (the
 * config file's definition) is written in the same transaction, at the same revision, as
 * putClusterSliced writes a cluster.
 */
import type Database from 'better-sqlite3';
import { prepared } from './statements.js';
import { jsonPartsInSlices } from '../../runtime/json-in-slices.js';
import { NotFoundError } from './errors.js';
import { checkWrite } from './ownership.js';
import { summaryIfLarge } from './audit-summary.js';
import type { TrimmedRecord } from './audit-trim.js';
import type { Change, ClusterRecord, DeleteClusterOptions, Successor } from './records.js';
import { packJoined, packText, type PackedText } from './packed-text.js';
import type { Slicer } from '../../runtime/slicer.js';
import { clusterRow, inSlicedTransaction, insertAudit, nextRevision, packRecord, readEndpoints, writeClusterRows, type ClusterRow, type SlicedOutcome } from './sliced-write.js';

/** Rows deleted per statement: a few milliseconds each, so a slice holds a handful of them. */
const CHUNK = 500;

/** The audit texts of deleting a cluster, made before its transaction from the record read then. */
export interface PreparedDelete {
  /** The record's revision and updatedAt: the texts are used only if the cluster is still that. */
  readonly revision: number;
  readonly updatedAt: string;
  /** The record's text, packed (packed-text.ts). */
  readonly before: PackedText;
  readonly summary: string | null;
}

export interface DeleteOutcome {
  readonly revision: number;
  readonly changes: readonly Change[];
  /** What a hand-over wrote in the cluster's place (DeleteClusterOptions.successor). */
  readonly successor?: SlicedOutcome;
}

/** Endpoints serialized per turn of the event loop while preparing a delete (~2 ms each). */
const JSON_SLICE = 1_000;

/** One argument only: `map` would hand JSON.stringify the index and the array as replacer and space. */
const stringify = (x: unknown): string => JSON.stringify(x);

/**
 * The audit texts of deleting `record`: the text JSON.stringify gives it, made `JSON_SLICE`
 * endpoints per `turn` (in one go it held the loop ~40 ms at 20k endpoints) and packed, and its
 * summary, made from the record rather than by scanning the text (the same summary as
 * auditSummary(before, null) gives).
 */
export async function prepareDelete(record: ClusterRecord, turn: () => Promise<void>): Promise<PreparedDelete> {
  const { endpoints, ...settings } = record;
  const parts = await jsonPartsInSlices({ head: stringify, item: stringify, turn }, record, 'endpoints', endpoints, JSON_SLICE);
  const before = parts ? await packJoined(parts.head, parts.at, parts.groups, turn, 1) : await packText(JSON.stringify(record));
  return deleteTexts(record.revision, record.updatedAt, before, { record: settings, endpoints: endpoints.length });
}

/** A delete's audit texts: the record's text, and its summary when it is large (the after side is null). */
function deleteTexts(revision: number, updatedAt: string, before: PackedText, trimmed: TrimmedRecord): PreparedDelete {
  return { revision, updatedAt, before, summary: summaryIfLarge(before.bytes, () => trimmed, () => null) };
}

/** The delete itself, on `db` (a connection of its own), in steps of about `sliceMs`; committed when it resolves. */
export function deleteClusterSliced(
  db: Database.Database,
  name: string,
  opts: DeleteClusterOptions,
  w: { readonly at: string; readonly sliceMs: number; readonly prepared: PreparedDelete | undefined },
): Promise<DeleteOutcome> {
  return inSlicedTransaction(db, w.sliceMs, async (slicer) => {
    const row = clusterRow(db, name);
    if (!row) throw new NotFoundError('cluster', name);
    checkWrite('cluster', name, row, opts);
    // Changed since it was prepared (a write past the lane): audited as it is now, as deleteCluster would.
    const fresh = w.prepared && w.prepared.revision === row.revision && w.prepared.updatedAt === row.updated_at ? w.prepared : await deleteTextsNow(db, row, slicer);
    await deleteClusterRows(db, name, slicer);
    const revision = nextRevision(db);
    await slicer.step();
    insertAudit(db, [w.at, opts.actor, 'delete', name, revision, fresh.before, null, fresh.summary]);
    const deleted: Change = { kind: 'cluster', name, action: 'delete' };
    if (!opts.successor) return { revision, changes: [deleted] };
    const successor = await writeSuccessor(db, opts.successor, { at: w.at, revision, slicer });
    return { revision, changes: [deleted, ...successor.changes], successor };
  });
}

/** The config file's definition written where the deleted cluster was, under the delete's revision, audited as the file's. */
function writeSuccessor(db: Database.Database, s: Successor, w: { readonly at: string; readonly revision: number; readonly slicer: Slicer }): Promise<SlicedOutcome> {
  return writeClusterRows(db, s.cluster, undefined, { owner: 'file', actor: s.actor, at: w.at, revision: () => w.revision, slicer: w.slicer, action: (change) => change, pack: true });
}

/** Deletes a cluster's endpoint and weight rows, a chunk per slice, then its row (in the caller's sliced transaction). */
export async function deleteClusterRows(db: Database.Database, name: string, slicer: Slicer): Promise<void> {
  await deleteInChunks(db, 'endpoints', name, slicer);
  await deleteInChunks(db, 'published_weights', name, slicer);
  // No endpoint row is left for the cascade: this is the cluster row alone.
  prepared(db, 'DELETE FROM clusters WHERE name = ?').run(name);
}

/** The audit texts of deleting the cluster of `row`, from its rows as the transaction sees them, read a page per slice. */
export async function deleteTextsNow(db: Database.Database, row: ClusterRow, slicer: Slicer): Promise<PreparedDelete> {
  const parts = await readEndpoints(db, row.name, slicer, () => undefined);
  await slicer.step();
  const { text, trimmed } = await packRecord(row, parts, () => slicer.turn());
  return deleteTexts(row.revision, row.updated_at, text, trimmed);
}

/**
 * Deletes `table`'s rows of `cluster`, CHUNK at a time, yielding between slices. Each chunk is the
 * first rows left on the (cluster, …) primary key's index, so no chunk scans rows already deleted.
 */
async function deleteInChunks(db: Database.Database, table: 'endpoints' | 'published_weights', cluster: string, slicer: Slicer): Promise<void> {
  const chunk = prepared<[string, number]>(db, `DELETE FROM ${table} WHERE rowid IN (SELECT rowid FROM ${table} WHERE cluster = ? LIMIT ?)`);
  while (chunk.run(cluster, CHUNK).changes === CHUNK) await slicer.turn();
}
