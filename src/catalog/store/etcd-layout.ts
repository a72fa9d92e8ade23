/**
 * How the etcd store lays desired state out under its prefix, and how stored values become the
 * records every store returns. Pure: no I/O.
 *
 *   clusters/<name>     a cluster's settings AND its endpoints (one key: the cluster's revision
 *                       covers its endpoints, and a write is one compare on one mod_revision)
 *   listeners/<name>    node-groups/<node cluster>
 *   weights/<cluster>   the published weights (derived state: no audit)
 *   audit/<unique id>   one entry per change, written in the same transaction as the change
 *   overrides/<name>    an operator override on a discovered cluster or endpoint (override-records.ts)
 *
 * Names are URI-encoded (a Kubernetes cluster name holds a '/'). A resource's revision (ETag) is
 * its key's etcd mod_revision. An endpoint's own revision is stored as `rev`, except that the write
 * which changes it cannot know its revision before committing: it stores `rev: null`, read back as
 * the mod_revision of the key that holds it (the same transaction's revision).
 */
import type { HealthStatus, Locality } from '../types.js';
import type { OverrideRecord, OverrideTarget, OverrideValue } from './override-records.js';
import type { AuditAction, AuditEntry, ClusterRecord, EndpointRecord, ListenerRecord, NodeGroupRecord, OperatorState, Owner, ResourceKind } from './records.js';

export type Section = 'clusters' | 'listeners' | 'node-groups' | 'weights' | 'audit' | 'overrides';
export type SpecKind = 'cluster' | 'listener' | 'node-group';
export const SECTION: Record<SpecKind, Section> = { cluster: 'clusters', listener: 'listeners', 'node-group': 'node-groups' };
export const SECTIONS: readonly Section[] = ['clusters', 'listeners', 'node-groups', 'weights', 'audit', 'overrides'];

/** One key as the mirror holds it: its decoded JSON value and etcd revisions. */
export interface Entry<T> {
  readonly value: T;
  readonly mod: number;
  readonly create: number;
}

export interface StoredSpec {
  /** Canonical JSON of the settings (ownership.ts), compared byte for byte to spot no-ops. */
  readonly spec: string;
  readonly owner: Owner;
  readonly at: string;
}

export interface StoredEndpoint {
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly priority: number;
  readonly locality: Locality;
  readonly health: HealthStatus;
  readonly state: OperatorState;
  /** Revision of its last change; null: the revision of the value holding it. */
  readonly rev: number | null;
  readonly at: string;
}

export interface StoredCluster extends StoredSpec {
  /** Sorted by address, then port. */
  readonly endpoints: readonly StoredEndpoint[];
}

export interface StoredOverride {
  readonly target: OverrideTarget;
  readonly value: OverrideValue;
  readonly at: string;
}

export function overrideRecordOf(name: string, v: StoredOverride, revision: number): OverrideRecord {
  return { name, target: v.target, value: v.value, revision, updatedAt: v.at };
}

export interface StoredWeights {
  readonly at: string;
  readonly weights: Readonly<Record<string, number>>;
}

export interface StoredAudit {
  readonly at: string;
  readonly actor: string;
  readonly action: AuditAction;
  readonly kind: ResourceKind;
  readonly name: string;
  /** Position inside its transaction (a seed writes several): the id is revision × 1024 + seq. */
  readonly seq: number;
  readonly before: unknown;
  /** The stored value after the change (revisions resolve against the audit key's), null on delete. */
  readonly after: StoredCluster | StoredSpec | StoredOverride | null;
  /** For an endpoint change: which endpoint of `after` (a cluster) it was. */
  readonly endpoint?: { readonly address: string; readonly port: number };
}

export const AUDIT_SEQ_SPAN = 1024;

export function keyOf(section: Section, name: string): string {
  return `${section}/${encodeURIComponent(name)}`;
}

/** `clusters/web` → { section: 'clusters', name: 'web' }; undefined for keys fulcrum's store does not own. */
export function parseKey(key: string): { section: Section; name: string } | undefined {
  const slash = key.indexOf('/');
  if (slash < 0) return undefined;
  const section = key.slice(0, slash) as Section;
  if (!SECTIONS.includes(section)) return undefined;
  try {
    return { section, name: decodeURIComponent(key.slice(slash + 1)) };
  } catch {
    return undefined;
  }
}

/** Byte order, like SQLite's BINARY collation, so both stores list in the same order. */
export function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function endpointOrder(a: { address: string; port: number }, b: { address: string; port: number }): number {
  return byName(a.address, b.address) || a.port - b.port;
}

function meta(v: StoredSpec, revision: number): { owner: Owner; revision: number; updatedAt: string } {
  return { owner: v.owner, revision, updatedAt: v.at };
}

export function endpointRecord(cluster: string, owner: Owner, e: StoredEndpoint, holderRevision: number): EndpointRecord {
  return {
    cluster,
    address: e.address,
    port: e.port,
    locality: e.locality,
    priority: e.priority,
    weight: e.weight,
    health: e.health,
    state: e.state,
    owner,
    revision: e.rev ?? holderRevision,
    updatedAt: e.at,
  };
}

/** Endpoints with their revisions resolved (for rewriting them in a later value). */
export function resolvedEndpoints(v: StoredCluster, revision: number): StoredEndpoint[] {
  return v.endpoints.map((e) => (e.rev === null ? { ...e, rev: revision } : e));
}

export function clusterRecord(name: string, v: StoredCluster, revision: number): ClusterRecord {
  const spec = JSON.parse(v.spec) as Omit<ClusterRecord, 'name' | 'endpoints' | 'owner' | 'revision' | 'updatedAt'>;
  return { name, ...spec, ...meta(v, revision), endpoints: v.endpoints.map((e) => endpointRecord(name, v.owner, e, revision)) };
}

export function listenerRecord(name: string, v: StoredSpec, revision: number): ListenerRecord {
  return { name, ...(JSON.parse(v.spec) as Omit<ListenerRecord, 'name' | 'owner' | 'revision' | 'updatedAt'>), ...meta(v, revision) };
}

export function nodeGroupRecord(nodeCluster: string, v: StoredSpec, revision: number): NodeGroupRecord {
  return { nodeCluster, ...(JSON.parse(v.spec) as Omit<NodeGroupRecord, 'nodeCluster' | 'owner' | 'revision' | 'updatedAt'>), ...meta(v, revision) };
}

/** The record of any kind, as the audit log shows it. */
export function recordOf(kind: ResourceKind, name: string, v: StoredCluster | StoredSpec | StoredOverride, revision: number, endpoint?: { address: string; port: number }): unknown {
  if (kind === 'override') return overrideRecordOf(name, v as StoredOverride, revision);
  if (!('spec' in v)) return undefined;
  if (kind === 'listener') return listenerRecord(name, v, revision);
  if (kind === 'node-group') return nodeGroupRecord(name, v, revision);
  const cluster = v as StoredCluster;
  if (kind === 'cluster') return clusterRecord(name, cluster, revision);
  const clusterName = name.slice(0, name.length - `/${endpoint?.address}:${endpoint?.port}`.length);
  const e = cluster.endpoints.find((x) => x.address === endpoint?.address && x.port === endpoint.port);
  return e && endpointRecord(clusterName, cluster.owner, e, revision);
}

/** An entry's id: its transaction's revision × AUDIT_SEQ_SPAN + its position in it. */
export function auditId(entry: Entry<StoredAudit>): number {
  return entry.mod * AUDIT_SEQ_SPAN + entry.value.seq;
}

/**
 * Bytes an endpoint takes in an audit record, for `trimOver`: the mirror holds decoded values,
 * so a large entry's size is estimated from its endpoint counts instead of re-encoding it.
 */
export const AUDIT_ENDPOINT_BYTES = 220;

const endpointCount = (v: unknown): number | null => {
  const list = typeof v === 'object' && v !== null ? (v as { endpoints?: unknown }).endpoints : undefined;
  return Array.isArray(list) ? list.length : null;
};

/** The entry, or over `trimOver` (estimated) the entry with before and after stripped of their endpoints. */
export function auditEntryWithin(entry: Entry<StoredAudit>, trimOver: number | undefined): AuditEntry {
  const a = entry.value;
  // Only a cluster's record holds its endpoints (an endpoint entry's stored `after` is its whole
  // cluster, but its record is the one endpoint).
  if (trimOver === undefined || a.kind !== 'cluster') return auditEntry(entry);
  const endpoints = { before: endpointCount(a.before), after: endpointCount(a.after) };
  const bytes = ((endpoints.before ?? 0) + (endpoints.after ?? 0)) * AUDIT_ENDPOINT_BYTES;
  if (bytes <= trimOver) return auditEntry(entry);
  const strip = <T>(v: T): T => (v !== null && typeof v === 'object' ? { ...v, endpoints: [] } : v);
  const full = auditEntry({ ...entry, value: { ...a, before: strip(a.before), after: strip(a.after) } });
  const drop = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return v;
    const { endpoints: _left, ...rest } = v as Record<string, unknown>;
    return rest;
  };
  return { ...full, before: drop(full.before), after: drop(full.after), trimmed: { bytes, endpoints } };
}

export function auditEntry(entry: Entry<StoredAudit>): AuditEntry {
  const a = entry.value;
  return {
    id: auditId(entry),
    at: a.at,
    actor: a.actor,
    action: a.action,
    kind: a.kind,
    name: a.name,
    revision: entry.mod,
    before: a.before,
    after: a.after === null ? null : recordOf(a.kind, a.name, a.after, entry.mod, a.endpoint),
  };
}
