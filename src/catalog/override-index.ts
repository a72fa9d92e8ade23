import { indexOverrides, type DiscoveredOverrides } from './discovered-overrides.js';
import type { CatalogStore } from './store/catalog-store.js';

/**
 * The store's overrides on discovered clusters, indexed (discovered-overrides.ts), read again
 * only after a committed change to an override, by any writer or replica. The Kubernetes overlay
 * asks for them on every catalog refresh, i.e. after every write and every discovery update:
 * reading and indexing every override each time made each of those cost what the override table
 * holds, not what changed.
 *
 * Build it before the catalog feed starts: change listeners run in subscription order, so the
 * index is dropped before the feed's refresh asks for it again.
 */
export class OverrideIndex {
  private index: DiscoveredOverrides | undefined;
  private readonly unsubscribe: () => void;

  constructor(private readonly store: Pick<CatalogStore, 'listOverrides' | 'onChange'>) {
    this.unsubscribe = store.onChange((change) => {
      if (change.changes.some((c) => c.kind === 'override')) this.index = undefined;
    });
  }

  current(): DiscoveredOverrides {
    return (this.index ??= indexOverrides(this.store.listOverrides()));
  }

  close(): void {
    this.unsubscribe();
  }
}
