import type { Catalog, Cluster, Endpoint, Listener, NodeGroup } from '../types.js';
import { withEndpoint } from './endpoint-patch.js';
import type { Change } from './records.js';

/** How a view reads what changed (inside the caller's read transaction). */
export interface CatalogReads {
  /** The cluster as served (operator state applied), or undefined once it is gone. */
  cluster(name: string): Cluster | undefined;
  listeners(): Listener[];
  nodeGroups(): NodeGroup[];
}

/**
 * The catalog a store last assembled, kept so the next read after a write re-reads only what the
 * write changed: with 100k endpoints stored, re-reading and re-building every cluster after each
 * endpoint write cost hundreds of milliseconds, and gave every later stage (weights, signals,
 * translation) a whole new catalog to compare. Unchanged clusters stay the same objects, so
 * those stages can skip them by identity.
 *
 * The view only follows writes it is told about, in revision order; a gap (another writer) makes
 * the store drop it and read everything (`follow` returns undefined).
 */
export class CatalogView {
  private readonly dirty = new Set<string>();
  private specsDirty = true;
  /** Clusters replaced since the last refresh (through `known`, `patchEndpoint` or a read). */
  private readonly touched = new Set<string>();
  private listeners: Listener[] = [];
  private nodeGroups: NodeGroup[] = [];
  private last: Catalog | undefined;

  constructor(
    private rev: number,
    private readonly clusters: Map<string, Cluster>,
  ) {}

  get revision(): number {
    return this.rev;
  }

  /** After a committed write: the view notes what it changed, or is dropped if it missed a revision or cannot tell. */
  follow(revision: number, changes: readonly Change[]): CatalogView | undefined {
    if (revision !== this.rev + 1) return undefined;
    for (const c of changes) {
      if (c.kind === 'cluster') this.dirty.add(c.name);
      else if (c.kind === 'endpoint') this.dirty.add(clusterOfEndpoint(c.name));
      else if (c.kind === 'listener' || c.kind === 'node-group') this.specsDirty = true;
      // Overrides on discovered clusters are layered on Kubernetes' contribution, not on the
      // store's catalog (discovered-overrides.ts): nothing here to read again.
      else if (c.kind !== 'override') return undefined;
    }
    this.rev = revision;
    return this;
  }

  /** A changed cluster as it is now, from the writer (which read it back already): it is not read again. */
  known(cluster: Cluster): void {
    if (!this.dirty.delete(cluster.name)) return;
    this.clusters.set(cluster.name, cluster);
    this.touched.add(cluster.name);
  }

  /** Whether `name` changed since the last refresh (so the view's copy of it is stale). */
  isDirty(name: string): boolean {
    return this.dirty.has(name);
  }

  /**
   * After a write to one endpoint of a cluster whose copy here was current before it: that
   * endpoint as served now (undefined: not served, e.g. disabled or removed), patched in.
   */
  patchEndpoint(name: string, address: string, port: number, served: Endpoint | undefined): void {
    const cluster = this.clusters.get(name);
    const endpoints = cluster && this.dirty.has(name) ? withEndpoint(cluster.endpoints, address, port, served) : undefined;
    if (!cluster || !endpoints) return; // read again at the next refresh
    this.clusters.set(name, { ...cluster, endpoints });
    this.dirty.delete(name);
    this.touched.add(name);
  }

  /** The catalog now: the previous one with what changed read again. */
  refresh(reads: CatalogReads): Catalog {
    if (this.last && this.dirty.size === 0 && !this.specsDirty && this.touched.size === 0) return this.last;
    for (const name of this.dirty) {
      const cluster = reads.cluster(name);
      if (cluster) this.clusters.set(name, cluster);
      else this.clusters.delete(name);
      this.touched.add(name);
    }
    this.dirty.clear();
    if (this.specsDirty) {
      this.listeners = reads.listeners();
      this.nodeGroups = reads.nodeGroups();
      this.specsDirty = false;
    }
    // A created or deleted cluster is placed by binary search too (at 10,000 clusters, sorting
    // every name again took ~1.5 ms per write).
    const clusters = (this.last && this.withTouched(this.last.clusters)) || sortedByName(this.clusters);
    this.touched.clear();
    this.last = { clusters, listeners: this.listeners, nodeGroups: this.nodeGroups };
    return this.last;
  }

  /**
   * The previous list with the touched clusters' new objects in their places, found by binary
   * search: one write costs a copy and a search, not a lookup per cluster (1,000 of them at 100k
   * endpoints). A created cluster is inserted at its place and a deleted one taken out. Undefined
   * (then the caller sorts anew) if a touched name is neither in the list nor in the view, or
   * more than MAX_SPLICES clusters were created or deleted.
   */
  private withTouched(list: readonly Cluster[]): Cluster[] | undefined {
    const out = list.slice();
    let moved = 0;
    for (const name of this.touched) {
      const i = lowerBound(out, name);
      const cluster = this.clusters.get(name);
      const present = i < out.length && (out[i] as Cluster).name === name;
      if (present && cluster !== undefined) out[i] = cluster;
      // Each insertion or removal moves the list's tail: past a few, one sort is cheaper.
      else if (++moved > MAX_SPLICES) return undefined;
      else if (present) out.splice(i, 1);
      else if (cluster !== undefined) out.splice(i, 0, cluster);
      else return undefined;
    }
    return out;
  }
}

/** Clusters created or deleted in one refresh that are placed one by one; more, and the list is sorted anew. */
const MAX_SPLICES = 64;

/** The first position of `list` (in name order, as sortedByName leaves it) whose name is not below `name`. */
function lowerBound(list: readonly Cluster[], name: string): number {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((list[mid] as Cluster).name < name) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** Endpoint changes are named `<cluster>/<address>:<port>`; an address never holds a '/'. */
function clusterOfEndpoint(name: string): string {
  return name.slice(0, name.lastIndexOf('/'));
}

/** In the store's order (SQLite's binary collation on ASCII names is code-unit order). */
function sortedByName(clusters: ReadonlyMap<string, Cluster>): Cluster[] {
  return [...clusters.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
