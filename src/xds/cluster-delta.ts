import { changedClusters, type ClusterChanges } from '../catalog/changed-clusters.js';
import type { Cluster } from '../catalog/types.js';
import type { WeightOverrides } from '../catalog/weight-overrides.js';

/** What one translation saw of the clusters; the next compares against it. */
export interface SeenClusters {
  /** The catalog's cluster list (the store's view keeps it in name order). */
  readonly clusters: readonly Cluster[];
  readonly weights: WeightOverrides | undefined;
}

/** How the clusters differ from what a translation saw. */
export interface ClusterDelta {
  /** Clusters to translate again: other objects than seen, new names, or new weight overrides. */
  readonly changed: readonly Cluster[];
  /** Names seen that are gone. */
  readonly removed: readonly string[];
  /** Names were added, removed or moved: the output is put back in the catalog's order. */
  readonly reordered: boolean;
}

/**
 * The clusters that changed since `seen`, found by identity: the stores keep an unchanged cluster
 * the same object, and the weight loop hands out a new override map only where it published new
 * weights, so one endpoint write is one pointer that differs. A cluster added or removed is
 * found by name (one pass over both lists), so creating or deleting one cluster at 1,000 visits
 * one, not all. Undefined when more than half changed (a whole translation is as cheap).
 */
export function clusterDelta(seen: SeenClusters, clusters: readonly Cluster[], weights: WeightOverrides | undefined): ClusterDelta | undefined {
  const found = clusters === seen.clusters ? UNCHANGED : changedClusters(seen.clusters, clusters);
  const changed = new Set<Cluster>(found.changed);
  if (weights !== seen.weights) {
    for (const c of clusters) if (weights?.get(c.name) !== seen.weights?.get(c.name)) changed.add(c);
  }
  if (changed.size > clusters.length / 2) return undefined;
  return { changed: [...changed], removed: found.removed, reordered: found.renamed };
}

const UNCHANGED: ClusterChanges = { changed: [], removed: [], renamed: false };
