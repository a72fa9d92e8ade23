import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Store } from '../../src/catalog/store/index.js';
import type { Catalog } from '../../src/catalog/types.js';
import { WriteLane } from '../../src/catalog/store/write-lane.js';
import { unpackText } from '../../src/catalog/store/packed-text.js';
import { closeStoresAndCleanup, cluster, endpoint, listener, many, storeAt, twoStores } from './helpers.js';

const API = { actor: 'alice', owner: 'api' } as const;
const FILE = { actor: 'config-file' } as const;
/** Slices of 1 ms: many turns in a small test. */
const FAST = { sliceMs: 1 } as const;
const open: Store[] = [];
/** One clock for every store, so that two stores given the same writes hold the same rows. */
const AT = new Date('2026-12-02T00:00:00Z');
const fresh = (): Store => storeAt(open, AT);
afterEach(() => closeStoresAndCleanup(open));

const catalogOf = (parts: Partial<Catalog>): Catalog => ({ clusters: [], listeners: [], nodeGroups: [], ...parts });

/** The audit rows as stored, texts unpacked: what a reader of the log gets, whichever way they were written. */
function auditTexts(file: string): { kind: string; name: string; action: string; revision: number; before: string | null; after: string | null }[] {
  const db = new Database(file, { readonly: true });
  try {
    const rows = db.prepare('SELECT kind, name, action, revision, before, after, before_packed AS bp, after_packed AS ap, packed_bytes AS bytes FROM audit ORDER BY id').all() as Record<string, unknown>[];
    const text = (plain: unknown, packed: unknown, bytes: unknown): string | null =>
      packed == null ? (plain as string | null) : unpackText(packed as Buffer, bytes as number);
    return rows.map((r) => ({
      kind: r.kind as string,
      name: r.name as string,
      action: r.action as string,
      revision: r.revision as number,
      before: text(r.before, r.bp, r.bytes),
      after: text(r.after, r.ap, r.bytes),
    }));
  } finally {
    db.close();
  }
}

describe('seedFromConfigSliced', () => {
  it('stores, audits and announces exactly what seedFromConfig does, seed after seed', async () => {
    const { plain, sliced, events } = twoStores(fresh);
    for (const s of [plain, sliced]) {
      // A name the API owns (a conflict), and one it owns that the file never names.
      s.putCluster(cluster('taken', [endpoint('10.9.0.1')]), API);
      s.putCluster(cluster('mine', [endpoint('10.9.0.2')]), API);
      s.catalog();
    }
    const big = many(1500, 1);
    const seeds: Catalog[] = [
      catalogOf({
        clusters: [cluster('big', big), cluster('small', many(3, 1, 5000)), cluster('taken', many(2, 1, 6000)), cluster('gone', many(1200, 1, 7000))],
        listeners: [listener('in', 'small')],
        nodeGroups: [{ nodeCluster: 'edge', listeners: ['in'], clusters: [] }],
      }),
      // Every weight moves, a cluster and the node group go, a listener changes, a cluster appears.
      catalogOf({
        clusters: [cluster('big', many(1500, 2)), cluster('small', many(3, 2, 5000)), cluster('new', many(4, 1, 8000))],
        listeners: [listener('in', 'new')],
      }),
      // The same again (new objects, equal content): nothing changes.
      catalogOf({
        clusters: [cluster('big', many(1500, 2)), cluster('small', many(3, 2, 5000)), cluster('new', many(4, 1, 8000))],
        listeners: [listener('in', 'new')],
      }),
      // Shrinks the big one and drops everything else the file owned.
      catalogOf({ clusters: [cluster('big', many(10, 3))] }),
    ];
    for (const seed of seeds) {
      const a = plain.seedFromConfig(seed, FILE);
      const b = await sliced.seedFromConfigSliced(seed, FILE, { sliceMs: 1, packOver: 1000 });
      expect(b).toEqual(a);
      expect(sliced.catalog()).toEqual(plain.catalog());
    }
    expect(sliced.listClusters()).toEqual(plain.listClusters());
    expect(sliced.listListeners()).toEqual(plain.listListeners());
    expect(sliced.listNodeGroups()).toEqual(plain.listNodeGroups());
    expect(sliced.audit(50)).toEqual(plain.audit(50));
    expect(auditTexts(sliced.file)).toEqual(auditTexts(plain.file));
    expect(events[1]).toEqual(events[0]);
    // Three seeds changed something (the third was a no-op); each was one revision.
    expect(events[0]).toHaveLength(2 + 3);
    expect(sliced.catalog().clusters.map((c) => c.name)).toEqual(['big', 'mine', 'taken']);
  });

  it('lets the event loop turn while it writes, and readers see the store as it was until it commits', async () => {
    const s = fresh();
    const before = catalogOf({ clusters: Array.from({ length: 20 }, (_, i) => cluster(`c${i}`, many(200, 1, i * 200))) });
    await s.seedFromConfigSliced(before, FILE, FAST);
    const after = catalogOf({ clusters: Array.from({ length: 20 }, (_, i) => cluster(`c${i}`, many(200, 2, i * 200))) });
    let turns = 0;
    const seen = new Set<number>();
    let running = true;
    const tick = (): void => {
      turns++;
      if (!running) return;
      seen.add(s.getCluster('c19')?.endpoints[0]?.weight ?? -1);
      setImmediate(tick);
    };
    // Change listeners run at the commit.
    s.onChange(() => void (running = false));
    setImmediate(tick);
    await s.seedFromConfigSliced(after, FILE, FAST);
    expect(turns).toBeGreaterThan(10);
    // Only the weight before the seed was read while it ran.
    expect([...seen]).toEqual([1]);
    expect(s.getCluster('c19')?.endpoints[0]?.weight).toBe(2);
  });

  it('rolls the whole seed back when any part of it fails', async () => {
    const s = fresh();
    await s.seedFromConfigSliced(catalogOf({ clusters: [cluster('a', many(5, 1)), cluster('b', many(5, 1, 100))] }), FILE, FAST);
    const revision = s.revision();
    const bad = catalogOf({ clusters: [cluster('a', many(5, 7)), cluster('b', many(5, 0, 100))] });
    await expect(s.seedFromConfigSliced(bad, FILE, FAST)).rejects.toThrow(/CHECK constraint failed/);
    expect(s.revision()).toBe(revision);
    expect(s.getCluster('a')?.endpoints.map((e) => e.weight)).toEqual([1, 1, 1, 1, 1]);
  });

  it('is what the write lane seeds a file of more than its sliced size with, queued with the other writes', async () => {
    const store = fresh();
    const lane = new WriteLane(store, 100);
    const seeding = lane.seedFromConfig(catalogOf({ clusters: [cluster('big', many(300, 1))] }), FILE);
    // Not committed in the call: the sliced seed runs across turns.
    expect(store.getCluster('big')).toBeUndefined();
    const put = lane.putCluster(cluster('api', [endpoint('10.8.0.1')]), API);
    await Promise.all([seeding, put]);
    expect(store.getCluster('big')?.endpoints).toHaveLength(300);
    expect(store.audit(2).map((a) => a.name)).toEqual(['api', 'big']);
    // A small file that replaces the big one is sliced too: its seed deletes the 300 stored rows.
    const shrinking = lane.seedFromConfig(catalogOf({ clusters: [cluster('small', many(2, 1, 900))] }), FILE);
    expect(store.getCluster('big')).toBeDefined();
    await shrinking;
    expect(store.getCluster('big')).toBeUndefined();
    // And once the stored file is small, a small file is seeded at once.
    const small = lane.seedFromConfig(catalogOf({ clusters: [cluster('small', many(3, 1, 900))] }), FILE);
    expect(store.getCluster('small')?.endpoints).toHaveLength(3);
    await small;
    // At the process's start nothing is served yet: a big file is written in one go.
    const start = lane.seedFromConfig(catalogOf({ clusters: [cluster('big', many(300, 4))] }), { ...FILE, atStart: true });
    expect(store.getCluster('big')?.endpoints[0]?.weight).toBe(4);
    await start;
  });
});

describe('seedFromConfig: what earlier seeds wrote', () => {
  /** Changes a stored endpoint behind the store's back (no revision moves), as no writer of the store ever does. */
  function reweighBehindTheStore(s: Store, weight: number): void {
    const db = new Database(s.file);
    try {
      db.prepare('UPDATE endpoints SET weight = ? WHERE cluster = ?').run(weight, 'a');
    } finally {
      db.close();
    }
  }

  /** Cluster a's stored rows (not the store's kept record of them), in order. */
  function storedRows(s: Store): [number, string][] {
    const db = new Database(s.file, { readonly: true });
    try {
      return (db.prepare("SELECT weight, state FROM endpoints WHERE cluster = 'a' ORDER BY address, port").all() as { weight: number; state: string }[]).map((r) => [r.weight, r.state]);
    } finally {
      db.close();
    }
  }

  for (const mode of ['whole', 'sliced'] as const) {
    it(`skips a cluster given as the very object it was seeded from, while its revision has not moved (${mode})`, async () => {
      const s = fresh();
      const seed = async (c: Catalog): Promise<unknown> => (mode === 'whole' ? s.seedFromConfig(c, FILE) : s.seedFromConfigSliced(c, FILE, FAST));
      const a = cluster('a', many(3, 1));
      const catalog = catalogOf({ clusters: [a] });
      await seed(catalog);
      reweighBehindTheStore(s, 9);
      // The same object, the same revision: not read, so the change behind the store stays.
      await seed(catalogOf({ clusters: [a] }));
      expect(storedRows(s).map(([w]) => w)).toEqual([9, 9, 9]);
      // An equal but new object is compared with the rows and written back.
      await seed(catalogOf({ clusters: [structuredClone(a)] }));
      expect(storedRows(s).map(([w]) => w)).toEqual([1, 1, 1]);
    });

    it(`compares a cluster whose revision moved since, even given the same object (${mode})`, async () => {
      const s = fresh();
      const seed = async (c: Catalog): Promise<unknown> => (mode === 'whole' ? s.seedFromConfig(c, FILE) : s.seedFromConfigSliced(c, FILE, FAST));
      const a = cluster('a', many(3, 1));
      await seed(catalogOf({ clusters: [a] }));
      // An operator's drain moves the cluster's revision.
      s.setEndpointState('a', '10.0.0.0', 8080, 'draining', { actor: 'bob' });
      reweighBehindTheStore(s, 9);
      await seed(catalogOf({ clusters: [a] }));
      expect(storedRows(s)).toEqual([
        [1, 'draining'],
        [1, 'active'],
        [1, 'active'],
      ]);
    });
  }
});
