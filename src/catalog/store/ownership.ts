/**
 * The rules every store applies before it writes, whatever it writes to (SQLite, etcd): who may
 * change what (see store.ts, "Who owns what"), optimistic concurrency, and how a resource's
 * settings are serialized so that "unchanged" means "byte-equal". Pure: no I/O.
 */
import type { HealthStatus, Listener, NodeGroup } from '../types.js';
import { ConflictError, OwnershipError } from './errors.js';
import type { ClusterInput, OperatorState, Owner, ResourceKind, Writer } from './records.js';

/** JSON with object keys sorted and undefined dropped: equal values give equal strings. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

/** A cluster's own settings (no name, no endpoints), canonical. */
export function clusterSpecJson(c: ClusterInput): string {
  const { name: _name, endpoints: _endpoints, ...spec } = c;
  return canonicalJson(spec);
}

export function listenerSpecJson(l: Listener): string {
  const { name: _name, ...spec } = l;
  return canonicalJson(spec);
}

export function nodeGroupSpecJson(g: NodeGroup): string {
  const { nodeCluster: _nodeCluster, ...spec } = g;
  return canonicalJson(spec);
}

export function assertWriter(owner: Owner): asserts owner is Writer {
  if (owner !== 'api' && owner !== 'kubernetes')
    throw new TypeError(`writer must be 'api' or 'kubernetes' (got ${String(owner)}); file rows are written by seedFromConfig`);
}

/** `ifMatch` 0: must not exist; n: must be at revision n; undefined: no precondition. */
export function checkIfMatch(kind: ResourceKind, name: string, ifMatch: number | undefined, actual: number | undefined): void {
  if (ifMatch === undefined) return;
  if (ifMatch === 0 ? actual !== undefined : actual !== ifMatch) throw new ConflictError(kind, name, ifMatch, actual);
}

/** A writer may change only what it owns (an absent owner: nothing there yet). */
export function checkOwner(kind: ResourceKind, name: string, owner: Owner | undefined, writer: Owner): void {
  if (owner !== undefined && owner !== writer) throw new OwnershipError(kind, name, owner, writer);
}

/** The checks of an API/Kubernetes write to one resource, in order: writer, ownership, If-Match. */
export function checkWrite(
  kind: ResourceKind,
  name: string,
  current: { readonly owner: Owner; readonly revision: number } | undefined,
  opts: { readonly owner: Owner; readonly ifMatch?: number | undefined },
): void {
  assertWriter(opts.owner);
  checkOwner(kind, name, current?.owner, opts.owner);
  checkIfMatch(kind, name, opts.ifMatch, current?.revision);
}

/** A hand-over's successor is the deleted name (`successor`: the name it defines), defined again: a programming error otherwise. */
export function checkSuccessor(kind: 'cluster' | 'listener', name: string, successor: string): void {
  if (successor !== name) throw new TypeError(`${kind} "${name}" cannot be handed over to a definition of "${successor}"`);
}

/** A seed leaves alone what another source owns: the file's definition is then a conflict. */
export function seedSkips(current: { readonly owner: Owner } | undefined): boolean {
  return current !== undefined && current.owner !== 'file';
}

/** An endpoint keeps its operator state across re-puts unless the input sets one. */
export function nextOperatorState(requested: OperatorState | undefined, current: OperatorState | undefined): OperatorState {
  return requested ?? current ?? 'active';
}

/**
 * How operator state shows in the served catalog: `draining` as health DRAINING, `disabled` not at
 * all (undefined). See Store.catalog for why disabled endpoints are left out rather than UNHEALTHY.
 */
export function servedHealth(state: OperatorState, declared: HealthStatus): HealthStatus | undefined {
  if (state === 'disabled') return undefined;
  return state === 'draining' ? 'DRAINING' : declared;
}
