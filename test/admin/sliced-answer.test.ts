/**
 * A cluster write's answer with thousands of endpoints is serialized in slices (sliced-answer.ts):
 * the same bytes as the whole body through the route's schema, and other work runs between the
 * slices. So are the GETs of one big cluster and of every cluster.
 */
import fastJson from 'fast-json-stringify';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ClusterView } from '../../src/admin/api-schemas.js';
import type { AdminApp } from '../../src/admin/app.js';
import { clusterView } from '../../src/admin/resources.js';
import { ClusterList } from '../../src/admin/routes/clusters.js';
import { serializerSchema } from '../../src/admin/serializer-schema.js';
import type { Store } from '../../src/catalog/store/index.js';
import { SLICED_ANSWER_OVER } from '../../src/admin/sliced-answer.js';
import { jsonInSlices } from '../../src/runtime/json-in-slices.js';
import { adminStoreApp } from '../support/admin-store-app.js';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

function fixture(): AdminApp {
  return fixtureWithStore().app;
}

function fixtureWithStore(): { app: AdminApp; store: Store } {
  const { app, store, close } = adminStoreApp('fulcrum-sliced-answer-');
  closers.push(close);
  return { app, store };
}

/** The whole bodies, as fastify's default compiler makes them from the routes' schemas (what an unsliced answer is). */
const wholeView = fastJson(serializerSchema(ClusterView));
const wholeList = fastJson(serializerSchema(ClusterList));

const address = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const entries = (n: number, weight: (i: number) => number) =>
  Array.from({ length: n }, (_, i) => ({ address: address(i), port: 8080, weight: weight(i), locality: { region: 'r1', zone: `z${i % 3}` }, ...(i % 7 === 0 ? { priority: 1 } : {}) }));

describe('a cluster write\'s answer with many endpoints', () => {
  it('is byte for byte the whole body as the route\'s schema serializes it (GET), for the 201, the 200 and a PATCH', async () => {
    const { app, store } = fixtureWithStore();
    const n = SLICED_ANSWER_OVER * 2 + 500;
    const created = await app.inject({ method: 'PUT', url: '/v1/clusters/big', payload: { lbPolicy: 'LEAST_REQUEST', endpoints: entries(n, (i) => 1 + (i % 5)) } });
    expect(created.statusCode).toBe(201);
    expect(created.body).toBe(wholeView(clusterView(store.getCluster('big') ?? expect.fail('big'))));
    expect(created.headers['content-type']).toMatch(/^application\/json/);
    expect(created.headers.location).toBe('/v1/clusters/big');
    const got = await app.inject({ method: 'GET', url: '/v1/clusters/big' });
    expect(created.body).toBe(got.body);
    expect(created.headers.etag).toBe(got.headers.etag);
    expect((JSON.parse(created.body) as { endpoints: unknown[] }).endpoints).toHaveLength(n);

    const replaced = await app.inject({ method: 'PUT', url: '/v1/clusters/big', payload: { endpoints: entries(n, (i) => 2 + (i % 3)) } });
    expect(replaced.statusCode).toBe(200);
    expect(replaced.body).toBe((await app.inject({ method: 'GET', url: '/v1/clusters/big' })).body);

    const patched = await app.inject({ method: 'PATCH', url: '/v1/clusters/big', payload: { connectTimeoutMs: 2500 } });
    expect(patched.statusCode).toBe(200);
    const after = await app.inject({ method: 'GET', url: '/v1/clusters/big' });
    expect(patched.body).toBe(after.body);
    expect(patched.headers.etag).toBe(after.headers.etag);
    expect((JSON.parse(patched.body) as { connectTimeoutMs: number }).connectTimeoutMs).toBe(2500);
  });

  it('lets other work run between its slices (a short answer takes no extra turn)', async () => {
    const app = fixture();
    // Turns the route asks for: sliced-answer.ts takes one (setImmediate) per slice after the first.
    const turns = async (n: number, name: string): Promise<number> => {
      const spy = vi.spyOn(globalThis, 'setImmediate');
      try {
        const res = await app.inject({ method: 'PUT', url: `/v1/clusters/${name}`, payload: { endpoints: entries(n, () => 1) } });
        expect(res.statusCode).toBe(201);
        return spy.mock.calls.length;
      } finally {
        spy.mockRestore();
      }
    };
    await turns(1, 'warm'); // the route's first call compiles its schemas
    const small = await turns(SLICED_ANSWER_OVER, 'small');
    expect(await turns(SLICED_ANSWER_OVER * 3 + 1, 'big')).toBeGreaterThanOrEqual(small + 3);
  });

  it('GET of one big cluster and of every cluster: the whole bodies\' bytes, with turns between slices', async () => {
    const { app, store } = fixtureWithStore();
    const put = async (name: string, n: number): Promise<void> => {
      const res = await app.inject({ method: 'PUT', url: `/v1/clusters/${name}`, payload: { endpoints: entries(n, (i) => 1 + (i % 4)) } });
      expect(res.statusCode).toBe(201);
    };
    // Turns a GET of every cluster asks for (setImmediate), the first one compiling the route's serializer.
    const turns = async (): Promise<number> => {
      const spy = vi.spyOn(globalThis, 'setImmediate');
      try {
        expect((await app.inject({ method: 'GET', url: '/v1/clusters' })).statusCode).toBe(200);
        return spy.mock.calls.length;
      } finally {
        spy.mockRestore();
      }
    };
    await put('a-small', SLICED_ANSWER_OVER - 1);
    await turns();
    const whole = await turns();
    await put('b-big', SLICED_ANSWER_OVER * 2 + 500);
    await put('c-empty', 0);
    for (let i = 0; i < 4; i++) await put(`d-${i}`, 300);
    // A big cluster last too, after a run of empty ones.
    for (let i = 0; i < 30; i++) await put(`e-${String(i).padStart(2, '0')}`, 0);
    await put('z-big', SLICED_ANSWER_OVER + 1);
    const one = await app.inject({ method: 'GET', url: '/v1/clusters/b-big' });
    expect(one.statusCode).toBe(200);
    expect(one.body).toBe(wholeView(clusterView(store.getCluster('b-big') ?? expect.fail('b-big'))));
    expect(one.headers.etag).toBe(`"${store.getCluster('b-big')?.revision}"`);

    const all = await app.inject({ method: 'GET', url: '/v1/clusters' });
    expect(all.statusCode).toBe(200);
    expect(all.headers['content-type']).toMatch(/^application\/json/);
    const records = store.listClusters();
    expect(all.body).toBe(wholeList({ count: records.length, clusters: records.map(clusterView) }));
    // ~5,700 endpoints: a turn at least every ANSWER_SLICE of them, beyond what a whole answer takes.
    expect(await turns()).toBeGreaterThanOrEqual(whole + 4);
    const head = await app.inject({ method: 'HEAD', url: '/v1/clusters' });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
    expect(Number(head.headers['content-length'])).toBe(Buffer.byteLength(all.body));
  });

  it('GET of a few clusters with few endpoints is the whole body', async () => {
    const { app, store } = fixtureWithStore();
    for (const name of ['x', 'y']) expect((await app.inject({ method: 'PUT', url: `/v1/clusters/${name}`, payload: { endpoints: entries(10, () => 1) } })).statusCode).toBe(201);
    const all = await app.inject({ method: 'GET', url: '/v1/clusters' });
    const records = store.listClusters();
    expect(all.body).toBe(wholeList({ count: records.length, clusters: records.map(clusterView) }));
  });

  it('gives up a turn of the event loop between two slices', async () => {
    const items = Array.from({ length: 2_500 }, (_, i) => ({ i }));
    let turns = 0;
    const text = await jsonInSlices(
      { head: (b) => JSON.stringify(b), item: (x) => JSON.stringify(x), turn: () => Promise.resolve(void turns++) },
      { name: 'big', items, revision: 3 },
      'items',
      items,
      1_000,
    );
    expect(turns).toBe(2);
    expect(text).toBe(JSON.stringify({ name: 'big', items, revision: 3 }));
  });

  it('is left to the whole serializer when the empty array\'s place is not found exactly once', async () => {
    const json = { head: (b: Record<string, unknown>) => JSON.stringify({ ...b, nested: { items: [] } }), item: (x: unknown) => JSON.stringify(x), turn: () => Promise.resolve() };
    expect(await jsonInSlices(json, { items: [1] }, 'items', [1], 1_000)).toBeUndefined();
    expect(await jsonInSlices({ ...json, head: () => '{}' }, { items: [1] }, 'items', [1], 1_000)).toBeUndefined();
  });
});
