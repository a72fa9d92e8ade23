import type { AuditEntry, ClusterRecord, EndpointRecord, ListenerRecord } from '../catalog/store/index.js';
import { endpointKey } from '../catalog/endpoint-key.js';
import { clusterView, endpointEntry, listenerView } from './resources.js';

/**
 * The audit log in the API's own terms (pure). Both stores keep each change's before and after as
 * store records; this turns them, at read time, into the JSON the API returns for that resource
 * (GET /v1/clusters/{name}, an endpoint of GET /v1/clusters/{name}/endpoints, GET
 * /v1/listeners/{name}), names the action as the operator did it (drain, disable, enable rather
 * than set-state), and lists the fields that changed. Reading at read time keeps every record
 * already written readable, in both stores, with no migration; a record this code cannot read as
 * its kind is shown as stored rather than dropped.
 *
 * A change to a huge cluster (a 20k-endpoint PUT) is megabytes of before and after; a page of the
 * log asks the store for it trimmed (without endpoint lists, which SQLite then never hands to
 * JavaScript) and shows it summarised: the settings, the endpoint counts before and after, and
 * where GET /v1/audit/{id} has the full record.
 */

export type AuditApiAction = 'create' | 'replace' | 'patch' | 'delete' | 'drain' | 'disable' | 'enable' | 'set-state';

export interface EndpointCounts {
  readonly before: number;
  readonly after: number;
}

export interface AuditSummary {
  /** Bytes of the full before and after, read in full at `href`. */
  readonly bytes: number;
  readonly href: string;
  readonly endpoints?: EndpointCounts;
}

export interface AuditView {
  readonly id: number;
  readonly at: string;
  readonly actor: string;
  readonly action: AuditApiAction;
  readonly kind: AuditEntry['kind'];
  readonly name: string;
  readonly cluster?: string;
  readonly endpoint?: string;
  readonly revision: number;
  readonly changed: readonly string[];
  readonly before?: unknown;
  readonly after?: unknown;
  readonly summarized?: AuditSummary;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Metadata every write changes: not worth listing in `changed`. */
const BOOKKEEPING = new Set(['revision', 'updatedAt']);

const STATE_ACTION: Record<string, AuditApiAction> = { draining: 'drain', disabled: 'disable', active: 'enable' };

/** A store record as the API shows that kind of resource (as stored if it cannot be read so). */
export function resourceView(kind: AuditEntry['kind'], record: unknown): unknown {
  if (!isObject(record)) return record;
  try {
    if (kind === 'cluster') return clusterView(record as unknown as ClusterRecord);
    if (kind === 'listener') return listenerView(record as unknown as ListenerRecord);
    if (kind === 'endpoint') return endpointView(record as unknown as EndpointRecord);
  } catch {
    return record; // an older or foreign shape: shown as it was stored
  }
  return record;
}

/** An endpoint as its cluster's endpoint list shows it, with its own revision. */
function endpointView(e: EndpointRecord): Json {
  return { ...endpointEntry(e), revision: e.revision, updatedAt: e.updatedAt };
}

/** Top-level fields whose values differ (a merge patch's keys), bookkeeping left out. */
export function changedFields(before: unknown, after: unknown): string[] {
  if (!isObject(before) || !isObject(after)) return [];
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => !BOOKKEEPING.has(k) && JSON.stringify(before[k]) !== JSON.stringify(after[k])).sort();
}

/** The operator's verb: PUT and the config file replace, PATCH patches, set-state is drain/disable/enable. */
function apiAction(entry: AuditEntry, after: unknown): AuditApiAction {
  if (entry.action === 'update') return 'replace';
  if (entry.action !== 'set-state') return entry.action;
  const state = isObject(after) ? after.state : undefined;
  return (typeof state === 'string' ? STATE_ACTION[state] : undefined) ?? 'set-state';
}

/** `cluster` and `endpoint` (address:port) of an endpoint entry, from its record or else its name. */
function endpointOf(entry: AuditEntry): { cluster: string; endpoint: string } | undefined {
  if (entry.kind !== 'endpoint') return undefined;
  const rec = [entry.after, entry.before].find(isObject);
  if (rec && typeof rec.cluster === 'string' && typeof rec.address === 'string' && typeof rec.port === 'number') {
    return { cluster: rec.cluster, endpoint: endpointKey({ address: rec.address, port: rec.port }) };
  }
  const slash = entry.name.lastIndexOf('/');
  return slash < 0 ? undefined : { cluster: entry.name.slice(0, slash), endpoint: entry.name.slice(slash + 1) };
}

/** One entry in the API's shape: in full, or summarised when the store trimmed it (`trimOver`). */
export function auditView(entry: AuditEntry): AuditView {
  const trim = entry.trimmed;
  const view = (record: unknown) => (record == null ? null : trim ? withoutEndpoints(resourceView(entry.kind, withEndpoints(record))) : resourceView(entry.kind, record));
  const before = view(entry.before);
  const after = view(entry.after);
  const counts = trim && { before: trim.endpoints.before ?? 0, after: trim.endpoints.after ?? 0 };
  const changed = entry.action === 'update' || entry.action === 'patch' || entry.action === 'set-state' ? changedFields(before, after) : [];
  return {
    id: entry.id,
    at: entry.at,
    actor: entry.actor,
    action: apiAction(entry, after),
    kind: entry.kind,
    name: entry.name,
    ...endpointOf(entry),
    revision: entry.revision,
    changed: counts && counts.before !== counts.after && (entry.action === 'update' || entry.action === 'patch') ? [...changed, 'endpoints'].sort() : changed,
    before,
    after,
    ...(trim ? { summarized: { bytes: trim.bytes, href: auditHref(entry.id), ...(hasList(trim) && counts ? { endpoints: counts } : {}) } } : {}),
  };
}

export const auditHref = (id: number): string => `/v1/audit/${id}`;

export const jsonBytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value), 'utf8');

/**
 * The entry as a page shows it when its JSON is still over `maxBytes` (an entry the store did not
 * trim: a huge listener, say): a cluster's settings without its endpoint list plus endpoint
 * counts; anything still over the bound loses its before and after (the summary says where they are).
 */
export function summarize(view: AuditView, maxBytes: number): AuditView {
  const bytes = jsonBytes(view);
  if (bytes <= maxBytes) return view;
  const { before, after, ...rest } = view;
  const counts = { before: countOf(before), after: countOf(after) };
  const summary = { bytes, href: auditHref(view.id), ...(counts.before !== null || counts.after !== null ? { endpoints: { before: counts.before ?? 0, after: counts.after ?? 0 } } : {}) };
  const slim: AuditView = { ...rest, summarized: view.summarized ?? summary };
  const withSettings: AuditView = { ...slim, before: withoutEndpoints(before), after: withoutEndpoints(after) };
  return jsonBytes(withSettings) <= maxBytes ? withSettings : slim;
}

const hasList = (trim: NonNullable<AuditEntry['trimmed']>): boolean => trim.endpoints.before !== null || trim.endpoints.after !== null;

function countOf(v: unknown): number | null {
  return isObject(v) && Array.isArray(v.endpoints) ? v.endpoints.length : null;
}

/** A trimmed record made readable as its kind again (an empty endpoint list, removed afterwards). */
function withEndpoints(v: unknown): unknown {
  return isObject(v) && !('endpoints' in v) ? { ...v, endpoints: [] } : v;
}

function withoutEndpoints(v: unknown): unknown {
  if (!isObject(v)) return v;
  const { endpoints: _dropped, ...settings } = v;
  return settings;
}
