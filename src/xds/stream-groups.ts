import { DEFAULT_GROUP } from './resource-set.js';

/** What the server needs of a stream to wake it when its snapshot changed. */
export interface CacheWatcher {
  onCacheChange(): void;
}

/**
 * Streams indexed by their proxy's node.cluster, so a cache change wakes only the streams whose
 * snapshot changed. A stream sees its node.cluster's group if the cache has one, else the default
 * group; a group that appears or disappears is reported as changed under its own name, which
 * reaches the streams that move into or out of it.
 */
export class StreamGroups<S extends CacheWatcher> {
  private readonly byNodeCluster = new Map<string, Set<S>>();
  private readonly nodeClusterOf = new Map<S, string>();

  /** Indexes a stream once its first request named the proxy; later calls are no-ops. */
  add(stream: S, nodeCluster: string): void {
    if (this.nodeClusterOf.has(stream)) return;
    this.nodeClusterOf.set(stream, nodeCluster);
    let set = this.byNodeCluster.get(nodeCluster);
    if (!set) {
      set = new Set();
      this.byNodeCluster.set(nodeCluster, set);
    }
    set.add(stream);
  }

  has(stream: S): boolean {
    return this.nodeClusterOf.has(stream);
  }

  delete(stream: S): void {
    const nodeCluster = this.nodeClusterOf.get(stream);
    if (nodeCluster === undefined) return;
    this.nodeClusterOf.delete(stream);
    const set = this.byNodeCluster.get(nodeCluster);
    set?.delete(stream);
    if (set?.size === 0) this.byNodeCluster.delete(nodeCluster);
  }

  /** The streams whose snapshot is among `changed`; `hasOwnGroup` says which node clusters have a group. */
  affected(changed: ReadonlySet<string>, hasOwnGroup: (nodeCluster: string) => boolean): S[] {
    const out: S[] = [];
    const defaultChanged = changed.has(DEFAULT_GROUP);
    for (const [nodeCluster, streams] of this.byNodeCluster) {
      if (changed.has(nodeCluster) || (defaultChanged && !hasOwnGroup(nodeCluster))) out.push(...streams);
    }
    return out;
  }
}
