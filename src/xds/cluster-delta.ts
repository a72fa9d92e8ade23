import { changedInPlace } from '../catalog/changed-clusters.js';
import type { Cluster } from '../catalog/types.js';
import type { WeightOverrides } from '../catalog/weight-overrides.js';

/** What one translation saw of the clusters; the next compares against it. */
export interface SeenClusters {
  /** The catalog's cluster list (the store's view keeps it in name order). */
  readonly clusters: readonly Cluster[];
  readonly weights: WeightOverrides | undefined;
}

/**
 * The clusters that changed since `seen`, found by identity: the stores keep an unchanged cluster
 * the same object, and the weight loop hands out a new override map only where it published new
 * weights, so one endpoint write is one pointer that differs. Undefined when clusters were added,
 * removed or reordered (the output's order, which versions hash, is then rebuilt in a whole
 * translation), or when more than half changed (a whole translation is as cheap).
 */
export function clusterDelta(seen: SeenClusters, clusters: readonly Cluster[], weights: WeightOverrides | undefined): readonly Cluster[] | undefined {
  const inPlace = clusters === seen.clusters ? [] : changedInPlace(seen.clusters, clusters);
  if (inPlace === undefined) return undefined;
  const changed = new Set<Cluster>(inPlace);
  if (weights !== seen.weights) {
    for (const c of clusters) if (weights?.get(c.name) !== seen.weights?.get(c.name)) changed.add(c);
  }
  return changed.size > clusters.length / 2 ? undefined : [...changed];
}
