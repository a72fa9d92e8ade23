import { describe, expect, it } from 'vitest';
import { BIG_CHANGE_ENDPOINTS, CatalogFeed } from '../../src/catalog/catalog-feed.js';
import type { Catalog } from '../../src/catalog/types.js';
import { cluster, endpoint } from './helpers.js';

function origin(initial: Catalog) {
  let catalog = initial;
  const listeners = new Set<() => void>();
  return {
    catalog: () => catalog,
    onChange: (l: () => void) => (listeners.add(l), () => void listeners.delete(l)),
    change(next: Catalog) {
      catalog = next;
      for (const l of listeners) l();
    },
    listeners,
  };
}

const names = (c: Catalog): string[] => c.clusters.map((x) => x.name);
const catalogOf = (...clusterNames: string[]): Catalog => ({ clusters: clusterNames.map((n) => cluster(n)), listeners: [], nodeGroups: [] });

describe('CatalogFeed', () => {
  it('pushes the current catalog to every consumer, in order, on start and on each change', () => {
    const store = origin(catalogOf('a'));
    const seen: string[] = [];
    const consumer = (id: string) => ({ setCatalog: (c: Catalog) => void seen.push(`${id}:${names(c).join(',')}`) });
    const feed = new CatalogFeed(store, [consumer('weights'), consumer('publisher')]);
    store.change(catalogOf('early'));
    expect(seen).toEqual([]);
    feed.start();
    expect(seen).toEqual(['weights:early', 'publisher:early']);
    store.change(catalogOf('a', 'b'));
    expect(seen.slice(2)).toEqual(['weights:a,b', 'publisher:a,b']);
    feed.stop();
    expect(store.listeners.size).toBe(0);
    store.change(catalogOf('c'));
    expect(seen).toHaveLength(4);
  });

  it('layers the overlay on top of the store catalog, now and on later changes', () => {
    const store = origin(catalogOf('a'));
    const last: Catalog[] = [];
    const feed = new CatalogFeed(store, [{ setCatalog: (c) => void last.push(c) }]);
    feed.setOverlay((c) => ({ ...c, clusters: [...c.clusters, cluster('k8s/early')] }));
    expect(last).toEqual([]);
    feed.start();
    expect(names(last[0] as Catalog)).toEqual(['a', 'k8s/early']);
    feed.setOverlay((c) => ({ ...c, clusters: [...c.clusters, cluster('k8s/x')] }));
    expect(names(last[1] as Catalog)).toEqual(['a', 'k8s/x']);
    store.change(catalogOf('b'));
    expect(names(last[2] as Catalog)).toEqual(['b', 'k8s/x']);
    feed.stop();
  });

  it('pushes a big change one consumer per turn of the event loop, and a change meanwhile restarts the round with the newer catalog', async () => {
    const big = cluster('big', Array.from({ length: BIG_CHANGE_ENDPOINTS + 1 }, (_, i) => endpoint(`10.0.${i >> 8}.${i & 255}`)));
    const small = cluster('a');
    const store = origin({ clusters: [small], listeners: [], nodeGroups: [] });
    const seen: string[] = [];
    const consumer = (id: string) => ({ setCatalog: (c: Catalog) => void seen.push(`${id}:${names(c).join(',')}`) });
    const feed = new CatalogFeed(store, [consumer('weights'), consumer('signals'), consumer('publisher')]);
    feed.start();
    seen.length = 0;
    store.change({ clusters: [small, big], listeners: [], nodeGroups: [] });
    expect(seen).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual(['weights:a,big']);
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual(['weights:a,big', 'signals:a,big']);
    // A change now: the round starts again with it, and the publisher never gets the older catalog.
    store.change({ clusters: [small, big, cluster('b')], listeners: [], nodeGroups: [] });
    expect(seen).toHaveLength(2);
    for (let i = 0; i < 6; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(seen.slice(2)).toEqual(['weights:a,big,b', 'signals:a,big,b', 'publisher:a,big,b']);
    // A small change, nothing in progress: pushed to all at once.
    store.change({ clusters: [small, big, cluster('b'), cluster('c')], listeners: [], nodeGroups: [] });
    expect(seen.slice(5)).toEqual(['weights:a,big,b,c', 'signals:a,big,b,c', 'publisher:a,big,b,c']);
    feed.stop();
  });

  it('runs a consumer that takes a big change in steps a step per turn, and drops its steps for a change meanwhile', async () => {
    const big = cluster('big', Array.from({ length: BIG_CHANGE_ENDPOINTS + 1 }, (_, i) => endpoint(`10.0.${i >> 8}.${i & 255}`)));
    const store = origin(catalogOf('a'));
    const seen: string[] = [];
    const log = { started: [] as string[], dropped: [] as string[] };
    const stepped = {
      setCatalog: (c: Catalog) => void seen.push(`weights:${names(c).join(',')}`),
      *setCatalogSteps(c: Catalog): Generator<void, void, void> {
        const id = names(c).join(',');
        log.started.push(id);
        try {
          yield;
          yield;
          seen.push(`weights:${id}`);
        } finally {
          if (seen.at(-1) !== `weights:${id}`) log.dropped.push(id);
        }
      },
    };
    const feed = new CatalogFeed(store, [stepped, { setCatalog: (c) => void seen.push(`publisher:${names(c).join(',')}`) }]);
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    feed.start();
    expect(seen).toEqual(['weights:a', 'publisher:a']); // not a big change: setCatalog
    store.change({ clusters: [cluster('a'), big], listeners: [], nodeGroups: [] });
    await turn();
    await turn();
    expect(log.started).toEqual(['a,big']);
    expect(seen).toHaveLength(2); // mid-steps: nothing applied yet
    // A second write meanwhile: the first one's steps are dropped, the newer catalog goes through.
    store.change({ clusters: [cluster('a'), big, cluster('b')], listeners: [], nodeGroups: [] });
    for (let i = 0; i < 8; i++) await turn();
    expect(log.dropped).toEqual(['a,big']);
    expect(log.started).toEqual(['a,big', 'a,big,b']);
    expect(seen.slice(2)).toEqual(['weights:a,big,b', 'publisher:a,big,b']);
    feed.stop();
  });
});
