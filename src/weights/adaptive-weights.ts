import type { ProbeResult, Sample, ClusterTick, Explanation } from '../balancing/engine/types.js';
import { WeightEngine } from '../balancing/engine/weight-engine.js';
import { endpointKey } from '../catalog/endpoint-key.js';
import type { Catalog, Cluster } from '../catalog/types.js';
import type { EndpointOverride, WeightOverrides } from '../catalog/weight-overrides.js';
import { missingSignals, type MissingSignals } from './missing-signals.js';

/**
 * Adapts the catalog and the fleet's signals to the pure weight engine, and its ticks to the
 * overrides the translator publishes. Static clusters keep the operator's weights untouched;
 * only their probe health is published.
 */
export class AdaptiveWeights {
  private readonly engine: WeightEngine;
  private clusters = new Map<string, Cluster>();
  private last = new Map<string, ClusterTick>();
  private overrides: WeightOverrides = new Map();

  constructor(engine = new WeightEngine()) {
    this.engine = engine;
  }

  setCatalog(catalog: Catalog): void {
    const next = new Map(catalog.clusters.map((c) => [c.name, c]));
    for (const name of this.clusters.keys()) {
      if (!next.has(name)) {
        this.engine.removeCluster(name);
        this.last.delete(name);
      }
    }
    for (const c of next.values()) {
      const endpoints = c.endpoints.map((e) => ({
        key: endpointKey(e),
        weight: e.weight,
        health: e.health,
        locality: `${e.priority}/${e.locality.region}/${e.locality.zone}/${e.locality.subZone}`,
      }));
      this.engine.setCluster(c.name, endpoints, c.weighting, c.safety, c.ejection);
    }
    this.clusters = next;
  }

  /** Restores weights persisted by a previous process so a restart does not slosh traffic back to static. */
  seed(cluster: string, weights: ReadonlyMap<string, number>): void {
    if (this.engine.hasCluster(cluster)) this.engine.seedWeights(cluster, weights);
  }

  observeSample(cluster: string, endpoint: string, sample: Sample): boolean {
    return this.engine.observeSample(cluster, endpoint, sample);
  }

  observeProbe(cluster: string, endpoint: string, result: ProbeResult): void {
    this.engine.observeProbe(cluster, endpoint, result);
  }

  /** Runs one engine tick; returns the new overrides when anything published changed, else undefined. */
  tick(now: number): WeightOverrides | undefined {
    const result = this.engine.tick(now);
    let changed = false;
    const out = new Map<string, Map<string, EndpointOverride>>();
    for (const [name, t] of result.clusters) {
      const c = this.clusters.get(name);
      if (!c) continue;
      this.last.set(name, t);
      if (t.changed) changed = true;
      const adaptive = c.weighting.kind !== 'static';
      const perEndpoint = new Map<string, EndpointOverride>();
      for (const [key, weight] of t.weights) {
        const unhealthy = t.health.get(key) === 'UNHEALTHY';
        if (adaptive || unhealthy) perEndpoint.set(key, { ...(adaptive ? { weight } : {}), ...(unhealthy ? { health: 'UNHEALTHY' as const } : {}) });
      }
      if (perEndpoint.size > 0) out.set(name, perEndpoint);
    }
    if (!changed && sameKeys(out, this.overrides)) return undefined;
    this.overrides = out;
    return out;
  }

  current(): WeightOverrides {
    return this.overrides;
  }

  /** The last tick of a cluster, with every weight's explanation (for the admin API). */
  explain(cluster: string): { tick: ClusterTick; explanations: ReadonlyMap<string, Explanation> } | undefined {
    const t = this.last.get(cluster);
    return t ? { tick: t, explanations: t.explanations } : undefined;
  }

  /**
   * The health proxies are sent for an endpoint: an operator's DRAINING, UNHEALTHY or TIMEOUT as
   * declared (the translator never lifts it, publishedEndpoint), else the engine's. Undefined for
   * an unknown endpoint.
   */
  publishedHealth(cluster: string, key: string): string | undefined {
    const declared = this.clusters.get(cluster)?.endpoints.find((e) => endpointKey(e) === key)?.health;
    if (declared !== undefined && declared !== 'HEALTHY' && declared !== 'UNKNOWN') return declared;
    return this.last.get(cluster)?.health.get(key) ?? declared;
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

function sameKeys(a: WeightOverrides, b: WeightOverrides): boolean {
  if (a.size !== b.size) return false;
  for (const k of a.keys()) if (!b.has(k)) return false;
  return true;
}
