/**
 * A cluster write's answer with thousands of endpoints is serialized in slices (sliced-answer.ts):
 * the same bytes as the whole body through the route's schema (GET answers whole), and other
 * work runs between the slices.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AdminApp } from '../../src/admin/app.js';
import { SLICED_ANSWER_OVER } from '../../src/admin/sliced-answer.js';
import { jsonInSlices } from '../../src/runtime/json-in-slices.js';
import { adminStoreApp } from '../support/admin-store-app.js';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

function fixture(): AdminApp {
  const { app, close } = adminStoreApp('fulcrum-sliced-answer-');
  closers.push(close);
  return app;
}

const address = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const entries = (n: number, weight: (i: number) => number) =>
  Array.from({ length: n }, (_, i) => ({ address: address(i), port: 8080, weight: weight(i), locality: { region: 'r1', zone: `z${i % 3}` }, ...(i % 7 === 0 ? { priority: 1 } : {}) }));

describe('a cluster write\'s answer with many endpoints', () => {
  it('is byte for byte the whole body as the route\'s schema serializes it (GET), for the 201, the 200 and a PATCH', async () => {
    const app = fixture();
    const n = SLICED_ANSWER_OVER * 2 + 500;
    const created = await app.inject({ method: 'PUT', url: '/v1/clusters/big', payload: { lbPolicy: 'LEAST_REQUEST', endpoints: entries(n, (i) => 1 + (i % 5)) } });
    expect(created.statusCode).toBe(201);
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
