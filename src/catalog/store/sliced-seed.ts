/**
 * The config file's seed without holding the event loop (SQLite store).
 *
 * Store.seedFromConfig makes the file's rows match the file in one synchronous transaction. An
 * edit of a 20k-endpoint file (what a ConfigMap holds) that changed every endpoint's weight held
 * every request, xDS ones too, ~700 ms in it (bench/config-reload.ts --every). This is the same
 * seed as steps of one IMMEDIATE transaction on the store's second connection, as
 * putClusterSliced writes one big cluster (sliced-write.ts): a cluster at a time, a big one a page
 * at a time, a turn of the event loop every `sliceMs`. Readers see the store as it was until
 * COMMIT; a throw at any step rolls all of it back. The rows, the seed's one revision, the change
 * events and the audit entries as read back are Store.seedFromConfig's; a cluster of more than
 * `packOver` endpoints has its audit texts stored packed, as putClusterSliced's (packed-text.ts).
 */
import type Database from 'better-sqlite3';
import { prepared } from './statements.js';
import { COUNT_ENDPOINTS } from './endpoint-rows.js';
import type { Catalog, Cluster } from '../types.js';
import { listenerSpecJson, nodeGroupSpecJson, seedSkips } from './ownership.js';
import type { Change, ClusterRecord, ListenerRecord, SeedConflict } from './records.js';
import { socketClashes } from './seed-sockets.js';
import { deleteClusterRows, deleteTextsNow } from './sliced-delete.js';
import { clusterRow, inSlicedTransaction, insertAudit, insertPlainAudit, nextRevision, readEndpoints, recordText, writeClusterRows, type ClusterRow } from './sliced-write.js';
import type { Slicer } from '../../runtime/slicer.js';
import { deleteSpecSql, selectSpecRows, specRecord, specRowOn, upsertSpecSql, type SpecKind, type SpecRow } from './spec-rows.js';

/** Per file cluster: the catalog object a seed wrote it from, and its revision after that seed (Store.seeded). */
export type Seeded = Map<string, { readonly input: Cluster; readonly revision: number }>;

export interface SeedWriting {
  readonly actor: string;
  readonly at: string;
  readonly sliceMs: number;
  /** What the earlier seeds wrote (Store.seeded): a cluster given as the same object, its revision unmoved since, is not read. */
  readonly earlier: ReadonlyMap<string, { readonly input: Cluster; readonly revision: number }>;
  /** A cluster with more endpoints than this (before or after) gets packed audit texts, as putClusterSliced's. */
  readonly packOver: number;
  /** Records of the last clusters written held for the store to keep (Store.records keeps as many). */
  readonly keepRecords: number;
}

export interface SlicedSeed {
  /** The seed's revision; undefined when nothing changed. */
  readonly revision: number | undefined;
  readonly changes: readonly Change[];
  readonly conflicts: readonly SeedConflict[];
  /** Every file cluster's object and revision after this seed (the next seed's `earlier`). */
  readonly seeded: Seeded;
  /** The clusters written, by name, as the catalog serves them: the store's view takes them unread. */
  readonly written: ReadonlyMap<string, Cluster>;
  /** The records of the last `keepRecords` clusters written, oldest first (not every one: 20k endpoints' records are ~6 MB). */
  readonly records: readonly ClusterRecord[];
}

/**
 * The earlier seed's entry for `c` when `c` is the very object it seeded and the cluster's row
 * (undefined: none) is still that seed's: every write through the store moves the revision.
 */
export function seededAsIs(
  earlier: ReadonlyMap<string, { readonly input: Cluster; readonly revision: number }>,
  c: Cluster,
  row: { readonly owner: string; readonly revision: number } | undefined,
): { readonly input: Cluster; readonly revision: number } | undefined {
  const e = earlier.get(c.name);
  return e?.input === c && row?.owner === 'file' && row.revision === e.revision ? e : undefined;
}

/** What one seed has done so far. */
interface Progress {
  readonly db: Database.Database;
  readonly w: SeedWriting;
  readonly slicer: Slicer;
  readonly revision: () => number;
  readonly changes: Change[];
  readonly conflicts: SeedConflict[];
  readonly seeded: Seeded;
  readonly written: Map<string, Cluster>;
  readonly records: ClusterRecord[];
  readonly seen: Record<SpecKind, Set<string>>;
}

/** Store.seedFromConfig's seed on `db` (a connection of its own), in steps of about `sliceMs`; committed when it resolves. */
export function seedSliced(db: Database.Database, catalog: Catalog, w: SeedWriting): Promise<SlicedSeed> {
  return inSlicedTransaction(db, w.sliceMs, async (slicer) => {
    let rev: number | undefined;
    const p: Progress = {
      db,
      w,
      slicer,
      revision: () => (rev ??= nextRevision(db)),
      changes: [],
      conflicts: [],
      seeded: new Map(),
      written: new Map(),
      records: [],
      seen: { cluster: new Set(), listener: new Set(), 'node-group': new Set() },
    };
    for (const c of catalog.clusters) {
      await seedCluster(p, c);
      await slicer.turn();
    }
    const stored = prepared<[], SpecRow>(db, selectSpecRows('listener')).all().map((row) => specRecord('listener', row) as ListenerRecord);
    const clashes = socketClashes(catalog.listeners, stored);
    for (const l of catalog.listeners) seedSpec(p, 'listener', l.name, listenerSpecJson(l), clashes.get(l.name));
    for (const g of catalog.nodeGroups) seedSpec(p, 'node-group', g.nodeCluster, nodeGroupSpecJson(g));
    await removeDropped(p);
    return { revision: rev, changes: p.changes, conflicts: p.conflicts, seeded: p.seeded, written: p.written, records: p.records };
  });
}

/** The row of a resource the file defines, or false when another source owns the name (a conflict). */
function owned<R extends { readonly owner: SpecRow['owner'] }>(p: Progress, kind: SpecKind, name: string, row: R | undefined): R | undefined | false {
  p.seen[kind].add(name);
  if (!seedSkips(row)) return row;
  p.conflicts.push({ kind, name, owner: (row as R).owner });
  return false;
}

async function seedCluster(p: Progress, c: Cluster): Promise<void> {
  const row = owned(p, 'cluster', c.name, clusterRow(p.db, c.name));
  if (row === false) return;
  const earlier = seededAsIs(p.w.earlier, c, row);
  if (earlier) {
    p.seeded.set(c.name, earlier);
    return;
  }
  const pack = Math.max(c.endpoints.length, endpointCount(p.db, c.name)) > p.w.packOver;
  const out = await writeClusterRows(p.db, c, row, { owner: 'file', actor: p.w.actor, at: p.w.at, revision: p.revision, slicer: p.slicer, action: (change) => change, pack });
  p.seeded.set(c.name, { input: c, revision: out.revision });
  p.changes.push(...out.changes);
  // A name given twice (never valid in a file) is served as last written, as the rows hold it.
  if (out.served) p.written.set(c.name, out.served);
  if (out.record) p.records.push(out.record);
  if (p.records.length > p.w.keepRecords) p.records.shift();
}

/** `clash`: the socket another source's listener binds (seed-sockets.ts): reported, not applied. */
function seedSpec(p: Progress, kind: 'listener' | 'node-group', name: string, spec: string, clash?: SeedConflict): void {
  const row = owned(p, kind, name, specRowOn(p.db, kind, name));
  if (row !== false && clash) p.conflicts.push(clash);
  if (row === false || clash || (row && row.spec === spec && row.owner === 'file')) return;
  prepared(p.db, upsertSpecSql(kind)).run(name, spec, 'file', p.revision(), p.w.at);
  const after = specRecord(kind, specRowOn(p.db, kind, name) as SpecRow);
  audit(p, kind, name, row ? 'update' : 'create', row ? JSON.stringify(specRecord(kind, row)) : null, JSON.stringify(after));
}

/** Deletes the `file` rows the file no longer defines: node groups, listeners, then clusters (as Store.seedFromConfig). */
async function removeDropped(p: Progress): Promise<void> {
  for (const kind of ['node-group', 'listener', 'cluster'] as const) {
    for (const row of prepared<[], SpecRow>(p.db, selectSpecRows(kind)).all()) {
      if (row.owner !== 'file' || p.seen[kind].has(row.name)) continue;
      if (kind === 'cluster') await removeCluster(p, row);
      else {
        prepared(p.db, deleteSpecSql(kind)).run(row.name);
        audit(p, kind, row.name, 'delete', JSON.stringify(specRecord(kind, row)), null);
      }
      await p.slicer.turn();
    }
  }
}

async function removeCluster(p: Progress, row: ClusterRow): Promise<void> {
  const revision = p.revision();
  if (endpointCount(p.db, row.name) > p.w.packOver) {
    const texts = await deleteTextsNow(p.db, row, p.slicer);
    await deleteClusterRows(p.db, row.name, p.slicer);
    insertAudit(p.db, [p.w.at, p.w.actor, 'delete', row.name, revision, texts.before, null, texts.summary]);
  } else {
    const before = recordText(row, await readEndpoints(p.db, row.name, p.slicer, () => undefined));
    await deleteClusterRows(p.db, row.name, p.slicer);
    insertPlainAudit(p.db, [p.w.at, p.w.actor, 'delete', 'cluster', row.name, revision, before, null]);
  }
  p.changes.push({ kind: 'cluster', name: row.name, action: 'delete' });
}

function audit(p: Progress, kind: 'listener' | 'node-group', name: string, action: 'create' | 'update' | 'delete', before: string | null, after: string | null): void {
  insertPlainAudit(p.db, [p.w.at, p.w.actor, action, kind, name, p.revision(), before, after]);
  p.changes.push({ kind, name, action });
}

function endpointCount(db: Database.Database, cluster: string): number {
  return (prepared<[string], { n: number }>(db, COUNT_ENDPOINTS).get(cluster) as { n: number }).n;
}
