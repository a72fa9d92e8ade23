/**
 * References to clusters that do not exist, made by an owner other than the referrer's: the pure
 * finder and its watch, a discovered cluster leaving under a listener that routes to it, and a
 * real fulcrum (SQLite store) whose config file drops a cluster an API listener routes to, by a
 * reload and across a restart.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { CatalogFeed } from '../../src/catalog/catalog-feed.js';
import { danglingReferences, DanglingReferenceWatch, type DanglingChange } from '../../src/catalog/dangling-references.js';
import type { Catalog, Listener } from '../../src/catalog/types.js';
import type { Fulcrum } from '../../src/main.js';
import { startLoopbackFulcrum } from '../support/loopback-fulcrum.js';
import { withKubernetes } from '../../src/sources/kubernetes/catalog-merge.js';
import { capturedLog } from '../support/captured-log.js';
import { waitFor } from '../support/wait.js';
import { cluster } from './helpers.js';

const listener = (name: string, ...clusters: string[]): Listener => ({
  name,
  kind: 'api',
  address: '',
  port: 0,
  routes: clusters.map((c, i) => ({ domain: '*', prefix: `/${i}`, cluster: c })),
});

describe('danglingReferences', () => {
  it('names each listener and node group with each cluster it uses that the catalog lacks, once', () => {
    const catalog: Catalog = {
      clusters: [cluster('web')],
      listeners: [listener('edge', 'web', 'gone', 'gone'), listener('ok', 'web')],
      nodeGroups: [{ nodeCluster: 'canary', listeners: ['edge'], clusters: ['web', 'old'] }],
    };
    expect(danglingReferences(catalog)).toEqual([
      { referrer: 'listener', name: 'edge', cluster: 'gone' },
      { referrer: 'node-group', name: 'canary', cluster: 'old' },
    ]);
  });
});

describe('DanglingReferenceWatch', () => {
  it('reports a reference when it appears and when it resolves, not at every catalog, and only once opened', () => {
    const changes: DanglingChange[] = [];
    const watch = new DanglingReferenceWatch((c) => changes.push(c));
    const listeners = [listener('edge', 'api')];
    const both: Catalog = { clusters: [cluster('api'), cluster('web')], listeners, nodeGroups: [] };
    const webOnly: Catalog = { clusters: [cluster('web')], listeners, nodeGroups: [] };
    watch.setCatalog(webOnly);
    expect(changes).toEqual([]);
    watch.open();
    const edge = { referrer: 'listener', name: 'edge', cluster: 'api' };
    expect(changes).toEqual([{ appeared: [edge], resolved: [], now: [edge] }]);
    // Another object for web (an endpoint write): nothing new to say.
    watch.setCatalog({ ...webOnly, clusters: [cluster('web')] });
    expect(changes).toHaveLength(1);
    expect(watch.current()).toEqual([edge]);
    watch.setCatalog(both);
    expect(changes[1]).toEqual({ appeared: [], resolved: [edge], now: [] });
    expect(watch.current()).toEqual([]);
  });

  it('says nothing of a name deleted by one owner and defined by another within its settling time', () => {
    vi.useFakeTimers();
    try {
      const changes: DanglingChange[] = [];
      const watch = new DanglingReferenceWatch((c) => changes.push(c), { quietMs: 1_000, maxMs: 5_000 });
      const listeners = [listener('edge', 'api')];
      watch.open();
      watch.setCatalog({ clusters: [cluster('api')], listeners, nodeGroups: [] });
      vi.advanceTimersByTime(1_000);
      watch.setCatalog({ clusters: [], listeners, nodeGroups: [] });
      vi.advanceTimersByTime(500);
      watch.setCatalog({ clusters: [cluster('api')], listeners, nodeGroups: [] });
      vi.advanceTimersByTime(1_000);
      expect(changes).toEqual([]);
      watch.setCatalog({ clusters: [], listeners, nodeGroups: [] });
      vi.advanceTimersByTime(1_000);
      expect(changes).toHaveLength(1);
      watch.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('sees a discovered cluster leave under a listener routing to it (the Kubernetes overlay on the feed)', () => {
    const catalog: Catalog = { clusters: [cluster('web')], listeners: [listener('edge', 'shop/cart:http')], nodeGroups: [] };
    const changes: DanglingChange[] = [];
    const watch = new DanglingReferenceWatch((c) => changes.push(c));
    const feed = new CatalogFeed({ catalog: () => catalog, onChange: () => () => undefined }, [watch]);
    feed.start();
    feed.setOverlay((c) => withKubernetes(c, { clusters: [cluster('shop/cart:http')], hashPolicies: new Map(), warnings: [] }));
    watch.open();
    expect(changes).toEqual([]);
    feed.setOverlay((c) => withKubernetes(c, { clusters: [], hashPolicies: new Map(), warnings: [] }));
    expect(changes).toEqual([{ appeared: [{ referrer: 'listener', name: 'edge', cluster: 'shop/cart:http' }], resolved: [], now: expect.any(Array) }]);
    feed.stop();
  });
});

/** The fulcrum and directory of the test running, stopped and removed after it. */
let dir: string | undefined;
let fulcrum: Fulcrum | undefined;
afterEach(async () => {
  await fulcrum?.stop();
  fulcrum = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

const FILE = {
  clusters: [
    { name: 'api', endpoints: [{ address: '10.0.0.2', port: 8080 }] },
    { name: 'web', endpoints: [{ address: '10.0.0.1', port: 8080 }] },
  ],
  listeners: [{ name: 'ingress', address: '127.0.0.1', port: 10000, routes: [{ prefix: '/', cluster: 'web' }] }],
};
const WITHOUT_API = { ...FILE, clusters: FILE.clusters.filter((c) => c.name !== 'api') };
const DANGLING = 'listener "edge" -> cluster "api"';
const SERIES = 'fulcrum_dangling_references{referrer="listener",name="edge",cluster="api"} 1';

describe('a config file dropping a cluster an API listener routes to', () => {
  const start = async (log: pino.Logger, configPath: string, dataDir: string): Promise<Fulcrum> =>
    (fulcrum = await startLoopbackFulcrum(configPath, { dataDir, logger: log, debounce: { quietMs: 0, maxMs: 0 } }));
  const admin = (f: Fulcrum, path: string, init?: RequestInit) => fetch(`http://127.0.0.1:${f.adminPort}${path}`, init);
  const metrics = async (f: Fulcrum): Promise<string> => (await admin(f, '/metrics')).text();
  const warned = (lines: Record<string, unknown>[]) => lines.filter((l) => l.level === 40 && Array.isArray(l.references) && (l.references as string[]).includes(DANGLING));

  it('keeps the listener, warns once naming both sides, and counts it until the cluster is back; and again at a restart', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-dangling-'));
    const configPath = join(dir, 'fulcrum.yaml');
    const dataDir = join(dir, 'data');
    await writeFile(configPath, stringify(FILE));
    const first = capturedLog();
    let f = await start(first.log, configPath, dataDir);
    const put = await admin(f, '/v1/listeners/edge', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apiListener: true, routes: [{ cluster: 'api' }] }) });
    expect(put.status).toBe(201);
    expect(await metrics(f)).not.toContain('fulcrum_dangling_references{');

    await writeFile(configPath, stringify(WITHOUT_API));
    await waitFor(async () => (await metrics(f)).includes(SERIES), { what: 'the dangling reference counted', timeoutMs: 15_000 });
    expect(warned(first.lines)).toHaveLength(1);
    // The operator's listener is kept as written (its owner did not change it), and says what it misses.
    expect(await (await admin(f, '/v1/listeners/edge')).json()).toMatchObject({ owner: 'api', routes: [{ cluster: 'api' }], missingClusters: ['api'] });
    const listed = (await (await admin(f, '/v1/listeners')).json()) as { listeners: { name: string; missingClusters?: string[] }[] };
    expect(listed.listeners.map((l) => [l.name, l.missingClusters])).toEqual([['edge', ['api']], ['ingress', undefined]]);
    // Written back as it is, it would be the operator's own dangling reference: refused, naming the route.
    const shown = await (await admin(f, '/v1/listeners/edge')).json();
    const rewritten = await admin(f, '/v1/listeners/edge', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(shown) });
    expect(rewritten.status).toBe(400);
    expect(await rewritten.json()).toMatchObject({ path: '/body/routes/0/cluster', message: 'unknown cluster "api"' });

    await f.stop();
    fulcrum = undefined;
    // Restarted on the same store with the file still without it: said at start too.
    const second = capturedLog();
    f = await start(second.log, configPath, dataDir);
    await waitFor(async () => (await metrics(f)).includes(SERIES), { what: 'the dangling reference counted after a restart', timeoutMs: 15_000 });
    expect(warned(second.lines)).toHaveLength(1);

    await writeFile(configPath, stringify(FILE));
    await waitFor(async () => !(await metrics(f)).includes('fulcrum_dangling_references{'), { what: 'the reference resolved', timeoutMs: 15_000 });
    expect(second.lines.some((l) => l.msg === 'references to missing clusters resolved' && (l.references as string[]).includes(DANGLING))).toBe(true);
    expect(warned(second.lines)).toHaveLength(1);
    expect(await (await admin(f, '/v1/listeners/edge')).json()).not.toHaveProperty('missingClusters');
  });
});

describe('handing a cluster name from the API to the config file', () => {
  const json = { 'content-type': 'application/json' };
  /** fulcrum on a file without "api", which the API then creates: its log lines, a URL maker, the file's path. */
  async function withApiCluster(): Promise<{ url: (path: string) => string; lines: Record<string, unknown>[]; configPath: string }> {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-handover-'));
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(configPath, stringify(WITHOUT_API));
    const { log, lines } = capturedLog();
    const f = (fulcrum = await startLoopbackFulcrum(configPath, { logger: log }));
    const url = (path: string): string => `http://127.0.0.1:${f.adminPort}${path}`;
    expect((await fetch(url('/v1/clusters/api'), { method: 'PUT', headers: json, body: JSON.stringify({ endpoints: [{ address: '10.0.0.9', port: 80 }] }) })).status).toBe(201);
    return { url, lines, configPath };
  }

  it('lets the API delete its cluster that only file listeners and groups route to, as the file defines it too (README: delete it to hand the name over)', async () => {
    const { url, lines, configPath } = await withApiCluster();
    // The file then defines "api" too, with a listener and a node group of its own using it.
    const withApi = { ...FILE, listeners: [...FILE.listeners, { name: 'front', apiListener: true, routes: [{ cluster: 'api' }] }], nodeGroups: [{ nodeCluster: 'edge', listeners: ['front'], clusters: ['api'] }] };
    await writeFile(configPath, stringify(withApi));
    await waitFor(async () => (await fetch(url('/v1/listeners/front'))).status === 200, { what: "the file's listener seeded", timeoutMs: 15_000 });
    // The seed's conflicts (what the delete asks: does the file take the name?) are known once it is
    // logged; the listener can show a moment before.
    await waitFor(() => lines.some((l) => l.name === 'api' && String(l.msg).startsWith('config file defines a name another source owns')), { what: 'the file defining "api" too', timeoutMs: 15_000 });

    const deleted = await fetch(url('/v1/clusters/api'), { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    await waitFor(async () => ((await (await fetch(url('/v1/clusters/api'))).json()) as { owner?: string }).owner === 'file', { what: 'the file to take the name over', timeoutMs: 15_000 });
    expect(lines.some((l) => l.msg === 'config file takes over names their owner deleted')).toBe(true);
  });

  it('still refuses the delete while an API listener routes to it', async () => {
    const { url, lines, configPath } = await withApiCluster();
    expect((await fetch(url('/v1/listeners/edge'), { method: 'PUT', headers: json, body: JSON.stringify({ apiListener: true, routes: [{ cluster: 'api' }] }) })).status).toBe(201);
    await writeFile(configPath, stringify(FILE));
    await waitFor(() => lines.some((l) => l.name === 'api' && String(l.msg).startsWith('config file defines a name another source owns')), { what: 'the file defining "api" too', timeoutMs: 15_000 });
    const refused = await fetch(url('/v1/clusters/api'), { method: 'DELETE' });
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({ code: 'REFERENCED', message: 'cluster "api" is still referenced by listener "edge"; remove those references first' });
  });
});
