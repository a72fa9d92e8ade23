/**
 * What one write to the etcd store must do, decided from the mirror: the checks every store
 * applies (ownership.ts), then the keys to compare, put and delete, and the audit entries to write
 * in the same transaction. Pure: the store commits the plan, and re-plans if etcd moved under it.
 */
import { endpointName } from '../endpoint-key.js';
import type { Catalog, Cluster, Listener, NodeGroup } from '../types.js';
import { NotFoundError } from './errors.js';
import {
  clusterRecord,
  endpointOrder,
  endpointRecord,
  keyOf,
  listenerRecord,
  nodeGroupRecord,
  resolvedEndpoints,
  SECTION,
  type Entry,
  type Section,
  type SpecKind,
  type StoredAudit,
  type StoredCluster,
  type StoredEndpoint,
  type StoredSpec,
} from './etcd-layout.js';
import { assertWriter, checkIfMatch, checkOwner, checkSuccessor, checkWrite, clusterSpecJson, listenerSpecJson, nextOperatorState, nodeGroupSpecJson, seedSkips, canonicalJson } from './ownership.js';
import type { ClusterInput, DeleteClusterOptions, DeleteListenerOptions, EndpointSpec, GuardReads, ListenerRecord, OperatorState, Owner, SeedConflict, StateOptions, WriteOptions } from './records.js';
import { socketClashes } from './seed-sockets.js';

export interface MirrorView {
  /** The etcd revision the view is at. */
  readonly revision: number;
  get<T>(section: Section, name: string): Entry<T> | undefined;
  /** Sorted by name. */
  list<T>(section: Section): [string, Entry<T>][];
}

/** `actor`: whom the entry names when not the writer (a hand-over's file side). */
export type PlannedAudit = Omit<StoredAudit, 'seq' | 'at' | 'actor'> & { readonly actor?: string };

/** What a transaction requires of etcd's keys: as the plan read them from the mirror. */
export type Compare =
  /** The key's mod_revision (0: the key must not exist). */
  | { readonly key: string; readonly mod: number }
  /** The key's create_revision: the key the plan saw still exists, whatever was written to it since (0: still absent). */
  | { readonly key: string; readonly create: number }
  /** No key of the section written after `notAfter` (the mirror's revision when planned), a new key included. */
  | { readonly section: Section; readonly notAfter: number };

export interface Plan {
  readonly compares: readonly Compare[];
  readonly puts: readonly { readonly key: string; readonly value: unknown }[];
  readonly deletes: readonly string[];
  readonly audits: readonly PlannedAudit[];
}

/** Either nothing to do (answer with the resource's revision) or a transaction to commit. */
export type Outcome = { readonly noop: number } | { readonly plan: Plan };

const compareOf = (section: Section, name: string, cur: Entry<unknown> | undefined) => ({ key: keyOf(section, name), mod: cur?.mod ?? 0 });

function specMeta(cur: Entry<StoredSpec> | undefined): { owner: Owner; revision: number } | undefined {
  return cur && { owner: cur.value.owner, revision: cur.mod };
}

// ------------------------------------------------------------------ clusters

function sameEndpoint(a: StoredEndpoint, b: Omit<StoredEndpoint, 'rev' | 'at'>): boolean {
  const { rev: _rev, at: _at, ...rest } = a;
  return canonicalJson(rest) === canonicalJson(b);
}

/** The endpoint set after a put: unchanged endpoints keep their revision, changed ones take this write's. */
function nextEndpoints(old: readonly StoredEndpoint[], input: readonly EndpointSpec[], at: string): { endpoints: StoredEndpoint[]; changed: boolean } {
  const byKey = new Map(old.map((e) => [`${e.address}|${e.port}`, e]));
  let changed = input.length !== old.length;
  const endpoints = input.map((e): StoredEndpoint => {
    const prev = byKey.get(`${e.address}|${e.port}`);
    const next = {
      address: e.address,
      port: e.port,
      weight: e.weight,
      priority: e.priority,
      locality: { region: e.locality.region, zone: e.locality.zone, subZone: e.locality.subZone },
      health: e.health,
      state: nextOperatorState(e.state, prev?.state),
    };
    if (prev && sameEndpoint(prev, next)) return prev;
    changed = true;
    return { ...next, rev: null, at };
  });
  return { endpoints: endpoints.sort(endpointOrder), changed };
}

/** Creates or replaces a cluster (with its endpoint set when given); no checks. */
export function planClusterPut(cur: Entry<StoredCluster> | undefined, input: ClusterInput, owner: Owner, at: string): Outcome {
  const spec = clusterSpecJson(input);
  const old = cur ? resolvedEndpoints(cur.value, cur.mod) : [];
  const eps = input.endpoints ? nextEndpoints(old, input.endpoints, at) : { endpoints: old, changed: false };
  const specChanged = !cur || cur.value.spec !== spec || cur.value.owner !== owner;
  if (cur && !specChanged && !eps.changed) return { noop: cur.mod };
  const value: StoredCluster = { spec, owner, at, endpoints: eps.endpoints };
  return {
    plan: {
      compares: [compareOf('clusters', input.name, cur)],
      puts: [{ key: keyOf('clusters', input.name), value }],
      deletes: [],
      audits: [{ action: cur ? 'update' : 'create', kind: 'cluster', name: input.name, before: cur ? clusterRecord(input.name, cur.value, cur.mod) : null, after: value }],
    },
  };
}

function planClusterDelete(name: string, cur: Entry<StoredCluster>): Plan {
  return {
    compares: [compareOf('clusters', name, cur)],
    puts: [],
    deletes: [keyOf('clusters', name), keyOf('weights', name)],
    audits: [{ action: 'delete', kind: 'cluster', name, before: clusterRecord(name, cur.value, cur.mod), after: null }],
  };
}

export function planPutCluster(view: MirrorView, input: ClusterInput, opts: WriteOptions, at: string): Outcome {
  const cur = view.get<StoredCluster>('clusters', input.name);
  checkWrite('cluster', input.name, specMeta(cur), opts);
  return planClusterPut(cur, input, opts.owner, at);
}

export function planDeleteCluster(view: MirrorView, name: string, opts: DeleteClusterOptions, at: string): Outcome {
  const cur = view.get<StoredCluster>('clusters', name);
  if (!cur) throw new NotFoundError('cluster', name);
  checkWrite('cluster', name, specMeta(cur), opts);
  const deleted = planClusterDelete(name, cur);
  const successor = opts.successor;
  if (!successor) return { plan: deleted };
  checkSuccessor('cluster', name, successor.cluster.name);
  return { plan: handedOver(deleted, planClusterPut(undefined, successor.cluster, 'file', at), keyOf('clusters', name), successor.actor) };
}

/**
 * The delete with the config file's definition (`put`, of a resource absent) put in the deleted
 * one's place, in its transaction: the key is rewritten, not deleted (etcd refuses a transaction
 * naming a key twice), and audited as the delete, then the file's create by `actor`.
 */
function handedOver(deleted: Plan, put: Outcome, key: string, actor: string): Plan {
  if ('noop' in put) throw new TypeError(`hand-over of ${key} wrote nothing`);
  return {
    compares: deleted.compares,
    puts: put.plan.puts,
    deletes: deleted.deletes.filter((k) => k !== key),
    audits: [...deleted.audits, ...put.plan.audits.map((a) => ({ ...a, actor }))],
  };
}

// ------------------------------------------------------------------ endpoints

/** Rewrites one cluster value with one endpoint replaced (or removed: `next` undefined). */
function endpointChange(
  clusterName: string,
  cur: Entry<StoredCluster>,
  address: string,
  port: number,
  next: StoredEndpoint | undefined,
  action: PlannedAudit['action'],
  at: string,
): Plan {
  const others = resolvedEndpoints(cur.value, cur.mod).filter((e) => e.address !== address || e.port !== port);
  const endpoints = next ? [...others, next].sort(endpointOrder) : others;
  const value: StoredCluster = { ...cur.value, at, endpoints };
  const old = cur.value.endpoints.find((e) => e.address === address && e.port === port);
  return {
    compares: [compareOf('clusters', clusterName, cur)],
    puts: [{ key: keyOf('clusters', clusterName), value }],
    deletes: [],
    audits: [
      {
        action,
        kind: 'endpoint',
        name: endpointName(clusterName, { address, port }),
        before: old ? endpointRecord(clusterName, cur.value.owner, old, cur.mod) : null,
        after: next ? value : null,
        ...(next ? { endpoint: { address, port } } : {}),
      },
    ],
  };
}

function existingCluster(view: MirrorView, name: string): Entry<StoredCluster> {
  const cur = view.get<StoredCluster>('clusters', name);
  if (!cur) throw new NotFoundError('cluster', name);
  return cur;
}

function findEndpoint(cur: Entry<StoredCluster>, address: string, port: number): StoredEndpoint | undefined {
  return cur.value.endpoints.find((e) => e.address === address && e.port === port);
}

export function planPutEndpoint(view: MirrorView, cluster: string, spec: EndpointSpec, opts: WriteOptions, at: string): Outcome {
  const name = endpointName(cluster, spec);
  const cur = existingCluster(view, cluster);
  const old = findEndpoint(cur, spec.address, spec.port);
  // Endpoints belong to their cluster's owner; If-Match is the endpoint's own revision.
  assertWriter(opts.owner);
  checkOwner('endpoint', name, cur.value.owner, opts.owner);
  checkIfMatch('endpoint', name, opts.ifMatch, old ? (old.rev ?? cur.mod) : undefined);
  const eps = nextEndpoints(old ? [old] : [], [spec], at);
  const next = eps.endpoints[0];
  if (!next || (old && !eps.changed)) return { noop: old ? (old.rev ?? cur.mod) : cur.mod };
  return { plan: endpointChange(cluster, cur, spec.address, spec.port, next, old ? 'update' : 'create', at) };
}

export function planRemoveEndpoint(view: MirrorView, cluster: string, address: string, port: number, opts: WriteOptions, at: string): Outcome {
  const name = endpointName(cluster, { address, port });
  const cur = view.get<StoredCluster>('clusters', cluster);
  const old = cur && findEndpoint(cur, address, port);
  if (!cur || !old) throw new NotFoundError('endpoint', name);
  checkWrite('endpoint', name, { owner: cur.value.owner, revision: old.rev ?? cur.mod }, opts);
  return { plan: endpointChange(cluster, cur, address, port, undefined, 'delete', at) };
}

/** Operator state: any owner's endpoint (no ownership check). */
export function planSetState(view: MirrorView, cluster: string, address: string, port: number, state: OperatorState, opts: StateOptions, at: string): Outcome {
  const name = endpointName(cluster, { address, port });
  const cur = view.get<StoredCluster>('clusters', cluster);
  const old = cur && findEndpoint(cur, address, port);
  if (!cur || !old) throw new NotFoundError('endpoint', name);
  const revision = old.rev ?? cur.mod;
  checkIfMatch('endpoint', name, opts.ifMatch, revision);
  if (old.state === state) return { noop: revision };
  return { plan: endpointChange(cluster, cur, address, port, { ...old, state, rev: null, at }, 'set-state', at) };
}

// ------------------------------------------------------------------ listeners and node groups

function planSpecPut(kind: 'listener' | 'node-group', name: string, spec: string, owner: Owner, cur: Entry<StoredSpec> | undefined, at: string): Outcome {
  if (cur && cur.value.spec === spec && cur.value.owner === owner) return { noop: cur.mod };
  const section = SECTION[kind];
  const value: StoredSpec = { spec, owner, at };
  const record = kind === 'listener' ? listenerRecord : nodeGroupRecord;
  return {
    plan: {
      compares: [compareOf(section, name, cur)],
      puts: [{ key: keyOf(section, name), value }],
      deletes: [],
      audits: [{ action: cur ? 'update' : 'create', kind, name, before: cur ? record(name, cur.value, cur.mod) : null, after: value }],
    },
  };
}

function planSpecDelete(kind: 'listener' | 'node-group', name: string, cur: Entry<StoredSpec>): Plan {
  const section = SECTION[kind];
  const record = kind === 'listener' ? listenerRecord : nodeGroupRecord;
  return {
    compares: [compareOf(section, name, cur)],
    puts: [],
    deletes: [keyOf(section, name)],
    audits: [{ action: 'delete', kind, name, before: record(name, cur.value, cur.mod), after: null }],
  };
}

export function planPutListener(view: MirrorView, l: Listener, opts: WriteOptions, at: string): Outcome {
  const cur = view.get<StoredSpec>('listeners', l.name);
  checkWrite('listener', l.name, specMeta(cur), opts);
  return planSpecPut('listener', l.name, listenerSpecJson(l), opts.owner, cur, at);
}

export function planPutNodeGroup(view: MirrorView, g: NodeGroup, opts: WriteOptions, at: string): Outcome {
  const cur = view.get<StoredSpec>('node-groups', g.nodeCluster);
  checkWrite('node-group', g.nodeCluster, specMeta(cur), opts);
  return planSpecPut('node-group', g.nodeCluster, nodeGroupSpecJson(g), opts.owner, cur, at);
}

export function planDeleteSpec(view: MirrorView, kind: 'listener' | 'node-group', name: string, opts: WriteOptions): Outcome {
  const cur = view.get<StoredSpec>(SECTION[kind], name);
  if (!cur) throw new NotFoundError(kind, name);
  checkWrite(kind, name, specMeta(cur), opts);
  return { plan: planSpecDelete(kind, name, cur) };
}

/**
 * A listener's delete; with `opts.successor`, the file's definition written in its place as a seed
 * writes it: not while a listener another source owns binds its socket (Envoy would refuse both;
 * the seed that follows reports it), and committed only while no listener was written since.
 */
export function planDeleteListener(view: MirrorView, name: string, opts: DeleteListenerOptions, at: string): Outcome {
  const successor = opts.successor;
  if (successor) checkSuccessor('listener', name, successor.listener.name);
  const deleted = planDeleteSpec(view, 'listener', name, opts);
  if (!successor || 'noop' in deleted) return deleted;
  const l = successor.listener;
  if (socketClashes([l], storedListeners(view)).size > 0) return socketChecked(deleted, l, view.revision);
  const put = planSpecPut('listener', name, listenerSpecJson(l), 'file', undefined, at);
  return socketChecked({ plan: handedOver(deleted.plan, put, keyOf('listeners', name), successor.actor) }, l, view.revision);
}

/** Every stored listener, as socketClashes reads them. */
function storedListeners(view: MirrorView): ListenerRecord[] {
  return view.list<StoredSpec>('listeners').map(([name, e]) => listenerRecord(name, e.value, e.mod));
}

// ------------------------------------------------------------------ guards

/**
 * The compares that hold while what a write guard's check read (WriteGuard.reads) is as the
 * mirror shows it at `revision`. A cluster is compared by its create_revision, not its
 * mod_revision: an endpoint change meanwhile leaves the check's answer (it exists) as it was.
 */
export function guardCompares(view: MirrorView, revision: number, reads: GuardReads): Compare[] {
  const clusters = [...new Set(reads.clusters ?? [])].map((name) => ({ key: keyOf('clusters', name), create: view.get('clusters', name)?.create ?? 0 }));
  const sections = [...(reads.listeners === true ? ['listeners' as const] : []), ...(reads.nodeGroups === true ? ['node-groups' as const] : [])];
  return [...clusters, ...sections.map((section) => ({ section, notAfter: revision }))];
}

/** A plan that also requires what the guard's check read to be unchanged. */
export function withCompares(plan: Plan, compares: readonly Compare[]): Plan {
  return { ...plan, compares: [...plan.compares, ...compares] };
}

// ------------------------------------------------------------------ config file

/** A file cluster as a seed found it: the catalog object it matched, and its key's mod_revision then (EtcdStore.seeded). */
export interface SeededMod {
  readonly input: Cluster;
  readonly mod: number;
}
export type SeededMods = Map<string, SeededMod>;

export interface SeedPlan {
  /** One plan per changed resource, clusters first (creations), deletions last (node groups first). */
  readonly plans: readonly Plan[];
  readonly conflicts: readonly SeedConflict[];
  /** The file's clusters found unchanged (all but those other sources own when `plans` is empty): the next plan's `earlier`. */
  readonly seeded: SeededMods;
}

/**
 * What makes the `file`-owned resources match the file; resources other sources own are skipped
 * and reported. `earlier`: clusters found unchanged before. One given as that very object, its
 * key's mod_revision unmoved since (every write to a cluster moves it), is not compared again: at
 * 20k endpoints the comparison of every cluster took tens of milliseconds per plan, and a seed
 * plans once per batch. A mod_revision names one value only while etcd's revisions are never
 * reused: a restore from a snapshot must use both `etcdutl snapshot restore --bump-revision` (or
 * the restored etcd hands revisions out again, to other values) and `--mark-compacted` (or a watch
 * resuming from a revision between the snapshot's and the bumped one gets no event for what the
 * restore undid, instead of being refused and listing again). EtcdStore forgets `earlier` when it
 * sees etcd's history go back, in case a restore was made without them.
 */
export function planSeed(view: MirrorView, catalog: Catalog, at: string, earlier: ReadonlyMap<string, SeededMod> = new Map()): SeedPlan {
  const plans: Plan[] = [];
  const conflicts: SeedConflict[] = [];
  const seeded: SeededMods = new Map();
  const seen: Record<SpecKind, Set<string>> = { cluster: new Set(), listener: new Set(), 'node-group': new Set() };
  const add = (o: Outcome): void => void ('plan' in o && plans.push(o.plan));
  const owned = <T extends StoredSpec>(kind: SpecKind, name: string): { cur: Entry<T> | undefined } | undefined => {
    seen[kind].add(name);
    const cur = view.get<T>(SECTION[kind], name);
    if (seedSkips(cur?.value)) {
      conflicts.push({ kind, name, owner: (cur as Entry<T>).value.owner });
      return undefined;
    }
    return { cur };
  };
  for (const c of catalog.clusters) {
    const o = owned<StoredCluster>('cluster', c.name);
    if (!o) continue;
    const e = earlier.get(c.name);
    const out: Outcome = e?.input === c && o.cur?.mod === e.mod ? { noop: e.mod } : planClusterPut(o.cur, c, 'file', at);
    if ('noop' in out) seeded.set(c.name, { input: c, mod: out.noop });
    else plans.push(out.plan);
  }
  const clashes = catalog.listeners.length === 0 ? new Map<string, SeedConflict>() : socketClashes(catalog.listeners, storedListeners(view));
  for (const l of catalog.listeners) {
    const o = owned<StoredSpec>('listener', l.name);
    const clash = clashes.get(l.name);
    if (o && clash) conflicts.push(clash);
    else if (o) add(socketChecked(planSpecPut('listener', l.name, listenerSpecJson(l), 'file', o.cur, at), l, view.revision));
  }
  for (const g of catalog.nodeGroups) {
    const o = owned<StoredSpec>('node-group', g.nodeCluster);
    if (o) add(planSpecPut('node-group', g.nodeCluster, nodeGroupSpecJson(g), 'file', o.cur, at));
  }
  for (const kind of ['node-group', 'listener', 'cluster'] as const) {
    for (const [name, cur] of view.list<StoredCluster>(SECTION[kind])) {
      if (cur.value.owner !== 'file' || seen[kind].has(name)) continue;
      plans.push(kind === 'cluster' ? planClusterDelete(name, cur) : planSpecDelete(kind, name, cur));
    }
  }
  return { plans, conflicts, seeded };
}

/**
 * A file socket listener's put, committed only while no listener was written since the view the
 * clash check read (seed-sockets.ts): an API listener binding the socket meanwhile makes the seed
 * plan again, and then skip it.
 */
function socketChecked(o: Outcome, l: Listener, revision: number): Outcome {
  if ('noop' in o || l.kind !== 'socket') return o;
  return { plan: withCompares(o.plan, [{ section: 'listeners', notAfter: revision }]) };
}

/** Several plans as one transaction. */
export function mergePlans(plans: readonly Plan[]): Plan {
  return {
    compares: plans.flatMap((p) => p.compares),
    puts: plans.flatMap((p) => p.puts),
    deletes: plans.flatMap((p) => p.deletes),
    audits: plans.flatMap((p) => p.audits),
  };
}
