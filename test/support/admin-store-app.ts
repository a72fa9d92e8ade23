import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildAdminApp, type AdminApp, type AdminDeps } from '../../src/admin/app.js';
import { openStore, type Store } from '../../src/catalog/store/index.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { XdsCache } from '../../src/xds/cache.js';
import { RM_RETRIES } from '../catalog/helpers.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';

/**
 * The admin app over a real SQLite store in a fresh temporary directory, with an empty xDS cache
 * and proxy registry, always ready: what the store-backed route tests drive through `inject()`.
 * `seed` fills the store before the app is built; `deps` adds or replaces dependencies (given the
 * store, e.g. to wrap it). `close()` closes the store and removes the directory.
 */
export function adminStoreApp(
  prefix: string,
  options: { seed?: (store: Store) => void; deps?: (store: Store) => Partial<AdminDeps> } = {},
): { app: AdminApp; store: Store; close: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const store = openStore(dir);
  options.seed?.(store);
  const app = buildAdminApp({
    registry: new ProxyRegistry(),
    cache: new XdsCache(),
    metrics: new Metrics({ processMetrics: false }),
    ready: () => ({ ready: true, reasons: [] }),
    version: '1.2.3',
    store,
    ...options.deps?.(store),
  });
  const close = (): void => {
    store.close();
    rmSync(dir, RM_RETRIES);
  };
  return { app, store, close };
}
