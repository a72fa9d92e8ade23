/**
 * The admin REST API over a real durable store (SQLite in a temp dir) through `app.inject()`:
 * CRUD round trips in the config file's shapes, ETag / If-Match / If-None-Match, ownership
 * (file-owned resources are read-only), cross-reference checks, endpoint operator state, policy
 * patches and the audit log, weights with explanations from the real engine adapter, reports,
 * bearer-token auth, the OpenAPI document, and a fuzz test of the new routes.
 */
import { createHash } from 'node:crypto';
import { Validator } from '@seriousme/openapi-schema-validator';
import fc from 'fast-check';
import fastJson from 'fast-json-stringify';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import type { AdminApp, AdminDeps } from '../../src/admin/app.js';
import { Authorizer, authFromEnv, parseTokenList, tokenMatches } from '../../src/admin/auth.js';
import { applyPolicyPatch, mergePatch } from '../../src/admin/resources.js';
import { WeightsView } from '../../src/admin/routes/weights.js';
import { serializerSchema } from '../../src/admin/serializer-schema.js';
import { SLICED_ANSWER_OVER } from '../../src/admin/sliced-answer.js';
import type { Store } from '../../src/catalog/store/index.js';
import { WriteLane } from '../../src/catalog/store/write-lane.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
import { parseConfig } from '../../src/sources/config-file.js';
import type { Explanation } from '../../src/balancing/engine/types.js';
import { ReportBatchError } from '../../src/signals/report-ingest.js';
import { adminStoreApp } from '../support/admin-store-app.js';
import { cluster, endpoint } from '../catalog/helpers.js';
import { waitFor } from '../support/wait.js';
import { envoyType, TYPE } from '../../src/xds/envoy-api.js';
import { DEFAULT_GROUP } from '../../src/xds/resource-set.js';
import { translate } from '../../src/xds/translator.js';

const RouteConfiguration = envoyType('envoy.config.route.v3.RouteConfiguration');

// ── fixtures ─────────────────────────────────────────────────────────────────────────────────────

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** The config file: `files` (a file-owned cluster) and a listener routing to it. */
const FILE_DOC = {
  clusters: [{ name: 'files', endpoints: [{ address: '10.0.0.1', port: 80 }, { address: '10.0.0.2', port: 80 }] }],
  listeners: [{ name: 'file-ingress', address: '0.0.0.0', port: 10000, routes: [{ prefix: '/', cluster: 'files' }] }],
};

interface Fixture {
  app: AdminApp;
  store: Store;
  adaptive: AdaptiveWeights;
  reports: unknown[];
}

function fixture(overrides: Partial<AdminDeps> = {}, seed = true): Fixture {
  const adaptive = new AdaptiveWeights();
  const reports: unknown[] = [];
  const { app, store, close } = adminStoreApp('fulcrum-admin-api-', {
    seed: (s) => seed && s.seedFromConfig(parseConfig(stringify(FILE_DOC), 'fulcrum.yaml').catalog),
    deps: () => ({
      weights: adaptive,
      reports: (body) => {
        reports.push(body);
        const samples = (body as { samples: unknown[] }).samples;
        return { accepted: samples.length, rejected: [] };
      },
      ...overrides,
    }),
  });
  cleanups.push(close);
  return { app, store, adaptive, reports };
}

const json = <T = Record<string, unknown>>(body: string): T => JSON.parse(body) as T;

type Method = 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
async function call(app: AdminApp, method: Method, url: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({ method, url, headers, ...(body !== undefined ? { payload: body as object } : {}) });
  const parsed = res.body && String(res.headers['content-type']).includes('json') ? json(res.body) : {};
  return { status: res.statusCode, headers: res.headers, body: parsed as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const WEB = {
  name: 'web',
  lbPolicy: 'LEAST_REQUEST',
  leastRequest: { choiceCount: 3 },
  weighting: { policy: 'pid', setpoint: 0.7, metric: 'cpu', gains: { kp: 0.5, ki: 0.1, kd: 0.05 } },
  safety: { maxStepRatio: 1.5 },
  endpoints: [
    { address: '10.1.0.1', port: 8080, weight: 2, locality: { region: 'eu', zone: 'a' } },
    { address: '10.1.0.2', port: 8080 },
  ],
};

// ── clusters ─────────────────────────────────────────────────────────────────────────────────────

describe('clusters', () => {
  it('PUT creates (201, ETag, Location), GET returns the config-file shape, PUT again replaces (200), DELETE removes', async () => {
    const { app, store } = fixture();
    const created = await call(app, 'PUT', '/v1/clusters/web', WEB);
    expect(created.status).toBe(201);
    expect(created.headers.location).toBe('/v1/clusters/web');
    expect(created.headers.etag).toMatch(/^"\d+"$/);
    expect(created.body).toMatchObject({
      name: 'web',
      lbPolicy: 'LEAST_REQUEST',
      leastRequest: { choiceCount: 3 },
      connectTimeoutMs: 1000,
      http2: false,
      weighting: { policy: 'pid', setpoint: 0.7, metric: 'cpu', gains: { kp: 0.5, ki: 0.1, kd: 0.05 } },
      safety: { maxStepRatio: 1.5 },
      owner: 'api',
      endpoints: [
        { address: '10.1.0.1', port: 8080, weight: 2, priority: 0, health: 'HEALTHY', locality: { region: 'eu', zone: 'a', subZone: '' }, state: 'active' },
        { address: '10.1.0.2', port: 8080, weight: 1, state: 'active' },
      ],
    });
    expect(created.headers.etag).toBe(`"${created.body.revision}"`);

    const got = await call(app, 'GET', '/v1/clusters/web');
    expect(got.status).toBe(200);
    expect(got.headers.etag).toBe(created.headers.etag);
    expect(got.body).toEqual(created.body);
    expect(store.catalog().clusters.find((c) => c.name === 'web')?.weighting).toEqual({ kind: 'pid', setpoint: 0.7, metric: 'cpu', gains: { kp: 0.5, ki: 0.1, kd: 0.05 } });

    // The GET body goes back as it is (read-only fields ignored): a no-op keeps the revision.
    const same = await call(app, 'PUT', '/v1/clusters/web', got.body);
    expect(same.status).toBe(200);
    expect(same.headers.etag).toBe(created.headers.etag);

    // Without endpoints, the endpoints are kept.
    const replaced = await call(app, 'PUT', '/v1/clusters/web', { lbPolicy: 'ROUND_ROBIN' });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ lbPolicy: 'ROUND_ROBIN', weighting: { policy: 'static' } });
    expect(replaced.body.leastRequest).toBeUndefined();
    expect(replaced.body.endpoints).toHaveLength(2);
    expect(Number(replaced.body.revision)).toBeGreaterThan(Number(created.body.revision));

    const list = await call(app, 'GET', '/v1/clusters');
    expect(list.body.count).toBe(2);
    expect(list.body.clusters.map((c: { name: string; owner: string }) => `${c.name}:${c.owner}`)).toEqual(['files:file', 'web:api']);

    const del = await call(app, 'DELETE', '/v1/clusters/web');
    expect(del).toMatchObject({ status: 200, body: { deleted: 'web' } });
    expect((await call(app, 'GET', '/v1/clusters/web')).status).toBe(404);
    expect((await call(app, 'DELETE', '/v1/clusters/web')).status).toBe(404);
    expect(store.getCluster('web')).toBeUndefined();
  });

  it('names with slashes (percent-encoded) and auto weighting resolved on write', async () => {
    const { app } = fixture();
    const res = await call(app, 'PUT', `/v1/clusters/${encodeURIComponent('ns/svc:80')}`, {
      weighting: { policy: 'auto', traits: { sessionAffinity: { header: 'x-user' } } },
      endpoints: [{ address: '10.2.0.1', port: 80 }],
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ name: 'ns/svc:80', lbPolicy: 'RING_HASH', autoReason: expect.any(String) });
    expect((await call(app, 'GET', `/v1/clusters/${encodeURIComponent('ns/svc:80')}`)).status).toBe(200);
  });

  it('bad bodies are 400s naming the field; the path name wins', async () => {
    const { app, store } = fixture();
    const before = store.audit(1000).length;
    const cases: [unknown, string][] = [
      [{ endpoints: [{ address: 'backend.local', port: 80 }] }, '/body/endpoints/0/address'],
      [{ endpoints: [{ address: '10.0.0.1', port: 0 }] }, '/body/endpoints/0/port'],
      [{ endpoints: [{ address: '10.0.0.1', port: 80 }, { address: '10.0.0.1', port: 80 }] }, '/body/endpoints/1'],
      [{ lbPolicy: 'ROUND_ROBIN', ringHash: { virtualNodesPerHost: 10 } }, '/body/ringHash'],
      [{ weighting: { policy: 'blend', blend: { pid: 0.5, ewma: 0.2 } } }, '/body/weighting/blend'],
      [{ lbPolicy: 'NOPE' }, '/body/lbPolicy'],
      [{ surprise: true }, '/body/surprise'],
      [{ name: 'other' }, '/body/name'],
      [{ weighting: { policy: 'pid', gains: { kp: -1 } } }, '/body/weighting/gains/kp'],
    ];
    for (const [body, path] of cases) {
      const res = await call(app, 'PUT', '/v1/clusters/web', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.path, JSON.stringify(body)).toBe(path);
      expect(res.body.message, JSON.stringify(body)).toBeTruthy();
    }
    expect((await call(app, 'PUT', '/v1/clusters/-bad', {})).body.path).toBe('/params/name');
    expect(store.audit(1000).length).toBe(before);
    expect(store.getCluster('web')).toBeUndefined();
  });

  it('a probe path the prober cannot send (a space, CR/LF, no leading /) is a 400 naming it, on PUT and PATCH; nothing stored', async () => {
    const { app, store } = fixture();
    expect((await call(app, 'PUT', '/v1/clusters/web', { ...WEB, probe: { kind: 'http', path: '/health' } })).status).toBe(201);
    const revision = store.getCluster('web')?.revision;
    for (const path of ['/health check', '/h\r\nx: y', 'health']) {
      for (const method of ['PUT', 'PATCH'] as const) {
        const res = await call(app, method, '/v1/clusters/web', { ...(method === 'PUT' ? WEB : {}), probe: { kind: 'http', path } });
        expect(res.status, `${method} ${JSON.stringify(path)}`).toBe(400);
        expect(res.body).toMatchObject({ path: '/body/probe/path' });
      }
    }
    expect(store.getCluster('web')).toMatchObject({ revision, probe: { path: '/health' } });
  });
});

// ── preconditions ────────────────────────────────────────────────────────────────────────────────

describe('ETag and If-Match', () => {
  it('a stale If-Match is 412 and writes and audits nothing; the current one succeeds', async () => {
    const { app, store } = fixture();
    const v1 = (await call(app, 'PUT', '/v1/clusters/web', WEB)).headers.etag as string;
    const v2 = (await call(app, 'PUT', '/v1/clusters/web', { ...WEB, connectTimeoutMs: 2000 }, { 'if-match': v1 })).headers.etag as string;
    expect(v2).not.toBe(v1);
    const audits = store.audit(1000).length;
    const revision = store.revision();

    for (const [method, url, body] of [
      ['PUT', '/v1/clusters/web', { ...WEB, connectTimeoutMs: 3000 }],
      ['PATCH', '/v1/clusters/web/policy', { weighting: { gains: { kp: 9 } } }],
      ['DELETE', '/v1/clusters/web', undefined],
    ] as const) {
      const stale = await call(app, method, url, body, { 'if-match': v1 });
      expect(stale.status, method).toBe(412);
      expect(stale.body).toMatchObject({ error: 'Precondition Failed', code: 'REVISION_MISMATCH' });
      expect(stale.body.message).toContain(v2);
    }
    expect(store.audit(1000).length).toBe(audits);
    expect(store.revision()).toBe(revision);
    expect(store.getCluster('web')?.connectTimeoutMs).toBe(2000);

    // Weak tags never match; a list matches if any member does; * matches an existing resource.
    expect((await call(app, 'PUT', '/v1/clusters/web', WEB, { 'if-match': `W/${v2}` })).status).toBe(412);
    expect((await call(app, 'PUT', '/v1/clusters/web', WEB, { 'if-match': `"1", ${v2}` })).status).toBe(200);
    expect((await call(app, 'PUT', '/v1/clusters/nope', WEB, { 'if-match': '*' })).status).toBe(412);
    expect(store.getCluster('nope')).toBeUndefined();
  });

  it('If-None-Match: * creates only', async () => {
    const { app } = fixture();
    expect((await call(app, 'PUT', '/v1/clusters/web', WEB, { 'if-none-match': '*' })).status).toBe(201);
    const again = await call(app, 'PUT', '/v1/clusters/web', WEB, { 'if-none-match': '*' });
    expect(again.status).toBe(412);
    expect(again.body.message).toContain('already exists');
  });

  it('endpoints carry their own ETag for If-Match', async () => {
    const { app } = fixture();
    await call(app, 'PUT', '/v1/clusters/web', WEB);
    const ep = await call(app, 'GET', '/v1/clusters/web/endpoints/10.1.0.1/8080');
    expect(ep.status).toBe(200);
    expect(ep.headers.etag).toBe(`"${ep.body.revision}"`);
    const drained = await call(app, 'POST', '/v1/clusters/web/endpoints/10.1.0.1/8080/drain', undefined, { 'if-match': ep.headers.etag as string });
    expect(drained.status).toBe(200);
    expect((await call(app, 'POST', '/v1/clusters/web/endpoints/10.1.0.1/8080/enable', undefined, { 'if-match': ep.headers.etag as string })).status).toBe(412);
    expect((await call(app, 'DELETE', '/v1/clusters/web/endpoints/10.1.0.1/8080', undefined, { 'if-match': ep.headers.etag as string })).status).toBe(412);
  });
});

// ── ownership ────────────────────────────────────────────────────────────────────────────────────

describe('ownership', () => {
  it('file-owned clusters and listeners are read-only through the API: 409 OWNED_ELSEWHERE', async () => {
    const { app, store } = fixture();
    const revision = store.revision();
    const file = await call(app, 'GET', '/v1/clusters/files');
    expect(file.body.owner).toBe('file');
    for (const [method, url, body] of [
      ['PUT', '/v1/clusters/files', { endpoints: [] }],
      ['PATCH', '/v1/clusters/files/policy', { lbPolicy: 'RANDOM' }],
      ['DELETE', '/v1/clusters/files', undefined],
      ['PUT', '/v1/clusters/files/endpoints/10.0.0.9/80', {}],
      ['DELETE', '/v1/clusters/files/endpoints/10.0.0.1/80', undefined],
      ['PUT', '/v1/listeners/file-ingress', { port: 10001, routes: [] }],
      ['DELETE', '/v1/listeners/file-ingress', undefined],
    ] as const) {
      // Ownership is decided before preconditions: even a stale If-Match gets the 409.
      const res = await call(app, method, url, body, { 'if-match': '"999999"' });
      expect(res.status, `${method} ${url}`).toBe(409);
      expect(res.body.code, `${method} ${url}`).toBe('OWNED_ELSEWHERE');
      expect(res.body.message).toContain('config file');
    }
    expect(store.revision()).toBe(revision);
  });

  it('but any endpoint can be drained: GET shows draining, the catalog DRAINING; disable removes it; enable restores', async () => {
    const { app, store } = fixture();
    const drained = await call(app, 'POST', '/v1/clusters/files/endpoints/10.0.0.1/80/drain');
    expect(drained.status).toBe(200);
    expect(drained.headers.etag).toBe(`"${drained.body.revision}"`);
    expect(drained.body).toMatchObject({ state: 'draining', health: 'HEALTHY', publishedHealth: 'DRAINING', effectiveWeight: 1 });
    const list = await call(app, 'GET', '/v1/clusters/files/endpoints');
    expect(list.body.endpoints.map((e: { address: string; state: string }) => `${e.address}:${e.state}`)).toEqual(['10.0.0.1:draining', '10.0.0.2:active']);
    expect(store.catalog().clusters.find((c) => c.name === 'files')?.endpoints.find((e) => e.address === '10.0.0.1')?.health).toBe('DRAINING');

    await call(app, 'POST', '/v1/clusters/files/endpoints/10.0.0.1/80/disable');
    expect(store.catalog().clusters.find((c) => c.name === 'files')?.endpoints.map((e) => e.address)).toEqual(['10.0.0.2']);
    const disabled = await call(app, 'GET', '/v1/clusters/files/endpoints/10.0.0.1/80');
    expect(disabled.body.state).toBe('disabled');
    expect(disabled.body.effectiveWeight).toBeUndefined();

    await call(app, 'POST', '/v1/clusters/files/endpoints/10.0.0.1/80/enable');
    expect(store.catalog().clusters.find((c) => c.name === 'files')?.endpoints.find((e) => e.address === '10.0.0.1')?.health).toBe('HEALTHY');
    expect(store.audit(3).map((a) => `${a.action} ${a.name}`)).toEqual(['set-state files/10.0.0.1:80', 'set-state files/10.0.0.1:80', 'set-state files/10.0.0.1:80']);

    expect((await call(app, 'POST', '/v1/clusters/files/endpoints/10.0.0.9/80/drain')).status).toBe(404);
    expect((await call(app, 'POST', '/v1/clusters/ghost/endpoints/10.0.0.1/80/drain')).status).toBe(404);
    expect((await call(app, 'POST', '/v1/clusters/files/endpoints/host.local/80/drain')).body.path).toBe('/params/address');
  });
});

// ── endpoints ────────────────────────────────────────────────────────────────────────────────────

describe('endpoints', () => {
  it('PUT adds (201) and replaces (200), IPv6 included; DELETE removes; addresses must be IPs', async () => {
    const { app, store } = fixture();
    await call(app, 'PUT', '/v1/clusters/web', { endpoints: [] });
    const added = await call(app, 'PUT', '/v1/clusters/web/endpoints/10.1.0.9/9090', { weight: 5, priority: 1, locality: { zone: 'b' } });
    expect(added.status).toBe(201);
    expect(added.body).toMatchObject({ address: '10.1.0.9', port: 9090, weight: 5, priority: 1, locality: { region: '', zone: 'b', subZone: '' }, state: 'active', effectiveWeight: 5 });
    const replaced = await call(app, 'PUT', '/v1/clusters/web/endpoints/10.1.0.9/9090', { address: '10.1.0.9', port: 9090, weight: 7 });
    expect(replaced.status).toBe(200);
    expect(replaced.body.weight).toBe(7);

    const v6 = await call(app, 'PUT', '/v1/clusters/web/endpoints/fd00::1/80', {});
    expect(v6.status).toBe(201);
    expect(store.getEndpoint('web', 'fd00::1', 80)).toBeDefined();
    expect((await call(app, 'GET', `/v1/clusters/web/endpoints/${encodeURIComponent('fd00::1')}/80`)).status).toBe(200);

    expect((await call(app, 'PUT', '/v1/clusters/web/endpoints/backend/80', {})).body.path).toBe('/params/address');
    expect((await call(app, 'PUT', '/v1/clusters/web/endpoints/10.1.0.9/9090', { port: 1 })).body.path).toBe('/body/port');
    expect((await call(app, 'PUT', '/v1/clusters/web/endpoints/10.1.0.9/9090', { weight: 0 })).body.path).toBe('/body/weight');
    expect((await call(app, 'PUT', '/v1/clusters/web/endpoints/10.1.0.9/99999', {})).body.path).toBe('/params/port');
    expect((await call(app, 'PUT', '/v1/clusters/ghost/endpoints/10.1.0.9/80', {})).status).toBe(404);

    expect((await call(app, 'DELETE', '/v1/clusters/web/endpoints/10.1.0.9/9090')).status).toBe(200);
    expect((await call(app, 'DELETE', '/v1/clusters/web/endpoints/10.1.0.9/9090')).status).toBe(404);
    expect((await call(app, 'GET', '/v1/clusters/web/endpoints')).body.count).toBe(1);
  });

  it('one IPv6 address spelled two ways in one cluster is refused on every write (one host to Envoy); nothing stored, nothing rewritten', async () => {
    const { app, store } = fixture();
    const twice = [{ address: '2001:db8::1', port: 80 }, { address: '2001:DB8:0::1', port: 80 }];
    expect(await call(app, 'PUT', '/v1/clusters/v6', { endpoints: twice })).toMatchObject({ status: 400, body: { path: '/body/endpoints/1' } });
    expect(store.getCluster('v6')).toBeUndefined();
    expect((await call(app, 'PUT', '/v1/clusters/v6', { endpoints: [{ address: '::1', port: 80, weight: 2 }] })).status).toBe(201);
    const revision = store.getCluster('v6')?.revision;

    // One endpoint written, checked against those stored: another spelling of a stored address is 409.
    const single = await call(app, 'PUT', '/v1/clusters/v6/endpoints/0::1/80', { weight: 9 });
    expect(single).toMatchObject({ status: 409, body: { code: 'ADDRESS_IN_USE', path: '/params/address', message: 'endpoint 0::1:80: cluster "v6" holds it as ::1:80 ("0::1" and "::1" are one IPv6 address to Envoy; spell it one way)' } });
    expect((await call(app, 'PUT', `/v1/clusters/v6/endpoints/${encodeURIComponent('0:0:0:0:0:0:0:1')}/80`, {})).status).toBe(409);
    // Other ports, and the stored spelling itself, are written as before.
    expect((await call(app, 'PUT', '/v1/clusters/v6/endpoints/0::1/81', {})).status).toBe(201);
    expect((await call(app, 'PATCH', '/v1/clusters/v6/endpoints/::1/80', { weight: 3 })).status).toBe(200);
    // Many endpoints: twice in one body is 400; an upsert of another spelling of a kept one 409.
    expect(await call(app, 'PUT', '/v1/clusters/v6/endpoints', { endpoints: twice })).toMatchObject({ status: 400, body: { path: '/body/endpoints/1' } });
    const upsert = await call(app, 'PUT', '/v1/clusters/v6/endpoints', { mode: 'upsert', endpoints: [{ address: 'fd00::9', port: 80 }, { address: '0:0::1', port: 80 }] });
    expect(upsert).toMatchObject({ status: 409, body: { code: 'ADDRESS_IN_USE', path: '/body/endpoints/1' } });
    // A cluster PATCH that adds the other spelling is refused as its PUT is.
    const patched = await call(app, 'PATCH', '/v1/clusters/v6', { endpoints: [{ address: '::1', port: 80 }, { address: '0::1', port: 80 }] });
    expect(patched).toMatchObject({ status: 400, body: { path: '/body/endpoints/1' } });
    expect(store.getCluster('v6')?.endpoints.map((e) => `${e.address}:${e.port}/${e.weight}`)).toEqual(['0::1:81/1', '::1:80/3']);
    expect(store.getCluster('v6')?.revision).toBe((revision ?? 0) + 2);
    // Replacing the set with the other spelling leaves one host: allowed.
    expect((await call(app, 'PUT', '/v1/clusters/v6/endpoints', { endpoints: [{ address: '0::1', port: 80 }] })).status).toBe(200);
  });

  it('data stored with two spellings before the rule keeps working: each endpoint is found, patched and drained by its own spelling', async () => {
    const { app, store } = fixture();
    await store.putCluster(cluster('old', [endpoint('::1', 80), endpoint('0::1', 80)]), { actor: 'older-release', owner: 'api' });
    expect((await call(app, 'PATCH', '/v1/clusters/old/endpoints/0::1/80', { weight: 4 })).status).toBe(200);
    expect((await call(app, 'POST', '/v1/clusters/old/endpoints/::1/80/drain')).status).toBe(200);
    expect(store.getCluster('old')?.endpoints.map((e) => `${e.address}/${e.weight}/${e.state}`)).toEqual(['0::1/4/active', '::1/1/draining']);
  });

  it('effective weights and published health come from the weight engine', async () => {
    const { app, store, adaptive } = fixture();
    await call(app, 'PUT', '/v1/clusters/web', { weighting: { policy: 'pid', setpoint: 'mean' }, endpoints: [{ address: '10.1.0.1', port: 80 }, { address: '10.1.0.2', port: 80 }] });
    adaptive.setCatalog(store.catalog());
    let now = 1_000_000;
    for (let i = 0; i < 5; i++) {
      adaptive.observeSample('web', '10.1.0.1:80', { at: now, cpu: 0.9 });
      adaptive.observeSample('web', '10.1.0.2:80', { at: now, cpu: 0.3 });
      adaptive.tick((now += 1000));
    }
    const published = adaptive.current().get('web');
    const list = await call(app, 'GET', '/v1/clusters/web/endpoints');
    const byAddress = Object.fromEntries(list.body.endpoints.map((e: { address: string; effectiveWeight: number }) => [e.address, e.effectiveWeight]));
    expect(byAddress['10.1.0.1']).toBe(published?.get('10.1.0.1:80')?.weight);
    expect(byAddress['10.1.0.1']).toBeLessThan(byAddress['10.1.0.2']);

    const w = await call(app, 'GET', '/v1/weights/web');
    expect(w.status).toBe(200);
    expect(w.body).toMatchObject({ cluster: 'web', computed: true, policy: 'pid', failStatic: false });
    const hot = w.body.endpoints.find((e: { endpoint: string }) => e.endpoint === '10.1.0.1:80');
    expect(hot.weight).toBe(published?.get('10.1.0.1:80')?.weight);
    expect(hot.explanation).toMatchObject({ policy: 'pid', health: 'HEALTHY', freshness: 'fresh', inputs: { cpu: 0.9 }, staticWeight: 1 });
    expect(hot.explanation.pid).toMatchObject({ measurement: 0.9, updated: expect.any(Boolean) });
    expect(typeof hot.explanation.pid.p).toBe('number');
    expect(hot.explanation.pid.error).toBeLessThan(0);
    // One unit: the integer weight, and its share of the cluster in %.
    const cold = w.body.endpoints.find((e: { endpoint: string }) => e.endpoint === '10.1.0.2:80');
    expect(hot.share + cold.share).toBeCloseTo(100, 1);
    expect(hot.share).toBeCloseTo((100 * hot.weight) / (hot.weight + cold.weight), 1);
    expect(w.body.missingSignals).toBeUndefined();

    // An adaptive cluster nobody reports for says which signal is missing and how to send it.
    await call(app, 'PUT', '/v1/clusters/quiet', { weighting: { policy: 'pid', metric: 'inflight' }, endpoints: [{ address: '10.2.0.1', port: 80 }] });
    adaptive.setCatalog(store.catalog());
    adaptive.tick(now + 1000);
    const quiet = await call(app, 'GET', '/v1/weights/quiet');
    expect(quiet.body.missingSignals).toMatchObject({ signals: ['inflight'], endpoints: ['10.2.0.1:80'], of: 1 });
    expect(quiet.body.missingSignals.howToProvide[0]).toMatch(/\/v1\/reports/);

    // A drained endpoint is DRAINING here as in EDS (the translator never lifts an operator's state), with no share.
    expect((await call(app, 'POST', '/v1/clusters/web/endpoints/10.1.0.1/80/drain')).status).toBe(200);
    adaptive.setCatalog(store.catalog());
    adaptive.tick(now + 2000);
    const drained = (await call(app, 'GET', '/v1/weights/web')).body.endpoints.find((e: { endpoint: string }) => e.endpoint === '10.1.0.1:80');
    expect(drained).toMatchObject({ health: 'DRAINING', share: 0 });

    // Before any tick: the static weights, computed false; unknown clusters 404.
    await call(app, 'PUT', '/v1/clusters/fresh', { endpoints: [{ address: '10.3.0.1', port: 80, weight: 3 }] });
    expect((await call(app, 'GET', '/v1/weights/fresh')).body).toMatchObject({ computed: false, endpoints: [{ endpoint: '10.3.0.1:80', weight: 3, share: 100 }] });
    expect((await call(app, 'GET', '/v1/weights/ghost')).status).toBe(404);
  });

  it('a cluster with nothing routable says so (lastResort) in /v1/weights and /v1/weights/{cluster}, with shares as proxies route: to what is sent UNKNOWN', async () => {
    const { app, store, adaptive } = fixture();
    await call(app, 'PUT', '/v1/clusters/dark', {
      weighting: { policy: 'pid' },
      endpoints: [
        { address: '10.5.0.1', port: 80, weight: 1, health: 'UNHEALTHY' },
        { address: '10.5.0.2', port: 80, weight: 3, health: 'TIMEOUT' },
        { address: '10.5.0.3', port: 80, weight: 2 },
      ],
    });
    await call(app, 'POST', '/v1/clusters/dark/endpoints/10.5.0.3/80/drain');
    adaptive.setCatalog(store.catalog());
    // The DRAINING endpoint is the best left: proxies are sent it as UNKNOWN, and it alone gets traffic.
    type Line = { endpoint: string; share: number; health: string };
    const shares = (body: Record<string, unknown>): Record<string, number> => Object.fromEntries((body.endpoints as Line[]).map((e) => [e.endpoint, e.share]));
    for (const ticked of [false, true]) {
      if (ticked) adaptive.tick(1_000_000);
      const view = await call(app, 'GET', '/v1/weights/dark');
      expect(view.body, `ticked: ${ticked}`).toMatchObject({ computed: ticked, lastResort: 'DRAINING' });
      expect(shares(view.body), `ticked: ${ticked}`).toEqual({ '10.5.0.1:80': 0, '10.5.0.2:80': 0, '10.5.0.3:80': 100 });
      const line = (await call(app, 'GET', '/v1/weights')).body.clusters.find((l: { cluster: string }) => l.cluster === 'dark');
      expect(line, `ticked: ${ticked}`).toMatchObject({ inRotation: 0, draining: 1, unhealthy: 2, lastResort: 'DRAINING' });
      expect(adaptive.lastResorts(), `ticked: ${ticked}`).toEqual([{ cluster: 'dark', lastResort: 'DRAINING' }]);
    }
    // Disabled, it is gone: every endpoint left is sent UNKNOWN, shared by weight.
    await call(app, 'POST', '/v1/clusters/dark/endpoints/10.5.0.3/80/disable');
    adaptive.setCatalog(store.catalog());
    adaptive.tick(1_001_000);
    const all = await call(app, 'GET', '/v1/weights/dark');
    expect(all.body).toMatchObject({ lastResort: 'ALL' });
    expect(shares(all.body)).toEqual({ '10.5.0.1:80': 25, '10.5.0.2:80': 75 });
    // A healthy endpoint ends it; the files cluster never was in it.
    await call(app, 'PUT', '/v1/clusters/dark/endpoints/10.5.0.4/80', { address: '10.5.0.4', port: 80 });
    adaptive.setCatalog(store.catalog());
    adaptive.tick(1_002_000);
    expect((await call(app, 'GET', '/v1/weights/dark')).body.lastResort).toBeUndefined();
    expect((await call(app, 'GET', '/v1/weights')).body.clusters.map((l: { lastResort?: string }) => l.lastResort)).toEqual([undefined, undefined]);
  });

  it('GET /v1/weights lists every cluster in one line, by name: owner, policies, endpoints counted by published health', async () => {
    const { app, store, adaptive } = fixture();
    await call(app, 'PUT', '/v1/clusters/web', {
      lbPolicy: 'LEAST_REQUEST',
      weighting: { policy: 'pid', setpoint: 'mean' },
      endpoints: [
        { address: '10.1.0.1', port: 80 },
        { address: '10.1.0.2', port: 80 },
        { address: '10.1.0.3', port: 80, health: 'TIMEOUT' },
        { address: '10.1.0.4', port: 80 },
      ],
    });
    await call(app, 'POST', '/v1/clusters/web/endpoints/10.1.0.4/80/drain');
    adaptive.setCatalog(store.catalog());
    // Before the engine's first tick: the catalog's endpoints, computed false.
    const before = await call(app, 'GET', '/v1/weights');
    expect(before.status).toBe(200);
    expect(before.body.clusters.map((l: { cluster: string }) => l.cluster)).toEqual(['files', 'web']);
    expect(before.body.clusters[1]).toEqual({
      cluster: 'web', owner: 'api', lbPolicy: 'LEAST_REQUEST', policy: 'pid',
      endpoints: 4, inRotation: 2, unhealthy: 1, draining: 1, computed: false, failStatic: false, missingSignals: 0,
    });
    adaptive.observeSample('web', '10.1.0.1:80', { at: 1_000_000, cpu: 0.5 });
    adaptive.tick(1_000_500);
    const after = await call(app, 'GET', '/v1/weights');
    expect(after.body.clusters[0]).toEqual({
      cluster: 'files', owner: 'file', lbPolicy: 'ROUND_ROBIN', policy: 'static',
      endpoints: 2, inRotation: 2, unhealthy: 0, draining: 0, computed: true, failStatic: false, missingSignals: 0,
    });
    // 10.1.0.2 never reported the cpu its policy steers on; the TIMEOUT and the drained endpoint are out of rotation.
    expect(after.body.clusters[1]).toMatchObject({ computed: true, endpoints: 4, inRotation: 2, unhealthy: 1, draining: 1, missingSignals: 1 });
    // The per-cluster answer agrees: a TIMEOUT endpoint takes no share (Envoy treats it as unhealthy).
    const web = (await call(app, 'GET', '/v1/weights/web')).body.endpoints as { endpoint: string; health: string; share: number }[];
    expect(web.find((e) => e.endpoint === '10.1.0.3:80')).toMatchObject({ health: 'TIMEOUT', share: 0 });
    expect(web.reduce((sum, e) => sum + e.share, 0)).toBeCloseTo(100, 1);
    // The line adds up what the cluster's answer lists.
    const out = (h: string): boolean => ['UNHEALTHY', 'TIMEOUT', 'DRAINING'].includes(h);
    expect(after.body.clusters[1]).toMatchObject({
      endpoints: web.length,
      inRotation: web.filter((e) => !out(e.health)).length,
      draining: web.filter((e) => e.health === 'DRAINING').length,
      unhealthy: web.filter((e) => out(e.health) && e.health !== 'DRAINING').length,
    });
    await call(app, 'DELETE', '/v1/clusters/web');
    adaptive.setCatalog(store.catalog());
    expect((await call(app, 'GET', '/v1/weights')).body.clusters.map((l: { cluster: string }) => l.cluster)).toEqual(['files']);
  });
});

// ── policy ───────────────────────────────────────────────────────────────────────────────────────

describe('policy', () => {
  it('PATCH changes the PID gains, keeps the rest, and is audited with before and after', async () => {
    const { app, store } = fixture();
    await call(app, 'PUT', '/v1/clusters/web', WEB);
    const got = await call(app, 'GET', '/v1/clusters/web/policy');
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({
      cluster: 'web',
      lbPolicy: 'LEAST_REQUEST',
      weighting: { policy: 'pid', gains: { kp: 0.5, ki: 0.1, kd: 0.05 } },
      safety: { maxStepRatio: 1.5 },
      safetyDefaults: { maxStepRatio: 1.25, minWeightRatio: 0.05, newcomerShare: 0.25 },
    });
    const patched = await call(app, 'PATCH', '/v1/clusters/web/policy', { weighting: { gains: { kp: 0.8 }, setpoint: 'mean' }, safety: { hysteresis: 0.05 } }, { 'if-match': got.headers.etag as string });
    expect(patched.status).toBe(200);
    expect(patched.headers.etag).not.toBe(got.headers.etag);
    expect(patched.body).toMatchObject({
      lbPolicy: 'LEAST_REQUEST',
      leastRequest: { choiceCount: 3 },
      weighting: { policy: 'pid', setpoint: 'mean', metric: 'cpu', gains: { kp: 0.8, ki: 0.1, kd: 0.05 } },
      safety: { maxStepRatio: 1.5, hysteresis: 0.05 },
    });
    expect(store.getCluster('web')?.endpoints).toHaveLength(2);
    const [entry] = store.audit(1);
    expect(entry).toMatchObject({ action: 'patch', kind: 'cluster', name: 'web', actor: 'api' });
    expect(entry?.before).toMatchObject({ weighting: { kind: 'pid', gains: { kp: 0.5 } } });
    expect(entry?.after).toMatchObject({ weighting: { kind: 'pid', gains: { kp: 0.8 } } });

    const audit = await call(app, 'GET', '/v1/audit?limit=1');
    expect(audit.body.entries[0]).toMatchObject({ action: 'patch', name: 'web', changed: ['safety', 'weighting'], before: { weighting: { gains: { kp: 0.5 } } }, after: { weighting: { gains: { kp: 0.8 } } } });
  });

  it('null removes an override; changing lbPolicy drops the old block; switching to ewma and blend', async () => {
    const { app } = fixture();
    await call(app, 'PUT', '/v1/clusters/web', WEB);
    const p1 = await call(app, 'PATCH', '/v1/clusters/web/policy', { lbPolicy: 'RING_HASH', safety: { maxStepRatio: null } });
    expect(p1.status).toBe(200);
    expect(p1.body).toMatchObject({ lbPolicy: 'RING_HASH', ringHash: { virtualNodesPerHost: 160, hashFunction: 'XX_HASH' }, safety: {} });
    expect(p1.body.leastRequest).toBeUndefined();
    const p2 = await call(app, 'PATCH', '/v1/clusters/web/policy', { weighting: { policy: 'ewma', decay: 0.5 } });
    expect(p2.body.weighting).toEqual({ policy: 'ewma', decay: 0.5 });
    const p3 = await call(app, 'PATCH', '/v1/clusters/web/policy', { weighting: { policy: 'blend', blend: { pid: 0.25, ewma: 0.75 } } });
    expect(p3.status).toBe(200);
    expect(p3.body.weighting).toMatchObject({ policy: 'blend', blend: { pid: 0.25, ewma: 0.75 }, decay: 0.5 });
    const bad = await call(app, 'PATCH', '/v1/clusters/web/policy', { weighting: { blend: { pid: 0.9 } } });
    expect(bad.status).toBe(400);
    expect(bad.body.path).toBe('/body/weighting/blend');
    expect((await call(app, 'PATCH', '/v1/clusters/web/policy', { safety: { maxStepRatio: 0.5 } })).body.path).toBe('/body/safety/maxStepRatio');
    expect((await call(app, 'PATCH', '/v1/clusters/web/policy', { safety: { newcomerShare: 0 } })).body.path).toBe('/body/safety/newcomerShare');
    expect((await call(app, 'PATCH', '/v1/clusters/web/policy', { safety: { newcomerShare: 1.5 } })).body.path).toBe('/body/safety/newcomerShare');
    expect((await call(app, 'PATCH', '/v1/clusters/web/policy', { safety: { newcomerShare: 0.5 } })).body.safety).toMatchObject({ newcomerShare: 0.5 });
    // Timers are bounded (a week): 1e35 ms would come back as 1e+35, which clients read as a float (Schemathesis found it).
    expect((await call(app, 'PATCH', '/v1/clusters/web/policy', { safety: { decayAfterMs: 1e35 } })).body.path).toBe('/body/safety/decayAfterMs');
    expect((await call(app, 'PATCH', '/v1/clusters/web/policy', { safety: { decayAfterMs: 604_800_000 } })).status).toBe(200);
    expect((await call(app, 'PATCH', '/v1/clusters/web/policy', { endpoints: [] })).status).toBe(400);
    expect((await call(app, 'PATCH', '/v1/clusters/ghost/policy', {})).status).toBe(404);
  });

  it('slowStart: PUT, GET and PATCH carry it; only under ROUND_ROBIN or LEAST_REQUEST; a newcomer then joins whole by default', async () => {
    const { app, store } = fixture();
    const put = await call(app, 'PUT', '/v1/clusters/web', { ...WEB, slowStart: { windowMs: 20_000, aggression: 1.5 } });
    expect(put.status).toBe(201);
    expect(put.body.slowStart).toEqual({ windowMs: 20_000, aggression: 1.5 });
    expect(store.getCluster('web')?.slowStart).toEqual({ windowMs: 20_000, aggression: 1.5 });
    const got = await call(app, 'GET', '/v1/clusters/web/policy');
    expect(got.body).toMatchObject({ lbPolicy: 'LEAST_REQUEST', slowStart: { windowMs: 20_000, aggression: 1.5 } });
    // Envoy ramps the newcomer itself: fulcrum's quarter share would slow it twice (policy.ts safetyDefaultsFor).
    expect(got.body.safetyDefaults.newcomerShare).toBe(1);
    const merged = await call(app, 'PATCH', '/v1/clusters/web/policy', { slowStart: { minWeightPercent: 20 } });
    expect(merged.body.slowStart).toEqual({ windowMs: 20_000, aggression: 1.5, minWeightPercent: 20 });
    // Still valid under ROUND_ROBIN: kept when the policy changes to it.
    const rr = await call(app, 'PATCH', '/v1/clusters/web/policy', { lbPolicy: 'ROUND_ROBIN' });
    expect(rr.body).toMatchObject({ lbPolicy: 'ROUND_ROBIN', slowStart: { windowMs: 20_000, minWeightPercent: 20 } });

    for (const [body, path, says] of [
      [{ slowStart: { windowMs: 10_000, aggression: 0 } }, '/body/slowStart/aggression', /> 0|greater than 0/],
      [{ slowStart: { windowMs: 10_000, aggression: -1 } }, '/body/slowStart/aggression', /> 0|greater than 0/],
      [{ slowStart: { minWeightPercent: 100.5 } }, '/body/slowStart/minWeightPercent', /100/],
      [{ slowStart: { windowMs: 0 } }, '/body/slowStart/windowMs', /1\b/],
      [{ slowStart: { windowMs: 86_400_001 } }, '/body/slowStart/windowMs', /86400000/],
      [{ lbPolicy: 'RING_HASH', slowStart: { windowMs: 10_000 } }, '/body/slowStart', /only valid with lbPolicy ROUND_ROBIN or LEAST_REQUEST \(is RING_HASH\)/],
    ] as const) {
      const bad = await call(app, 'PATCH', '/v1/clusters/web/policy', body);
      expect(bad.status, JSON.stringify(body)).toBe(400);
      expect(bad.body.path).toBe(path);
      expect(String(bad.body.message)).toMatch(says);
    }
    const ruled = await call(app, 'PUT', '/v1/clusters/ring', { name: 'ring', lbPolicy: 'MAGLEV', slowStart: { windowMs: 10_000 } });
    expect(ruled).toMatchObject({ status: 400, body: { path: '/body/slowStart' } });
    // Changing to a policy without slow start drops the block, as for the other policy blocks.
    const ring = await call(app, 'PATCH', '/v1/clusters/web/policy', { lbPolicy: 'RING_HASH' });
    expect(ring.status).toBe(200);
    expect(ring.body.slowStart).toBeUndefined();
    expect(store.getCluster('web')?.slowStart).toBeUndefined();
  });

  it('merge patch helpers', () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 } }, { a: null, b: { c: 4 }, e: [1] })).toEqual({ b: { c: 4, d: 3 }, e: [1] });
    expect(mergePatch({ a: 1 }, { __proto__: { polluted: true } } as unknown)).toEqual({ a: 1 });
    expect(applyPolicyPatch({ lbPolicy: 'MAGLEV', maglev: { tableSize: 7 }, weighting: { policy: 'blend', blend: { pid: 1 } } }, { weighting: { policy: 'auto', traits: {} } })).toEqual({
      weighting: { policy: 'auto', traits: {} },
    });
  });
});

// ── listeners ────────────────────────────────────────────────────────────────────────────────────

describe('listeners and cross-references', () => {
  it('a listener on another spelling of a bound IPv6 socket address is 409 ADDRESS_IN_USE (Envoy would NACK both); its spelling is kept', async () => {
    const { app, store } = fixture();
    expect((await call(app, 'PUT', '/v1/listeners/a', { address: '0:0:0:0:0:0:0:1', port: 10001, routes: [{ cluster: 'files' }] })).body).toMatchObject({ address: '0:0:0:0:0:0:0:1' });
    const b = await call(app, 'PUT', '/v1/listeners/b', { address: '::1', port: 10001, routes: [{ cluster: 'files' }] });
    expect(b).toMatchObject({ status: 409, body: { code: 'ADDRESS_IN_USE', message: '::1:10001 is already used by listener "a" ("::1" and "0:0:0:0:0:0:0:1" are one IPv6 address to Envoy; spell it one way)' } });
    expect((await call(app, 'PUT', '/v1/listeners/c', { address: '::', port: 10002, routes: [] })).status).toBe(201);
    expect((await call(app, 'PUT', '/v1/listeners/d', { address: '::2', port: 10002, routes: [] })).status).toBe(201);
    expect((await call(app, 'PATCH', '/v1/listeners/d', { address: '0::0' })).status).toBe(409);
    expect(store.getListener('b')).toBeUndefined();
    expect(store.getListener('d')?.address).toBe('::2');
  });

  it('CRUD; a route to an unknown cluster is a 400; a port in use a 409', async () => {
    const { app } = fixture();
    await call(app, 'PUT', '/v1/clusters/web', WEB);
    const body = { address: '127.0.0.1', port: 10001, routes: [{ prefix: '/api', cluster: 'web', timeoutMs: 500 }, { prefix: '/web', cluster: 'web' }, { cluster: 'files' }] };
    const created = await call(app, 'PUT', '/v1/listeners/edge', body);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'edge',
      address: '127.0.0.1',
      port: 10001,
      owner: 'api',
      routes: [
        { domain: '*', prefix: '/api', cluster: 'web', timeoutMs: 500 },
        { domain: '*', prefix: '/web', cluster: 'web' },
        { domain: '*', prefix: '/', cluster: 'files' },
      ],
    });
    const got = await call(app, 'GET', '/v1/listeners/edge');
    expect(got.headers.etag).toBe(created.headers.etag);
    expect((await call(app, 'PUT', '/v1/listeners/edge', got.body)).status).toBe(200);

    const grpc = await call(app, 'PUT', '/v1/listeners/greeter', { apiListener: true, routes: [{ cluster: 'web' }] });
    expect(grpc.status).toBe(201);
    expect(grpc.body).toMatchObject({ apiListener: true, routes: [{ cluster: 'web' }] });
    expect(grpc.body.port).toBeUndefined();

    const unknown = await call(app, 'PUT', '/v1/listeners/edge', { ...body, routes: [{ cluster: 'web' }, { cluster: 'ghost' }] });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatchObject({ path: '/body/routes/1/cluster', message: 'unknown cluster "ghost"' });

    const clash = await call(app, 'PUT', '/v1/listeners/other', { address: '0.0.0.0', port: 10000, routes: [] });
    expect(clash.status).toBe(409);
    expect(clash.body).toMatchObject({ code: 'ADDRESS_IN_USE', message: expect.stringContaining('file-ingress') });
    expect((await call(app, 'PUT', '/v1/listeners/other', { address: 'localhost', port: 1, routes: [] })).body.path).toBe('/body/address');

    const listed = await call(app, 'GET', '/v1/listeners');
    expect(listed.body.listeners.map((l: { name: string }) => l.name)).toEqual(['edge', 'file-ingress', 'greeter']);

    // A cluster still routed to cannot go: 409 naming the listeners.
    const referenced = await call(app, 'DELETE', '/v1/clusters/web');
    expect(referenced.status).toBe(409);
    expect(referenced.body).toMatchObject({ code: 'REFERENCED', message: expect.stringContaining('"edge", "greeter"') });
    expect((await call(app, 'DELETE', '/v1/listeners/edge')).status).toBe(200);
    expect((await call(app, 'DELETE', '/v1/listeners/greeter')).status).toBe(200);
    expect((await call(app, 'DELETE', '/v1/listeners/greeter')).status).toBe(404);
    expect((await call(app, 'DELETE', '/v1/clusters/web')).status).toBe(200);
  });

  // The review's finding: the config file put an auto cluster's affinity key on the routes to it, the API did not.
  it('a listener routing to an auto cluster with session affinity is served with its hash policy, as from the config file', async () => {
    const { app, store } = fixture({}, false);
    const sticky = { weighting: { policy: 'auto', traits: { sessionAffinity: { header: 'x-user' } } }, endpoints: [{ address: '10.0.0.1', port: 80 }, { address: '10.0.0.2', port: 80 }] };
    expect((await call(app, 'PUT', '/v1/clusters/sticky', sticky)).body).toMatchObject({ lbPolicy: 'RING_HASH', autoReason: expect.stringContaining('session affinity') });
    expect((await call(app, 'PUT', '/v1/listeners/front', { port: 10000, routes: [{ prefix: '/own', cluster: 'sticky', hashPolicy: { header: 'x-own' } }, { cluster: 'sticky' }] })).status).toBe(201);
    const served = translate(store.catalog()).get(DEFAULT_GROUP)?.get(TYPE.route)?.get('front');
    const routes = (RouteConfiguration.toObject(RouteConfiguration.decode(served?.bytes ?? new Uint8Array())) as { virtual_hosts: { routes: { route: { hash_policy?: unknown } }[] }[] }).virtual_hosts[0]?.routes;
    expect(routes?.map((r) => r.route.hash_policy)).toEqual([[{ header: { header_name: 'x-own' } }], [{ header: { header_name: 'x-user' } }]]);
  });

  // A later review's finding: what the API shows (and a PATCH merges into) is the resolved cluster, without `auto`.
  it("an auto cluster's affinity survives a PATCH of the cluster, of its policy and a GET→PUT round trip, and goes with a move off hashing", async () => {
    const { app, store } = fixture({}, false);
    const sticky = { weighting: { policy: 'auto', traits: { sessionAffinity: { header: 'x-user' } } }, endpoints: [{ address: '10.0.0.1', port: 80 }, { address: '10.0.0.2', port: 80 }] };
    expect((await call(app, 'PUT', '/v1/clusters/sticky', sticky)).status).toBe(201);
    expect((await call(app, 'PUT', '/v1/listeners/front', { port: 10000, routes: [{ cluster: 'sticky' }] })).status).toBe(201);
    const policies = (): unknown[] | undefined => {
      const served = translate(store.catalog()).get(DEFAULT_GROUP)?.get(TYPE.route)?.get('front');
      const decoded = RouteConfiguration.toObject(RouteConfiguration.decode(served?.bytes ?? new Uint8Array())) as { virtual_hosts: { routes: { route: { hash_policy?: unknown } }[] }[] };
      return decoded.virtual_hosts[0]?.routes.map((r) => r.route.hash_policy);
    };
    const byUser = [[{ header: { header_name: 'x-user' } }]];
    expect((await call(app, 'PATCH', '/v1/clusters/sticky', { connectTimeoutMs: 500 })).status).toBe(200);
    expect(policies()).toEqual(byUser);
    expect((await call(app, 'PATCH', '/v1/clusters/sticky/policy', { safety: { maxStepRatio: 1.5 } })).status).toBe(200);
    expect(policies()).toEqual(byUser);
    const { owner: _o, revision: _r, updatedAt: _u, ...view } = (await call(app, 'GET', '/v1/clusters/sticky')).body as Record<string, unknown>;
    expect((await call(app, 'PUT', '/v1/clusters/sticky', view)).status).toBe(200);
    expect(policies()).toEqual(byUser);
    expect((await call(app, 'PATCH', '/v1/clusters/sticky', { lbPolicy: 'ROUND_ROBIN', ringHash: null })).status).toBe(200);
    expect(policies()).toEqual([undefined]);
  });

  // The review's finding, on SQLite: behind a big (sliced) write the lane queues every write,
  // after the API checked it; the store checks these rules again in the write's transaction.
  it('writes queued behind a big sliced write: a listener and the DELETE of its cluster, two listeners on one address, never both applied', async () => {
    let lane: WriteLane | undefined;
    const { app, store, close } = adminStoreApp('fulcrum-admin-lane-', { deps: (s) => ({ store: (lane = new WriteLane(s, 2)) }) });
    cleanups.push(close);
    const three = (net: string) => ({ endpoints: [1, 2, 3].map((i) => ({ address: `${net}.${i}`, port: 80 })) });
    // Over the lane's sliced size (2): its DELETE is sliced too.
    expect((await call(app, 'PUT', '/v1/clusters/web', three('10.0.0'))).status).toBe(201);
    // A big write in flight, held until the requests below have passed their checks and are queued behind it.
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const sliced = store.putClusterSliced.bind(store);
    const started = vi.spyOn(store, 'putClusterSliced').mockImplementation(async (...args) => held.then(() => sliced(...args)));
    const big = call(app, 'PUT', '/v1/clusters/bulk', three('10.1.0'));
    await waitFor(() => started.mock.calls.length === 1, { what: 'the big write in flight' });
    // Each request queued before the next is sent: the lane runs them in this order.
    const writes = [vi.spyOn(lane as WriteLane, 'putListener'), vi.spyOn(lane as WriteLane, 'deleteCluster')];
    const sent: ReturnType<typeof call>[] = [];
    const send = async (...args: Parameters<typeof call>): Promise<void> => {
      sent.push(call(...args));
      await waitFor(() => writes.reduce((n, w) => n + w.mock.calls.length, 0) === sent.length, { what: `write ${sent.length} queued` });
    };
    await send(app, 'PUT', '/v1/listeners/front', { port: 11000, routes: [{ cluster: 'web' }] });
    await send(app, 'DELETE', '/v1/clusters/web');
    await send(app, 'PUT', '/v1/listeners/one', { address: '127.0.0.1', port: 12000, routes: [] });
    await send(app, 'PUT', '/v1/listeners/two', { address: '127.0.0.1', port: 12000, routes: [] });
    release();
    const [front, del, one, two] = await Promise.all(sent);
    expect((await big).status).toBe(201);
    expect(front?.status).toBe(201);
    expect(one?.status).toBe(201);
    // The answers they would have got had the writes ahead of them committed before they were checked.
    expect(del).toMatchObject({ status: 409, body: { code: 'REFERENCED', message: 'cluster "web" is still referenced by listener "front"; remove those references first' } });
    expect(two).toMatchObject({ status: 409, body: { code: 'ADDRESS_IN_USE', path: '/body/port', message: '127.0.0.1:12000 is already used by listener "one"' } });
  });
});

// ── audit, reports ───────────────────────────────────────────────────────────────────────────────

describe('audit and reports', () => {
  it('GET /v1/audit pages newest first with nextBefore', async () => {
    const { app } = fixture({}, false);
    for (let i = 0; i < 5; i++) await call(app, 'PUT', `/v1/clusters/c${i}`, {});
    const first = await call(app, 'GET', '/v1/audit?limit=2');
    expect(first.body.entries.map((e: { name: string }) => e.name)).toEqual(['c4', 'c3']);
    const second = await call(app, 'GET', `/v1/audit?limit=2&before=${first.body.nextBefore}`);
    expect(second.body.entries.map((e: { name: string }) => e.name)).toEqual(['c2', 'c1']);
    const all = await call(app, 'GET', '/v1/audit');
    expect(all.body.entries).toHaveLength(5);
    expect(all.body.nextBefore).toBeUndefined();
    expect(all.body.entries[4]).toMatchObject({ action: 'create', kind: 'cluster', actor: 'api', before: null, after: { name: 'c0' } });
    expect((await call(app, 'GET', '/v1/audit?limit=0')).body.path).toBe('/querystring/limit');
    expect((await call(app, 'GET', '/v1/audit?limit=abc')).status).toBe(400);
    expect((await call(app, 'GET', '/v1/audit?kind=x')).status).toBe(400);
  });

  it('POST /v1/reports hands the body to the ingest function', async () => {
    const { app, reports } = fixture();
    const res = await call(app, 'POST', '/v1/reports', { reporter: 'agent', samples: [{ cluster: 'files', endpoint: '10.0.0.1:80', cpu: 0.5 }] });
    expect(res).toMatchObject({ status: 200, body: { accepted: 1, rejected: [] } });
    expect(reports).toHaveLength(1);
    expect((await call(app, 'POST', '/v1/reports', { samples: 'no' })).status).toBe(400);
  });

  it('a batch refused whole keeps the ingest error\'s status and code', async () => {
    const { app } = fixture({
      reports: () => {
        throw new ReportBatchError('TOO_LARGE', 'at most 10000 samples per batch');
      },
    });
    const res = await call(app, 'POST', '/v1/reports', { samples: [] });
    expect(res).toMatchObject({ status: 413, body: { error: 'Payload Too Large', code: 'TOO_LARGE', message: 'at most 10000 samples per batch' } });
  });

  it('a big cluster\'s weights are made and serialized in slices: every endpoint, explained, as the whole serializer writes them', async () => {
    const { app, store, adaptive } = fixture();
    const n = SLICED_ANSWER_OVER * 2 + 1;
    const endpoints = Array.from({ length: n }, (_, i) => ({ address: `10.9.${i >> 8}.${i & 255}`, port: 80 }));
    expect((await call(app, 'PUT', '/v1/clusters/big', { weighting: { policy: 'pid', setpoint: 'mean' }, endpoints })).status).toBe(201);
    adaptive.setCatalog(store.catalog());
    let now = 1_000_000;
    for (let t = 0; t < 3; t++) {
      endpoints.forEach((e, i) => adaptive.observeSample('big', `${e.address}:80`, { at: now, cpu: i % 2 === 0 ? 0.9 : 0.3 }));
      adaptive.tick((now += 1000));
    }
    const spy = vi.spyOn(globalThis, 'setImmediate');
    const res = await app.inject({ method: 'GET', url: '/v1/weights/big' });
    const turns = spy.mock.calls.length;
    spy.mockRestore();
    expect(res.statusCode).toBe(200);
    const body = json<{ endpoints: { endpoint: string; weight: number; share: number; explanation?: { policy: string } }[] }>(res.body);
    expect(body.endpoints).toHaveLength(n);
    expect(body.endpoints.every((e) => e.explanation?.policy === 'pid')).toBe(true);
    expect(body.endpoints.reduce((sum, e) => sum + e.share, 0)).toBeCloseTo(100, 0);
    expect(res.body).toBe(fastJson(serializerSchema(WeightsView))(body));
    expect(turns).toBeGreaterThanOrEqual(2);
  });

  it('a sliced weights answer that outlives its tick\'s explanations is made again from the latest tick', async () => {
    const { app, adaptive, store } = fixture();
    const n = SLICED_ANSWER_OVER * 2;
    const endpoints = Array.from({ length: n }, (_, i) => ({ address: `10.8.${i >> 8}.${i & 255}`, port: 80 }));
    expect((await call(app, 'PUT', '/v1/clusters/big', { weighting: { policy: 'pid', setpoint: 'mean' }, endpoints })).status).toBe(201);
    adaptive.setCatalog(store.catalog());
    adaptive.tick(1_000_000);
    const real = adaptive.explain.bind(adaptive);
    let calls = 0;
    vi.spyOn(adaptive, 'explain').mockImplementation((cluster) => {
      const ex = real(cluster);
      if (!ex || calls++ > 0) return ex;
      // The first answer's explanations go stale half-way through, as two engine ticks would make them.
      let reads = 0;
      const stale = new Proxy(ex.explanations, {
        get: (target, prop) =>
          prop === 'get'
            ? (key: string) => {
                if (++reads > n / 2) throw new Error('explanations read after their cluster ticked twice more');
                return target.get(key);
              }
            : Reflect.get(target, prop, target),
      });
      return { ...ex, explanations: stale };
    });
    const res = await call(app, 'GET', '/v1/weights/big');
    expect(res.status).toBe(200);
    expect(res.body.endpoints).toHaveLength(n);
    expect(calls).toBe(2);
  });

  it('numbers JSON cannot carry are dropped from explanations, not a 500', async () => {
    const explanation = { policy: 'pid', health: 'HEALTHY', healthState: 'HEALTHY', freshness: 'fresh', sampleAgeMs: Number.NaN, inputs: { cpu: Number.POSITIVE_INFINITY }, pid: undefined, ewma: undefined, staticWeight: 1, fairWeight: Number.NaN, previousWeight: 1, rawWeight: 1, weight: 1, publishedWeight: 1, integerWeight: 1, rules: [], notes: [] };
    // The real adapter, with a last tick no engine would produce: NaN and Infinity in it.
    const weights = new AdaptiveWeights();
    vi.spyOn(weights, 'explain').mockReturnValue({
      tick: { weights: new Map([['10.0.0.1:80', 5]]), health: new Map([['10.0.0.1:80', 'HEALTHY' as const]]), changed: true, explanations: new Map(), failStatic: false, setpoint: Number.NaN },
      explanations: new Map([['10.0.0.1:80', explanation as unknown as Explanation]]),
    });
    const { app } = fixture({ weights });
    const res = await call(app, 'GET', '/v1/weights/files');
    expect(res.status).toBe(200);
    expect(res.body.setpoint).toBeUndefined();
    expect(res.body.endpoints[0].explanation).toMatchObject({ staticWeight: 1, inputs: {} });
    expect(res.body.endpoints[0].explanation.fairWeight).toBeUndefined();
  });

  it('routes register only with their dependency', async () => {
    const { app } = fixture({ store: undefined, weights: undefined, reports: undefined });
    for (const url of ['/v1/clusters', '/v1/listeners', '/v1/audit', '/v1/weights/web']) expect((await call(app, 'GET', url)).status, url).toBe(404);
    expect((await call(app, 'POST', '/v1/reports', { samples: [] })).status).toBe(404);
  });
});

// ── auth ─────────────────────────────────────────────────────────────────────────────────────────

describe('auth', () => {
  const ADMIN = 'admin-secret-token';
  const READ = 'read-secret';
  const REPORT = 'report-secret';

  it('tokenMatches compares SHA-256 digests in constant time, whatever the lengths', () => {
    const digests = ['alpha', 'beta-much-longer-token'].map((t) => createHash('sha256').update(t).digest());
    expect(tokenMatches('alpha', digests)).toBe(true);
    expect(tokenMatches('beta-much-longer-token', digests)).toBe(true);
    expect(tokenMatches('alph', digests)).toBe(false);
    expect(tokenMatches('alphaa', digests)).toBe(false);
    expect(tokenMatches('', digests)).toBe(false);
    expect(tokenMatches('alpha', [])).toBe(false);
    expect(parseTokenList(' a, b ,,c ')).toEqual(['a', 'b', 'c']);
    expect(parseTokenList(undefined)).toEqual([]);
    expect(authFromEnv({ FULCRUM_ADMIN_TOKEN: 'x,y', FULCRUM_READ_TOKEN: '', FULCRUM_PROXY_TOKEN: 'p' })).toEqual({ adminTokens: ['x', 'y'], readTokens: [], reportTokens: [], proxyTokens: ['p'] });
    expect(new Authorizer({ adminTokens: [''], readTokens: [] }).enabled).toBe(false);
    // Proxy tokens are for the xDS port: alone they do not close the admin API, and they open nothing on it.
    expect(new Authorizer({ adminTokens: [], readTokens: [], proxyTokens: ['p'] }).enabled).toBe(false);
    expect(new Authorizer({ adminTokens: ['a'], readTokens: [], proxyTokens: ['p'] }).decide('GET', '/v1/clusters', 'Bearer p')).toMatchObject({ ok: false, status: 403 });
    expect(new Authorizer(undefined).decide('DELETE', '/v1/clusters/x', undefined)).toEqual({ ok: true, actor: 'api' });
  });

  it('the matrix: none / read / admin / report × GET / PUT, open paths, 401 with WWW-Authenticate, 403', async () => {
    const { app, store } = fixture({ auth: { adminTokens: ['other', ADMIN], readTokens: [READ], reportTokens: [REPORT] } });
    const bearer = (t?: string): Record<string, string> => (t === undefined ? {} : { authorization: `Bearer ${t}` });
    const cases: [string | undefined, Method, string, number][] = [
      [undefined, 'GET', '/v1/clusters', 401],
      [undefined, 'PUT', '/v1/clusters/web', 401],
      ['wrong', 'GET', '/v1/clusters', 401],
      [READ, 'GET', '/v1/clusters', 200],
      [READ, 'GET', '/v1/proxies', 200],
      [READ, 'PUT', '/v1/clusters/web', 403],
      [READ, 'POST', '/v1/clusters/files/endpoints/10.0.0.1/80/drain', 403],
      [READ, 'POST', '/v1/reports', 403],
      [REPORT, 'POST', '/v1/reports', 200],
      [REPORT, 'GET', '/v1/clusters', 403],
      [ADMIN, 'GET', '/v1/clusters', 200],
      [ADMIN, 'PUT', '/v1/clusters/web', 201],
      [ADMIN, 'POST', '/v1/reports', 200],
      [undefined, 'GET', '/healthz', 200],
      [undefined, 'GET', '/readyz', 200],
      [undefined, 'GET', '/metrics', 200],
      [undefined, 'GET', '/openapi.json', 200],
      [undefined, 'GET', '/docs', 200],
      [undefined, 'GET', '/v1/nothing', 401],
      [ADMIN, 'GET', '/v1/nothing', 404],
    ];
    for (const [token, method, url, status] of cases) {
      const body = url === '/v1/reports' ? { samples: [] } : method === 'PUT' ? {} : undefined;
      const res = await call(app, method, url, body, bearer(token));
      expect(res.status, `${token ?? 'none'} ${method} ${url}`).toBe(status);
      if (status === 401) {
        expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="fulcrum"/);
        expect(res.body).toMatchObject({ error: 'Unauthorized' });
      }
      if (status === 403) expect(res.body).toMatchObject({ error: 'Forbidden' });
    }
    expect((await call(app, 'GET', '/v1/clusters', undefined, { authorization: `bearer   ${READ}` })).status).toBe(200);
    expect((await call(app, 'GET', '/v1/clusters', undefined, { authorization: `Basic ${READ}` })).status).toBe(401);
    // The audit names the token (a bare token by its role and 1-based position), never the token or a hash of it.
    const [entry] = store.audit(1);
    expect(entry?.actor).toBe('token:admin-2');
    expect(entry?.actor).not.toContain(ADMIN);
  });

  it('an unauthenticated client cannot make fulcrum read a large body', async () => {
    const { app } = fixture({ auth: { adminTokens: [ADMIN], readTokens: [] } });
    const res = await app.inject({ method: 'PUT', url: '/v1/clusters/web', headers: { 'content-type': 'application/json' }, payload: `{"x":"${'a'.repeat(2 * 1024 * 1024)}"}` });
    expect(res.statusCode).toBe(401);
  });
});

// ── OpenAPI ──────────────────────────────────────────────────────────────────────────────────────

describe('OpenAPI', () => {
  it('validates as OpenAPI 3 and documents every new route with its inputs, responses and security', async () => {
    const { app } = fixture({ auth: { adminTokens: ['openapi-admin'], readTokens: ['openapi-read'] } });
    const res = await call(app, 'GET', '/openapi.json');
    const doc = res.body as { paths: Record<string, Record<string, { requestBody?: unknown; parameters?: { in: string; name: string }[]; responses: Record<string, unknown>; security?: unknown }>>; components: { securitySchemes: Record<string, unknown> } };
    const result = await new Validator().validate(doc as unknown as Parameters<Validator['validate']>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    const routes: [string, string[]][] = [
      ['/v1/clusters', ['get']],
      ['/v1/clusters/{name}', ['get', 'put', 'patch', 'delete']],
      ['/v1/clusters/{name}/endpoints', ['get', 'put']],
      ['/v1/clusters/{name}/endpoints/{address}/{port}', ['get', 'put', 'patch', 'delete']],
      ['/v1/clusters/{name}/endpoints/{address}/{port}/drain', ['post']],
      ['/v1/clusters/{name}/endpoints/{address}/{port}/disable', ['post']],
      ['/v1/clusters/{name}/endpoints/{address}/{port}/enable', ['post']],
      ['/v1/clusters/{name}/policy', ['get', 'patch']],
      ['/v1/listeners', ['get']],
      ['/v1/listeners/{name}', ['get', 'put', 'patch', 'delete']],
      ['/v1/weights', ['get']],
      ['/v1/weights/{cluster}', ['get']],
      ['/v1/reports', ['post']],
      ['/v1/audit', ['get']],
    ];
    for (const [path, methods] of routes) {
      for (const m of methods) {
        const op = doc.paths[path]?.[m];
        expect(op, `${m} ${path}`).toBeDefined();
        expect(Object.keys(op?.responses ?? {}), `${m} ${path}`).toEqual(expect.arrayContaining(['200', '400', '401', '403', '500']));
        expect(op?.security, `${m} ${path}`).toEqual([{ bearerAuth: [] }]);
        if (m === 'put' || m === 'patch') expect(op?.requestBody, `${m} ${path}`).toBeDefined();
        if (m !== 'get') expect(Object.keys(op?.responses ?? {}), `${m} ${path}`).toEqual(expect.arrayContaining(path === '/v1/reports' ? [] : ['404', '412']));
      }
    }
    expect(doc.paths['/v1/clusters/{name}']?.put?.parameters?.map((p) => `${p.in}:${p.name}`)).toEqual(expect.arrayContaining(['path:name', 'header:if-match', 'header:if-none-match']));
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
  });
});

// ── PATCH ────────────────────────────────────────────────────────────────────────────────────────

describe('PATCH (JSON merge patch)', () => {
  it('changes the fields a patch names and keeps the others: an endpoint weight stays in its locality', async () => {
    const { app } = fixture();
    await call(app, 'PUT', '/v1/clusters/web', WEB);
    const before = await call(app, 'GET', '/v1/clusters/web/endpoints/10.1.0.1/8080');
    const patched = await call(app, 'PATCH', '/v1/clusters/web/endpoints/10.1.0.1/8080', { weight: 5 }, { 'if-match': String(before.headers.etag) });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body).toMatchObject({ address: '10.1.0.1', port: 8080, weight: 5, locality: { region: 'eu', zone: 'a' } });
    expect(patched.headers.etag).not.toBe(before.headers.etag);
    // The stale ETag now fails; unknown fields and a type error are 400s naming the field.
    expect((await call(app, 'PATCH', '/v1/clusters/web/endpoints/10.1.0.1/8080', { weight: 6 }, { 'if-match': String(before.headers.etag) })).status).toBe(412);
    expect((await call(app, 'PATCH', '/v1/clusters/web/endpoints/10.1.0.1/8080', { bogus: 1 })).status).toBe(400);
    expect((await call(app, 'PATCH', '/v1/clusters/web/endpoints/10.1.0.1/8080', { weight: 'x' })).body.path).toBe('/body/weight');
    expect((await call(app, 'PATCH', '/v1/clusters/web/endpoints/10.9.9.9/8080', { weight: 2 })).status).toBe(404);
    // null removes a field: the locality goes back to the default.
    const unset = await call(app, 'PATCH', '/v1/clusters/web/endpoints/10.1.0.1/8080', { locality: null });
    expect(unset.body.weight).toBe(5);
    expect(unset.body.locality).toMatchObject({ region: '', zone: '' });
  });

  it('a cluster patch keeps its endpoints and policy; a listener patch keeps its routes', async () => {
    const { app } = fixture();
    await call(app, 'PUT', '/v1/clusters/web', WEB);
    const cluster = await call(app, 'PATCH', '/v1/clusters/web', { connectTimeoutMs: 2500, safety: { maxStepRatio: null } });
    expect(cluster.status, JSON.stringify(cluster.body)).toBe(200);
    expect(cluster.body).toMatchObject({ connectTimeoutMs: 2500, lbPolicy: 'LEAST_REQUEST', weighting: { policy: 'pid', setpoint: 0.7 } });
    expect(cluster.body.endpoints).toHaveLength(2);
    expect(cluster.body.safety?.maxStepRatio).toBeUndefined();
    await call(app, 'PUT', '/v1/listeners/edge', { port: 10001, routes: [{ prefix: '/', cluster: 'web' }] });
    const listener = await call(app, 'PATCH', '/v1/listeners/edge', { port: 10002 });
    expect(listener.status, JSON.stringify(listener.body)).toBe(200);
    expect(listener.body).toMatchObject({ port: 10002, routes: [{ prefix: '/', cluster: 'web' }] });
    expect((await call(app, 'PATCH', '/v1/listeners/edge', { routes: [{ prefix: '/', cluster: 'ghost' }] })).status).toBe(400);
    expect((await call(app, 'PATCH', '/v1/listeners/ghost', { port: 1 })).status).toBe(404);
  });
});

// ── fuzz ─────────────────────────────────────────────────────────────────────────────────────────

describe('fuzz', () => {
  const PATHS = [
    '/v1/clusters',
    '/v1/clusters/web',
    '/v1/clusters/files',
    '/v1/clusters/ghost',
    '/v1/clusters/web/endpoints',
    '/v1/clusters/web/endpoints/10.1.0.1/8080',
    '/v1/clusters/files/endpoints/10.0.0.1/80',
    '/v1/clusters/web/endpoints/10.1.0.1/8080/drain',
    '/v1/clusters/web/endpoints/10.1.0.1/8080/disable',
    '/v1/clusters/web/endpoints/10.1.0.1/8080/enable',
    '/v1/clusters/web/policy',
    '/v1/clusters/files/policy',
    '/v1/listeners',
    '/v1/listeners/edge',
    '/v1/listeners/file-ingress',
    '/v1/weights',
    '/v1/weights/web',
    '/v1/reports',
    '/v1/audit',
  ];
  const segment = fc.oneof(
    fc.webSegment(),
    fc.string({ maxLength: 20 }).map(encodeURIComponent),
    fc.constantFrom('%', '%zz', '%2F', '..', '::1', 'fd00::1', '0', '65536', '-1', '1e3', 'x'.repeat(300)),
  );
  const path = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...PATHS) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom('/v1/clusters', '/v1/clusters/web/endpoints', '/v1/listeners', '/v1/weights', '/v1/clusters/web'), fc.array(segment, { minLength: 1, maxLength: 4 }))
        .map(([prefix, segs]) => `${prefix}/${segs.join('/')}`),
    },
  );
  const method = fc.constantFrom('GET', 'PUT', 'PATCH', 'POST', 'DELETE', 'HEAD');
  /** Writes on real routes, so that bodies reach validation and the handlers. */
  const WRITES: [string, string][] = [
    ['PUT', '/v1/clusters/web'],
    ['PUT', '/v1/clusters/new'],
    ['PUT', '/v1/clusters/files'],
    ['PATCH', '/v1/clusters/web/policy'],
    ['PATCH', '/v1/clusters/files/policy'],
    ['PUT', '/v1/clusters/web/endpoints/10.1.0.1/8080'],
    ['PUT', '/v1/clusters/web/endpoints/fd00::9/80'],
    ['PUT', '/v1/listeners/edge'],
    ['PUT', '/v1/listeners/new'],
    ['POST', '/v1/reports'],
  ];
  const request = fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom(...WRITES) },
    { weight: 2, arbitrary: fc.tuple(method, path) },
  );
  const plausible = fc.record(
    {
      name: fc.oneof(fc.constant('web'), fc.string({ maxLength: 10 })),
      lbPolicy: fc.constantFrom('ROUND_ROBIN', 'RING_HASH', 'MAGLEV', 'LEAST_REQUEST', 'RANDOM', 'x'),
      weighting: fc.record({ policy: fc.constantFrom('static', 'pid', 'ewma', 'blend', 'auto', 'x'), gains: fc.dictionary(fc.constantFrom('kp', 'ki', 'kd'), fc.oneof(fc.double(), fc.constant(null))), blend: fc.option(fc.dictionary(fc.constantFrom('pid', 'ewma', 'static'), fc.double())), setpoint: fc.oneof(fc.constant('mean'), fc.double()) }, { requiredKeys: [] }),
      safety: fc.dictionary(fc.constantFrom('maxStepRatio', 'minWeightRatio', 'hysteresis', 'staleAfterMs'), fc.oneof(fc.double(), fc.integer(), fc.constant(null))),
      endpoints: fc.array(fc.record({ address: fc.oneof(fc.ipV4(), fc.ipV6(), fc.string()), port: fc.integer({ min: -1, max: 70000 }), weight: fc.integer(), state: fc.constantFrom('active', 'draining', 'x') }, { requiredKeys: [] }), { maxLength: 3 }),
      routes: fc.array(fc.record({ cluster: fc.constantFrom('web', 'files', 'ghost'), prefix: fc.constantFrom('/', 'x') }, { requiredKeys: [] }), { maxLength: 3 }),
      port: fc.integer({ min: -1, max: 70000 }),
      apiListener: fc.boolean(),
      samples: fc.array(fc.anything(), { maxLength: 3 }),
    },
    { requiredKeys: [] },
  );
  const body = fc.oneof(fc.constant(undefined), fc.json(), plausible.map((b) => JSON.stringify(b)), fc.constantFrom('{"__proto__":{"x":1}}', '{', 'null', '[]', '{"weighting":null}', '{}', '{"apiListener":true,"routes":[]}', '{"samples":[]}', '{"weighting":{"gains":{"kp":1}}}'));
  const header = fc.oneof(
    fc.constant({}),
    fc.record({ 'if-match': fc.oneof(fc.constantFrom('*', '"1"', 'W/"1"', '"99999999999999999999"', ''), fc.string({ maxLength: 20 })) }),
    fc.record({ 'if-none-match': fc.constantFrom('*', '"1"', '') }),
  );

  it('no method, path, body or precondition on the new routes gets a 5xx', async () => {
    const { app, store, adaptive } = fixture();
    await call(app, 'PUT', '/v1/clusters/web', WEB);
    await call(app, 'PUT', '/v1/listeners/edge', { port: 10001, routes: [{ cluster: 'web' }] });
    adaptive.setCatalog(store.catalog());
    adaptive.tick(1000);
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, body, header, async ([m, p], payload, headers) => {
        if (m === 'DELETE' && (p === '/v1/clusters/web' || p === '/v1/listeners/edge')) return; // keep the fixture around
        const res = await app.inject({
          method: m as Method,
          url: p,
          headers: { ...headers, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) },
          ...(payload !== undefined ? { payload } : {}),
        });
        expect(res.statusCode, `${m} ${p} ${String(payload).slice(0, 200)} → ${res.statusCode} ${res.body.slice(0, 300)}`).toBeLessThan(500);
        seen.set(res.statusCode, (seen.get(res.statusCode) ?? 0) + 1);
      }),
      { numRuns: 600 },
    );
    // The runs got past routing and validation into the handlers, not only into 400s and 404s.
    for (const status of [200, 400, 404]) expect(seen.get(status), `status ${status} in ${JSON.stringify([...seen])}`).toBeGreaterThan(0);
    // A handler's refusal (a conflict or a failed precondition), whichever the random runs hit.
    expect((seen.get(409) ?? 0) + (seen.get(412) ?? 0), `409/412 in ${JSON.stringify([...seen])}`).toBeGreaterThan(0);
  });
});
