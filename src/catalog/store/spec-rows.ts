/**
 * The rows of clusters, listeners and node groups (SQLite): one table each, keyed by name, a
 * canonical JSON spec, its owner and revision. Shared by the store's own writes (store.ts) and
 * the config file's sliced seed on its second connection (sliced-seed.ts).
 */
import type Database from 'better-sqlite3';
import { prepared } from './statements.js';
import type { Listener, NodeGroup } from '../types.js';
import type { ListenerRecord, NodeGroupRecord, Owner } from './records.js';

export interface SpecRow {
  readonly name: string;
  readonly spec: string;
  readonly owner: Owner;
  readonly revision: number;
  readonly updated_at: string;
}

export type SpecKind = 'cluster' | 'listener' | 'node-group';

export const TABLE: Record<SpecKind, { table: string; key: string }> = {
  cluster: { table: 'clusters', key: 'name' },
  listener: { table: 'listeners', key: 'name' },
  'node-group': { table: 'node_groups', key: 'node_cluster' },
};

export function selectSpecRow(kind: SpecKind): string {
  const t = TABLE[kind];
  return `SELECT ${t.key} AS name, spec, owner, revision, updated_at FROM ${t.table} WHERE ${t.key} = ?`;
}

export function selectSpecRows(kind: SpecKind): string {
  const t = TABLE[kind];
  return `SELECT ${t.key} AS name, spec, owner, revision, updated_at FROM ${t.table} ORDER BY ${t.key}`;
}

/** Creates or replaces a listener's or node group's row. */
export function upsertSpecSql(kind: 'listener' | 'node-group'): string {
  const t = TABLE[kind];
  return `INSERT INTO ${t.table} (${t.key}, spec, owner, revision, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (${t.key}) DO UPDATE SET spec = excluded.spec, owner = excluded.owner,
           revision = excluded.revision, updated_at = excluded.updated_at`;
}

export function deleteSpecSql(kind: SpecKind): string {
  const t = TABLE[kind];
  return `DELETE FROM ${t.table} WHERE ${t.key} = ?`;
}

export function meta(row: SpecRow): { owner: Owner; revision: number; updatedAt: string } {
  return { owner: row.owner, revision: row.revision, updatedAt: row.updated_at };
}

export function parseListener(row: SpecRow): Listener {
  return { name: row.name, ...(JSON.parse(row.spec) as Omit<Listener, 'name'>) };
}

export function parseNodeGroup(row: SpecRow): NodeGroup {
  return { nodeCluster: row.name, ...(JSON.parse(row.spec) as Omit<NodeGroup, 'nodeCluster'>) };
}

/** A listener's or node group's record, as reads and audit rows hold it. */
export function specRecord(kind: 'listener' | 'node-group', row: SpecRow): ListenerRecord | NodeGroupRecord {
  return kind === 'listener' ? { ...parseListener(row), ...meta(row) } : { ...parseNodeGroup(row), ...meta(row) };
}

/** The row of `name`, on `db` (the sliced seed's connection). */
export function specRowOn(db: Database.Database, kind: SpecKind, name: string): SpecRow | undefined {
  return prepared<[string], SpecRow>(db, selectSpecRow(kind)).get(name);
}
