/**
 * PUT /v1/clusters/{name}/endpoints, the bulk endpoint API, over a real SQLite store through
 * `app.inject()`: replace and upsert, the counts it answers with, one transaction and one audit
 * record, errors naming the entry's index (also past the first validation slice), ownership,
 * If-Match, and a body above the API's 1 MiB limit.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { AdminApp } from '../../src/admin/app.js';
import type { Store } from '../../src/catalog/store/index.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { adminStoreApp } from '../support/admin-store-app.js';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

function fixture(): { app: AdminApp; store: Store } {
  const { app, store, close } = adminStoreApp('fulcrum-bulk-');
  closers.push(close);
  store.seedFromConfig(parseConfig(stringify({ clusters: [{ name: 'files', endpoints: [{ address: '10.9.0.1', port: 80 }] }] }), 'fulcrum.yaml').catalog);
  return { app, store };
}

const address = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const entries = (n: number, from = 0, weight = 1) => Array.from({ length: n }, (_, i) => ({ address: address(from + i), port: 8080, weight }));

async function put(app: AdminApp, url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({ method: 'PUT', url, headers, payload: body as object });
  return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown>, etag: res.headers.etag };
}

async function apiCluster(app: AdminApp, n: number): Promise<void> {
  const res = await put(app, '/v1/clusters/web', { endpoints: entries(n) });
  expect(res.status).toBe(201);
}

describe('PUT /v1/clusters/{name}/endpoints', () => {
  it('replace: the listed set becomes the cluster\'s, in one transaction and one audit record, with the counts', async () => {
    const { app, store } = fixture();
    await apiCluster(app, 4);
    await store.setEndpointState('web', address(1), 8080, 'draining', { actor: 'ops' });
    const auditBefore = store.audit(1000).length;
    // 0 unchanged, 1 re-weighted (keeps draining), 2 and 3 dropped, 4 and 5 new.
    const listed = [entries(1)[0], { ...entries(1, 1)[0], weight: 7 }, ...entries(2, 4)];
    const res = await put(app, '/v1/clusters/web/endpoints', { endpoints: listed });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ cluster: 'web', mode: 'replace', count: 4, added: 2, updated: 1, removed: 2, unchanged: 1 });
    expect(res.etag).toBe(`"${String(res.body.revision)}"`);
    const rec = store.getCluster('web');
    expect(rec?.endpoints.map((e) => [e.address, e.weight, e.state])).toEqual([
      [address(0), 1, 'active'],
      [address(1), 7, 'draining'],
      [address(4), 1, 'active'],
      [address(5), 1, 'active'],
    ]);
    const audit = store.audit(1000);
    expect(audit.length - auditBefore).toBe(1);
    expect(audit[0]).toMatchObject({ kind: 'cluster', name: 'web', action: 'update', revision: res.body.revision });
  });

  it('upsert: adds and replaces the listed endpoints and keeps the others; an unchanged body writes nothing', async () => {
    const { app, store } = fixture();
    await apiCluster(app, 3);
    const res = await put(app, '/v1/clusters/web/endpoints', { mode: 'upsert', endpoints: [{ ...entries(1, 2)[0], weight: 3 }, ...entries(1, 10)] });
    expect(res.body).toMatchObject({ mode: 'upsert', count: 4, added: 1, updated: 1, removed: 0, unchanged: 0 });
    expect(store.getCluster('web')?.endpoints.map((e) => [e.address, e.weight])).toEqual([
      [address(0), 1],
      [address(1), 1],
      [address(10), 1],
      [address(2), 3],
    ]);
    const again = await put(app, '/v1/clusters/web/endpoints', { mode: 'upsert', endpoints: entries(1, 10) });
    expect(again.body).toMatchObject({ revision: res.body.revision, added: 0, updated: 0, unchanged: 1 });
  });

  it('names the index of a bad entry, also past the first validation slice, and writes nothing', async () => {
    const { app, store } = fixture();
    await apiCluster(app, 2);
    const revision = store.getCluster('web')?.revision;
    const bad = entries(3000);
    bad[2500] = { ...bad[2500], address: '10.0.0.300' } as (typeof bad)[number];
    const res = await put(app, '/v1/clusters/web/endpoints', { endpoints: bad });
    expect(res.status).toBe(400);
    expect(res.body.path).toMatch(/^\/body\/endpoints\/2500(\/|$)/);
    const dup = [...entries(1500), entries(1, 3)[0]];
    const second = await put(app, '/v1/clusters/web/endpoints', { endpoints: dup });
    expect(second.status).toBe(400);
    expect(second.body).toMatchObject({ path: '/body/endpoints/1500' });
    expect(String(second.body.message)).toContain('endpoints[3]');
    expect(store.getCluster('web')?.revision).toBe(revision);
  });

  it('takes a body above the API\'s 1 MiB limit (30k endpoints)', async () => {
    const { app, store } = fixture();
    await apiCluster(app, 1);
    const body = { endpoints: entries(30_000).map((e) => ({ ...e, locality: { region: 'eu-west-1', zone: 'eu-west-1a' } })) };
    expect(JSON.stringify(body).length).toBeGreaterThan(1024 * 1024);
    const res = await put(app, '/v1/clusters/web/endpoints', body);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ count: 30_000, added: 29_999, updated: 1, unchanged: 0 });
    expect(store.getCluster('web')?.endpoints).toHaveLength(30_000);
  });

  it('refuses a file-owned cluster (409), a stale If-Match (412) and an unknown cluster (404)', async () => {
    const { app, store } = fixture();
    await apiCluster(app, 1);
    expect((await put(app, '/v1/clusters/files/endpoints', { endpoints: entries(1) })).status).toBe(409);
    expect((await put(app, '/v1/clusters/nope/endpoints', { endpoints: entries(1) })).status).toBe(404);
    const stale = await put(app, '/v1/clusters/web/endpoints', { endpoints: entries(2) }, { 'if-match': '"1"' });
    expect(stale.status).toBe(412);
    expect(store.getCluster('web')?.endpoints).toHaveLength(1);
    const etag = String(store.getCluster('web')?.revision);
    expect((await put(app, '/v1/clusters/web/endpoints', { endpoints: entries(2) }, { 'if-match': `"${etag}"` })).status).toBe(200);
  });
});
