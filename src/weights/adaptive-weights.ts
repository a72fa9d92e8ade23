import type { ExportedClusterState } from '../balancing/engine/index.js';
import type { ClusterTick, EngineEndpoint, Explanation, Freshness, ProbeResult, Sample } from '../balancing/engine/types.js';
import { freshnessCounts } from '../balancing/engine/explanations.js';
import { WeightEngine, type PreparedCluster } from '../balancing/engine/weight-engine.js';
import { endpointKey } from '../catalog/endpoint-key.js';
import { changedClusters } from '../catalog/changed-clusters.js';
import type { Catalog, Cluster, Endpoint } from '../catalog/types.js';
import type { EndpointOverride, WeightOverrides } from '../catalog/weight-overrides.js';
import { inChunks, runToEnd } from '../balancing/steps.js';
import { clusterOverview, declaredSpecialHealth, publishedOf, readerOf, type ClusterOverview, type LiveHealth } from './cluster-overview.js';
import { missingSignals, type MissingSignals } from './missing-signals.js';
import { bestTierOf, lastResortOf, type LastResort } from '../catalog/routable-tier.js';
import { buildOverrides } from './tick-overrides.js';
import { clusterSafety } from './cluster-safety.js';

/** Endpoints per step when a big catalog change is handed to the engine in steps (~5–10 ms of a 20k cluster's 50–100). */
export const ENGINE_STEP_ENDPOINTS = 2_000;

/** A catalog endpoint as the engine takes it. */
function engineEndpoint(e: Endpoint): EngineEndpoint {
  return {
    key: endpointKey(e),
    weight: e.weight,
    health: e.health,
    locality: `${e.priority}/${e.locality.region}/${e.locality.zone}/${e.locality.subZone}`,
  };
}

/** A cluster's endpoints as the engine takes them, `chunk` per step. */
function* engineEndpointSteps(c: Cluster, chunk: number): Generator<void, EngineEndpoint[], void> {
  const out: EngineEndpoint[] = [];
  yield* inChunks(c.endpoints.length, chunk, (from, to) => {
    for (let i = from; i < to; i++) out.push(engineEndpoint(c.endpoints[i] as Endpoint));
  });
  return out;
}

/**
 * Adapts the catalog and the fleet's signals to the pure weight engine, and its ticks to the
 * overrides the translator publishes. Static clusters keep the operator's weights untouched;
 * only their probe health is published.
 */
export class AdaptiveWeights {
  private readonly engine: WeightEngine;
  private clusters = new Map<string, Cluster>();
  /** The same, as the catalog listed them: after one write, the changed cluster is found by position. */
  private seen: readonly Cluster[] = [];
  private last = new Map<string, ClusterTick>();
  private overrides: WeightOverrides = new Map();
  /** Which clusters this replica ticks (all, unless replicated: see src/ha). */
  private owns: (cluster: string) => boolean = () => true;
  /** Overrides published by the owners of the clusters this replica does not tick. */
  private readonly remote = new Map<string, ReadonlyMap<string, EndpointOverride>>();
  private remoteChanged = false;
  /** Per cluster: the overrides built from the tick output they were built from (reused while it is the same). */
  private readonly built = new Map<string, BuiltOverrides>();
  /** Per catalog cluster, its endpoints' declared health by key (built on first use: publishedHealth). */
  private readonly declared = new WeakMap<Cluster, ReadonlyMap<string, string>>();
  private readonly declaredSpecialOf = new WeakMap<Cluster, ReadonlyMap<string, string>>();
  /** Restored weights of clusters not in the catalog yet (seed); undefined once settled (settleSeeds). */
  private pendingSeeds: Map<string, ReadonlyMap<string, number>> | undefined = new Map();

  constructor(engine = new WeightEngine()) {
    this.engine = engine;
  }

  setCatalog(catalog: Catalog): void {
    // One write changed a cluster or a few, or created or deleted some: only those told to the engine.
    const { changed, removed } = changedClusters(this.seen, catalog.clusters);
    for (const name of removed) this.forget(name);
    for (const c of changed) {
      this.install(c, undefined);
      this.clusters.set(c.name, c);
    }
    // Last: if a cluster threw above, the next catalog is compared with this one's predecessor again.
    this.seen = catalog.clusters;
  }

  /** A cluster gone from the catalog: out of the engine, and its outputs dropped. */
  private forget(name: string): void {
    this.engine.removeCluster(name);
    this.last.delete(name);
    this.built.delete(name);
    this.clusters.delete(name);
  }

  /**
   * setCatalog in steps (the catalog feed runs one per turn of the event loop for a big change):
   * each changed cluster of more than `chunk` endpoints is prepared for the engine `chunk`
   * endpoints at a time (WeightEngine.prepareCluster), then the last step applies the catalog as
   * setCatalog does, with those clusters installed from their preparations. Nothing changes
   * before the last step: a caller may drop the steps for a newer catalog.
   */
  *setCatalogSteps(catalog: Catalog, chunk = ENGINE_STEP_ENDPOINTS): Generator<void, void, void> {
    const next = new Map(catalog.clusters.map((c) => [c.name, c]));
    const prepared = new Map<string, PreparedCluster>();
    for (const c of next.values()) {
      if (this.clusters.get(c.name) === c || c.endpoints.length <= chunk) continue;
      yield;
      const endpoints = yield* engineEndpointSteps(c, chunk);
      yield;
      prepared.set(c.name, yield* this.engine.prepareCluster(c.name, endpoints, c.weighting, { safety: clusterSafety(c), ejection: c.ejection, chunk }));
    }
    yield;
    this.apply(catalog.clusters, next, prepared);
  }

  /** The catalog's clusters by name to the engine: removed ones removed, changed ones set (or installed from `prepared`). */
  private apply(clusters: readonly Cluster[], next: Map<string, Cluster>, prepared: ReadonlyMap<string, PreparedCluster>): void {
    for (const name of [...this.clusters.keys()]) if (!next.has(name)) this.forget(name);
    for (const c of next.values()) {
      // The stores keep an unchanged cluster the same object: nothing to tell the engine.
      if (this.clusters.get(c.name) === c) continue;
      this.install(c, prepared.get(c.name));
    }
    this.clusters = next;
    this.seen = clusters;
  }

  /** A new or changed cluster to the engine: from its preparation (setCatalogSteps) if it has one. */
  private install(c: Cluster, ready: PreparedCluster | undefined): void {
    if (ready) this.engine.commitCluster(ready);
    else this.engine.setCluster(c.name, c.endpoints.map(engineEndpoint), c.weighting, clusterSafety(c), c.ejection);
    // Its probe taken off: the probes' verdicts go with it (WeightEngine.forgetProbes).
    if (this.clusters.get(c.name)?.probe !== undefined && c.probe === undefined) this.engine.forgetProbes(c.name);
    const restored = this.pendingSeeds?.get(c.name);
    if (restored === undefined) return;
    this.pendingSeeds?.delete(c.name);
    this.engine.seedWeights(c.name, restored);
  }

  /**
   * Restores weights persisted by a previous process so a restart does not slosh traffic back to
   * static. A cluster not in the catalog yet (Kubernetes discovery's arrive after its first sync,
   * after the weight loop resumed) is seeded when it arrives, until settleSeeds.
   */
  seed(cluster: string, weights: ReadonlyMap<string, number>): void {
    if (this.engine.hasCluster(cluster)) this.engine.seedWeights(cluster, weights);
    else this.pendingSeeds?.set(cluster, weights);
  }

  /**
   * Every source has its first view in: restored weights of clusters still absent are dropped, so
   * a cluster created later under such a name starts from its own weights, not from an old process's.
   */
  settleSeeds(): void {
    this.pendingSeeds = undefined;
  }

  observeSample(cluster: string, endpoint: string, sample: Sample): boolean {
    return this.engine.observeSample(cluster, endpoint, sample);
  }

  observeProbe(cluster: string, endpoint: string, result: ProbeResult): void {
    this.engine.observeProbe(cluster, endpoint, result);
  }

  /**
   * Replicated mode (src/ha): from now on only the clusters `owns` accepts are ticked here; the
   * others publish what `setRemote` last gave for them. Single replica: every cluster is owned.
   */
  setOwnership(owns: (cluster: string) => boolean): void {
    this.owns = owns;
  }

  /** The overrides a cluster's owner published (another replica); undefined forgets them. */
  setRemote(cluster: string, overrides: ReadonlyMap<string, EndpointOverride> | undefined): void {
    if (overrides === undefined) this.remote.delete(cluster);
    else this.remote.set(cluster, overrides);
    this.remoteChanged = true;
  }

  /** The cluster's controller state for a successor (see WeightEngine.exportClusterState). */
  exportState(cluster: string): ExportedClusterState | undefined {
    return this.engine.exportClusterState(cluster);
  }

  /** Continues a cluster from its previous owner's state; the endpoints restored. `now`: the engine's clock (see WeightEngine.importClusterState). */
  importState(cluster: string, state: ExportedClusterState, now?: number): number {
    return this.engine.importClusterState(cluster, state, now);
  }

  /** A cluster taken over with no state to import: its newcomer marks are stale (WeightEngine.forgetNewcomers). */
  forgetNewcomers(cluster: string): void {
    this.engine.forgetNewcomers(cluster);
  }

  /** Runs one engine tick; returns the new overrides when anything published changed, else undefined. */
  tick(now: number): WeightOverrides | undefined {
    return runToEnd(this.tickInSlices(now, Number.POSITIVE_INFINITY));
  }

  /**
   * One engine tick in slices of about `sliceEndpoints` endpoints: whole clusters, and a cluster
   * larger than that in steps of its own (WeightEngine.startClusterTick). Each `next()` runs one
   * slice, and the last returns what `tick(now)` returns. Every slice uses the same `now`, so the
   * weights are those of one tick; the caller yields its event loop between slices
   * (weight-loop.ts), so requests and pushes wait for one slice, not for the whole tick. Samples
   * that arrive between slices count for the clusters not ticked yet, as if they had arrived
   * before the tick, and for a cluster in steps, after it; a cluster removed between slices is left out,
   * and one created between slices is ticked with the others (setCatalog adds it to the map this
   * walks; it is set in the engine already).
   */
  *tickInSlices(now: number, sliceEndpoints: number): Generator<void, WeightOverrides | undefined, void> {
    const ticked = new Map<string, ReadonlyMap<string, EndpointOverride>>();
    const state = { changed: false };
    let slice: string[] = [];
    let size = 0;
    for (const [name, c] of this.clusters) {
      // Ownership is asked per cluster as the tick reaches it: a hand-over may land between slices.
      if (!this.owns(name)) continue;
      if (c.endpoints.length > sliceEndpoints) {
        if (slice.length > 0) {
          this.tickSlice(now, slice, ticked, state);
          slice = [];
          size = 0;
          yield;
        }
        const run = this.engine.startClusterTick(now, name, sliceEndpoints);
        try {
          while (!run.step()) yield;
        } finally {
          // A tick abandoned mid-cluster (return(): the loop stopped) completes the cluster's tick, so
          // the engine does not keep deferring that cluster's changes to a tick nobody drives.
          run.finish();
        }
        // Its overrides (a map of every endpoint) in a slice of their own.
        yield;
        if (run.result !== undefined) this.record(name, run.result, ticked, state);
        yield;
        continue;
      }
      slice.push(name);
      size += c.endpoints.length;
      if (size < sliceEndpoints) continue;
      this.tickSlice(now, slice, ticked, state);
      slice = [];
      size = 0;
      yield;
    }
    this.tickSlice(now, slice, ticked, state);
    return this.finishTick(ticked, state.changed);
  }

  /** Whether some cluster's signals raised an alarm (WeightEngine.takeAlarms) that tickAlarmed has not taken. */
  get alarmed(): boolean {
    return this.engine.alarmed;
  }

  /**
   * Ticks now the clusters whose signals raised an alarm (an endpoint newly stalled, newly failing
   * all it is sent or as much as an outlier rule ejects at, taken out by its probes, a backlog drain
   * pending: WeightEngine.takeAlarms): those
   * this replica owns, in the order raised, as long as their endpoints add up to at most `budget`
   * (the others wait for their periodic tick, which a large cluster runs in steps). Returns how many
   * clusters and endpoints it ticked, and the new overrides when anything published changed, as
   * tick returns them.
   */
  tickAlarmed(now: number, budget: number): { readonly clusters: number; readonly endpoints: number; readonly overrides: WeightOverrides | undefined } {
    const names: string[] = [];
    let endpoints = 0;
    for (const name of this.engine.takeAlarms()) {
      const size = this.clusters.get(name)?.endpoints.length;
      if (size === undefined || !this.owns(name) || endpoints + size > budget) continue;
      names.push(name);
      endpoints += size;
    }
    if (names.length === 0) return { clusters: 0, endpoints: 0, overrides: undefined };
    const ticked = new Map<string, ReadonlyMap<string, EndpointOverride>>();
    const state = { changed: false };
    this.tickSlice(now, names, ticked, state);
    return { clusters: ticked.size, endpoints, overrides: this.finishTick(ticked, state.changed) };
  }

  private tickSlice(now: number, names: readonly string[], ticked: Map<string, ReadonlyMap<string, EndpointOverride>>, state: { changed: boolean }): void {
    if (names.length === 0) return;
    for (const [name, t] of this.engine.tickClusters(now, names).clusters) this.record(name, t, ticked, state);
  }

  private record(name: string, t: ClusterTick, ticked: Map<string, ReadonlyMap<string, EndpointOverride>>, state: { changed: boolean }): void {
    const c = this.clusters.get(name);
    if (!c) return;
    this.last.set(name, t);
    const overrides = this.overridesOf(name, t, c.weighting.kind !== 'static');
    // Changed for the proxies only when the overrides are: a static cluster's engine weights move
    // with every write to it, but it publishes health alone. A publication for nothing restarted
    // the publisher's quiet window, delaying the write's own push (bench/RESULTS.md, engine17).
    // Overrides that became empty leave the published set, which finishTick sees by its keys.
    if (t.changed && overrides.size > 0 && overrides !== this.overrides.get(name)) state.changed = true;
    ticked.set(name, overrides);
  }

  /** The overrides of the whole tick (in the clusters map's order; read by name), or undefined when nothing published changed. */
  private finishTick(ticked: ReadonlyMap<string, ReadonlyMap<string, EndpointOverride>>, changedInTick: boolean): WeightOverrides | undefined {
    const changed = changedInTick || this.remoteChanged;
    this.remoteChanged = false;
    const out = new Map<string, ReadonlyMap<string, EndpointOverride>>();
    for (const name of this.clusters.keys()) {
      // Not owned and nothing from the owner yet (a hand-over in flight): keep what is published.
      // Owned but not ticked (taken over between slices, or added meanwhile): keep what is published.
      const perEndpoint = this.owns(name) ? (ticked.get(name) ?? this.overrides.get(name)) : (this.remote.get(name) ?? this.overrides.get(name));
      if (perEndpoint !== undefined && perEndpoint.size > 0) out.set(name, perEndpoint);
    }
    if (!changed && sameKeys(out, this.overrides)) return undefined;
    this.overrides = out;
    return out;
  }

  /**
   * What a tick publishes for a cluster: adaptive weights, and UNHEALTHY where probes failed. A
   * cluster whose tick output is the very same as last time (no push: the engine hands back the
   * same weight and health maps) keeps its previous overrides: no map of n entries per tick.
   */
  private overridesOf(name: string, t: ClusterTick, adaptive: boolean): ReadonlyMap<string, EndpointOverride> {
    const prev = this.built.get(name);
    if (prev !== undefined && prev.weights === t.weights && prev.health === t.health && prev.adaptive === adaptive) return prev.overrides;
    const built = buildOverrides(t, adaptive);
    // A static cluster's overrides name its UNHEALTHY endpoints only: the same names, the same overrides.
    const overrides = !adaptive && prev !== undefined && !prev.adaptive && sameKeys(built, prev.overrides) ? prev.overrides : built;
    this.built.set(name, { weights: t.weights, health: t.health, adaptive, overrides });
    return overrides;
  }

  current(): WeightOverrides {
    return this.overrides;
  }

  /**
   * The last tick of a cluster, with every weight's explanation (for the admin API). For a cluster
   * another replica owns: the weights its owner published, without explanations (they stay there).
   */
  explain(cluster: string): { tick: ClusterTick; explanations: ReadonlyMap<string, Explanation> } | undefined {
    const remote = this.ownerOverrides(cluster);
    if (remote !== undefined) return { tick: remoteTick(remote), explanations: new Map() };
    const t = this.last.get(cluster);
    return t ? { tick: t, explanations: t.explanations } : undefined;
  }

  /**
   * The health proxies are sent for a cluster's endpoints, as a reader by key (made once per
   * answer): the live health (for a cluster another replica owns, its owner's: what this replica
   * publishes for it; otherwise this engine's) over the declared one as publishedEndpoint applies
   * it (publishedOf: an operator's DRAINING, UNHEALTHY or TIMEOUT is never lifted; a DEGRADED one
   * the probes fail is UNHEALTHY); else as declared. Undefined for an unknown endpoint.
   */
  publishedHealthOf(cluster: string): (key: string) => string | undefined {
    const c = this.clusters.get(cluster);
    const live = readerOf(this.liveHealthOf(cluster));
    if (c === undefined) return live;
    const special = this.declaredSpecial(c);
    return (key) => publishedOf(special.get(key), live(key)) ?? this.declaredHealth(c).get(key);
  }

  /**
   * Of publishedHealthOf: the live health only (undefined = as declared), from where finishTick
   * takes what is published: for a cluster owned here this engine's last tick; for one another
   * replica owns, its owner's overrides (a static cluster's carry health only), else what was
   * published before.
   */
  private liveHealthOf(cluster: string): LiveHealth {
    if (this.owns(cluster)) return this.last.get(cluster)?.health;
    const published = this.remote.get(cluster) ?? this.overrides.get(cluster);
    return (key) => published?.get(key)?.health;
  }

  /** For a cluster another replica owns and has published weights for: those overrides (explain shows them). */
  private ownerOverrides(cluster: string): ReadonlyMap<string, EndpointOverride> | undefined {
    const remote = this.owns(cluster) ? undefined : this.remote.get(cluster);
    if (remote === undefined) return undefined;
    for (const o of remote.values()) if (o.weight !== undefined) return remote;
    return undefined;
  }

  /** The cluster's endpoints' declared health by key, indexed once per catalog cluster (not searched per endpoint). */
  private declaredHealth(c: Cluster): ReadonlyMap<string, string> {
    return perCluster(this.declared, c, (x) => new Map(x.endpoints.map((e) => [endpointKey(e), e.health])));
  }

  /** The cluster's endpoints declared other than HEALTHY or UNKNOWN (usually few), by key, indexed once per catalog cluster. */
  private declaredSpecial(c: Cluster): ReadonlyMap<string, string> {
    return perCluster(this.declaredSpecialOf, c, declaredSpecialHealth);
  }

  /** Which signal the cluster's policy is missing for which endpoints, after its last tick. */
  missingSignals(cluster: string): MissingSignals | undefined {
    const c = this.clusters.get(cluster);
    const t = this.last.get(cluster);
    return c && t ? missingSignals(c.weighting, t.explanations) : undefined;
  }

  /** Every cluster's missing-signal notice. */
  allMissingSignals(): Map<string, MissingSignals> {
    const out = new Map<string, MissingSignals>();
    for (const name of this.clusters.keys()) {
      const n = this.missingSignals(name);
      if (n) out.set(name, n);
    }
    return out;
  }

  /** Every cluster's line, by name (code-unit order): GET /v1/weights and the dashboard's list. */
  overview(): ClusterOverview[] {
    const names = [...this.clusters.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return names.map((name) => {
      const c = this.clusters.get(name) as Cluster;
      return clusterOverview(c, this.explain(name)?.tick, this.declaredSpecial(c), this.liveHealthOf(name), this.missingSignals(name)?.endpoints.length ?? 0);
    });
  }

  /**
   * The clusters with nothing routable, with what proxies are sent as UNKNOWN instead (the
   * overview's lastResort), for the metric read at every scrape: each cluster's endpoints are read
   * only until a routable one is found, so a healthy fleet costs a read per cluster, not a count
   * of every endpoint (the overview: ~55 ms at 100k endpoints).
   */
  lastResorts(): { cluster: string; lastResort: LastResort }[] {
    const out: { cluster: string; lastResort: LastResort }[] = [];
    for (const [name, c] of this.clusters) {
      const health = this.publishedHealthOf(name);
      const keys = this.tickKeys(name) ?? c.endpoints.map(endpointKey);
      const lastResort = lastResortOf(bestTierOf(keys, health));
      if (lastResort !== undefined) out.push({ cluster: name, lastResort });
    }
    return out;
  }

  /** The adaptive clusters this replica computes whose last tick failed static (fulcrum_cluster_fail_static). */
  failStaticClusters(): string[] {
    return [...this.adaptiveTicks()].filter(([, tick]) => tick.failStatic).map(([name]) => name);
  }

  /**
   * The adaptive clusters this replica computes with endpoints steering on data that is not fresh
   * after their last tick (stale: weight held; expired: decaying to static; none: never sent),
   * counted by freshness, operator-disabled ones aside (fulcrum_cluster_signals_not_fresh).
   */
  signalsNotFresh(): ClusterFreshness[] {
    const out: ClusterFreshness[] = [];
    for (const [cluster, tick] of this.adaptiveTicks()) {
      const counts = notFresh(tick.explanations);
      if (Object.keys(counts).length > 0) out.push({ cluster, notFresh: counts });
    }
    return out;
  }

  /** Each adaptive cluster's last tick, where this replica computes it (not another owner's: explain's remote tick says nothing of either). */
  private *adaptiveTicks(): Generator<[string, ClusterTick]> {
    for (const [name, c] of this.clusters) {
      if (c.weighting.kind === 'static' || this.ownerOverrides(name) !== undefined) continue;
      const tick = this.last.get(name);
      if (tick !== undefined) yield [name, tick];
    }
  }

  /**
   * The keys of the cluster's tick as explain() gives it (another owner's: its weighted
   * overrides), without building explain's remote maps of every endpoint at every scrape.
   */
  private tickKeys(name: string): Iterable<string> | undefined {
    const remote = this.ownerOverrides(name);
    if (remote === undefined) return this.last.get(name)?.weights.keys();
    return (function* () {
      for (const [key, o] of remote) if (o.weight !== undefined) yield key;
    })();
  }

  publishedWeights(cluster: string): ReadonlyMap<string, number> | undefined {
    return this.engine.publishedWeights(cluster);
  }

  /** The published weights of every adaptive cluster, for persistence. */
  adaptiveWeights(): Map<string, ReadonlyMap<string, number>> {
    const out = new Map<string, ReadonlyMap<string, number>>();
    for (const [name, c] of this.clusters) {
      const w = c.weighting.kind === 'static' ? undefined : this.engine.publishedWeights(name);
      if (w) out.set(name, w);
    }
    return out;
  }
}

/** `build(c)` once per catalog cluster object (the stores keep an unchanged cluster the same object). */
function perCluster<T>(memo: WeakMap<Cluster, T>, c: Cluster, build: (c: Cluster) => T): T {
  let value = memo.get(c);
  if (value === undefined) {
    value = build(c);
    memo.set(c, value);
  }
  return value;
}

/** The owner's published overrides in the shape of a tick (weights and health only). */
function remoteTick(remote: ReadonlyMap<string, EndpointOverride>): ClusterTick {
  const weights = new Map<string, number>();
  const health = new Map<string, 'HEALTHY' | 'UNHEALTHY'>();
  for (const [key, o] of remote) {
    if (o.weight !== undefined) weights.set(key, o.weight);
    health.set(key, o.health ?? 'HEALTHY');
  }
  return { weights, health, changed: false, explanations: new Map(), failStatic: false, setpoint: undefined };
}

interface BuiltOverrides {
  readonly weights: ClusterTick['weights'];
  readonly health: ClusterTick['health'];
  readonly adaptive: boolean;
  readonly overrides: ReadonlyMap<string, EndpointOverride>;
}

function sameKeys(a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): boolean {
  if (a.size !== b.size) return false;
  for (const k of a.keys()) if (!b.has(k)) return false;
  return true;
}

/** A cluster's endpoints by freshness other than fresh (absent: none of that kind): AdaptiveWeights.signalsNotFresh. */
export interface ClusterFreshness {
  readonly cluster: string;
  readonly notFresh: Partial<Record<Exclude<Freshness, 'fresh'>, number>>;
}

/** A tick's endpoints by freshness other than fresh (kinds with no endpoint omitted), operator-disabled ones aside. */
function notFresh(explanations: ReadonlyMap<string, Explanation>): ClusterFreshness['notFresh'] {
  const { fresh: _fresh, ...rest } = freshnessCounts(explanations);
  return Object.fromEntries(Object.entries(rest).filter(([, n]) => n > 0));
}
