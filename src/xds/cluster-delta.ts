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
  const changed = new Set<Cluster>();
  if (clusters !== seen.clusters && !changedInPlace(seen.clusters, clusters, changed)) return undefined;
  if (weights !== seen.weights) {
    for (const c of clusters) if (weights?.get(c.name) !== seen.weights?.get(c.name)) changed.add(c);
  }
  return changed.size > clusters.length / 2 ? undefined : [...changed];
}

/** Same names at the same positions: the clusters that are other objects. False when a name moved. */
function changedInPlace(before: readonly Cluster[], after: readonly Cluster[], changed: Set<Cluster>): boolean {
  if (before.length !== after.length) return false;
  for (let i = 0; i < after.length; i++) {
    const a = before[i];
    const b = after[i];
    if (a === b) continue;
    if (a === undefined || b === undefined || a.name !== b.name) return false;
    changed.add(b);
  }
  return true;
}
