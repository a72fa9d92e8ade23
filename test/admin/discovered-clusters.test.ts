/**
 * Kubernetes-discovered clusters through the admin API (app.inject over a real SQLite store):
 * listed and read with owner kubernetes, their spec read-only (409 DISCOVERED_READ_ONLY), their
 * endpoints drained/disabled/enabled and their policy changed as overrides, with ETags, If-Match
 * and audit, and the overrides listed and deleted under /v1/overrides.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AdminApp } from '../../src/admin/app.js';
import { DiscoveredView, DiscoveryAwareStore } from '../../src/catalog/discovered-clusters.js';
import type { Store } from '../../src/catalog/store/index.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
import { cluster, endpoint, listener } from '../catalog/helpers.js';
import { adminStoreApp } from '../support/admin-store-app.js';
import { indexOverrides } from '../../src/catalog/discovered-overrides.js';
import { withKubernetes } from '../../src/sources/kubernetes/catalog-merge.js';
import { envoyType, TYPE } from '../../src/xds/envoy-api.js';
import { DEFAULT_GROUP } from '../../src/xds/resource-set.js';
import { translate } from '../../src/xds/translator.js';

const RouteConfiguration = envoyType('envoy.config.route.v3.RouteConfiguration');

const NAME = 'ns/web:http';
const URL_NAME = encodeURIComponent(NAME);
const EP_URL = `/v1/clusters/${URL_NAME}/endpoints/10.1.0.1/8080`;
const DISCOVERED = cluster(NAME, [endpoint('10.1.0.1'), endpoint('10.1.0.2')], { lbPolicy: 'RING_HASH', ringHash: { virtualNodesPerHost: 64, hashFunction: 'XX_HASH' } });

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function fixture(): { app: AdminApp; store: Store; view: DiscoveredView } {
  const view = new DiscoveredView();
  view.set([DISCOVERED]);
  const { app, store, close } = adminStoreApp('fulcrum-discovered-', {
    deps: (s) => ({ store: new DiscoveryAwareStore(s, view), weights: new AdaptiveWeights() }),
  });
  cleanups.push(close);
  return { app, store, view };
}

type Method = 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
async function call(app: AdminApp, method: Method, url: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({ method, url, headers, ...(body !== undefined ? { payload: body as object } : {}) });
  return { status: res.statusCode, etag: res.headers.etag, body: JSON.parse(res.body || '{}') as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

describe('Kubernetes-discovered clusters in the admin API', () => {
  it('are listed and read like other clusters, with owner kubernetes and revision 0 until overridden', async () => {
    const { app } = fixture();
    const list = await call(app, 'GET', '/v1/clusters');
    expect(list.body.clusters.map((c: { name: string; owner: string }) => [c.name, c.owner])).toEqual([[NAME, 'kubernetes']]);
    const one = await call(app, 'GET', `/v1/clusters/${URL_NAME}`);
    expect(one.status).toBe(200);
    expect(one.etag).toBe('"0"');
    expect(one.body).toMatchObject({ name: NAME, owner: 'kubernetes', lbPolicy: 'RING_HASH', revision: 0 });
    expect(one.body.endpoints.map((e: { address: string; state: string }) => [e.address, e.state])).toEqual([['10.1.0.1', 'active'], ['10.1.0.2', 'active']]);
    expect((await call(app, 'GET', `/v1/clusters/${URL_NAME}/endpoints`)).body.count).toBe(2);
  });

  it('refuse PUT, PATCH and DELETE of the spec and of endpoints with 409 DISCOVERED_READ_ONLY saying what can be changed', async () => {
    const { app, store } = fixture();
    const writes: [Method, string, unknown][] = [
      ['PUT', `/v1/clusters/${URL_NAME}`, { endpoints: [] }],
      ['PATCH', `/v1/clusters/${URL_NAME}`, { http2: true }],
      ['DELETE', `/v1/clusters/${URL_NAME}`, undefined],
      ['PUT', EP_URL, { weight: 3 }],
      ['DELETE', EP_URL, undefined],
    ];
    for (const [method, url, body] of writes) {
      const res = await call(app, method, url, body);
      expect([method, url, res.status, res.body.code]).toEqual([method, url, 409, 'DISCOVERED_READ_ONLY']);
      expect(res.body.message).toMatch(/Kubernetes Service.*annotations.*drain.*policy/);
    }
    expect(store.listClusters()).toEqual([]);
    expect(store.audit()).toEqual([]);
  });

  it('drain, disable and enable endpoints as overrides, with ETags, If-Match and audit', async () => {
    const { app, store } = fixture();
    expect((await call(app, 'POST', `${EP_URL}/drain`, undefined, { 'if-match': '"7"' })).status).toBe(412);
    const drained = await call(app, 'POST', `${EP_URL}/drain`, undefined, { 'if-match': '"0"' });
    expect(drained.status).toBe(200);
    expect(drained.body).toMatchObject({ state: 'draining', publishedHealth: 'DRAINING' });
    expect(drained.etag).toBe(`"${drained.body.revision}"`);
    expect(store.getOverride(`${NAME}/10.1.0.1:8080`)?.value).toEqual({ state: 'draining' });
    expect((await call(app, 'GET', EP_URL)).etag).toBe(drained.etag);
    const weights = await call(app, 'GET', `/v1/weights/${URL_NAME}`);
    expect(weights.body.endpoints.map((e: { endpoint: string; health: string }) => [e.endpoint, e.health])).toEqual([['10.1.0.1:8080', 'DRAINING'], ['10.1.0.2:8080', 'HEALTHY']]);

    const disabled = await call(app, 'POST', `${EP_URL}/disable`, undefined, { 'if-match': drained.etag ?? '' });
    expect(disabled.body.state).toBe('disabled');
    expect(disabled.body.publishedHealth).toBeUndefined();
    const enabled = await call(app, 'POST', `${EP_URL}/enable`);
    expect(enabled.body).toMatchObject({ state: 'active', publishedHealth: 'HEALTHY' });
    expect(store.audit().map((a) => [a.kind, a.action, a.name])).toEqual([
      ['override', 'update', `${NAME}/10.1.0.1:8080`],
      ['override', 'update', `${NAME}/10.1.0.1:8080`],
      ['override', 'create', `${NAME}/10.1.0.1:8080`],
    ]);
    // Enabling an endpoint nothing overrides stores nothing.
    expect((await call(app, 'POST', `/v1/clusters/${URL_NAME}/endpoints/10.1.0.2/8080/enable`)).body.revision).toBe(0);
    expect((await call(app, 'POST', `/v1/clusters/${URL_NAME}/endpoints/10.9.9.9/8080/drain`)).status).toBe(404);
  });

  it('PATCH /policy stores a policy override that replaces the Service\'s policy block', async () => {
    const { app, store } = fixture();
    const res = await call(app, 'PATCH', `/v1/clusters/${URL_NAME}/policy`, { lbPolicy: 'LEAST_REQUEST', weighting: { policy: 'pid', setpoint: 0.6 } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ cluster: NAME, lbPolicy: 'LEAST_REQUEST', weighting: { policy: 'pid', setpoint: 0.6 }, owner: 'kubernetes' });
    expect(res.body.ringHash).toBeUndefined();
    const got = await call(app, 'GET', `/v1/clusters/${URL_NAME}`);
    expect(got.body).toMatchObject({ lbPolicy: 'LEAST_REQUEST', owner: 'kubernetes', revision: res.body.revision });
    expect(store.getOverride(NAME)?.value.policy).toMatchObject({ lbPolicy: 'LEAST_REQUEST', weighting: { kind: 'pid', setpoint: 0.6 } });
    const stale = await call(app, 'PATCH', `/v1/clusters/${URL_NAME}/policy`, { lbPolicy: 'RANDOM' }, { 'if-match': '"0"' });
    expect(stale.status).toBe(412);
    const bad = await call(app, 'PATCH', `/v1/clusters/${URL_NAME}/policy`, { weighting: { policy: 'pid', setpoint: 7 } });
    expect(bad.status).toBe(400);
    // The Service owns its protection settings: a patch of them is refused, not answered 200 and dropped.
    const before = store.getOverride(NAME)?.revision;
    for (const patch of [{ outlierDetection: { consecutive5xx: 3 } }, { retryPolicy: null }, { weighting: { setpoint: 0.5 }, healthCheck: null }]) {
      const owned = await call(app, 'PATCH', `/v1/clusters/${URL_NAME}/policy`, patch);
      expect(owned.status, JSON.stringify(patch)).toBe(409);
      expect(owned.body.path).toBe(`/body/${Object.keys(patch).find((k) => k !== 'weighting')}`);
      expect([owned.body.code, owned.body.message]).toEqual(['DISCOVERED_READ_ONLY', expect.stringMatching(/owned by its Kubernetes Service/)]);
    }
    expect(store.getOverride(NAME)?.revision).toBe(before);
  });

  // An auto policy with session affinity resolves to RING_HASH plus the hash policy of the routes to
  // the cluster (Cluster.routeHashPolicy); the override kept the first and dropped the second, so
  // Envoy hashed every request on nothing (a random backend each time).
  it('an auto policy with session affinity on a discovered cluster gives the routes to it its hash policy, kept across later PATCHes', async () => {
    const { app, store } = fixture();
    const front = listener('front', NAME);
    const routeHashing = (): unknown[] | undefined => {
      const catalog = withKubernetes({ clusters: [], listeners: [front], nodeGroups: [] }, { clusters: [DISCOVERED], hashPolicies: new Map(), warnings: [] }, indexOverrides(store.listOverrides()));
      const served = translate(catalog).get(DEFAULT_GROUP)?.get(TYPE.route)?.get('front');
      const decoded = RouteConfiguration.toObject(RouteConfiguration.decode(served?.bytes ?? new Uint8Array())) as { virtual_hosts: { routes: { route: { hash_policy?: unknown } }[] }[] };
      return decoded.virtual_hosts[0]?.routes.map((r) => r.route.hash_policy);
    };
    expect(routeHashing()).toEqual([undefined]);
    const auto = await call(app, 'PATCH', `/v1/clusters/${URL_NAME}/policy`, { weighting: { policy: 'auto', traits: { sessionAffinity: { header: 'x-user' } } } });
    expect(auto.body).toMatchObject({ lbPolicy: 'RING_HASH', owner: 'kubernetes' });
    const byUser = [[{ header: { header_name: 'x-user' } }]];
    expect(routeHashing()).toEqual(byUser);
    // What a later PATCH merges into is the resolved policy, without auto: the affinity stays.
    expect((await call(app, 'PATCH', `/v1/clusters/${URL_NAME}/policy`, { safety: { maxStepRatio: 1.5 } })).status).toBe(200);
    expect(routeHashing()).toEqual(byUser);
    // A move off hashing takes it away.
    expect((await call(app, 'PATCH', `/v1/clusters/${URL_NAME}/policy`, { lbPolicy: 'ROUND_ROBIN' })).status).toBe(200);
    expect(routeHashing()).toEqual([undefined]);
  });

  it('/v1/overrides lists overrides with whether they apply now, keeps them while the Service is gone, and deletes them', async () => {
    const { app, view } = fixture();
    await call(app, 'POST', `${EP_URL}/drain`);
    await call(app, 'PATCH', `/v1/clusters/${URL_NAME}/policy`, { lbPolicy: 'RANDOM' });
    const list = await call(app, 'GET', '/v1/overrides');
    expect(list.body.overrides.map((o: Record<string, unknown>) => [o.name, o.state ?? (o.policy as { lbPolicy: string }).lbPolicy, o.applies])).toEqual([
      [NAME, 'RANDOM', true],
      [`${NAME}/10.1.0.1:8080`, 'draining', true],
    ]);
    view.set([]);
    expect((await call(app, 'GET', `/v1/clusters/${URL_NAME}`)).status).toBe(404);
    expect((await call(app, 'GET', '/v1/overrides')).body.overrides.map((o: { applies: boolean }) => o.applies)).toEqual([false, false]);
    view.set([DISCOVERED]);
    expect((await call(app, 'GET', EP_URL)).body.state).toBe('draining');

    const name = encodeURIComponent(`${NAME}/10.1.0.1:8080`);
    const one = await call(app, 'GET', `/v1/overrides/${name}`);
    expect((await call(app, 'DELETE', `/v1/overrides/${name}`, undefined, { 'if-match': '"999"' })).status).toBe(412);
    const deleted = await call(app, 'DELETE', `/v1/overrides/${name}`, undefined, { 'if-match': one.etag ?? '' });
    expect(deleted.body).toMatchObject({ deleted: `${NAME}/10.1.0.1:8080` });
    expect((await call(app, 'GET', EP_URL)).body).toMatchObject({ state: 'active', revision: 0 });
    expect((await call(app, 'DELETE', `/v1/overrides/${name}`)).status).toBe(404);
  });

  it('reads the audit log trimmed, as the store does: a large entry on a page is its summary, not its endpoint list', async () => {
    const { app, store } = fixture();
    const endpoints = Array.from({ length: 2000 }, (_, i) => endpoint(`10.2.${i >> 8}.${i & 255}`));
    await store.putCluster(cluster('big', endpoints), { actor: 'api', owner: 'api' });
    const wrapped = new DiscoveryAwareStore(store, new DiscoveredView());
    const [trimmed] = wrapped.audit(1, undefined, { trimOver: 1024 });
    expect(trimmed?.trimmed?.endpoints).toEqual({ before: null, after: 2000 });
    expect(trimmed).toEqual(store.audit(1, undefined, { trimOver: 1024 })[0]);
    const page = await call(app, 'GET', '/v1/audit?limit=1');
    // The summary's size is the stored record's (the store trimmed it), and "changed" lists nothing on a create.
    expect(page.body.entries[0]).toMatchObject({ name: 'big', summarized: { bytes: trimmed?.trimmed?.bytes, endpoints: { before: 0, after: 2000 } } });
  });
});
