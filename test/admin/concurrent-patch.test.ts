/**
 * PATCH is a read-modify-write: it must not lose a write that lands between its read and its write
 * (reviewer's finding "PATCH loses concurrent updates"). On etcd two PATCHes on one replica plan
 * from the same mirror; on SQLite a cluster body over PARSE_SLICE endpoints is parsed in slices,
 * with other requests running in between. Each PATCH writes with the revision it read as If-Match
 * and, without the client's own precondition, re-reads and re-applies on a conflict.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildAdminApp, type AdminApp } from '../../src/admin/app.js';
import { PATCH_ATTEMPTS } from '../../src/admin/preconditions.js';
import { parseClusterBody } from '../../src/admin/resources.js';
import { PARSE_SLICE } from '../../src/admin/sliced-parse.js';
import { openEtcdStore, type EtcdStore } from '../../src/catalog/store/etcd-store.js';
import type { CatalogStore, Store } from '../../src/catalog/store/index.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { XdsCache } from '../../src/xds/cache.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';
import { adminStoreApp } from '../support/admin-store-app.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';

interface Fixture {
  readonly app: AdminApp;
  readonly store: CatalogStore;
}

async function call(app: AdminApp, method: 'GET' | 'PUT' | 'PATCH', url: string, body?: object, headers: Record<string, string> = {}) {
  const res = await app.inject({ method, url, headers, ...(body !== undefined ? { payload: body } : {}) });
  return { status: res.statusCode, etag: res.headers.etag, body: JSON.parse(res.body || '{}') as Record<string, unknown> };
}

/** What must hold on every store: concurrent PATCHes without If-Match both apply, neither is lost. */
function concurrentPatchContract(open: () => Promise<Fixture>): void {
  it('two PATCHes of one endpoint at once: both 200, both changes kept', async () => {
    const { app, store } = await open();
    expect((await call(app, 'PUT', '/v1/clusters/pat', { endpoints: [{ address: '10.0.0.1', port: 80 }] })).status).toBe(201);
    const [w, p] = await Promise.all([
      call(app, 'PATCH', '/v1/clusters/pat/endpoints/10.0.0.1/80', { weight: 5 }),
      call(app, 'PATCH', '/v1/clusters/pat/endpoints/10.0.0.1/80', { priority: 2 }),
    ]);
    expect([w.status, p.status]).toEqual([200, 200]);
    expect(store.getEndpoint('pat', '10.0.0.1', 80)).toMatchObject({ weight: 5, priority: 2 });
  });

  it('two PATCHes of one cluster at once: both 200, both changes kept', async () => {
    const { app, store } = await open();
    expect((await call(app, 'PUT', '/v1/clusters/pc', { endpoints: [{ address: '10.0.0.1', port: 80 }] })).status).toBe(201);
    const [a, b] = await Promise.all([call(app, 'PATCH', '/v1/clusters/pc', { connectTimeoutMs: 2_500 }), call(app, 'PATCH', '/v1/clusters/pc', { http2: true })]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(store.getCluster('pc')).toMatchObject({ connectTimeoutMs: 2_500, http2: true });
  });

  it(`a cluster PATCH of over ${PARSE_SLICE} endpoints (parsed in slices) keeps an endpoint PATCH answered meanwhile`, async () => {
    const { app, store } = await open();
    const endpoints = Array.from({ length: 2 * PARSE_SLICE }, (_, i) => ({ address: `10.1.${Math.floor(i / 250)}.${(i % 250) + 1}`, port: 80 }));
    expect((await call(app, 'PUT', '/v1/clusters/big', { endpoints })).status).toBe(201);
    const [c, e] = await Promise.all([
      call(app, 'PATCH', '/v1/clusters/big', { http2: true }),
      call(app, 'PATCH', '/v1/clusters/big/endpoints/10.1.0.1/80', { weight: 7 }),
    ]);
    expect([c.status, e.status]).toEqual([200, 200]);
    expect(store.getCluster('big')?.http2).toBe(true);
    expect(store.getEndpoint('big', '10.1.0.1', 80)?.weight).toBe(7);
  });
}

describe('concurrent PATCHes: sqlite', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });
  concurrentPatchContract(async () => {
    const f = adminStoreApp('fulcrum-patch-');
    cleanups.push(f.close);
    return f;
  });
});

describeEtcd('concurrent PATCHes: etcd', () => {
  let etcd: EtcdCluster;
  const open: { app: AdminApp; store: EtcdStore }[] = [];
  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
  }, 120_000);
  afterEach(async () => {
    for (const { app, store } of open.splice(0)) {
      await app.close();
      await store.close();
    }
  });
  afterAll(() => etcd?.stop());
  concurrentPatchContract(async () => {
    const store = await openEtcdStore({ endpoints: [...etcd.endpoints], prefix: `/patch-${randomBytes(4).toString('hex')}`, writeTimeoutMs: 5_000 });
    const app = buildAdminApp({ registry: new ProxyRegistry(), cache: new XdsCache(), metrics: new Metrics({ processMetrics: false }), ready: () => ({ ready: true, reasons: [] }), store });
    open.push({ app, store });
    return { app, store };
  });
}, { timeout: 60_000, required: true });

/**
 * The store, with another writer that drains or re-enables endpoint 10.0.0.1:80 of cluster "m"
 * just before each of the first `times` endpoint or cluster writes: every such write then finds
 * what it read changed. `writes` counts the writes attempted.
 */
function meddled(store: Store, times: number): { store: CatalogStore; writes: () => number } {
  let writes = 0;
  const meddle = (): void => {
    if (writes++ >= times) return;
    const e = store.getEndpoint('m', '10.0.0.1', 80);
    store.setEndpointState('m', '10.0.0.1', 80, e?.state === 'draining' ? 'active' : 'draining', { actor: 'meddler' });
  };
  const wrapped = new Proxy(store, {
    get(target, key) {
      if (key === 'putEndpoint') return (...args: Parameters<Store['putEndpoint']>) => (meddle(), target.putEndpoint(...args));
      if (key === 'putCluster') return (...args: Parameters<Store['putCluster']>) => (meddle(), target.putCluster(...args));
      const v: unknown = Reflect.get(target, key);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store: wrapped, writes: () => writes };
}

describe('PATCH under a writer that lands between its read and its write', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });
  function fixture(times: number) {
    let m: ReturnType<typeof meddled> | undefined;
    const f = adminStoreApp('fulcrum-meddled-', {
      seed: (s) => void s.putCluster(parseClusterBody({ endpoints: [{ address: '10.0.0.1', port: 80 }] }, 'm'), { owner: 'api', actor: 'test' }),
      deps: (s) => ({ store: (m = meddled(s, times)).store }),
    });
    cleanups.push(f.close);
    return { ...f, writes: () => m?.writes() ?? 0 };
  }

  it.each([
    ['endpoint', '/v1/clusters/m/endpoints/10.0.0.1/80', { weight: 9 }],
    ['cluster', '/v1/clusters/m', { connectTimeoutMs: 1_234 }],
  ] as const)('%s: re-read and re-applied; the other writer\'s change is kept too', async (_kind, url, patch) => {
    const f = fixture(1);
    const res = await call(f.app, 'PATCH', url, patch);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(f.writes()).toBe(2);
    expect(f.store.getEndpoint('m', '10.0.0.1', 80)?.state).toBe('draining');
    expect({ ...f.store.getCluster('m'), ...f.store.getEndpoint('m', '10.0.0.1', 80) }).toMatchObject(patch);
  });

  it('changed on every attempt: 409 CONCURRENT_CHANGES after a bounded number of attempts, nothing written', async () => {
    const f = fixture(Infinity);
    const res = await call(f.app, 'PATCH', '/v1/clusters/m/endpoints/10.0.0.1/80', { weight: 9 });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ code: 'CONCURRENT_CHANGES' });
    expect(String(res.body.message)).toContain('endpoint 10.0.0.1:80 was changed by other writers');
    expect(f.writes()).toBe(PATCH_ATTEMPTS);
    expect(f.store.getEndpoint('m', '10.0.0.1', 80)?.weight).toBe(1);
  });

  it('with the client\'s own If-Match: 412 at once, not re-applied', async () => {
    const f = fixture(1);
    const { etag } = await call(f.app, 'GET', '/v1/clusters/m');
    const res = await call(f.app, 'PATCH', '/v1/clusters/m', { http2: true }, { 'if-match': String(etag) });
    expect(res.status).toBe(412);
    expect(f.writes()).toBe(1);
    expect(f.store.getCluster('m')?.http2).not.toBe(true);
  });
});
