import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Catalog, Cluster, Endpoint, Listener } from '../../src/catalog/types.js';
import { openStore, type Store, type StoreChange } from '../../src/catalog/store/index.js';

/** A fresh temporary directory; `cleanup()` removes every directory made so far. */
const made: string[] = [];
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-store-'));
  made.push(dir);
  return dir;
}
/**
 * Retries, because a store's WAL checkpoint worker (wal-checkpointer.ts) may still be finishing a
 * checkpoint on its own connection when the test closes the store: its -wal/-shm files can come
 * and go while the folder is removed (ENOTEMPTY, seen in CI).
 */
export const RM_RETRIES = { recursive: true, force: true, maxRetries: 20, retryDelay: 25 } as const;
export function cleanupTempDirs(): void {
  for (const d of made.splice(0)) rmSync(d, RM_RETRIES);
}

/**
 * Closes `stores` once each one's running WAL checkpoint is done, then removes the directories: a
 * sliced write's checkpoint worker still running at close() opened the files again while they were
 * being removed (ENOTEMPTY).
 */
export async function closeStoresAndCleanup(stores: Store[]): Promise<void> {
  for (const s of stores.splice(0)) {
    await s.checkpointsEnded();
    s.close();
  }
  cleanupTempDirs();
}

/**
 * A store in a fresh directory, recorded in `open` (for closeStoresAndCleanup), on a clock stopped
 * at `at`: two stores given the same writes hold the same rows.
 */
export function storeAt(open: Store[], at: Date): Store {
  const s = openStore(tempDir(), { now: () => at });
  open.push(s);
  return s;
}

/** Two stores for a side-by-side test of a write's two forms (whole and sliced), with the change events each announced. */
export function twoStores(fresh: () => Store): { plain: Store; sliced: Store; events: [StoreChange[], StoreChange[]] } {
  const plain = fresh();
  const sliced = fresh();
  const events: [StoreChange[], StoreChange[]] = [[], []];
  plain.onChange((c) => events[0].push(c));
  sliced.onChange((c) => events[1].push(c));
  return { plain, sliced, events };
}

/** `n` endpoints of weight `weight`, numbered from `from` into distinct addresses. */
export function many(n: number, weight: number, from = 0): Endpoint[] {
  return Array.from({ length: n }, (_, i) => endpoint(`10.${((i + from) >> 16) & 255}.${((i + from) >> 8) & 255}.${(i + from) & 255}`, 8080, { weight }));
}

export function endpoint(address: string, port = 8080, extra: Partial<Endpoint> = {}): Endpoint {
  return {
    address,
    port,
    weight: 1,
    priority: 0,
    health: 'HEALTHY',
    locality: { region: 'eu', zone: 'a', subZone: '' },
    ...extra,
  };
}

export function cluster(name: string, endpoints: readonly Endpoint[] = [], extra: Partial<Cluster> = {}): Cluster {
  return {
    name,
    lbPolicy: 'ROUND_ROBIN',
    connectTimeoutMs: 1000,
    http2: false,
    weighting: { kind: 'static' },
    endpoints,
    ...extra,
  };
}

export function listener(name: string, clusterName: string, port = 10000): Listener {
  return { name, kind: 'socket', address: '0.0.0.0', port, routes: [{ domain: '*', prefix: '/', cluster: clusterName }] };
}

/** Catalogs compared regardless of order (the store returns everything sorted by name). */
export function sorted(c: Catalog): Catalog {
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0); // like SQLite's BINARY collation
  const byName = <T extends { name: string }>(a: T, b: T) => cmp(a.name, b.name);
  return {
    clusters: [...c.clusters]
      .map((x) => ({ ...x, endpoints: [...x.endpoints].sort((a, b) => cmp(a.address, b.address) || a.port - b.port) }))
      .sort(byName),
    listeners: [...c.listeners].sort(byName),
    nodeGroups: [...c.nodeGroups].sort((a, b) => cmp(a.nodeCluster, b.nodeCluster)),
  };
}
