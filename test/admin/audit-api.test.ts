/**
 * GET /v1/audit and /v1/audit/{id} through the admin app on a real SQLite store: named token
 * actors (never the secret, never a hash of it), a 20k-endpoint cluster's changes within the
 * default 1 MiB page, the full entry by id, and records written before this shape still readable.
 */
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAdminApp, type AdminApp } from '../../src/admin/app.js';
import { Authorizer } from '../../src/admin/auth.js';
import { namedToken, nameTokens } from '../../src/admin/token-names.js';
import { openStore, type Store } from '../../src/catalog/store/index.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { XdsCache } from '../../src/xds/cache.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';
import { cleanupTempDirs, cluster, tempDir } from '../catalog/helpers.js';
import { many } from './audit-contract.js';

const SECRET = 'f00dfeedf00dfeedf00dfeedf00dfeed';
const stores: Store[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  cleanupTempDirs();
});

function app(adminTokens: string[] = []): { app: AdminApp; store: Store } {
  const store = openStore(tempDir());
  stores.push(store);
  const built = buildAdminApp({
    registry: new ProxyRegistry(),
    cache: new XdsCache(),
    metrics: new Metrics({ processMetrics: false }),
    ready: () => ({ ready: true, reasons: [] }),
    store,
    auth: { adminTokens, readTokens: [] },
  });
  return { app: built, store };
}

const get = async (a: AdminApp, url: string, token?: string) => {
  const res = await a.inject({ method: 'GET', url, headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.statusCode, bytes: res.rawPayload.length, body: res.json() as Record<string, unknown> & { entries: Record<string, unknown>[] } };
};

describe('token names', () => {
  it('splits <name>:<secret>, labels bare secrets <role>-<n>, and refuses bad or duplicate names', () => {
    expect(namedToken('ci:abc', 'x')).toEqual({ name: 'ci', secret: 'abc' });
    expect(namedToken('eyJhbGciOi.eyJzdWIi.sig', 'admin-1')).toEqual({ name: 'admin-1', secret: 'eyJhbGciOi.eyJzdWIi.sig' });
    expect(namedToken('ci:a:b', 'x')).toEqual({ name: 'ci', secret: 'a:b' });
    // Errors name the entry by its place, never by its text: it may be (part of) a secret.
    expect(() => namedToken('bad name:abc', 'admin-2')).toThrow(/^token entry admin-2: what stands before its first ':' must be a name/);
    expect(() => namedToken('p@ss:word', 'admin-1')).toThrow(expect.objectContaining({ message: expect.not.stringContaining('p@ss') as unknown }));
    expect(() => namedToken('s3cretvalue:', 'read-1')).toThrow(/^token entry read-1: nothing follows its ':'/);
    expect(() => namedToken('s3cretvalue:', 'read-1')).toThrow(expect.objectContaining({ message: expect.not.stringContaining('s3cretvalue') as unknown }));
    expect(nameTokens([{ role: 'admin', entries: ['a1', 'ci:x', 'a3'] }, { role: 'read', entries: ['r1'] }]).map((r) => r.tokens.map((t) => t.name))).toEqual([
      ['admin-1', 'ci', 'admin-3'],
      ['read-1'],
    ]);
    expect(() => nameTokens([{ role: 'admin', entries: ['ci:x'] }, { role: 'read', entries: ['ci:y'] }])).toThrow(/"ci" is used by two tokens \(admin and read\)/);
  });

  it('a named token is matched by its secret alone and audited as token:<name>', () => {
    const auth = new Authorizer({ adminTokens: [`deploy-bot:${SECRET}`], readTokens: ['r'] });
    expect(auth.decide('PUT', '/v1/clusters/x', `Bearer ${SECRET}`)).toEqual({ ok: true, actor: 'token:deploy-bot' });
    expect(auth.decide('PUT', '/v1/clusters/x', `Bearer deploy-bot:${SECRET}`)).toMatchObject({ ok: false, status: 401 });
    expect(auth.decide('GET', '/v1/clusters', 'Bearer r')).toEqual({ ok: true, actor: 'token:read-1' });
    expect(auth.roleOf(SECRET)).toBe('admin');
  });
});

describe('GET /v1/audit', () => {
  it('names the token that made the change, never its secret or a hash of it', async () => {
    const { app: a } = app([`deploy-bot:${SECRET}`]);
    const put = await a.inject({ method: 'PUT', url: '/v1/clusters/web', headers: { authorization: `Bearer ${SECRET}` }, payload: {} });
    expect(put.statusCode).toBe(201);
    const page = await get(a, '/v1/audit', SECRET);
    expect(page.body.entries[0]).toMatchObject({ actor: 'token:deploy-bot', action: 'create', kind: 'cluster', name: 'web', before: null, after: { name: 'web', owner: 'api' } });
    const text = JSON.stringify(page.body);
    expect(text).not.toContain(SECRET);
    expect(text).not.toMatch(/admin:[0-9a-f]{8}/);
  });

  it('keeps a page of a 20k-endpoint cluster\'s changes under 1 MiB, and serves each in full by id', async () => {
    const { app: a, store } = app();
    const writes = { actor: 'config-file', owner: 'api' } as const;
    store.putCluster(cluster('big', many(20_000, 1)), writes);
    store.putCluster(cluster('big', many(20_000, 3)), writes);
    const page = await get(a, '/v1/audit?limit=100');
    expect(page.status).toBe(200);
    expect(page.bytes).toBeLessThan(1024 * 1024);
    expect(page.body.entries.map((e) => [e.action, (e.summarized as { endpoints: unknown }).endpoints])).toEqual([
      ['replace', { before: 20_000, after: 20_000 }],
      ['create', { before: 0, after: 20_000 }],
    ]);
    const href = (page.body.entries[0]?.summarized as { href: string }).href;
    const full = await get(a, href);
    expect(full.status).toBe(200);
    expect(full.bytes).toBeGreaterThan(2 * 1024 * 1024);
    expect((full.body.after as { endpoints: { weight: number }[] }).endpoints.every((e) => e.weight === 3)).toBe(true);
    expect((full.body.before as { endpoints: { weight: number }[] }).endpoints).toHaveLength(20_000);
    expect((await get(a, '/v1/audit/999999')).status).toBe(404);
    expect((await get(a, '/v1/audit/0')).status).toBe(400);
    expect((await get(a, '/v1/audit?maxBytes=10')).status).toBe(400);
  });

  it('reads entries written before this shape: old actors as they were, store records as API shapes, unknown shapes as stored', async () => {
    const { app: a, store } = app();
    const db = new Database(store.file);
    const insert = db.prepare('INSERT INTO audit (at, actor, action, kind, name, revision, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    const endpointRecord = { cluster: 'legacy', address: '10.0.0.7', port: 80, weight: 4, priority: 0, health: 'HEALTHY', locality: { region: 'eu', zone: 'a', subZone: '' }, state: 'active', owner: 'api', revision: 3, updatedAt: '2026-11-01T00:00:00.000Z' };
    insert.run('2026-11-01T00:00:00.000Z', 'admin:1a2b3c4d', 'set-state', 'endpoint', 'legacy/10.0.0.7:80', 4, JSON.stringify(endpointRecord), JSON.stringify({ ...endpointRecord, state: 'disabled', revision: 4 }));
    insert.run('2026-11-01T00:00:01.000Z', 'admin:1a2b3c4d', 'update', 'listener', 'odd', 5, JSON.stringify({ something: 'else' }), JSON.stringify({ something: 'new' }));
    db.close();
    const [odd, state] = (await get(a, '/v1/audit')).body.entries;
    expect(state).toMatchObject({ actor: 'admin:1a2b3c4d', action: 'disable', cluster: 'legacy', endpoint: '10.0.0.7:80', changed: ['state'] });
    expect(state?.after).toEqual({ address: '10.0.0.7', port: 80, weight: 4, priority: 0, health: 'HEALTHY', locality: { region: 'eu', zone: 'a', subZone: '' }, state: 'disabled', revision: 4, updatedAt: '2026-11-01T00:00:00.000Z' });
    expect(odd).toMatchObject({ action: 'replace', before: { something: 'else' }, after: { something: 'new' }, changed: ['something'] });
  });
});
