import { expect, it } from 'vitest';
import { sendRequests, startBackends } from '../support/backends.js';
import { describeEnvoy } from '../support/envoy.js';
import { useRig } from '../support/rig.js';
import { waitFor } from '../support/wait.js';

/**
 * Operators change policy through the admin API and a real Envoy follows: API-created
 * resources are served, a drain moves real traffic, a policy PATCH re-creates the cluster,
 * /v1/proxies reports SYNCED and NACKED (with Envoy's error), and everything survives a restart.
 */
describeEnvoy('admin API drives a real Envoy', () => {
  const TOKEN = 'admin-secret-token';
  // fulcrum starts empty: everything Envoy gets is created through the API, stored in the rig's data dir.
  const rig = useRig(() => ({
    name: 'admin-e2e',
    backends: () => startBackends(2),
    config: () => ({ clusters: [], listeners: [] }),
    fulcrum: { adminPort: 0, auth: { adminTokens: [TOKEN], readTokens: [] } },
    // Metadata as sidecars carry it: shown by /v1/proxies (its first request also lists Envoy's 500-odd extensions).
    envoy: { patchBootstrap: (b: Record<string, unknown>) => void ((b.node as Record<string, unknown>).metadata = { zone: 'z1', replicas: 3, canary: true, labels: { app: 'shop' }, ports: [80, 'http'] }) },
  }));

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(`http://127.0.0.1:${rig().fulcrum.adminPort}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  it('serves a cluster and listener created through the API; traffic flows 1:1', async () => {
    const { backends, envoy, listenerPort, url } = rig();
    const [a, b] = backends.list;
    const cluster = await api('PUT', '/v1/clusters/shop', {
      name: 'shop',
      endpoints: [{ address: '127.0.0.1', port: a?.port }, { address: '127.0.0.1', port: b?.port }],
    });
    expect(cluster.status).toBe(201);
    const listener = await api('PUT', '/v1/listeners/front', { name: 'front', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'shop' }] });
    expect(listener.status).toBe(201);
    await envoy.waitForListener('front', 20_000);
    await waitFor(async () => ((await envoy.clusterStatuses()).shop?.hosts.length ?? 0) === 2, { what: 'shop hosts in Envoy' });
    const r = await sendRequests(url, 400, { concurrency: 4 });
    expect(r.errors).toBe(0);
    expect(Math.abs((r.distribution['0'] ?? 0) / 400 - 0.5)).toBeLessThan(0.05);
  });

  it('draining an endpoint through the API moves all new traffic off it', async () => {
    const { backends, envoy, url } = rig();
    const b = backends.list[1];
    const res = await api('POST', `/v1/clusters/shop/endpoints/127.0.0.1/${b?.port}/drain`);
    expect(res.status).toBe(200);
    await waitFor(
      async () => ((await envoy.clusterStatuses()).shop?.hosts ?? []).find((h) => h.address === `127.0.0.1:${b?.port}`)?.healthy === false,
      { what: 'endpoint draining in Envoy' },
    );
    const r = await sendRequests(url, 200, { concurrency: 4 });
    expect(r.errors).toBe(0);
    expect(r.distribution['1'] ?? 0).toBe(0);
  });

  it('a policy PATCH (ROUND_ROBIN → RING_HASH) reaches Envoy and traffic keeps flowing', async () => {
    const { envoy, url } = rig();
    const before = await api('GET', '/v1/clusters/shop/policy');
    expect(before.status).toBe(200);
    const patched = await api('PATCH', '/v1/clusters/shop/policy', { lbPolicy: 'RING_HASH' });
    expect(patched.status).toBe(200);
    await waitFor(async () => JSON.stringify(await envoy.configDump()).includes('"lb_policy":"RING_HASH"'), { what: 'RING_HASH in Envoy' });
    const r = await sendRequests(url, 100, { concurrency: 4 });
    expect(r.errors).toBe(0);
    const audit = await api('GET', '/v1/audit?limit=10');
    expect(JSON.stringify(audit.json)).toContain('RING_HASH');
  });

  it('clusters created beside it and deleted again reach Envoy, and traffic follows a route moved to one', async () => {
    const { backends, envoy, listenerPort, url } = rig();
    const [a, b] = backends.list;
    const front = (cluster: string) => api('PUT', '/v1/listeners/front', { name: 'front', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster }] });
    // Named to sort before and after shop: each is inserted into the catalog's order, not appended.
    for (const [name, backend] of [['alpha', a], ['zulu', b]] as const) {
      expect((await api('PUT', `/v1/clusters/${name}`, { name, endpoints: [{ address: '127.0.0.1', port: backend?.port }] })).status).toBe(201);
    }
    await waitFor(
      async () => {
        const s = await envoy.clusterStatuses();
        return s.alpha?.hosts.length === 1 && s.zulu?.hosts.length === 1 && s.shop?.hosts.length === 2;
      },
      { what: 'alpha and zulu beside shop in Envoy' },
    );
    expect((await front('zulu')).status).toBe(200);
    await waitFor(async () => ((await sendRequests(url, 20)).distribution['1'] ?? 0) === 20, { what: 'traffic on zulu' });
    expect((await api('DELETE', '/v1/clusters/alpha')).status).toBe(200);
    await waitFor(async () => (await envoy.clusterStatuses()).alpha === undefined, { what: 'alpha gone from Envoy' });
    const r = await sendRequests(url, 100, { concurrency: 4 });
    expect(r.errors).toBe(0);
    expect(r.distribution['1']).toBe(100);
    // As it was, for the tests after this one.
    expect((await front('shop')).status).toBe(200);
    expect((await api('DELETE', '/v1/clusters/zulu')).status).toBe(200);
    await waitFor(async () => (await envoy.clusterStatuses()).zulu === undefined, { what: 'zulu gone from Envoy' });
    const back = await sendRequests(url, 50, { concurrency: 4 });
    expect(back.errors).toBe(0);
    expect(back.distribution['0']).toBe(50);
  });

  // The review's finding: an auto cluster with session affinity became RING_HASH through the API,
  // but no route hashed on its key, so Envoy picked a random backend for every request.
  it('an auto cluster with session affinity, created through the API: requests with one header value land on one backend', async () => {
    const { backends, envoy, listenerPort, url } = rig();
    const [a, b] = backends.list;
    const sticky = { weighting: { policy: 'auto', traits: { sessionAffinity: { header: 'x-user' } } }, endpoints: [{ address: '127.0.0.1', port: a?.port }, { address: '127.0.0.1', port: b?.port }] };
    expect((await api('PUT', '/v1/clusters/sticky', sticky)).json).toMatchObject({ lbPolicy: 'RING_HASH' });
    const front = (cluster: string) => api('PUT', '/v1/listeners/front', { name: 'front', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster }] });
    expect((await front('sticky')).status).toBe(200);
    await waitFor(async () => JSON.stringify(await envoy.configDump()).includes('"header_name":"x-user"'), { what: 'the hash policy in Envoy' });
    await waitFor(async () => ((await envoy.clusterStatuses()).sticky?.hosts.length ?? 0) === 2, { what: 'sticky hosts in Envoy' });
    const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
    const landed = await Promise.all(users.map(async (user) => (await sendRequests(url, 20, { concurrency: 4, headers: { 'x-user': user } })).distribution));
    // Each user on one backend (20 requests: a random pick would split them), the users on both.
    expect(landed.map((d) => Object.keys(d).length), JSON.stringify(landed)).toEqual(users.map(() => 1));
    expect(new Set(landed.flatMap((d) => Object.keys(d))).size, JSON.stringify(landed)).toBe(2);
    // As it was, for the tests after this one.
    expect((await front('shop')).status).toBe(200);
    expect((await api('DELETE', '/v1/clusters/sticky')).status).toBe(200);
    await waitFor(async () => (await envoy.clusterStatuses()).sticky === undefined, { what: 'sticky gone from Envoy' });
  });

  it('/v1/proxies shows the proxy\'s metadata and Envoy\'s version', async () => {
    const p = await waitFor(async () => {
      const res = await api('GET', '/v1/proxies/admin-e2e');
      return res.status === 200 && res.json;
    }, { what: 'the proxy listed' });
    const stream = (p.streams as Record<string, unknown>[] | undefined)?.[0] ?? p;
    expect(stream.metadata).toEqual({ zone: 'z1', replicas: 3, canary: true, labels: { app: 'shop' }, ports: [80, 'http'] });
    expect(stream.userAgent).toMatch(/^envoy\/1\.40\.\d+$/);
  });

  it('/v1/proxies shows the proxy SYNCED, and NACKED with Envoy\'s error for a listener it cannot bind', async () => {
    const { backends, url } = rig();
    await waitFor(
      async () => {
        const p = await api('GET', '/v1/proxies/admin-e2e');
        return p.status === 200 && JSON.stringify(p.json).includes('SYNCED') && !JSON.stringify(p.json).includes('NACKED');
      },
      { what: 'proxy SYNCED' },
    );
    const taken = backends.list[0]?.port;
    const put = await api('PUT', '/v1/listeners/clash', { name: 'clash', address: '127.0.0.1', port: taken, routes: [{ prefix: '/', cluster: 'shop' }] });
    expect(put.status).toBe(201);
    const nacked = await waitFor(
      async () => {
        const p = await api('GET', '/v1/proxies/admin-e2e');
        const text = JSON.stringify(p.json);
        return text.includes('NACKED') && text;
      },
      { what: 'proxy NACKED' },
    );
    expect(nacked).toMatch(/Address already in use|cannot bind/);
    expect((await api('DELETE', '/v1/listeners/clash')).status).toBe(200);
    // Other resources kept working throughout.
    expect((await sendRequests(url, 50)).errors).toBe(0);
  });

  it('API changes are durable: after a restart the same cluster and listener are served', async () => {
    const { url } = rig();
    await rig().restartFulcrum();
    const got = await api('GET', '/v1/clusters/shop');
    expect(got.status).toBe(200);
    expect(JSON.stringify(got.json)).toContain('RING_HASH');
    await waitFor(
      async () => {
        const p = await api('GET', '/v1/proxies/admin-e2e');
        return p.status === 200 && JSON.stringify(p.json).includes('SYNCED');
      },
      { what: 'Envoy reconnected to the restarted fulcrum', timeoutMs: 20_000 },
    );
    expect((await sendRequests(url, 50)).errors).toBe(0);
  });

  it('refuses writes without a token', async () => {
    const res = await fetch(`http://127.0.0.1:${rig().fulcrum.adminPort}/v1/clusters/x`, { method: 'DELETE' });
    expect(res.status).toBe(401);
  });
}, { timeout: 60_000 });
