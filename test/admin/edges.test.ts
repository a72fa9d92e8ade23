/**
 * The admin API's edges, where fastify answers before any route runs: one error shape with a
 * stable `code` for every refusal (router, body parser, validation, auth), 405 with `Allow` for a
 * wrong method, 415 for a body that is not JSON, and a slow body cut at the configured 30 s. And
 * the OpenAPI document saying so: every status each route can give, security where tokens apply.
 */
import { connect } from 'node:net';
import type { InjectOptions } from 'fastify';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { REQUEST_TIMEOUT_MS, type AdminApp } from '../../src/admin/app.js';
import type { AuthConfig } from '../../src/admin/auth.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
import { adminStoreApp } from '../support/admin-store-app.js';
import { scaled } from '../support/timing.js';

const ADMIN = 'edge-admin';
const READ = 'edge-read';
const DOC = { clusters: [{ name: 'web', endpoints: [{ address: '10.0.0.1', port: 8080 }] }] };

const closers: (() => void)[] = [];
afterAll(() => {
  for (const close of closers) close();
});

function app(auth?: AuthConfig): AdminApp {
  const built = adminStoreApp('fulcrum-edges-', {
    seed: (store) => store.seedFromConfig(parseConfig(stringify(DOC), 'fulcrum.yaml').catalog),
    deps: () => ({ weights: new AdaptiveWeights(), reports: () => ({ accepted: 0, rejected: [] }), ...(auth ? { auth } : {}) }),
  });
  closers.push(built.close);
  return built.app;
}

const once = <T>(make: () => T): (() => T) => {
  let made: T | undefined;
  return () => (made ??= make());
};

const TOKENS: AuthConfig = { adminTokens: [ADMIN], readTokens: [READ] };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const CLUSTER = { endpoints: [{ address: '10.0.0.2', port: 80 }] };

describe('one error shape, with a code', () => {
  const cases: [string, InjectOptions, number, string][] = [
    ['unknown path', { method: 'GET', url: '/nope' }, 404, 'NOT_FOUND'],
    ['undecodable URL', { method: 'GET', url: '/v1/clusters/%zz' }, 400, 'BAD_URL'],
    ['too long path parameter', { method: 'GET', url: `/v1/proxies/${'a'.repeat(5000)}` }, 414, 'URI_TOO_LONG'],
    ['schema violation', { method: 'GET', url: '/v1/audit?limit=0' }, 400, 'VALIDATION_FAILED'],
    ['unknown query parameter', { method: 'GET', url: '/healthz?x=1' }, 400, 'VALIDATION_FAILED'],
    ['broken JSON', { method: 'PUT', url: '/v1/clusters/a', payload: '{', headers: { 'content-type': 'application/json' } }, 400, 'INVALID_JSON'],
    ['empty JSON body', { method: 'PUT', url: '/v1/clusters/a', payload: '', headers: { 'content-type': 'application/json' } }, 400, 'EMPTY_BODY'],
    ['text/plain body', { method: 'PUT', url: '/v1/clusters/a', payload: 'x', headers: { 'content-type': 'text/plain' } }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['form body', { method: 'POST', url: '/v1/reports', payload: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['body too large', { method: 'PUT', url: '/v1/clusters/a', payload: `{"x":"${'y'.repeat(1_100_000)}"}`, headers: { 'content-type': 'application/json' } }, 413, 'BODY_TOO_LARGE'],
    ['a string where the body has a number', { method: 'PUT', url: '/v1/clusters/a', payload: { connectTimeoutMs: '5' } }, 400, 'VALIDATION_FAILED'],
    ['an endpoint without port in a cluster', { method: 'PUT', url: '/v1/clusters/a', payload: { endpoints: [{ address: '10.0.0.1' }] } }, 400, 'VALIDATION_FAILED'],
    ['an endpoint address that is no IP', { method: 'PUT', url: '/v1/clusters/web/endpoints/host.example/80', payload: {} }, 400, 'VALIDATION_FAILED'],
    ['a malformed If-Match', { method: 'DELETE', url: '/v1/clusters/web', headers: { 'if-match': 'abc' } }, 400, 'VALIDATION_FAILED'],
    ['a rule across fields', { method: 'PUT', url: '/v1/clusters/a', payload: { name: 'b' } }, 400, 'BAD_REQUEST'],
    ['a stale If-Match', { method: 'POST', url: '/v1/clusters/web/endpoints/10.0.0.1/8080/drain', headers: { 'if-match': '"999"' } }, 412, 'REVISION_MISMATCH'],
    ['a write to a resource the config file owns', { method: 'DELETE', url: '/v1/clusters/web' }, 409, 'OWNED_ELSEWHERE'],
  ];

  const shared = once(() => app());
  it.each(cases)('%s', async (_what, request, status, code) => {
    const res = await shared().inject(request);
    expect(res.statusCode, res.body).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual(expect.objectContaining({ error: expect.any(String), message: expect.any(String), code }));
  });

  it('drops `__proto__` and `constructor.prototype` keys anywhere in a JSON body; the rest is validated as always', async () => {
    const report = '{"samples":[{"cluster":"web","endpoint":"10.0.0.1:8080","cpu":0.5,"x":{"__proto__":{"polluted":1}}},{"__proto__":[],"cluster":"web","endpoint":"10.0.0.1:8080","cpu":0.4}]}';
    const res = await shared().inject({ method: 'POST', url: '/v1/reports', payload: report, headers: { 'content-type': 'application/json' } });
    // Not a 400 for the whole batch (what the samples' fields hold is then judged per sample).
    expect(res.statusCode, res.body).toBe(200);
    const cluster = await shared().inject({ method: 'PUT', url: '/v1/clusters/a', payload: '{"__proto__":{"x":1},"constructor":{"prototype":{"y":1}},"endpoints":[]}', headers: { 'content-type': 'application/json' } });
    expect(cluster.statusCode, cluster.body).toBe(201);
    expect(({} as Record<string, unknown>).x ?? ({} as Record<string, unknown>).y ?? ({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('an address that is no IP is said once: IPv4 or IPv6', async () => {
    const res = await shared().inject({ method: 'GET', url: '/v1/clusters/web/endpoints/host.example/80' });
    expect(res.json()).toMatchObject({ message: 'params/address must be ipv4 or ipv6', path: '/params/address', code: 'VALIDATION_FAILED' });
  });

  it('a value outside an enum names the allowed values, in a PUT, in a merge patch (where null is also allowed) and in a query', async () => {
    const cases: [InjectOptions, string, string][] = [
      [{ method: 'PUT', url: '/v1/clusters/a', payload: { lbPolicy: 'NOPE' } }, 'body/lbPolicy must be one of ROUND_ROBIN, LEAST_REQUEST, RING_HASH, MAGLEV, RANDOM, CLIENT_SIDE_WEIGHTED_ROUND_ROBIN', '/body/lbPolicy'],
      [{ method: 'PATCH', url: '/v1/clusters/web', payload: { healthCheck: { kind: 'udp' } } }, 'body/healthCheck/kind must be one of http, tcp, grpc', '/body/healthCheck/kind'],
      [{ method: 'PATCH', url: '/v1/clusters/web/policy', payload: { retryPolicy: { retryOn: ['5xx', 'often'] } } }, 'body/retryPolicy/retryOn/1 must be one of', '/body/retryPolicy/retryOn/1'],
      [{ method: 'PATCH', url: '/v1/clusters/web/endpoints/10.0.0.1/8080', payload: { state: 'asleep' } }, 'body/state must be one of active, draining, disabled', '/body/state'],
    ];
    for (const [request, message, path] of cases) {
      const res = await shared().inject(request);
      expect(res.statusCode, path).toBe(400);
      const body = res.json<{ message: string; path: string }>();
      expect(body.message.startsWith(message), body.message).toBe(true);
      expect(body.message).not.toMatch(/null|anyOf/);
      expect(body.path).toBe(path);
    }
  });

  it('a merge patch\'s wrong value inside a field that null would remove is said once, without the null alternative', async () => {
    const res = await shared().inject({ method: 'PATCH', url: '/v1/clusters/web/policy', payload: { weighting: { gains: { kp: 1000 } } } });
    expect(res.json()).toMatchObject({ message: 'body/weighting/gains/kp must be <= 100', path: '/body/weighting/gains/kp', code: 'VALIDATION_FAILED' });
  });

  it('a value that matches no branch of a union says what it may be (the constant by value), or what is wrong inside its own branch', async () => {
    const cases: [InjectOptions, string, string][] = [
      [{ method: 'PATCH', url: '/v1/clusters/web/policy', payload: { weighting: { policy: 'pid', setpoint: 'meen' } } }, 'body/weighting/setpoint must be "mean", number or null', '/body/weighting/setpoint'],
      [{ method: 'PATCH', url: '/v1/clusters/web/policy', payload: { weighting: { policy: 'pid', setpoint: true } } }, 'body/weighting/setpoint must be "mean", number or null', '/body/weighting/setpoint'],
      [{ method: 'PATCH', url: '/v1/clusters/web/policy', payload: { weighting: { policy: 'pid', setpoint: -1 } } }, 'body/weighting/setpoint must be >= 0', '/body/weighting/setpoint'],
      [{ method: 'PUT', url: '/v1/clusters/a', payload: { weighting: { policy: 'pid', setpoint: 'median' } } }, 'body/weighting/setpoint must be "mean" or number', '/body/weighting/setpoint'],
    ];
    for (const [request, message, path] of cases) {
      const res = await shared().inject(request);
      expect(res.statusCode, message).toBe(400);
      expect(res.json(), message).toMatchObject({ message, path, code: 'VALIDATION_FAILED' });
    }
  });

  it('401 and 403 carry UNAUTHENTICATED and FORBIDDEN, on the xDS views too', async () => {
    const a = app(TOKENS);
    for (const url of ['/v1/proxies', '/v1/proxies/x', '/v1/config_dump', '/v1/clusters']) {
      const res = await a.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(401);
      expect(res.json()).toMatchObject({ code: 'UNAUTHENTICATED' });
    }
    const forbidden = await a.inject({ method: 'DELETE', url: '/v1/clusters/web', headers: bearer(READ) });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json()).toMatchObject({ code: 'FORBIDDEN' });
    expect((await a.inject({ method: 'GET', url: '/v1/proxies', headers: bearer(READ) })).statusCode).toBe(200);
  });
});

describe('methods', () => {
  it.each(['TRACE', 'QUERY', 'PATCH', 'POST'] as const)('%s on a known path is 405 with Allow', async (method) => {
    const res = await app().inject({ method, url: '/v1/clusters' });
    expect(res.statusCode, res.body).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD, OPTIONS');
    expect(res.json()).toMatchObject({ code: 'METHOD_NOT_ALLOWED' });
  });

  it('lists every method of a parameterised path, and answers OPTIONS with 204 and Allow', async () => {
    const a = app();
    const res = await a.inject({ method: 'POST', url: '/v1/clusters/web' });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('DELETE, GET, HEAD, PATCH, PUT, OPTIONS');
    const options = await a.inject({ method: 'OPTIONS', url: '/v1/clusters/web/endpoints/10.0.0.1/8080/drain' });
    expect(options.statusCode).toBe(204);
    expect(options.headers.allow).toBe('POST, OPTIONS');
  });

  it('a body on a wrong method is still a 405, and an unknown path a 404', async () => {
    const a = app();
    const query = await a.inject({ method: 'QUERY', url: '/healthz', payload: 'x', headers: { 'content-type': 'text/plain' } });
    expect(query.statusCode).toBe(405);
    expect((await a.inject({ method: 'TRACE', url: '/v1/nothing' })).statusCode).toBe(404);
  });
});

describe('the OpenAPI document', () => {
  type Operation = { security?: unknown; responses: Record<string, unknown> };
  const operations = async (a: AdminApp): Promise<[string, Operation][]> => {
    const doc = (await a.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, Operation>> }>();
    return Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([m, op]) => [`${m.toUpperCase()} ${path}`, op] as [string, Operation]));
  };
  const WRITES = /^(PUT|DELETE|PATCH) |^POST .*\/(drain|disable|enable)$/;

  it('with tokens: every /v1 route declares bearer security and 401/403; every route its statuses', async () => {
    const ops = await operations(app(TOKENS));
    expect(ops.length).toBeGreaterThanOrEqual(25);
    for (const [name, op] of ops) {
      const statuses = Object.keys(op.responses);
      expect(statuses, name).toEqual(expect.arrayContaining(['400', '500']));
      if (name.includes(' /v1/')) {
        expect(op.security, name).toEqual([{ bearerAuth: [] }]);
        expect(statuses, name).toEqual(expect.arrayContaining(['401', '403']));
      } else expect(op.security, name).toBeUndefined();
      if (name.includes('{')) expect(statuses, name).toEqual(expect.arrayContaining(['404', '414']));
      if (/^(PUT|PATCH) |^POST \/v1\/reports/.test(name)) expect(statuses, name).toEqual(expect.arrayContaining(['413', '415']));
      if (WRITES.test(name)) expect(statuses, name).toEqual(expect.arrayContaining(['404', '412', '503']));
    }
  });

  it('without tokens: no route declares security, 401 or 403', async () => {
    for (const [name, op] of await operations(app())) {
      expect(op.security, name).toBeUndefined();
      expect(Object.keys(op.responses), name).not.toEqual(expect.arrayContaining(['401']));
      expect(Object.keys(op.responses), name).not.toEqual(expect.arrayContaining(['403']));
    }
  });

  it('an endpoint in a cluster body requires address and port', async () => {
    const doc = (await app().inject({ method: 'GET', url: '/openapi.json' })).json<{
      paths: Record<string, { put: { requestBody: { content: { 'application/json': { schema: { properties: { endpoints: { items: { required: string[] } } } } } } } } }>;
    }>();
    const item = doc.paths['/v1/clusters/{name}']?.put.requestBody.content['application/json'].schema.properties.endpoints.items;
    expect(item?.required).toEqual(expect.arrayContaining(['address', 'port']));
    const res = await app().inject({ method: 'PUT', url: '/v1/clusters/a', payload: CLUSTER });
    expect(res.statusCode).toBe(201);
  });
});

describe('a slow client', () => {
  let listening: AdminApp | undefined;
  afterEach(async () => {
    await listening?.close();
    listening = undefined;
  });

  it(`is cut with a 408 at the configured ${REQUEST_TIMEOUT_MS / 1000} s, not later`, async () => {
    listening = app();
    await listening.listen({ port: 0, host: '127.0.0.1' });
    const { port } = listening.server.address() as { port: number };
    const started = Date.now();
    const answer = await new Promise<{ at: number; text: string }>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let text = '';
      // One byte of a 100 kB body every 500 ms: never done, never idle.
      const trickle = setInterval(() => socket.write(' '), 500);
      socket.on('connect', () => socket.write('PUT /v1/clusters/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{'));
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.on('close', () => {
        clearInterval(trickle);
        resolve({ at: Date.now(), text });
      });
      socket.on('error', reject);
    });
    const seconds = (answer.at - started) / 1000;
    expect(answer.text).toMatch(/^HTTP\/1\.1 408 /);
    expect(JSON.parse(answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'REQUEST_TIMEOUT' });
    expect(seconds).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS / 1000 - 1);
    // Node checks once a second; a loaded machine adds a little.
    expect(seconds).toBeLessThan(REQUEST_TIMEOUT_MS / 1000 + scaled(3_000) / 1000);
  }, scaled(60_000) + REQUEST_TIMEOUT_MS);
});
