import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterIn, ClusterPatch } from '../../src/admin/api-schemas.js';
import { evaluateModule, PREBUILT_INDEX, PrebuiltValidators, validatorKey, type PrebuiltIndex } from '../../src/admin/prebuilt-validators.js';
import { longArrayOf, SLICED_BODY_OVER } from '../../src/admin/sliced-validation.js';
import { buildValidator } from '../../src/admin/validators.js';
import { writePrebuiltValidators } from '../../scripts/generate-validators.js';
import { adminStoreApp } from '../support/admin-store-app.js';
import { RM_RETRIES } from '../catalog/helpers.js';
import { scaled } from '../support/wait.js';

type Route = Parameters<ReturnType<ReturnType<typeof buildValidator>>>[0];
const bodyRoute = (schema: unknown): Route => ({ schema, method: 'PUT', url: '/v1/clusters/:name', httpPart: 'body' }) as unknown as Route;

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

let built = '';
const dirs: string[] = [];
const tempDir = (prefix: string): string => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
};

beforeAll(async () => {
  built = join(tempDir('fulcrum-prebuilt-'), 'prebuilt-validators');
  await writePrebuiltValidators(built);
}, scaled(120_000));
afterAll(() => {
  for (const d of dirs) rmSync(d, RM_RETRIES);
});

describe('validators generated at build time (scripts/generate-validators.ts)', () => {
  it('are written with their index and a self-contained runtime', () => {
    const index = JSON.parse(readFileSync(join(built, PREBUILT_INDEX), 'utf8')) as PrebuiltIndex;
    expect(index.validators.length).toBeGreaterThanOrEqual(10);
    expect(readdirSync(built).sort()).toEqual([...index.validators.map((k) => `${k}.cjs`), PREBUILT_INDEX, index.runtime].sort());
    // Nothing is read from node_modules when a validator loads: the runtime holds what they require.
    const runtime = evaluateModule(readFileSync(join(built, index.runtime), 'utf8'), (id) => {
      throw new Error(`the runtime requires ${id}`);
    });
    expect(Object.keys(runtime as object)).toContain('ajv/dist/runtime/ucs2length');
  });

  it('decide, and report errors, exactly as the validators compiled at run time', () => {
    const prebuilt = new PrebuiltValidators(built);
    const [fromBuild, compiled] = [buildValidator(prebuilt)({}), buildValidator()({})];
    for (const schema of [ClusterIn, ClusterPatch]) {
      const before = prebuilt.counts.prebuilt;
      const [a, b] = [fromBuild(bodyRoute(schema)), compiled(bodyRoute(schema))];
      expect(prebuilt.counts.prebuilt, 'found in the build, not compiled').toBe(before + 1);
      const verdicts = BODIES.map((body) => {
        const verdict = a(structuredClone(body));
        expect(verdict, JSON.stringify(body)).toBe(b(structuredClone(body)));
        expect(a.errors ?? null, JSON.stringify(body)).toEqual(b.errors ?? null);
        return verdict;
      });
      expect(verdicts.filter((v) => v).length).toBeGreaterThanOrEqual(3);
      expect(verdicts.filter((v) => !v).length).toBeGreaterThanOrEqual(6);
    }
    expect(prebuilt.counts.missing).toBe(0);
  });

  it('include a sliced body check\'s entry validator, which checks a long body as the compiled one does', async () => {
    const prebuilt = new PrebuiltValidators(built);
    const route = bodyRoute(ClusterIn);
    const [a, b] = [buildValidator(prebuilt)({})(route), buildValidator()({})(route)];
    const endpoints = Array.from({ length: SLICED_BODY_OVER + 5 }, (_, i) => ({ address: `10.1.${i >> 8}.${i & 255}`, port: 8080 }));
    const bad = structuredClone(endpoints) as Record<string, unknown>[];
    (bad[SLICED_BODY_OVER + 2] as Record<string, unknown>).port = 'eighty';
    for (const body of [{ endpoints }, { endpoints: bad }]) {
      const [va, vb] = [await a(structuredClone(body)), await b(structuredClone(body))];
      expect(va).toBe(vb);
      expect(a.errors ?? null).toEqual(b.errors ?? null);
    }
    expect(await a({ endpoints: bad })).toBe(false);
    expect(longArrayOf(ClusterIn)).toBeDefined();
    // The whole body's validator and its entries' both came from the build.
    expect(prebuilt.counts).toEqual({ prebuilt: 2, missing: 0 });
  });

  it('are compiled at run time instead when absent, damaged or built from another schema', () => {
    const copy = tempDir('fulcrum-prebuilt-damaged-');
    const index = JSON.parse(readFileSync(join(built, PREBUILT_INDEX), 'utf8')) as PrebuiltIndex;
    for (const name of [PREBUILT_INDEX, index.runtime, ...index.validators.map((k) => `${k}.cjs`)]) writeFileSync(join(copy, name), readFileSync(join(built, name)));
    const damaged = new PrebuiltValidators(copy);
    // The file a body schema is read from: the key validators.ts asks the finder for.
    const keyOf = (schema: unknown): string | undefined => {
      const asked: string[] = [];
      buildValidator({ find: (source) => void asked.push(validatorKey(source)) })({})(bodyRoute(schema));
      return asked[0];
    };
    const clusterKey = keyOf(ClusterIn);
    expect(index.validators).toContain(clusterKey);
    writeFileSync(join(copy, `${clusterKey}.cjs`), 'module.exports = 42');
    const [a] = [buildValidator(damaged)({})(bodyRoute(ClusterIn))];
    expect(a({ lbPolicy: 'NOPE' }), 'compiled instead, and still checks').toBe(false);
    writeFileSync(join(copy, `${clusterKey}.cjs`), 'this is not javascript');
    expect(buildValidator(damaged)({})(bodyRoute(ClusterIn))({ lbPolicy: 'NOPE' })).toBe(false);
    expect(damaged.counts).toEqual({ prebuilt: 0, missing: 2 });
    // A schema changed since the build: not found, compiled.
    const changed = { ...ClusterIn, maxProperties: 3 };
    const v = buildValidator(damaged)({})(bodyRoute(changed));
    expect(damaged.counts.missing).toBe(3);
    expect(v({ a: 1, b: 2, c: 3, d: 4 })).toBe(false);
    // No build at all (the sources run through tsx): nothing found, nothing counted.
    const none = new PrebuiltValidators(join(copy, 'absent'));
    expect(buildValidator(none)({})(bodyRoute(ClusterIn))({ lbPolicy: 'NOPE' })).toBe(false);
    expect(none.counts).toEqual({ prebuilt: 0, missing: 0 });
  });
});

describe('the admin app with the build\'s validators', () => {
  it('warms every write route from the build, compiling none, and answers as an app that compiled them', async () => {
    const prebuilt = new PrebuiltValidators(built);
    let warmed: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (warmed = resolve));
    const served = adminStoreApp('fulcrum-prebuilt-app-', { deps: () => ({ onWarmed: () => warmed(), validators: prebuilt }) });
    const cold = adminStoreApp('fulcrum-prebuilt-cold-');
    try {
      await served.app.listen({ host: '127.0.0.1', port: 0 });
      await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error('no warm-up')), scaled(60_000)))]);
      expect(prebuilt.counts.prebuilt).toBeGreaterThanOrEqual(10);
      expect(prebuilt.counts.missing).toBe(0);
      const calls: [string, string, unknown][] = [
        ['PUT', '/v1/clusters/web', { lbPolicy: 'NOPE' }],
        ['PUT', '/v1/clusters/web', { unknownField: 1 }],
        ['PUT', '/v1/clusters/web', { endpoints: [{ address: '10.0.0.1', port: '80' }] }],
        ['PUT', '/v1/clusters/web', { endpoints: [{ address: '10.0.0.1', port: 8080 }] }],
        ['PATCH', '/v1/clusters/web', { weighting: { policy: 'pid', setpoint: 2 } }],
        ['PATCH', '/v1/clusters/web/policy', { policy: 'bogus' }],
        ['PUT', '/v1/clusters/web/endpoints/10.0.0.2/8080', { weight: 'heavy' }],
        ['PUT', '/v1/clusters/web/endpoints/10.0.0.2/8080', { weight: 5 }],
        ['GET', '/v1/audit?limit=0', undefined],
      ];
      const statuses: number[] = [];
      for (const [method, url, payload] of calls) {
        const request = { method: method as 'PUT', url, ...(payload === undefined ? {} : { payload: payload as object }) };
        const [a, b] = await Promise.all([served, cold].map((x) => x.app.inject(request)));
        expect(a?.statusCode, `${method} ${url} ${JSON.stringify(payload)}`).toBe(b?.statusCode);
        expect(JSON.parse(a?.body ?? '{}').message).toBe(JSON.parse(b?.body ?? '{}').message);
        statuses.push(a?.statusCode ?? 0);
      }
      expect(statuses.filter((s) => s === 400).length).toBeGreaterThanOrEqual(6);
      expect(statuses.filter((s) => s < 300).length).toBeGreaterThanOrEqual(2);
      // The read route's query validator came from the build too, on its first request.
      expect(prebuilt.counts.missing).toBe(0);
    } finally {
      await Promise.all([served.app.close(), cold.app.close()]);
      served.close();
      cold.close();
    }
  }, scaled(90_000));
});
