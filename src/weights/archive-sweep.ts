import type { MaybePromise } from '../catalog/store/catalog-store.js';
import type { Catalog } from '../catalog/types.js';

/** The archive's side of the sweep (the durable store). */
export interface SweptArchive {
  weightedClusters(): readonly string[];
  deleteWeights(clusters: readonly string[]): MaybePromise<void>;
}

/**
 * Deletes the archived (published) weights of clusters that left the catalog. A stored cluster's
 * delete drops them in its own transaction, but a discovered cluster is never stored: when it
 * went, its weights stayed for good, and a cluster discovered later under the name was seeded
 * from them at the next restart. Rows of clusters absent at start (gone while fulcrum was down,
 * or left by an older version) are dropped once every source has its first view (`settle`);
 * before that, a discovered cluster missing from the catalog is not gone, only not listed yet.
 *
 * A catalog consumer placed after the weight engine: once the engine has a catalog without the
 * cluster, no later save can hold it, so the delete is final; a save queued before it (behind a
 * sliced write) commits before it.
 */
export class WeightArchiveSweep {
  /** The cluster names of the last catalog. */
  private names: ReadonlySet<string> | undefined;
  private lastClusters: Catalog['clusters'] | undefined;
  private settled = false;

  constructor(
    private readonly archive: SweptArchive,
    /** A delete failed (disk full, etcd away): the rows stay until the next start's sweep. */
    private readonly onError: (err: unknown, clusters: readonly string[]) => void,
  ) {}

  setCatalog(catalog: Catalog): void {
    if (catalog.clusters === this.lastClusters) return;
    this.lastClusters = catalog.clusters;
    const before = this.names;
    const next = new Set(catalog.clusters.map((c) => c.name));
    this.names = next;
    if (!this.settled) return;
    // Settled before the first catalog came (no discovery): that catalog is the complete one.
    if (before === undefined) this.sweepAll();
    else this.drop([...before].filter((name) => !next.has(name)));
  }

  /** Every source has its first view in the catalog: from now on, a cluster absent from it is gone. */
  settle(): void {
    if (this.settled) return;
    this.settled = true;
    if (this.names !== undefined) this.sweepAll();
  }

  private sweepAll(): void {
    const names = this.names ?? new Set<string>();
    let archived: readonly string[];
    try {
      archived = this.archive.weightedClusters();
    } catch (err) {
      this.onError(err, []);
      return;
    }
    this.drop(archived.filter((name) => !names.has(name)));
  }

  private drop(clusters: readonly string[]): void {
    if (clusters.length === 0) return;
    try {
      const deleting = this.archive.deleteWeights(clusters);
      if (deleting instanceof Promise) deleting.catch((err: unknown) => this.onError(err, clusters));
    } catch (err) {
      this.onError(err, clusters);
    }
  }
}
