import { afterEach, describe, expect, it, vi } from 'vitest';
import { AjvWorker } from '../../src/admin/ajv-worker.js';
import { buildValidator, PrecompiledValidators } from '../../src/admin/validators.js';
import { ClusterIn, ClusterPatch } from '../../src/admin/api-schemas.js';
import { longArrayOf, SLICED_BODY_OVER } from '../../src/admin/sliced-validation.js';
import { adminStoreApp } from '../support/admin-store-app.js';
import { scaled } from '../support/wait.js';

const workers: AjvWorker[] = [];
afterEach(() => {
  for (const w of workers.splice(0)) w.close();
});
const worker = (): AjvWorker => {
  const w = new AjvWorker();
  workers.push(w);
  return w;
};

type Route = Parameters<ReturnType<ReturnType<typeof buildValidator>>>[0];
const bodyRoute = (schema: unknown, url = '/v1/clusters/:name'): Route => ({ schema, method: 'PUT', url, httpPart: 'body' }) as unknown as Route;

/** Bodies that pass and fail in different ways: unknown keys, enum values, types, formats, nested entries. */
const BODIES: unknown[] = [
  {},
  { lbPolicy: 'ROUND_ROBIN', endpoints: [{ address: '10.0.0.1', port: 8080, weight: 3 }] },
  { lbPolicy: 'NOPE' },
  { unknownField: 1 },
  { endpoints: [{ address: '10.0.0.1', port: '80' }] },
  { endpoints: [{ address: '10.0.0.1' }] },
  { weighting: { policy: 'pid', setpoint: 'mean', metric: 'cpu' } },
  { weighting: { policy: 'pid', setpoint: 2 } },
  { createdAt: 'not a date' },
  { retryPolicy: { retryOn: ['5xx', 'bogus'] } },
  { connectTimeoutMs: -1, http2: 'yes' },
];

describe('AjvWorker', () => {
  it('generates validators on a worker that decide, and report errors, exactly as the ones compiled on the main thread', async () => {
    const precompiled = new PrecompiledValidators(worker());
    const offThread = buildValidator(precompiled)({});
    const onThread = buildValidator()({});
    for (const schema of [ClusterIn, ClusterPatch]) {
      const route = bodyRoute(schema);
      await precompiled.prepare({}, route);
      expect(precompiled.take(schema, 'exact'), 'generated off the thread').toBeTypeOf('function');
      const [a, b] = [offThread(route), onThread(route)];
      expect(a).not.toBe(b);
      const verdicts = BODIES.map((body) => {
        const verdict = a(structuredClone(body));
        expect(verdict, JSON.stringify(body)).toBe(b(structuredClone(body)));
        expect(a.errors ?? null, JSON.stringify(body)).toEqual(b.errors ?? null);
        return verdict;
      });
      // Both kinds of answer were compared.
      expect(verdicts.filter((v) => v).length).toBeGreaterThanOrEqual(3);
      expect(verdicts.filter((v) => !v).length).toBeGreaterThanOrEqual(6);
    }
  });

  it('makes a sliced body check\'s entry validator on the worker too, and checks a long body as the main thread does', async () => {
    const precompiled = new PrecompiledValidators(worker());
    const route = bodyRoute(ClusterIn);
    precompiled.note({}, route);
    await precompiled.prepare({}, route);
    const items = longArrayOf(ClusterIn)?.items;
    await Promise.all([precompiled.prepare({}, { ...route, schema: items } as typeof route)]);
    expect(precompiled.take(items, 'exact'), 'the entries\' validator generated off the thread').toBeTypeOf('function');
    const endpoints = Array.from({ length: SLICED_BODY_OVER + 5 }, (_, i) => ({ address: `10.1.${i >> 8}.${i & 255}`, port: 8080 }));
    const bad = structuredClone(endpoints) as Record<string, unknown>[];
    (bad[SLICED_BODY_OVER + 2] as Record<string, unknown>).port = 'eighty';
    const [a, b] = [buildValidator(precompiled)({})(route), buildValidator()({})(route)];
    for (const body of [{ endpoints }, { endpoints: bad }]) {
      const [va, vb] = [await a(structuredClone(body)), await b(structuredClone(body))];
      expect(va).toBe(vb);
      expect(a.errors ?? null).toEqual(b.errors ?? null);
    }
    expect(await a({ endpoints: bad })).toBe(false);
  });

  it('answers undefined once closed (or broken), so the caller compiles on the main thread', async () => {
    const w = worker();
    const precompiled = new PrecompiledValidators(w);
    w.close();
    const route = bodyRoute(ClusterIn);
    await precompiled.prepare({}, route);
    expect(precompiled.take(ClusterIn, 'exact')).toBeUndefined();
    expect(buildValidator(precompiled)({})(route)({ lbPolicy: 'NOPE' })).toBe(false);
    expect(w.restore('module.exports = 42')).toBeUndefined();
    expect(w.restore('this is not javascript')).toBeUndefined();
  });
});

describe('the admin warm-up with its validators generated on a worker', () => {
  it('answers every write as an app that compiled on the main thread does, once warmed', async () => {
    const restored = vi.spyOn(AjvWorker.prototype, 'restore');
    let warmed: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (warmed = resolve));
    const served = adminStoreApp('fulcrum-ajv-worker-', { deps: () => ({ onWarmed: () => warmed() }) });
    const cold = adminStoreApp('fulcrum-ajv-cold-');
    try {
      await served.app.listen({ host: '127.0.0.1', port: 0 });
      await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error('no warm-up')), scaled(60_000)))]);
      // The warm-up's validators came from the worker (not a silent fallback to the main thread).
      expect(restored.mock.results.filter((r) => typeof r.value === 'function').length).toBeGreaterThanOrEqual(10);
      const calls: [string, string, unknown][] = [
        ['PUT', '/v1/clusters/web', { lbPolicy: 'NOPE' }],
        ['PUT', '/v1/clusters/web', { unknownField: 1 }],
        ['PUT', '/v1/clusters/web', { endpoints: [{ address: '10.0.0.1', port: '80' }] }],
        ['PUT', '/v1/clusters/web', { endpoints: [{ address: '10.0.0.1', port: 8080 }] }],
        ['PATCH', '/v1/clusters/web', { weighting: { policy: 'pid', setpoint: 2 } }],
        ['PATCH', '/v1/clusters/web/policy', { policy: 'bogus' }],
        ['PUT', '/v1/clusters/web/endpoints/10.0.0.2/8080', { weight: 'heavy' }],
        ['PUT', '/v1/clusters/web/endpoints/10.0.0.2/8080', { weight: 5 }],
      ];
      const statuses: number[] = [];
      for (const [method, url, payload] of calls) {
        const [a, b] = await Promise.all([served, cold].map((x) => x.app.inject({ method: method as 'PUT', url, payload: payload as object })));
        expect(a?.statusCode, `${method} ${url} ${JSON.stringify(payload)}`).toBe(b?.statusCode);
        expect(JSON.parse(a?.body ?? '{}').message).toBe(JSON.parse(b?.body ?? '{}').message);
        statuses.push(a?.statusCode ?? 0);
      }
      expect(statuses.filter((s) => s === 400).length).toBeGreaterThanOrEqual(5);
      expect(statuses.filter((s) => s < 300).length).toBeGreaterThanOrEqual(2);
    } finally {
      restored.mockRestore();
      await Promise.all([served.app.close(), cold.app.close()]);
      served.close();
      cold.close();
    }
  }, scaled(90_000));
});
