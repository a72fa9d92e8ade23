import { isDeepStrictEqual } from 'node:util';
import type { Catalog, Cluster, Listener } from '../catalog/types.js';
import { sameItems } from '../catalog/changed-clusters.js';
import { clusterDelta, type ClusterDelta, type SeenClusters } from './cluster-delta.js';
import type { EndpointOverride, WeightOverrides } from '../catalog/weight-overrides.js';
import { TYPE, type XdsTypeUrl } from './envoy-api.js';
import { encodeResource, type EncodedResource } from './resource.js';
import { assignmentResource, assignmentResourceSliced, ELEMENTS_PER_PIECE, type Turn } from './assignment-encoding.js';
import { assignmentLayout, clusterResource, sameClusterForm, type AssignmentLayout, type LoadReportingOptions } from './translate-clusters.js';
import { listenerResource, routeConfigurationResource, routeHashPolicies } from './translate-listeners.js';
import { DEFAULT_GROUP, markPositional, replacedIn, type ResourceSet } from './resource-set.js';
import { ArrayMap, sameEntries } from '../balancing/engine/indexed-map.js';
import { GroupSelections } from './group-selection.js';
import { retryPolicies } from './translate-protection.js';
import { perEndpointLayout, splitsForGrpc } from './grpc-assignments.js';
import { grpcClusterSource } from './grpc-clusters.js';
import { DEFAULT_GRPC_GROUP, formGroupKey } from './client-form.js';

/** Re-exported for callers that still import them from here; the cache side owns them. */
export { DEFAULT_GROUP, type ResourceSet } from './resource-set.js';

/**
 * Clusters with more endpoints than this are big: their assignment can be encoded ahead in slices
 * (prepare), and their content is not compared (walking one costs about what encoding it does,
 * and a changed object of this size has nearly always changed content).
 */
export const BIG_CLUSTER_ENDPOINTS = 1_000;

/** A publication whose assignments to encode hold more endpoints than this together is encoded ahead, in turns (bigPending). */
export const BIG_PUBLICATION_ENDPOINTS = 5_000;

/**
 * Catalog (+ adaptive weights) → one encoded resource set per node group.
 * Each resource is encoded once here, whichever groups include it.
 */
export function translate(catalog: Catalog, weights?: WeightOverrides, lrs?: LoadReportingOptions, forms?: TranslationForms): Map<string, ResourceSet> {
  return new Translator().translate(catalog, weights, lrs, forms);
}

/**
 * Which client forms a translation produces besides Envoy's. `grpc`: every group also gets a set
 * in gRPC's form (client-form.ts keys, grpc-assignments.ts assignments). Off until a gRPC client
 * connects, so a fleet of Envoys pays nothing for it.
 */
export interface TranslationForms {
  readonly grpc: boolean;
}

/**
 * The translator with a memory: a resource whose inputs are the same as in the previous
 * translation is neither rebuilt nor encoded again (building, protobuf encoding and hashing are
 * a translation's whole cost), so one weight change re-encodes one ClusterLoadAssignment, not the
 * catalog. Clusters are keyed by their catalog object (the stores keep an unchanged cluster the
 * same object, so one endpoint write compares one cluster), else their content, and their
 * weight overrides (compared entry by entry, no key strings built); listeners and routes, which
 * depend on their routed clusters' retry policies, by their small Envoy form. After a change to a
 * few clusters only those are visited (cluster-delta.ts): at 1,000 clusters the pass over every
 * memo entry was most of a one-endpoint write's publish. A cluster created or deleted is visited
 * alone too, and the output maps put back in the catalog's order, which a whole translation
 * gives (the cache takes the same resources in another order as no change, and keeps its own).
 */
export class Translator {
  private memo: MemoByType = new Map();
  /** Assignments of big clusters encoded ahead by prepare(), by cluster name, used by the next translate() if their inputs still match. */
  private prepared = new Map<string, Memo>();
  /** The same for their gRPC form. */
  private preparedGrpc = new Map<string, Memo>();
  /** The last translation's clusters and output, so the next visits only the clusters that changed. */
  private last: LastClusters | undefined;
  /** Per listener name: the listener and routed clusters its resources were built from. */
  private listeners = new Map<string, KeptListener>();
  /** The last listener and route maps handed out (handed out again while every resource is the same). */
  private listenerMaps: { listener: ReadonlyMap<string, EncodedResource>; route: ReadonlyMap<string, EncodedResource> } | undefined;
  /** The last grpcCdsOf: Envoy's CDS map and gRPC's differing Clusters it was made from. */
  private grpcCds: { readonly base: ReadonlyMap<string, EncodedResource>; readonly changes: ReadonlyMap<string, EncodedResource>; readonly out: ReadonlyMap<string, EncodedResource> } | undefined;
  private readonly groups = new GroupSelections();
  private readonly grpcGroups = new GroupSelections();
  private visits = 0;

  /** How many clusters the last translate() visited (built or looked up in the memo): what a publish cost grows with. */
  get visited(): number {
    return this.visits;
  }

  translate(catalog: Catalog, weights?: WeightOverrides, lrs?: LoadReportingOptions, forms: TranslationForms = { grpc: false }): Map<string, ResourceSet> {
    const by: ClusterInputs = { weights, lrs, lrsKey: JSON.stringify(lrs ?? null), grpc: forms.grpc };
    const last = this.last;
    const delta = last?.lrsKey === by.lrsKey && last.grpc === by.grpc ? clusterDelta(last, catalog.clusters, weights) : undefined;
    this.last = undefined; // a translation that throws leaves no half-updated state behind: the next is whole
    const out = last && delta ? this.clustersChanged(last, delta, catalog.clusters, by) : this.clustersAll(catalog.clusters, by);
    const routing = this.translateListeners(catalog.listeners, out.byName);
    const all = new Map<XdsTypeUrl, ReadonlyMap<string, EncodedResource>>([[TYPE.cluster, out.cds], [TYPE.endpoint, out.eds], ...routing]);
    this.last = { ...out, clusters: catalog.clusters, weights, lrsKey: by.lrsKey, grpc: by.grpc };
    this.prepared.clear();
    this.preparedGrpc.clear();
    const groups = new Map<string, ResourceSet>([[DEFAULT_GROUP, all]]);
    for (const [group, set] of this.groups.select(catalog, all)) groups.set(group, set);
    if (out.geds === undefined) return groups;
    const grpc = new Map<XdsTypeUrl, ReadonlyMap<string, EncodedResource>>([[TYPE.cluster, this.grpcCdsOf(out)], [TYPE.endpoint, out.geds], ...routing]);
    groups.set(DEFAULT_GRPC_GROUP, grpc);
    for (const [group, set] of this.grpcGroups.select(catalog, grpc)) groups.set(formGroupKey(group, 'grpc'), set);
    return groups;
  }

  /**
   * gRPC's CDS: Envoy's but where gRPC's Clusters differ (grpc-clusters.ts), the same map when none
   * does, and the last one while neither Envoy's nor the differing ones changed (a weight tick):
   * a copy of every Cluster per publish, for one differing, grew with the catalog.
   */
  private grpcCdsOf(out: ClusterOutput): ReadonlyMap<string, EncodedResource> {
    const changes = out.grpcClusters ?? new Map<string, EncodedResource>();
    const kept = this.grpcCds;
    if (kept?.base === out.cds && sameEntries(changes, kept.changes)) return kept.out;
    const map = replacedIn(out.cds, changes);
    this.grpcCds = { base: out.cds, changes, out: map };
    return map;
  }

  /**
   * Every cluster visited (memo hits skip the unchanged); only what this translation produced is
   * remembered. The two maps are positional over one key list and index, as inCatalogOrder's are,
   * so that the next created or deleted cluster carries every other resource by position, in here
   * and in the cache, instead of looking each up (46 ms for the first create after a whole
   * translation at 10,000 clusters: bench/RESULTS.md, order21).
   */
  private clustersAll(clusters: readonly Cluster[], by: ClusterInputs): ClusterOutput {
    const byName = new Map<string, Cluster>();
    const memo: ClusterMemos = { cds: new Map(), eds: new Map(), geds: new Map(), gcds: new Map() };
    const keys: string[] = [];
    const index = new Map<string, number>();
    const cds: EncodedResource[] = [];
    const eds: EncodedResource[] = [];
    const geds: EncodedResource[] = [];
    const grpcClusters = new Map<string, EncodedResource>();
    for (const c of clusters) {
      byName.set(c.name, c);
      const [cluster, assignment, grpcAssignment, grpcCluster] = this.clusterResources(c, by, memo);
      // A name met twice keeps its first place with the last value, as Map.set does.
      const at = index.get(c.name) ?? keys.length;
      if (at === keys.length) {
        index.set(c.name, at);
        keys.push(c.name);
      }
      cds[at] = cluster;
      eds[at] = assignment;
      if (grpcAssignment !== undefined) geds[at] = grpcAssignment;
      if (grpcCluster !== undefined) grpcClusters.set(c.name, grpcCluster);
      else grpcClusters.delete(c.name);
    }
    this.visits = clusters.length;
    this.memo.set(TYPE.cluster, memo.cds);
    this.memo.set(TYPE.endpoint, memo.eds);
    this.memo.set(GRPC_ASSIGNMENTS, memo.geds);
    this.memo.set(GRPC_CLUSTERS, memo.gcds);
    const out = { cds: new ArrayMap(keys, index, cds), eds: new ArrayMap(keys, index, eds), byName };
    return by.grpc ? { ...out, geds: new ArrayMap(keys, index, geds), grpcClusters } : out;
  }

  /**
   * Only the changed (and added) clusters visited; each type's previous output map is copied only
   * when one of their resources changed (an endpoint write leaves the Cluster resource as it was:
   * at 1,000 clusters a copy is ~100 KB of garbage), with theirs replaced in place, so the order,
   * and with it every version, is the one a whole translation gives. When names were added,
   * removed or moved, the maps are rebuilt in the catalog's order from the previous ones (no
   * cluster visited for that) and the removed names leave the memo.
   */
  private clustersChanged(last: LastClusters, delta: ClusterDelta, clusters: readonly Cluster[], by: ClusterInputs): ClusterOutput {
    const fresh: ClusterTarget = { cds: new Map(), eds: new Map(), geds: new Map(), byName: last.byName };
    const memo: ClusterMemos = {
      cds: memoOf(this.memo, TYPE.cluster), eds: memoOf(this.memo, TYPE.endpoint), geds: memoOf(this.memo, GRPC_ASSIGNMENTS), gcds: memoOf(this.memo, GRPC_CLUSTERS),
    };
    // Few clusters differ for gRPC: the last translation's, then this one's changes.
    const grpcClusters = new Map(last.grpcClusters);
    for (const name of delta.removed) {
      fresh.byName.delete(name);
      memo.cds.delete(name);
      memo.eds.delete(name);
      memo.geds.delete(name);
      memo.gcds.delete(name);
      grpcClusters.delete(name);
    }
    for (const c of delta.changed) {
      fresh.byName.set(c.name, c);
      const [cluster, assignment, grpcAssignment, grpcCluster] = this.clusterResources(c, by, memo);
      fresh.cds.set(c.name, cluster);
      fresh.eds.set(c.name, assignment);
      if (grpcAssignment !== undefined) fresh.geds.set(c.name, grpcAssignment);
      if (grpcCluster !== undefined) grpcClusters.set(c.name, grpcCluster);
      else grpcClusters.delete(c.name);
    }
    this.visits = delta.changed.length;
    const grpc = last.grpcClusters !== undefined ? { grpcClusters } : {};
    if (delta.reordered) return { ...inCatalogOrder(clusters, last, fresh, new Set(delta.removed)), ...grpc, byName: last.byName };
    const out = { cds: replacedIn(last.cds, fresh.cds), eds: replacedIn(last.eds, fresh.eds), ...grpc, byName: last.byName };
    return last.geds !== undefined ? { ...out, geds: replacedIn(last.geds, fresh.geds) } : out;
  }

  /**
   * A cluster's Cluster and ClusterLoadAssignment resources, from the memo where their inputs are
   * the same, and with gRPC's form on, the assignment gRPC clients get (the same resource when the
   * cluster is not split for them: grpc-assignments.ts) and their Cluster where it differs
   * (grpc-clusters.ts; else undefined).
   */
  private clusterResources(c: Cluster, by: ClusterInputs, memo: ClusterMemos): ClusterResources {
    const cluster = this.encode(memo.cds, TYPE.cluster, c.name, { source: c, extra: by.lrsKey, byBuilt: sameClusterForm }, () => clusterResource(c, by.lrs));
    const overrides = by.weights?.get(c.name);
    const inputs = assignmentInputs(c, by.weights);
    // Laid out once for both forms (the endpoints' override lookups are most of it), and only when one is not in the memo.
    let layout: AssignmentLayout | undefined;
    const layoutOf = (): AssignmentLayout => (layout ??= assignmentLayout(c, overrides));
    const assignment = this.encode(memo.eds, TYPE.endpoint, c.name, inputs, () => new Encoded(assignmentResource(c.name, layoutOf())));
    if (!by.grpc) return [cluster, assignment, undefined, undefined];
    const grpcCluster = this.grpcClusterResource(c, by, memo);
    if (!splitsForGrpc(c)) return [cluster, assignment, assignment, grpcCluster];
    return [cluster, assignment, this.encode(memo.geds, GRPC_ASSIGNMENTS, c.name, inputs, () => new Encoded(assignmentResource(c.name, perEndpointLayout(layoutOf())))), grpcCluster];
  }

  /** The Cluster resource gRPC clients get instead of Envoy's, when grpc-clusters.ts builds theirs otherwise. */
  private grpcClusterResource(c: Cluster, by: ClusterInputs, memo: ClusterMemos): EncodedResource | undefined {
    const source = grpcClusterSource(c);
    if (source === c) return undefined;
    return this.encode(memo.gcds, GRPC_CLUSTERS, c.name, { source, extra: by.lrsKey, byBuilt: sameClusterForm }, () => clusterResource(source, by.lrs));
  }

  /**
   * Listeners and their routes: a listener that is the same object as last time, routing to the
   * same cluster objects (a route carries its cluster's retry and hash policies), keeps both resources
   * unbuilt; the others are built and encoded again only when their form changed. The maps are
   * the previous ones when every resource is (the cache and the node groups then carry them).
   * Building all of them on every publish cost ~0.1 ms per listener per endpoint write.
   */
  private translateListeners(listeners: readonly Listener[], clusters: ReadonlyMap<string, Cluster>): [XdsTypeUrl, ReadonlyMap<string, EncodedResource>][] {
    const memo = { listener: new Map<string, Memo>(), route: new Map<string, Memo>() };
    const kept = new Map<string, KeptListener>();
    const out = { listener: new Map<string, EncodedResource>(), route: new Map<string, EncodedResource>() };
    for (const l of listeners) {
      const routed = l.routes.map((r) => clusters.get(r.cluster));
      const before = this.listeners.get(l.name);
      const k = before !== undefined && before.source === l && sameItems(before.routed, routed) ? before : this.buildListener(l, routed, memo);
      memo.listener.set(l.name, k.listener);
      memo.route.set(l.name, k.route);
      kept.set(l.name, k);
      out.listener.set(l.name, k.listener.resource);
      out.route.set(l.name, k.route.resource);
    }
    this.memo.set(TYPE.listener, memo.listener);
    this.memo.set(TYPE.route, memo.route);
    this.listeners = kept;
    const last = this.listenerMaps;
    const maps = {
      listener: last !== undefined && sameEntries(out.listener, last.listener) ? last.listener : out.listener,
      route: last !== undefined && sameEntries(out.route, last.route) ? last.route : out.route,
    };
    this.listenerMaps = maps;
    return [[TYPE.listener, maps.listener], [TYPE.route, maps.route]];
  }

  /** A listener and its route configuration built (their clusters' retry and hash policies resolved), each encoded unless its form is the known one. */
  private buildListener(l: Listener, routed: readonly (Cluster | undefined)[], memo: { listener: Map<string, Memo>; route: Map<string, Memo> }): KeptListener {
    const clusters = routed.filter((c) => c !== undefined);
    const listener = listenerResource(l);
    const route = routeConfigurationResource(l, retryPolicies(clusters), routeHashPolicies(clusters));
    this.encode(memo.listener, TYPE.listener, l.name, { source: listener, extra: '' }, () => listener);
    this.encode(memo.route, TYPE.route, l.name, { source: route, extra: '' }, () => route);
    return { source: l, routed, listener: memo.listener.get(l.name) as Memo, route: memo.route.get(l.name) as Memo };
  }

  /**
   * The memo hits when the extra key matches and the source is the same object (the stores keep
   * unchanged clusters; nothing compared) or has the same content (compared field by
   * field, e.g. after a config reload built new objects). A Cluster (`byBuilt`) is instead
   * compared by what it is built into: an endpoint write gives its cluster a new object whose
   * Cluster resource is almost always unchanged, and building that small object is far cheaper
   * than comparing every endpoint of the source or encoding and hashing the Cluster again.
   */
  private encode(next: Map<string, Memo>, kind: MemoKind, name: string, inputs: Inputs, build: () => Built): EncodedResource {
    const known = this.memo.get(kind)?.get(name);
    const typeUrl = kind === GRPC_ASSIGNMENTS ? TYPE.endpoint : kind === GRPC_CLUSTERS ? TYPE.cluster : kind;
    const memo = known !== undefined && known.source === inputs.source && known.overrides === inputs.overrides && known.extra === inputs.extra
      ? known // no allocation per resource on a publish that changed little
      : inputs.byBuilt !== undefined
        ? this.byBuiltForm(known, inputs, typeUrl, name, build)
        : this.bySource(known, this.preparedOf(kind)?.get(name), inputs, typeUrl, name, build);
    next.set(name, memo);
    return memo.resource;
  }

  /** Where prepare() leaves assignments of `kind` (none for other resources). */
  private preparedOf(kind: MemoKind): Map<string, Memo> | undefined {
    return kind === TYPE.endpoint ? this.prepared : kind === GRPC_ASSIGNMENTS ? this.preparedGrpc : undefined;
  }

  /** Reuses the previous translation's encoding, or prepare()'s, when built from the same inputs. */
  private bySource(known: Memo | undefined, prepared: Memo | undefined, inputs: Inputs, typeUrl: XdsTypeUrl, name: string, build: () => Built): Memo {
    const hit = this.matches(known, inputs) ? known : this.matches(prepared, inputs) ? prepared : undefined;
    return { ...inputs, resource: hit ? hit.resource : resourceOfBuilt(typeUrl, name, build()) };
  }

  /** Reuses the previous encoding when the source builds the same form (said by `byBuilt`, else by comparing the built JSON). */
  private byBuiltForm(known: Memo | undefined, inputs: Inputs, typeUrl: XdsTypeUrl, name: string, build: () => Built): Memo {
    if (known?.built !== undefined && known.extra === inputs.extra && inputs.byBuilt?.(known.source, inputs.source) === true) {
      return { ...inputs, built: known.built, resource: known.resource };
    }
    const value = build();
    if (value instanceof Encoded) throw new Error('translator: a resource compared by its built form must be built as an object');
    const built = JSON.stringify(value);
    // The kept string when equal: the new one then dies young instead of living in the memo.
    if (known !== undefined && known.built === built) return { ...inputs, built: known.built, resource: known.resource };
    return { ...inputs, built, resource: encodeResource(typeUrl, name, value) };
  }

  /** Whether `known` was built from the same inputs (content compared only when both sides allow it). */
  private matches(known: Memo | undefined, inputs: Inputs): known is Memo {
    if (known === undefined || known.extra !== inputs.extra || !sameOverrides(known.overrides, inputs.overrides)) return false;
    if (known.source === inputs.source) return true;
    // Compared in place, not as kept JSON strings: a string per cluster object lived as long as the
    // object, so every endpoint write promoted its cluster's whole JSON (~18 KB at 100 endpoints).
    return known.compareContent !== false && inputs.compareContent !== false && isDeepStrictEqual(known.source, inputs.source);
  }

  /**
   * The clusters of `catalog` whose assignment the next translate() would have to encode, when
   * that is worth doing ahead (prepare): the big ones, or all of them when together they hold more
   * than BIG_PUBLICATION_ENDPOINTS (a weight publication over a busy fleet: at 1,000 clusters of
   * 100 endpoints, ~50 ms of encoding in one go).
   */
  bigPending(catalog: Catalog, weights?: WeightOverrides, forms: TranslationForms = { grpc: false }): Cluster[] {
    // A cluster and overrides unchanged since the last translation hit its memo: only the changed can be pending.
    const last = this.last?.grpc === forms.grpc ? this.last : undefined;
    const candidates = (last && clusterDelta(last, catalog.clusters, weights)?.changed) ?? catalog.clusters;
    const isBig = (c: Cluster) => c.endpoints.length > BIG_CLUSTER_ENDPOINTS;
    // A few small candidates (one endpoint write) are not compared here: translate() compares them.
    // Weighed by encodings: with gRPC's form on, a split cluster may be encoded twice (grpc-assignments.ts).
    const many = encodingsIn(candidates, forms) > BIG_PUBLICATION_ENDPOINTS;
    const pending: Cluster[] = [];
    let encodings = 0;
    for (const c of many ? candidates : candidates.filter(isBig)) {
      const unknown = this.unknownForms(c, weights, forms).length;
      if (unknown === 0) continue;
      pending.push(c);
      encodings += unknown * c.endpoints.length;
    }
    return many && encodings > BIG_PUBLICATION_ENDPOINTS ? pending : pending.filter(isBig);
  }

  /** The kinds of `c`'s assignments translate() would have to encode: neither in the memo nor prepared. */
  private unknownForms(c: Cluster, weights: WeightOverrides | undefined, forms: TranslationForms): MemoKind[] {
    const inputs = assignmentInputs(c, weights);
    const out: MemoKind[] = [];
    if (!this.known(TYPE.endpoint, c.name, inputs)) out.push(TYPE.endpoint);
    if (forms.grpc && splitsForGrpc(c) && !this.known(GRPC_ASSIGNMENTS, c.name, inputs)) out.push(GRPC_ASSIGNMENTS);
    return out;
  }

  /** Whether an assignment of `kind` built from `inputs` is in the memo or prepared. */
  private known(kind: MemoKind, name: string, inputs: Inputs): boolean {
    return this.matches(this.memo.get(kind)?.get(name), inputs) || this.matches(this.preparedOf(kind)?.get(name), inputs);
  }

  /**
   * Encodes the assignments of `clusters` (from bigPending) ahead of the next translate(), with
   * `turn` awaited between slices, so a big change does not hold the event loop for its whole
   * encode: a big cluster's in slices of its endpoints, small ones whole, a turn after every
   * ELEMENTS_PER_PIECE endpoints. The bytes are those translate() would produce.
   */
  async prepare(clusters: readonly Cluster[], weights: WeightOverrides | undefined, turn: Turn, forms: TranslationForms = { grpc: false }): Promise<void> {
    let sinceTurn = 0;
    for (const c of clusters) {
      const inputs = assignmentInputs(c, weights);
      const layout = assignmentLayout(c, inputs.overrides);
      // Only the forms not known: the first gRPC client's publication finds every Envoy form encoded.
      const kinds = this.unknownForms(c, weights, forms);
      const layouts = kinds.map((kind) => [this.preparedOf(kind) as Map<string, Memo>, kind === GRPC_ASSIGNMENTS ? perEndpointLayout(layout) : layout] as const);
      if (c.endpoints.length > BIG_CLUSTER_ENDPOINTS) {
        for (const [into, l] of layouts) {
          await turn();
          into.set(c.name, { ...inputs, resource: await assignmentResourceSliced(c.name, l, turn) });
        }
        await turn();
        sinceTurn = 0;
        continue;
      }
      for (const [into, l] of layouts) into.set(c.name, { ...inputs, resource: assignmentResource(c.name, l) });
      sinceTurn += layouts.length * c.endpoints.length;
      if (sinceTurn >= ELEMENTS_PER_PIECE) {
        await turn();
        sinceTurn = 0;
      }
    }
  }
}

/**
 * A translation's clusters' output: CDS and EDS resources by name (`geds`: gRPC's EDS form, and
 * `grpcClusters`: gRPC's Clusters where they differ from Envoy's, when gRPC's form is on), and the
 * clusters by name.
 */
interface ClusterOutput {
  readonly cds: ReadonlyMap<string, EncodedResource>;
  readonly eds: ReadonlyMap<string, EncodedResource>;
  readonly geds?: ReadonlyMap<string, EncodedResource>;
  readonly grpcClusters?: ReadonlyMap<string, EncodedResource>;
  readonly byName: Map<string, Cluster>;
}

/** What clustersChanged collects the changed clusters' resources into. */
interface ClusterTarget extends ClusterOutput {
  readonly cds: Map<string, EncodedResource>;
  readonly eds: Map<string, EncodedResource>;
  readonly geds: Map<string, EncodedResource>;
}

/** The memo entries of one translation's cluster resources, by kind. */
interface ClusterMemos {
  readonly cds: Map<string, Memo>;
  readonly eds: Map<string, Memo>;
  readonly geds: Map<string, Memo>;
  readonly gcds: Map<string, Memo>;
}

/** A cluster's Cluster, its assignment, and with gRPC's form on, gRPC's assignment and (where it differs) Cluster. */
type ClusterResources = [EncodedResource, EncodedResource, EncodedResource | undefined, EncodedResource | undefined];

/** What the last translation saw and produced (its output maps are the cache's now: copied, never changed). */
interface LastClusters extends SeenClusters, ClusterOutput {
  readonly lrsKey: string;
  readonly grpc: boolean;
}

/** What a cluster's resources are built from besides the cluster. */
interface ClusterInputs {
  readonly weights: WeightOverrides | undefined;
  readonly lrs: LoadReportingOptions | undefined;
  readonly lrsKey: string;
  /** Whether gRPC's form of the assignments is produced too. */
  readonly grpc: boolean;
}

/** A resource as built: the object protobufjs encodes, or its message bytes already encoded (assignments). */
type Built = Record<string, unknown> | Encoded;

/** A resource its builder encoded itself (assignments: assignment-encoding.ts). */
class Encoded {
  constructor(readonly resource: EncodedResource) {}
}

function resourceOfBuilt(typeUrl: XdsTypeUrl, name: string, built: Built): EncodedResource {
  return built instanceof Encoded ? built.resource : encodeResource(typeUrl, name, built);
}

/** The endpoint entries translate() may encode for `clusters`: a split cluster's twice with gRPC's form on (grpc-assignments.ts). */
function encodingsIn(clusters: readonly Cluster[], forms: TranslationForms): number {
  let n = 0;
  for (const c of clusters) n += forms.grpc && splitsForGrpc(c) ? 2 * c.endpoints.length : c.endpoints.length;
  return n;
}

/** The memo kinds of gRPC's assignments (grpc-assignments.ts) and Clusters (grpc-clusters.ts), beside the xDS types. */
const GRPC_ASSIGNMENTS = 'grpc-assignments';
const GRPC_CLUSTERS = 'grpc-clusters';
type MemoKind = XdsTypeUrl | typeof GRPC_ASSIGNMENTS | typeof GRPC_CLUSTERS;

/** Per kind, per name: no key string built per resource on every publish. */
type MemoByType = Map<MemoKind, Map<string, Memo>>;

/**
 * Each kind's resources (CDS, EDS and gRPC's EDS when on) in the catalog's order: the changed from
 * `fresh`, the rest as `last` had them. Positional maps over one key list and index shared by the kinds (and by the cache's
 * versioned maps built on them): at 10,000 clusters, a Map per type here and another per type in
 * the cache were most of a created or deleted cluster's publish. When the last output is
 * positional too (built so, or derived from such), the catalog and its key list are walked in
 * step and each carried resource copied by position, without a lookup, and the maps are marked
 * with where their resources came from (markPositional) for the cache; a name met out of step (a
 * cluster moved) is looked up.
 */
function inCatalogOrder(clusters: readonly Cluster[], last: ClusterOutput, fresh: ClusterOutput, gone: ReadonlySet<string>): Omit<ClusterOutput, 'byName'> {
  const kinds = last.geds === undefined ? (['cds', 'eds'] as const) : (['cds', 'eds', 'geds'] as const);
  const first = last.cds;
  const positional = first instanceof ArrayMap && kinds.every((k) => { const m = last[k]; return m instanceof ArrayMap && m.keyList === first.keyList; });
  const { keys, index, from } = catalogPlaces(clusters, positional ? first.keyList : [], gone);
  const out: Partial<Record<(typeof kinds)[number], ArrayMap<EncodedResource>>> = {};
  for (const kind of kinds) {
    const base = last[kind] as ReadonlyMap<string, EncodedResource>;
    const list = carried(keys, from, base);
    for (const [name, r] of fresh[kind] ?? []) list[index.get(name) as number] = r;
    const map = new ArrayMap(keys, index, complete(keys, list));
    if (positional) markPositional(map, { base, from });
    out[kind] = map;
  }
  return out as Omit<ClusterOutput, 'byName'>;
}

/**
 * The catalog's names in order, their index, and where each was in `before` (the last key list,
 * walked in step; -1 for a name met out of step or new). Worked out once for all kinds: the kinds'
 * values are then copied in one tight loop each (carried), not through a closure per cluster.
 */
function catalogPlaces(clusters: readonly Cluster[], before: readonly string[], gone: ReadonlySet<string>): { keys: string[]; index: Map<string, number>; from: Int32Array } {
  const n = clusters.length;
  const keys = new Array<string>(n);
  const index = new Map<string, number>();
  const from = new Int32Array(n);
  let j = 0;
  for (let i = 0; i < n; i++) {
    const name = (clusters[i] as Cluster).name;
    // Names deleted since: skipped.
    while (j < before.length && before[j] !== name && gone.has(before[j] as string)) j++;
    keys[i] = name;
    index.set(name, i);
    from[i] = before[j] === name ? j++ : -1;
  }
  return { keys, index, from };
}

/** `last`'s resource for every name of `keys`: by position where `from` has one, else looked up. */
function carried(keys: readonly string[], from: Int32Array, last: ReadonlyMap<string, EncodedResource>): (EncodedResource | undefined)[] {
  const values = last instanceof ArrayMap ? (last as ArrayMap<EncodedResource>).valueList : [];
  const out = new Array<EncodedResource | undefined>(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const j = from[i] as number;
    out[i] = j >= 0 ? values[j] : last.get(keys[i] as string);
  }
  return out;
}

/** `values` when every name has its resource (a name in neither the last output nor the changed is a bug, not a resource to drop). */
function complete(keys: readonly string[], values: (EncodedResource | undefined)[]): EncodedResource[] {
  const missing = values.findIndex((r) => r === undefined);
  if (missing >= 0) throw new Error(`translator: cluster ${keys[missing] ?? ''} has no resource to carry`);
  return values as EncodedResource[];
}

function memoOf(memo: MemoByType, kind: MemoKind): Map<string, Memo> {
  let m = memo.get(kind);
  if (!m) memo.set(kind, (m = new Map()));
  return m;
}

/** What a resource is built from: its source object and a small key of everything else. */
interface Inputs {
  readonly source: object;
  readonly extra: string;
  /** false: a different source object is taken as different content (big clusters). */
  readonly compareContent?: boolean;
  /** A ClusterLoadAssignment's weight overrides: compared by entry, as the weight loop publishes new maps each tick. */
  readonly overrides?: ReadonlyMap<string, EndpointOverride> | undefined;
  /**
   * Compare by the built object's JSON (small resources) instead of the source's content; the
   * function tells a source that builds the same form as the known one without building it.
   */
  byBuilt?(known: object, source: object): boolean;
}

/** A cluster's ClusterLoadAssignment inputs: the cluster and its weight overrides. */
function assignmentInputs(c: Cluster, weights: WeightOverrides | undefined): Inputs {
  return { source: c, extra: '', overrides: weights?.get(c.name), compareContent: c.endpoints.length <= BIG_CLUSTER_ENDPOINTS };
}

/** Same weights and health per endpoint (no overrides and an empty map are the same). */
function sameOverrides(a: ReadonlyMap<string, EndpointOverride> | undefined, b: ReadonlyMap<string, EndpointOverride> | undefined): boolean {
  if (a === b) return true;
  if ((a?.size ?? 0) !== (b?.size ?? 0)) return false;
  for (const [endpoint, o] of a ?? []) {
    const p = b?.get(endpoint);
    if (p === undefined || p.weight !== o.weight || p.health !== o.health) return false;
  }
  return true;
}

/** What a listener's two resources were built from, and their memo entries. */
interface KeptListener {
  readonly source: Listener;
  readonly routed: readonly (Cluster | undefined)[];
  readonly listener: Memo;
  readonly route: Memo;
}

interface Memo extends Inputs {
  readonly resource: EncodedResource;
  /** The built object's JSON, for `byBuilt` resources. */
  readonly built?: string;
}
