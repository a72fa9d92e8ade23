import { Debouncer } from '../runtime/debounce.js';
import type { Component } from '../runtime/lifecycle.js';
import { changedClusters } from './changed-clusters.js';
import type { CatalogConsumer } from './catalog-feed.js';
import type { Catalog } from './types.js';

/**
 * A name one resource uses for a cluster the catalog does not hold: a listener's route or a node
 * group's extra cluster. The API refuses to make one (400 on the listener, 409 REFERENCED on the
 * cluster's delete), but another owner can: a config reload or a restart dropping a file cluster
 * an API listener routes to, a discovered Service going away. Envoy takes such a route and
 * answers its requests 503 (no healthy upstream, flag NC); a node group just lacks the cluster.
 */
export interface DanglingReference {
  readonly referrer: 'listener' | 'node-group';
  /** The listener's name, or the node group's nodeCluster. */
  readonly name: string;
  readonly cluster: string;
}

/** Every dangling reference of `catalog`, listeners first, each pair once, in catalog order. */
export function danglingReferences(catalog: Catalog): DanglingReference[] {
  const held = new Set(catalog.clusters.map((c) => c.name));
  const out: DanglingReference[] = [];
  const add = (referrer: DanglingReference['referrer'], name: string, clusters: Iterable<string>): void => {
    for (const cluster of new Set(clusters)) if (!held.has(cluster)) out.push({ referrer, name, cluster });
  };
  for (const l of catalog.listeners) add('listener', l.name, l.routes.map((r) => r.cluster));
  for (const g of catalog.nodeGroups) add('node-group', g.nodeCluster, g.clusters);
  return out;
}

/** What a change of the catalog did to its dangling references. */
export interface DanglingChange {
  readonly appeared: readonly DanglingReference[];
  readonly resolved: readonly DanglingReference[];
  /** Every dangling reference after the change. */
  readonly now: readonly DanglingReference[];
}

const keyOf = (r: DanglingReference): string => `${r.referrer}\u0000${r.name}\u0000${r.cluster}`;

/**
 * Follows the catalog (after every owner's contribution is layered on) and tells `onChange` when
 * its dangling references change, so each is reported once when it appears and once when it is
 * resolved, not at every publication. A change that keeps the listeners, the node groups and
 * every cluster name (an endpoint write, a weight) is not looked at again. A catalog is judged
 * once the catalog has been settled for `settle.quietMs` (and at least every `settle.maxMs`):
 * a name handed from one owner to another (the API deletes a cluster the config file defines
 * too, the file's is seeded next) is not a reference lost and found again.
 */
export class DanglingReferenceWatch implements CatalogConsumer, Component {
  readonly name = 'dangling-references';
  private last: Catalog | undefined;
  /** The catalog `dangling` was computed from; undefined until opened. */
  private checked: Catalog | undefined;
  private dangling: readonly DanglingReference[] = [];
  private opened = false;
  private stopped = false;
  private readonly settled: Debouncer;

  constructor(
    private readonly onChange: (change: DanglingChange) => void,
    settle: { readonly quietMs: number; readonly maxMs: number } = { quietMs: 0, maxMs: 0 },
  ) {
    this.settled = new Debouncer(settle.quietMs, settle.maxMs, () => this.last && this.check(this.last));
  }

  start(): void {}

  stop(): void {
    this.stopped = true;
    this.opened = false;
    this.settled.cancel();
  }

  /**
   * Starts judging, from the catalog last seen: until every source has its first complete view
   * in (Kubernetes discovery synced), a route to a discovered cluster is not dangling, only early.
   */
  open(): void {
    if (this.stopped) return;
    this.opened = true;
    if (this.last) this.settled.trigger();
  }

  setCatalog(catalog: Catalog): void {
    this.last = catalog;
    if (this.opened) this.settled.trigger();
  }

  private check(catalog: Catalog): void {
    const previous = this.checked;
    this.checked = catalog;
    if (previous && sameReferences(previous, catalog)) return;
    const now = danglingReferences(catalog);
    const before = new Set(this.dangling.map(keyOf));
    const after = new Set(now.map(keyOf));
    const appeared = now.filter((r) => !before.has(keyOf(r)));
    const resolved = this.dangling.filter((r) => !after.has(keyOf(r)));
    this.dangling = now;
    if (appeared.length > 0 || resolved.length > 0) this.onChange({ appeared, resolved, now });
  }

  /** The dangling references of the catalog last seen. */
  current(): readonly DanglingReference[] {
    return this.dangling;
  }
}

/** Whether `next` can have no other dangling references than `previous`: the same referrers and cluster names. */
function sameReferences(previous: Catalog, next: Catalog): boolean {
  return previous.listeners === next.listeners && previous.nodeGroups === next.nodeGroups && !changedClusters(previous.clusters, next.clusters).renamed;
}
