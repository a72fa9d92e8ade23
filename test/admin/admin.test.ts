/**
 * The admin HTTP API: routes and their schemas through `app.inject()` against a hand-driven proxy
 * registry, then a real fulcrum (xDS on loopback, admin over real HTTP) with a raw ADS client whose
 * ACKs and NACKs must show up in /v1/proxies, /v1/config_dump and /metrics. Last, a fuzz test: no
 * request, however malformed, gets a 5xx.
 */
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { buildAdminApp, type AdminApp, type AdminDeps } from '../../src/admin/app.js';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { XdsCache } from '../../src/xds/cache.js';
import { PUSH_ORDER, TYPE } from '../../src/xds/envoy-api.js';
import fastJson from 'fast-json-stringify';
import { STREAMED_DUMP_OVER } from '../../src/admin/config-dump-stream.js';
import { ConfigDump } from '../../src/admin/schemas.js';
import { serializerSchema } from '../../src/admin/serializer-schema.js';
import { configDumpParts, wholeConfigDump } from '../../src/admin/views.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';
import { translate } from '../../src/xds/translator.js';
import { fulcrumCommand } from '../support/fulcrum-command.js';
import { waitFor } from '../support/wait.js';
import { ADS, CDS, XdsClient, type SotwStream } from '../support/xds-client.js';
import { startLoopbackFulcrum } from '../support/loopback-fulcrum.js';

// ── fixtures ─────────────────────────────────────────────────────────────────────────────────────

interface Doc {
  clusters: { name: string; endpoints: { address: string; port: number; weight?: number }[] }[];
  listeners?: unknown[];
  nodeGroups?: unknown[];
}

function baseDoc(): Doc {
  return {
    clusters: [
      { name: 'api', endpoints: [{ address: '10.0.0.2', port: 8080 }] },
      { name: 'web', endpoints: [{ address: '10.0.0.1', port: 8080, weight: 2 }] },
    ],
    listeners: [{ name: 'ingress', address: '127.0.0.1', port: 10000, routes: [{ prefix: '/', cluster: 'web' }] }],
    nodeGroups: [{ nodeCluster: 'edge', listeners: ['ingress'] }],
  };
}

/** Collects pino's JSON lines, to assert that nothing was logged at error level. */
function captureLog(): { log: pino.Logger; errors: () => Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'warn' }, sink), errors: () => lines.filter((l) => Number(l.level) >= 50) };
}

interface Fixture {
  app: AdminApp;
  registry: ProxyRegistry;
  cache: XdsCache;
  errors: () => Record<string, unknown>[];
}

/** An admin app over a real cache and a registry driven by hand (no gRPC). */
function fixture(overrides: Partial<AdminDeps> = {}): Fixture {
  const cache = new XdsCache();
  cache.update(translate(parseConfig(stringify(baseDoc()), 'test.yaml').catalog));
  let t = 1_700_000_000_000;
  const registry = new ProxyRegistry(() => (t += 10));
  const metrics = new Metrics({ processMetrics: false });
  const { log, errors } = captureLog();
  const app = buildAdminApp({ registry, cache, metrics, log, version: '9.9.9', ready: () => ({ ready: true, reasons: [] }), ...overrides });
  return { app, registry, cache, errors };
}

/** Connects a stream and plays a CDS push (ACKed) and an EDS push (NACKed) through the registry. */
function playProxy(f: Fixture, nodeId = 'sidecar-1', nodeCluster = 'default'): void {
  const r = f.registry.connect(7, { id: nodeId, cluster: nodeCluster, metadata: { pod: 'web-0', zone: { name: 'a' } }, userAgent: 'envoy' }, 'sotw', 'ADS', 'ipv4:127.0.0.1:5555');
  const snap = f.cache.snapshotFor(nodeCluster);
  const cds = new Map([...snap.resources(TYPE.cluster)].map(([n, v]) => [n, v.version]));
  f.registry.sent(r, TYPE.cluster, 'v1', 'n1', cds, 'state');
  f.registry.acked(r, TYPE.cluster, 'n1', 'v1');
  f.registry.sent(r, TYPE.endpoint, 'v2', 'n2', new Map([['web', 'x']]), 'state');
  f.registry.nacked(r, TYPE.endpoint, { nonce: 'n2', version: 'v2', keptVersion: '', message: 'endpoint weight out of range' });
  f.registry.sent(r, TYPE.listener, 'v3', 'n3', new Map(), 'state');
}

const json = <T = Record<string, unknown>>(body: string): T => JSON.parse(body) as T;

// ── routes, through inject ───────────────────────────────────────────────────────────────────────

describe('routes', () => {
  it('GET /healthz is 200 {status:"ok"}', async () => {
    const { app } = fixture();
    const res = await app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(json(res.body)).toEqual({ status: 'ok' });
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });

  it('GET /readyz is 200 when ready and 503 with the reasons when not', async () => {
    expect((await fixture().app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    const { app } = fixture({ ready: () => ({ ready: false, reasons: ['xDS gRPC server not serving'] }) });
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(json(res.body)).toEqual({ ready: false, reasons: ['xDS gRPC server not serving'] });
  });

  it('GET /v1/proxies lists every stream with per-type state, versions and the NACK text', async () => {
    const f = fixture();
    expect(json((await f.app.inject({ method: 'GET', url: '/v1/proxies' })).body)).toEqual({ count: 0, proxies: [] });
    playProxy(f);
    const res = await f.app.inject({ method: 'GET', url: '/v1/proxies' });
    expect(res.statusCode).toBe(200);
    const body = json<{ count: number; proxies: Record<string, unknown>[] }>(res.body);
    expect(body.count).toBe(1);
    expect(body.proxies[0]).toMatchObject({
      nodeId: 'sidecar-1',
      nodeCluster: 'default',
      metadata: { pod: 'web-0', zone: { name: 'a' } },
      userAgent: 'envoy',
      streamId: 7,
      protocol: 'sotw',
      service: 'ADS',
      peer: 'ipv4:127.0.0.1:5555',
      connectedSince: new Date(1_700_000_000_010).toISOString(),
      types: {
        CDS: { state: 'SYNCED', sentVersion: 'v1', ackedVersion: 'v1', resources: 2, responses: 1, nacks: 0 },
        EDS: {
          state: 'NACKED',
          sentVersion: 'v2',
          nacks: 1,
          lastNack: { version: 'v2', keptVersion: '', message: 'endpoint weight out of range' },
        },
        LDS: { state: 'STALE', sentVersion: 'v3' },
        RDS: { state: 'NOT_SENT', resources: 0, responses: 0, nacks: 0 },
      },
    });
  });

  it('GET /v1/proxies/{nodeId} returns the node\'s streams, 404 for an unknown node, 400 for a too long id', async () => {
    const f = fixture();
    playProxy(f, 'ns/pod-1~10.0.0.1');
    const res = await f.app.inject({ method: 'GET', url: `/v1/proxies/${encodeURIComponent('ns/pod-1~10.0.0.1')}` });
    expect(res.statusCode).toBe(200);
    expect(json(res.body)).toMatchObject({ nodeId: 'ns/pod-1~10.0.0.1', streams: [{ streamId: 7, types: { CDS: { state: 'SYNCED' } } }] });

    const missing = await f.app.inject({ method: 'GET', url: '/v1/proxies/nobody' });
    expect(missing.statusCode).toBe(404);
    expect(json(missing.body)).toEqual({ error: 'Not Found', message: 'no connected proxy has node id "nobody"', code: 'NOT_FOUND' });

    const long = await f.app.inject({ method: 'GET', url: `/v1/proxies/${'n'.repeat(513)}` });
    expect(long.statusCode).toBe(400);
    expect(json(long.body)).toMatchObject({ error: 'Bad Request', path: '/params/nodeId', message: expect.stringContaining('512') });
  });

  it('GET /v1/config_dump decodes the default group without node, and the node\'s group with it', async () => {
    const f = fixture();
    const all = await f.app.inject({ method: 'GET', url: '/v1/config_dump' });
    expect(all.statusCode).toBe(200);
    const dump = json<{ group: string; types: Record<string, { typeUrl: string; resources: { name: string; version: string; resource: Record<string, unknown> }[] }> }>(all.body);
    expect(dump.group).toBe('*');
    expect(Object.keys(dump.types)).toEqual(['CDS', 'EDS', 'LDS', 'RDS']);
    expect(dump.types.CDS?.typeUrl).toBe(TYPE.cluster);
    expect(dump.types.CDS?.resources.map((r) => r.name)).toEqual(['api', 'web']);
    expect(dump.types.CDS?.resources[0]?.version).toMatch(/^[\w-]{16}$/);
    expect(dump.types.CDS?.resources[1]?.resource).toMatchObject({ name: 'web', type: 'EDS', lb_policy: 'ROUND_ROBIN' });
    const eds = dump.types.EDS?.resources.find((r) => r.name === 'web')?.resource as { endpoints: { lb_endpoints: { load_balancing_weight: { value: number } }[] }[] };
    expect(eds.endpoints[0]?.lb_endpoints[0]?.load_balancing_weight.value).toBe(2);
    // Any fields are expanded with their @type, not left as bytes.
    expect(JSON.stringify(dump.types.LDS)).toContain('"@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"');

    playProxy(f, 'edge-1', 'edge');
    const node = await f.app.inject({ method: 'GET', url: '/v1/config_dump?node=edge-1&type=CDS' });
    expect(node.statusCode).toBe(200);
    const nodeDump = json<{ group: string; node: unknown; types: Record<string, { state: string; sentVersion: string; resources: { name: string; version: string; sentVersion?: string }[] }> }>(node.body);
    expect(nodeDump.group).toBe('edge');
    expect(nodeDump.node).toEqual({ id: 'edge-1', cluster: 'edge' });
    expect(Object.keys(nodeDump.types)).toEqual(['CDS']);
    expect(nodeDump.types.CDS).toMatchObject({ state: 'SYNCED', sentVersion: 'v1' });
    // The edge group holds only what its listener routes to.
    expect(nodeDump.types.CDS?.resources.map((r) => r.name)).toEqual(['web']);
    expect(nodeDump.types.CDS?.resources[0]?.sentVersion).toBe(nodeDump.types.CDS?.resources[0]?.version);
  });

  it('GET /v1/config_dump of a large snapshot is streamed: the whole serializer\'s bytes, with turns between pieces', async () => {
    const doc = baseDoc();
    for (let c = 0; c < STREAMED_DUMP_OVER; c++) doc.clusters.push({ name: `c${String(c).padStart(3, '0')}`, endpoints: Array.from({ length: 50 }, (_, e) => ({ address: `10.1.${c & 255}.${e + 1}`, port: 80 })) });
    const f = fixture();
    const turnsOf = async (url: string): Promise<{ res: Awaited<ReturnType<typeof f.app.inject>>; turns: number }> => {
      const spy = vi.spyOn(globalThis, 'setImmediate');
      try {
        const res = await f.app.inject({ method: 'GET', url });
        return { res, turns: spy.mock.calls.length };
      } finally {
        spy.mockRestore();
      }
    };
    await turnsOf('/v1/config_dump');
    const small = (await turnsOf('/v1/config_dump')).turns;
    f.cache.update(translate(parseConfig(stringify(doc), 'big.yaml').catalog));
    playProxy(f, 'edge-1', 'edge');
    playProxy(f, 'side-1', 'default');
    const whole = fastJson(serializerSchema(ConfigDump));
    for (const [url, group, node] of [
      ['/v1/config_dump', '*', undefined],
      ['/v1/config_dump?type=EDS', '*', undefined],
      ['/v1/config_dump?node=side-1', 'default', 'side-1'],
    ] as const) {
      const { res, turns } = await turnsOf(url);
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const types = url.includes('type=EDS') ? [TYPE.endpoint] : PUSH_ORDER;
      const records = node ? f.registry.list().filter((r) => r.node.id === node) : undefined;
      const expected = wholeConfigDump(configDumpParts(f.cache.snapshotFor(group), types, records ? { records } : undefined));
      expect(res.body, url).toBe(whole(expected));
      // ~10,000 endpoints decoded: several 4 ms slices on any machine this runs on.
      expect(turns, url).toBeGreaterThanOrEqual(small + 2);
    }
  });

  it('bad input is a 400 naming the field; an unknown node or route a 404; never a 500', async () => {
    const { app, errors } = fixture();
    const cases: [string, number, string | undefined][] = [
      [`/v1/config_dump?node=${'x'.repeat(513)}`, 400, '/querystring/node'],
      ['/v1/config_dump?node=', 400, '/querystring/node'],
      ['/v1/config_dump?node=a&node=b', 400, '/querystring/node'],
      ['/v1/config_dump?type=XDS', 400, '/querystring/type'],
      ['/v1/config_dump?node=ghost', 404, undefined],
      ['/v1/nothing-here', 404, undefined],
    ];
    for (const [url, status, path] of cases) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(status);
      const body = json<{ error: string; message: string; path?: string }>(res.body);
      expect(body.message, url).toBeTruthy();
      expect(body.path, url).toBe(path);
    }
    // A body sent to a path that takes none: the wrong method is the answer, whatever the body.
    const big = await app.inject({ method: 'POST', url: '/v1/proxies', headers: { 'content-type': 'application/json' }, payload: `"${'a'.repeat(2 * 1024 * 1024)}"` });
    expect(big.statusCode).toBe(405);
    expect(big.headers.allow).toBe('GET, HEAD, OPTIONS');
    const broken = await app.inject({ method: 'POST', url: '/v1/proxies', headers: { 'content-type': 'application/json' }, payload: '{"a":' });
    expect(broken.statusCode).toBe(405);
    expect(errors()).toEqual([]);
  });

  it('a bug behind a route is a logged 500 with no detail leaked', async () => {
    const { app, errors } = fixture({
      ready: () => {
        throw new Error('secret internals');
      },
    });
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(500);
    expect(json(res.body)).toEqual({ error: 'Internal Server Error', message: 'internal error', code: 'INTERNAL' });
    expect(errors()).toHaveLength(1);
    expect(JSON.stringify(errors()[0])).toContain('secret internals');
  });

  it('GET /metrics is the Prometheus text format', async () => {
    const registry = new ProxyRegistry();
    const metrics = new Metrics({ xdsTypes: ['CDS'], protocols: ['sotw', 'delta'] });
    metrics.trackConnected(() => registry.list().map((r) => r.protocol));
    registry.connect(1, { id: 'a', cluster: 'c', metadata: {}, userAgent: '' }, 'delta', 'ADS', 'p');
    const app = buildAdminApp({ registry, cache: new XdsCache(), metrics, ready: () => ({ ready: true, reasons: [] }) });
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.body).toContain('xds_connected_proxies{protocol="delta"} 1');
    expect(res.body).toContain('xds_connected_proxies{protocol="sotw"} 0');
    expect(res.body).toContain('xds_pushes_total{type="CDS"} 0');
    expect(res.body).toContain('fulcrum_config_reloads_total{result="rejected"} 0');
    expect(res.body).toContain('process_cpu_user_seconds_total');
    expect(res.body).toContain('nodejs_eventloop_lag_seconds');
  });
});

// ── OpenAPI ──────────────────────────────────────────────────────────────────────────────────────

describe('OpenAPI', () => {
  const ROUTES = ['/healthz', '/readyz', '/metrics', '/openapi.json', '/v1/proxies', '/v1/proxies/{nodeId}', '/v1/config_dump'];

  it('/openapi.json is a valid OpenAPI 3 document with every route, its inputs and its responses', async () => {
    const { app } = fixture();
    const res = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = json<{
      openapi: string;
      info: { version: string };
      paths: Record<string, Record<string, { parameters?: { in: string; name: string }[]; responses: Record<string, unknown> }>>;
    }>(res.body);
    const result = await new Validator().validate(doc as unknown as Parameters<Validator['validate']>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info.version).toBe('9.9.9');
    for (const route of ROUTES) {
      const get = doc.paths[route]?.get;
      expect(get, route).toBeDefined();
      expect(Object.keys(get?.responses ?? {}), route).toEqual(expect.arrayContaining(['200', '400', '500']));
    }
    expect(doc.paths['/readyz']?.get?.responses).toHaveProperty('503');
    expect(doc.paths['/v1/proxies/{nodeId}']?.get?.parameters).toEqual([expect.objectContaining({ in: 'path', name: 'nodeId' })]);
    expect(doc.paths['/v1/config_dump']?.get?.parameters?.map((p) => `${p.in}:${p.name}`).sort()).toEqual(['query:node', 'query:type']);
    expect(Object.keys(doc.paths['/metrics']?.get?.responses['200'] as { content: object })).toContain('content');
  });

  it('serves the Swagger UI at /docs', async () => {
    const { app } = fixture();
    const res = await app.inject({ method: 'GET', url: '/docs' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.body).toContain('swagger-ui');
    const css = await app.inject({ method: 'GET', url: '/docs/static/swagger-ui.css' });
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toMatch(/text\/css/);
    // The UI is built on the first visit (lazy-docs.ts): it serves this app's document, and what it lacks is the API's 404.
    const json = await app.inject({ method: 'GET', url: '/docs/json' });
    expect(json.json()).toEqual((await app.inject({ method: 'GET', url: '/openapi.json' })).json());
    const missing = await app.inject({ method: 'GET', url: '/docs/no-such-page' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ code: 'NOT_FOUND', message: 'no route GET /docs/no-such-page' });
  });
});

// ── a real fulcrum, a raw ADS client ─────────────────────────────────────────────────────────────

describe('against a running fulcrum', () => {
  const NODE = { id: 'admin-test-node', cluster: 'default', user_agent_name: 'admin-test' };
  let dir: string;
  let configPath: string;
  let fulcrum: Fulcrum;
  let client: XdsClient;
  let seq = 0;

  const base = (): string => `http://127.0.0.1:${fulcrum.adminPort}`;
  async function get<T = Record<string, unknown>>(path: string): Promise<{ status: number; body: T; text: string }> {
    const res = await fetch(`${base()}${path}`);
    const text = await res.text();
    return { status: res.status, body: (res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text) as T, text };
  }

  /** Atomic replace, as editors do; resolves once the cache published (or, for a rejected edit, the counter moved). */
  async function writeConfig(text: string): Promise<void> {
    const tmp = join(dir, `.next-${++seq}.yaml`);
    await writeFile(tmp, text);
    await rename(tmp, configPath);
  }

  async function metric(line: string): Promise<number | undefined> {
    const { text } = await get('/metrics');
    const found = text.split('\n').find((l) => l.startsWith(`${line} `));
    return found === undefined ? undefined : Number(found.slice(line.length + 1));
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-admin-'));
    configPath = join(dir, 'fulcrum.yaml');
    await writeFile(configPath, stringify(baseDoc()));
    fulcrum = await startLoopbackFulcrum(configPath, { debounce: { quietMs: 0, maxMs: 0 } });
    client = XdsClient.forPort(fulcrum.xdsPort);
  });

  afterAll(async () => {
    client?.close();
    await fulcrum?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  let stream: SotwStream;

  it('is live and ready over real HTTP', async () => {
    expect(fulcrum.adminPort).toBeGreaterThan(0);
    expect(await get('/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await get('/readyz')).toMatchObject({ status: 200, body: { ready: true, reasons: [] } });
  });

  it('shows an ACKed CDS response as SYNCED, and counts the push and its convergence', async () => {
    stream = client.sotw(ADS);
    stream.request(CDS, [], { node: NODE });
    const resp = await stream.nextOf(CDS);
    stream.ack(resp);
    const proxy = await waitFor(
      async () => {
        const r = await get<{ streams: { types: Record<string, { state: string; ackedVersion?: string }> }[] }>(`/v1/proxies/${NODE.id}`);
        return r.status === 200 && r.body.streams[0]?.types.CDS?.state === 'SYNCED' && r.body.streams[0];
      },
      { what: 'CDS SYNCED in /v1/proxies', timeoutMs: 5_000 },
    );
    expect(proxy).toMatchObject({ types: { CDS: { state: 'SYNCED', ackedVersion: resp.version_info }, EDS: { state: 'NOT_SENT' } } });

    const list = await get<{ count: number; proxies: { nodeId: string; userAgent: string; protocol: string; service: string }[] }>('/v1/proxies');
    expect(list.body.count).toBe(1);
    expect(list.body.proxies[0]).toMatchObject({ nodeId: NODE.id, userAgent: 'admin-test', protocol: 'sotw' });

    expect(await metric('xds_connected_proxies{protocol="sotw"}')).toBe(1);
    expect(await metric('xds_connected_proxies{protocol="delta"}')).toBe(0);
    expect(await metric('xds_pushes_total{type="CDS"}')).toBe(1);
    expect(await metric('xds_convergence_seconds_count{type="CDS"}')).toBe(1);
    expect(await metric('fulcrum_snapshot_publish_seconds_count')).toBeGreaterThanOrEqual(1);
  });

  it('/v1/config_dump?node= returns the clusters the node is sent, with the versions it has', async () => {
    const { status, body } = await get<{ node: { id: string }; types: { CDS: { state: string; resources: { name: string; version: string; sentVersion: string; resource: { name: string } }[] } } }>(
      `/v1/config_dump?node=${NODE.id}&type=CDS`,
    );
    expect(status).toBe(200);
    expect(body.node.id).toBe(NODE.id);
    expect(body.types.CDS.state).toBe('SYNCED');
    expect(body.types.CDS.resources.map((r) => r.resource.name)).toEqual(['api', 'web']);
    for (const r of body.types.CDS.resources) expect(r.sentVersion).toBe(r.version);
    expect((await get('/v1/config_dump?node=not-connected')).status).toBe(404);
  });

  it('shows a NACKed response as NACKED with the proxy\'s message, and counts the NACK and the reload', async () => {
    const nacksBefore = await metric('xds_nacks_total{type="CDS"}');
    const doc = baseDoc();
    doc.clusters.push({ name: 'extra', endpoints: [{ address: '10.0.0.9', port: 9 }] });
    await writeConfig(stringify(doc));
    const resp = await stream.nextOf(CDS);
    stream.nack(resp, 'cluster extra: this proxy does not like it');
    const cds = await waitFor(
      async () => {
        const r = await get<{ streams: { types: Record<string, { state: string; lastNack?: { message: string; version: string } }> }[] }>(`/v1/proxies/${NODE.id}`);
        const t = r.body.streams[0]?.types.CDS;
        return t?.state === 'NACKED' && t;
      },
      { what: 'CDS NACKED in /v1/proxies', timeoutMs: 5_000 },
    );
    expect(cds.lastNack).toMatchObject({ message: 'cluster extra: this proxy does not like it', version: resp.version_info });
    expect(await metric('xds_nacks_total{type="CDS"}')).toBe((nacksBefore ?? 0) + 1);
    expect(await metric('fulcrum_config_reloads_total{result="ok"}')).toBe(1);
    const dump = await get<{ types: { CDS: { state: string; lastNack: { message: string } } } }>(`/v1/config_dump?node=${NODE.id}&type=CDS`);
    expect(dump.body.types.CDS).toMatchObject({ state: 'NACKED', lastNack: { message: 'cluster extra: this proxy does not like it' } });
  });

  it('counts a rejected config edit', async () => {
    await writeConfig('clusters: [{ name: a, endpoints: [{ address: 10.0.0.1, port: 0 }] }]\n');
    await waitFor(async () => (await metric('fulcrum_config_reloads_total{result="rejected"}')) === 1, {
      what: 'rejected reload counted',
      timeoutMs: 5_000,
    });
    expect((await get('/readyz')).status).toBe(200);
  });

  it('bad input over HTTP is a 4xx with a message', async () => {
    const long = await get<{ message: string; path: string }>(`/v1/config_dump?node=${'x'.repeat(600)}`);
    expect(long.status).toBe(400);
    expect(long.body).toMatchObject({ path: '/querystring/node' });
    expect((await get('/v1/proxies/unknown-node')).status).toBe(404);
  });

  it('drops the stream from /v1/proxies and the gauge when the proxy goes away', async () => {
    stream.cancel();
    await waitFor(async () => (await get<{ count: number }>('/v1/proxies')).body.count === 0, { what: 'proxy gone', timeoutMs: 5_000 });
    expect(await metric('xds_connected_proxies{protocol="sotw"}')).toBe(0);
  });
});

describe('lifecycle', () => {
  it('stop() closes the admin port', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fulcrum-admin-stop-'));
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(configPath, stringify(baseDoc()));
    const f = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger: pino({ level: 'silent' }) });
    try {
      // xdsPort 0 without adminPort: the admin server takes a free port too, not the configured 8080.
      expect(f.adminPort).not.toBe(8080);
      expect((await fetch(`http://127.0.0.1:${f.adminPort}/readyz`)).status).toBe(200);
    } finally {
      await f.stop();
      await rm(dir, { recursive: true, force: true });
    }
    await expect(fetch(`http://127.0.0.1:${f.adminPort}/healthz`)).rejects.toThrow();
  });

  it('fails to start, naming the admin address, when the admin port is taken', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fulcrum-admin-busy-'));
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(configPath, stringify(baseDoc()));
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as AddressInfo).port;
    try {
      await expect(
        startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminPort: port, logger: pino({ level: 'silent' }) }),
      ).rejects.toThrow(`admin server cannot listen on 127.0.0.1:${port}`);
    } finally {
      busy.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the fulcrum command serves the admin API where the config puts it and stops it on SIGTERM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fulcrum-admin-cli-'));
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(configPath, stringify({ server: { xds: { address: '127.0.0.1', port: 0 }, admin: { address: '127.0.0.1', port: 0 } }, ...baseDoc() }));
    const repo = new URL('../../', import.meta.url).pathname;
    const child = spawn(process.execPath, [...fulcrumCommand(), '--config', configPath, '--data-dir', join(dir, 'data')], { cwd: repo, stdio: 'pipe' });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const port = await waitFor(() => /"port":(\d+),"msg":"admin server listening"/.exec(out)?.[1], { what: 'admin listening log line', timeoutMs: 20_000 });
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, { what: 'readyz 200', timeoutMs: 10_000 });
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toContain('xds_connected_proxies{protocol="sotw"} 0');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    } finally {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ── fuzz ─────────────────────────────────────────────────────────────────────────────────────────

describe('fuzz', () => {
  const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
  const ROUTES = ['/healthz', '/readyz', '/metrics', '/openapi.json', '/v1/proxies', '/v1/config_dump', '/docs', '/docs/json'];
  const PREFIXES = ['', '/v1', '/v1/proxies', '/v1/proxies/sidecar-1', '/v1/config_dump', '/healthz', '/readyz', '/metrics', '/openapi.json', '/docs', '/docs/static', '/v1/proxies/'];
  const CONTENT_TYPES = ['application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', 'application/json; charset=utf-16', ';;;', ''];

  /** Raw path segments, including percent-encoding that does not decode and dot segments. */
  const segment = fc.oneof(
    fc.webSegment(),
    fc.string({ maxLength: 20 }).map(encodeURIComponent),
    fc.constantFrom('%', '%zz', '%00', '%2F', '..', '.', '%2e%2e', '%E0%A4%A', '~', '*', ':nodeId', '{nodeId}', 'x'.repeat(700)),
  );
  const path = fc.oneof(
    // The real routes, so that most runs get past routing into validation and the handlers.
    { weight: 3, arbitrary: fc.oneof(fc.constantFrom(...ROUTES), segment.map((s) => `/v1/proxies/${s}`)) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...PREFIXES), fc.array(segment, { maxLength: 3 }), fc.boolean())
        .map(([prefix, segs, slash]) => `${prefix}${segs.map((s) => `/${s}`).join('')}${slash ? '/' : ''}` || '/'),
    },
  );
  const method = fc.oneof({ weight: 3, arbitrary: fc.constant('GET' as const) }, { weight: 2, arbitrary: fc.constantFrom(...METHODS) });
  const query = fc.oneof(
    fc.constant(''),
    fc.webQueryParameters().map((q) => `?${q}`),
    fc.dictionary(fc.constantFrom('node', 'type', 'x', 'node[]', '__proto__', 'constructor'), fc.oneof(fc.string({ maxLength: 30 }), fc.constant('x'.repeat(600))), { maxKeys: 3 }).map(
      (d) => `?${Object.entries(d).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')}`,
    ),
    fc.constantFrom('?node=sidecar-1', '?node=sidecar-1&type=EDS', '?node=%', '?node=a&node=b', '?type=CDS&type=EDS', '?&&==', '?node'),
  );
  const body = fc.oneof(
    fc.constant(undefined),
    fc.string({ maxLength: 200 }),
    fc.json().map((j) => j),
    fc.constantFrom('{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}', '{', '[]', 'null'),
  );

  it('no method, path, query or body gets a 5xx, and nothing reaches the error log', async () => {
    const f = fixture();
    playProxy(f);
    await fc.assert(
      fc.asyncProperty(method, path, query, body, fc.constantFrom(...CONTENT_TYPES), async (method, p, q, payload, contentType) => {
        const res = await f.app.inject({
          method,
          url: `${p}${q}`,
          ...(payload !== undefined ? { payload, headers: contentType ? { 'content-type': contentType } : {} } : {}),
        });
        expect(res.statusCode, `${method} ${p}${q} → ${res.statusCode} ${res.body.slice(0, 300)}`).toBeLessThan(500);
      }),
      { numRuns: 400 },
    );
    expect(f.errors()).toEqual([]);
  });
});
