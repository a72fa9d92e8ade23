/**
 * Writes a review found answered wrongly: text no UTF-8 encodes (an unpaired UTF-16 surrogate)
 * accepted and sent to Envoy, which refused the whole response; `localityWeighted` dropped by any
 * PATCH with a 200; a listener PATCH removing `routes` answered 500; an endpoint URL's port read
 * from any number spelling.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { AdminApp } from '../../src/admin/app.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
import { adminStoreApp } from '../support/admin-store-app.js';

const DOC = { clusters: [{ name: 'web', endpoints: [{ address: '10.0.0.1', port: 8080 }] }] };

const closers: (() => void)[] = [];
afterAll(() => {
  for (const close of closers) close();
});

function app(): AdminApp {
  const built = adminStoreApp('fulcrum-write-edges-', {
    seed: (store) => store.seedFromConfig(parseConfig(stringify(DOC), 'fulcrum.yaml').catalog),
    deps: () => ({ weights: new AdaptiveWeights(), reports: () => ({ accepted: 0, rejected: [] }) }),
  });
  closers.push(built.close);
  return built.app;
}

/** A raw JSON body, so an escape such as \ud800 reaches the server as the client wrote it. */
async function send(a: AdminApp, method: 'PUT' | 'PATCH' | 'POST', url: string, json: string) {
  const res = await a.inject({ method, url, payload: json, headers: { 'content-type': 'application/json' } });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
}

describe('unpaired UTF-16 surrogates are refused where they enter', () => {
  const a = app();
  const refusals: [string, string, string, string][] = [
    ['a route prefix', '/v1/listeners/u1', '{"port":10001,"routes":[{"domain":"*","prefix":"/x\\ud800","cluster":"web"}]}', '/body/routes/0/prefix'],
    ['a route domain', '/v1/listeners/u2', '{"port":10002,"routes":[{"domain":"a\\udc00.example","cluster":"web"}]}', '/body/routes/0/domain'],
    ['a gRPC health check service', '/v1/clusters/u3', '{"healthCheck":{"kind":"grpc","path":"svc\\udfff"},"http2":true,"endpoints":[]}', '/body/healthCheck/path'],
    ['an endpoint locality', '/v1/clusters/web/endpoints/10.0.0.9/80', '{"locality":{"zone":"\\ud800"}}', '/body/locality/zone'],
    ['a high surrogate followed by a letter', '/v1/clusters/web/endpoints/10.0.0.9/81', '{"locality":{"region":"eu\\ud83dx"}}', '/body/locality/region'],
    ['an object key', '/v1/clusters/u4', '{"\\udc00":1}', '/body/\udc00'],
  ];

  it.each(refusals)('in %s: 400 naming where it is, nothing stored', async (_what, url, json, path) => {
    const res = await send(a, 'PUT', url, json);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body).toMatchObject({ code: 'VALIDATION_FAILED', path });
    expect(String(res.body.message)).toMatch(/unpaired UTF-16 surrogate \(\\u[0-9a-f]{4} at character \d+\).*UTF-8/);
    const get = await a.inject({ method: 'GET', url });
    expect(get.statusCode).toBe(404);
  });

  it('a body nested 20,000 deep is walked without recursion: 400, not a crash', async () => {
    const json = `{"locality":${'['.repeat(20_000)}"\\ud800"${']'.repeat(20_000)}}`;
    const res = await send(a, 'PUT', '/v1/clusters/web/endpoints/10.0.0.9/82', json);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body).toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  it('a surrogate pair (an emoji) is text like any other', async () => {
    const put = await send(a, 'PUT', '/v1/listeners/ok', '{"port":10003,"routes":[{"domain":"*","prefix":"/\\ud83d\\ude00","cluster":"web"}]}');
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    expect((put.body.routes as { prefix: string }[])[0]?.prefix).toBe('/😀');
  });

  it('the config file too: a YAML escape names its path', () => {
    const yaml = 'clusters: [{name: web, endpoints: [{address: 10.0.0.1, port: 80}]}]\nlisteners:\n  - name: in\n    port: 10000\n    routes: [{domain: "a\\ud800.example", cluster: web}]\n';
    expect(() => parseConfig(yaml, 'f.yaml')).toThrow(/\/listeners\/0\/routes\/0\/domain: contains an unpaired UTF-16 surrogate \(\\ud800 at character 1\)/);
    const locality = 'clusters: [{name: web, endpoints: [{address: 10.0.0.1, port: 80, locality: {zone: "z\\U0000DC01"}}]}]\n';
    expect(() => parseConfig(locality, 'f.yaml')).toThrow(/\/clusters\/0\/endpoints\/0\/locality\/zone: contains an unpaired/);
  });
});

describe('localityWeighted survives what does not name it', () => {
  const a = app();
  const zones = { localityWeighted: true, endpoints: [{ address: '10.0.1.1', port: 80, locality: { zone: 'a' } }, { address: '10.0.1.2', port: 80, locality: { zone: 'b' } }] };

  it('is shown, and kept by a cluster PATCH, a policy PATCH and a GET→PUT round trip', async () => {
    const put = await send(a, 'PUT', '/v1/clusters/lw', JSON.stringify(zones));
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    expect(put.body.localityWeighted).toBe(true);
    expect((await send(a, 'PATCH', '/v1/clusters/lw', '{"connectTimeoutMs":2000}')).body).toMatchObject({ localityWeighted: true, connectTimeoutMs: 2000 });
    expect((await send(a, 'PATCH', '/v1/clusters/lw/policy', '{"weighting":{"policy":"ewma"}}')).status).toBe(200);
    const view = (await a.inject({ method: 'GET', url: '/v1/clusters/lw' })).json() as Record<string, unknown>;
    expect(view).toMatchObject({ localityWeighted: true, weighting: { policy: 'ewma' } });
    expect((await send(a, 'PUT', '/v1/clusters/lw', JSON.stringify(view))).body).toMatchObject({ localityWeighted: true });
    expect((await send(a, 'PATCH', '/v1/clusters/lw', '{"localityWeighted":null}')).body).not.toHaveProperty('localityWeighted');
  });

  it('is dropped with a policy PATCH to client-side WRR, which has no locality weighting (as the other blocks a policy cannot take)', async () => {
    expect((await send(a, 'PUT', '/v1/clusters/lw2', JSON.stringify(zones))).status).toBe(201);
    const res = await send(a, 'PATCH', '/v1/clusters/lw2/policy', '{"lbPolicy":"CLIENT_SIDE_WEIGHTED_ROUND_ROBIN","weighting":{"policy":"static"}}');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const view = (await a.inject({ method: 'GET', url: '/v1/clusters/lw2' })).json() as Record<string, unknown>;
    expect(view).toMatchObject({ lbPolicy: 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN' });
    expect(view).not.toHaveProperty('localityWeighted');
  });
});

describe('a listener PATCH that removes its routes', () => {
  it('is a 400 naming routes, not a 500', async () => {
    const a = app();
    expect((await send(a, 'PUT', '/v1/listeners/l3', '{"port":10004,"routes":[{"cluster":"web"}]}')).status).toBe(201);
    const res = await send(a, 'PATCH', '/v1/listeners/l3', '{"routes":null}');
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body).toMatchObject({ code: 'VALIDATION_FAILED', path: '/body/routes' });
    expect((await a.inject({ method: 'GET', url: '/v1/listeners/l3' })).json()).toMatchObject({ routes: [{ cluster: 'web' }] });
  });
});

describe('an endpoint URL names its port in decimal digits', () => {
  const a = app();
  const ready = a.inject({ method: 'PUT', url: '/v1/clusters/ports', payload: { endpoints: [] } });

  it.each(['1e3', '09001', '9001.0', '+9001', '0x2329', ' 9001'])('%s is a 400, nothing created', async (port) => {
    expect((await ready).statusCode).toBe(201);
    const res = await a.inject({ method: 'PUT', url: `/v1/clusters/ports/endpoints/127.0.0.1/${encodeURIComponent(port)}`, payload: { weight: 2 } });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json()).toMatchObject({ code: 'VALIDATION_FAILED', path: '/params/port' });
    expect((await a.inject({ method: 'GET', url: '/v1/clusters/ports' })).json()).toMatchObject({ endpoints: [] });
  });

  it('a decimal port works as before', async () => {
    expect((await ready).statusCode).toBe(201);
    const res = await a.inject({ method: 'PUT', url: '/v1/clusters/ports/endpoints/127.0.0.1/9001', payload: { weight: 2 } });
    expect(res.statusCode, res.body).toBe(201);
    expect((await a.inject({ method: 'GET', url: '/v1/clusters/ports/endpoints/127.0.0.1/9001' })).json()).toMatchObject({ port: 9001, weight: 2 });
  });
});
