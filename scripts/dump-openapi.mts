// Prints the admin API's OpenAPI document with every optional route group enabled (store,
// weights, reports), so that a refactoring can be checked for an unchanged API:
//   npx tsx scripts/dump-openapi.mts [checkout-dir] > openapi.json   (default: this checkout)
// then diff the output of two checkouts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = resolve(process.argv[2] ?? '.');
const load = (path: string) => import(pathToFileURL(join(root, path)).href);
const { buildAdminApp } = await load('src/admin/app.ts');
const { openStore } = await load('src/catalog/store/index.ts');
const { AdaptiveWeights } = await load('src/weights/adaptive-weights.ts');
const { Metrics } = await load('src/telemetry/metrics.ts');
const { XdsCache } = await load('src/xds/cache.ts');
const { ProxyRegistry } = await load('src/xds/proxy-status.ts');

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-openapi-'));
const store = openStore(dir);
const app = buildAdminApp({
  registry: new ProxyRegistry(),
  cache: new XdsCache('openapi'),
  metrics: new Metrics({ processMetrics: false }),
  ready: () => ({ ready: true, reasons: [] }),
  version: '0.0.0',
  store,
  weights: new AdaptiveWeights(),
  reports: () => ({ accepted: 0, rejected: [] }),
});
try {
  const res = await app.inject({ method: 'GET', url: '/openapi.json' });
  process.stdout.write(`${JSON.stringify(JSON.parse(res.body), null, 2)}\n`);
} finally {
  await app.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
}
