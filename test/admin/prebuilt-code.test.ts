import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterIn, ClusterPatch } from '../../src/admin/api-schemas.js';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import { evaluateModule, PREBUILT_INDEX, PrebuiltCode, prebuiltKey, type CompileSource, type PrebuiltIndex } from '../../src/admin/prebuilt-code.js';
import { SLICED_ANSWER_OVER } from '../../src/admin/sliced-answer.js';
import { longArrayOf, SLICED_BODY_OVER } from '../../src/admin/sliced-validation.js';
import { buildValidator } from '../../src/admin/validators.js';
import { writePrebuilt } from '../../scripts/generate-prebuilt.js';
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
  await writePrebuilt(built);
}, scaled(120_000));
afterAll(() => {
  for (const d of dirs) rmSync(d, RM_RETRIES);
});

const readIndex = (): PrebuiltIndex => JSON.parse(readFileSync(join(built, PREBUILT_INDEX), 'utf8')) as PrebuiltIndex;
const files = (index: PrebuiltIndex, except?: string): string[] => [PREBUILT_INDEX, ...Object.values(index.runtimes), ...Object.keys(index.entries).filter((k) => k !== except).map((k) => `${k}.cjs`)];

describe('validators and serializers generated at build time (scripts/generate-prebuilt.ts)', () => {
  it('are written with their index and a self-contained runtime per kind', () => {
    const index = readIndex();
    const kinds = Object.values(index.entries);
    expect(kinds.filter((k) => k === 'validator').length).toBeGreaterThanOrEqual(10);
    expect(kinds.filter((k) => k === 'serializer').length).toBeGreaterThanOrEqual(20);
    expect(readdirSync(built).sort()).toEqual(files(index).sort());
    // Nothing is read from node_modules when the code loads: the runtimes hold what it requires.
    const modules = Object.values(index.runtimes).map((file) =>
      Object.keys(
        evaluateModule(readFileSync(join(built, file), 'utf8'), (id) => {
          throw new Error(`${file} requires ${id}`);
        }) as object,
      ),
    );
    expect(modules.flat()).toEqual(expect.arrayContaining(['ajv/dist/runtime/ucs2length', 'fast-json-stringify/lib/serializer']));
  });

  it('decide, and report errors, exactly as the validators compiled at run time', () => {
    const prebuilt = new PrebuiltCode(built);
    const [fromBuild, compiled] = [buildValidator(prebuilt)({}), buildValidator()({})];
    for (const schema of [ClusterIn, ClusterPatch]) {
      const before = prebuilt.counts.validator.prebuilt;
      const [a, b] = [fromBuild(bodyRoute(schema)), compiled(bodyRoute(schema))];
      expect(prebuilt.counts.validator.prebuilt, 'found in the build, not compiled').toBe(before + 1);
      const verdicts = BODIES.map((body) => {
        const verdict = a(structuredClone(body));
        expect(verdict, JSON.stringify(body)).toBe(b(structuredClone(body)));
        expect(a.errors ?? null, JSON.stringify(body)).toEqual(b.errors ?? null);
        return verdict;
      });
      expect(verdicts.filter((v) => v).length).toBeGreaterThanOrEqual(3);
      expect(verdicts.filter((v) => !v).length).toBeGreaterThanOrEqual(6);
    }
    expect(prebuilt.counts.validator.missing).toBe(0);
  });

  it('include a sliced body check\'s entry validator, which checks a long body as the compiled one does', async () => {
    const prebuilt = new PrebuiltCode(built);
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
    expect(prebuilt.counts.validator).toEqual({ prebuilt: 2, missing: 0 });
  });

  it('are compiled at run time instead when absent, damaged or built from another schema', () => {
    const copy = tempDir('fulcrum-prebuilt-damaged-');
    const index = readIndex();
    for (const name of files(index)) writeFileSync(join(copy, name), readFileSync(join(built, name)));
    const damaged = new PrebuiltCode(copy);
    // The file a body schema is read from: the key validators.ts asks the finder for.
    const keyOf = (schema: unknown): string | undefined => {
      const asked: string[] = [];
      buildValidator({ find: (source) => void asked.push(prebuiltKey(source)) })({})(bodyRoute(schema));
      return asked[0];
    };
    const clusterKey = keyOf(ClusterIn);
    expect(index.entries[clusterKey ?? '']).toBe('validator');
    writeFileSync(join(copy, `${clusterKey}.cjs`), 'module.exports = 42');
    const [a] = [buildValidator(damaged)({})(bodyRoute(ClusterIn))];
    expect(a({ lbPolicy: 'NOPE' }), 'compiled instead, and still checks').toBe(false);
    writeFileSync(join(copy, `${clusterKey}.cjs`), 'this is not javascript');
    expect(buildValidator(damaged)({})(bodyRoute(ClusterIn))({ lbPolicy: 'NOPE' })).toBe(false);
    expect(damaged.counts.validator).toEqual({ prebuilt: 0, missing: 2 });
    // A schema changed since the build: not found, compiled.
    const changed = { ...ClusterIn, maxProperties: 3 };
    const v = buildValidator(damaged)({})(bodyRoute(changed));
    expect(damaged.counts.validator.missing).toBe(3);
    expect(v({ a: 1, b: 2, c: 3, d: 4 })).toBe(false);
    // No build at all (the sources run through tsx): nothing found, nothing counted.
    const none = new PrebuiltCode(join(copy, 'absent'));
    expect(buildValidator(none)({})(bodyRoute(ClusterIn))({ lbPolicy: 'NOPE' })).toBe(false);
    expect(none.counts.validator).toEqual({ prebuilt: 0, missing: 0 });
  });
});

/** What the admin app asks its compilers for: captured by a finder that, like the build's recorder, sees every route at once. */
async function askedFor(): Promise<CompileSource[]> {
  const sources: CompileSource[] = [];
  const capture = adminStoreApp('fulcrum-prebuilt-asked-', { deps: () => ({ prebuilt: { eager: true, find: (source) => void sources.push(source) } }) });
  try {
    await capture.app.ready();
  } finally {
    await capture.app.close();
    capture.close();
  }
  return sources;
}

/** A rich cluster answer (every enum, a locality, a drained endpoint, pid weighting), as the API gives it, and an error answer. */
async function answers(): Promise<string[]> {
  const cold = adminStoreApp('fulcrum-prebuilt-answers-');
  try {
    const cluster = {
      lbPolicy: 'LEAST_REQUEST',
      weighting: { policy: 'pid', metric: 'cpu', setpoint: 0.6 },
      endpoints: [
        { address: '10.0.0.1', port: 8080, weight: 3, locality: { region: 'eu', zone: 'a' }, priority: 1 },
        { address: '10.0.0.2', port: 8080, health: 'UNHEALTHY' },
      ],
    };
    const put = await cold.app.inject({ method: 'PUT', url: '/v1/clusters/web', payload: cluster });
    expect(put.statusCode, put.body).toBeLessThan(300);
    const drained = await cold.app.inject({ method: 'POST', url: '/v1/clusters/web/endpoints/10.0.0.2/8080/drain' });
    const got = await cold.app.inject({ method: 'GET', url: '/v1/clusters/web' });
    const bad = await cold.app.inject({ method: 'PUT', url: '/v1/clusters/web', payload: { lbPolicy: 'NOPE' } });
    expect([got.statusCode, bad.statusCode]).toEqual([200, 400]);
    return [got.body, bad.body, drained.body];
  } finally {
    await cold.app.close();
    cold.close();
  }
}

describe('serializers generated at build time', () => {
  it('write every answer the API gives byte for byte as the compiled serializers do, or refuse it alike', async () => {
    const [sources, bodies] = await Promise.all([askedFor(), answers()]);
    const serializers = sources.filter((s) => s.kind === 'serializer');
    expect(serializers.length).toBeGreaterThanOrEqual(20);
    const prebuilt = new PrebuiltCode(built);
    const outcome = (serialize: () => unknown): string => {
      try {
        return `ok ${String(serialize())}`;
      } catch (err) {
        return `threw ${(err as Error).message}`;
      }
    };
    let exact = 0;
    for (const source of serializers) {
      const fromBuild = prebuilt.find(source) as ((doc: unknown) => string) | undefined;
      expect(fromBuild, JSON.stringify(source.route.schema).slice(0, 200)).toBeTypeOf('function');
      const compiled = SerializerSelector()(source.externalSchemas as never, source.options as never)(source.route as never);
      for (const body of bodies) {
        const doc: unknown = JSON.parse(body);
        const [a, b] = [outcome(() => fromBuild?.(structuredClone(doc))), outcome(() => compiled(structuredClone(doc)))];
        expect(a).toBe(b);
        if (a === `ok ${body}`) exact += 1;
      }
    }
    // The cluster answer's own serializers (GET, PUT, PATCH, their statuses) gave the API's bytes back, with every branch in it.
    expect(exact).toBeGreaterThanOrEqual(3);
    expect(prebuilt.counts.serializer).toEqual({ prebuilt: serializers.length, missing: 0 });
  }, scaled(60_000));
});

describe('the admin app with the build\'s validators', () => {
  it('warms every write route from the build (validators and serializers), compiling none, and answers as an app that compiled them', async () => {
    const prebuilt = new PrebuiltCode(built);
    let warmed: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (warmed = resolve));
    const served = adminStoreApp('fulcrum-prebuilt-app-', { deps: () => ({ onWarmed: () => warmed(), prebuilt }) });
    const cold = adminStoreApp('fulcrum-prebuilt-cold-');
    try {
      await served.app.listen({ host: '127.0.0.1', port: 0 });
      await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error('no warm-up')), scaled(60_000)))]);
      expect(prebuilt.counts.validator.prebuilt).toBeGreaterThanOrEqual(10);
      expect(prebuilt.counts.serializer.prebuilt).toBeGreaterThanOrEqual(10);
      expect(prebuilt.counts.validator.missing + prebuilt.counts.serializer.missing).toBe(0);
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
      // A big answer, serialized in slices: its endpoints' serializer came from the build too.
      const endpoints = Array.from({ length: SLICED_ANSWER_OVER + 5 }, (_, i) => ({ address: `10.2.${i >> 8}.${i & 255}`, port: 8080 }));
      const big = await served.app.inject({ method: 'PUT', url: '/v1/clusters/big', payload: { endpoints } });
      expect(big.statusCode, big.body).toBe(201);
      expect((JSON.parse(big.body) as { endpoints: unknown[] }).endpoints).toHaveLength(endpoints.length);
      // The read route's query validator and answer came from the build too, on its first request.
      expect(prebuilt.counts.validator.missing + prebuilt.counts.serializer.missing).toBe(0);
    } finally {
      await Promise.all([served.app.close(), cold.app.close()]);
      served.close();
      cold.close();
    }
  }, scaled(90_000));
});
