import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import { Type, type TSchema } from '@sinclair/typebox';
import type { RouteOptions } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { serializerSchema } from '../../src/admin/serializer-schema.js';
import { adminStoreApp } from '../support/admin-store-app.js';

interface DebugBuild {
  readonly validator: { getState(): { readonly ajvSchemas: Record<string, unknown> } };
}

/** Schemas fast-json-stringify would hand Ajv to serialize with `schema` (its documented debug build). */
function ajvSchemasOf(schema: unknown): string[] {
  const debug = SerializerSelector()({}, { mode: 'debug' } as never)({ schema, method: 'GET', url: '/', httpStatus: '200' } as never) as unknown as DebugBuild;
  return Object.keys(debug.validator.getState().ajvSchemas);
}

const serialize = (schema: unknown) => SerializerSelector()({}, {})({ schema, method: 'GET', url: '/', httpStatus: '200' } as never);

describe('the response schema fast-json-stringify is given', () => {
  const Setpoint = Type.Union([Type.Literal('mean'), Type.Number({ minimum: 0, maximum: 1 })]);

  it('turns a union of scalars of different types into a type list, and leaves the route\'s schema as it was', () => {
    const view = Type.Object({ name: Type.String(), weighting: Type.Object({ setpoint: Type.Optional(Setpoint) }), limit: Type.Optional(Type.Union([Type.Integer(), Type.Null()])) });
    const before = JSON.stringify(view);
    const given = serializerSchema(view) as unknown as { properties: Record<string, { type?: unknown; anyOf?: unknown; properties?: Record<string, { type?: unknown; anyOf?: unknown }> }> };
    expect(given.properties.weighting?.properties?.setpoint).toMatchObject({ type: ['string', 'number'] });
    expect(given.properties.weighting?.properties?.setpoint?.anyOf).toBeUndefined();
    expect(given.properties.limit).toMatchObject({ type: ['integer', 'null'] });
    expect(JSON.stringify(view)).toBe(before);
    expect(ajvSchemasOf(view)).not.toEqual([]);
    expect(ajvSchemasOf(given)).toEqual([]);
  });

  it('leaves other unions to Ajv: objects, integer beside number, a format (a date-time serializes a Date), a type beside the anyOf', () => {
    const unions = [
      Type.Union([Type.Object({ a: Type.Integer() }), Type.Object({ b: Type.String() })]),
      Type.Union([Type.String(), Type.Object({ b: Type.String() })]),
      Type.Union([Type.Integer(), Type.Number()]),
      Type.Union([Type.String({ format: 'date-time' }), Type.Number()]),
      { type: 'string', anyOf: [{ type: 'string', enum: ['a'] }, { type: 'number' }] },
    ];
    for (const u of unions) {
      const view = Type.Object({ v: u as TSchema });
      expect(serializerSchema(view)).toBe(view);
    }
  });

  it('a schema without scalar unions is given as it is (the same object)', () => {
    const view = Type.Object({ name: Type.String(), state: Type.Unsafe({ type: 'string', enum: ['a', 'b'] }), items: Type.Array(Type.Object({ a: Type.Integer() })) });
    expect(serializerSchema(view)).toBe(view);
  });

  it('serializes every value the union allows with the bytes of the plain build', () => {
    const view = Type.Object({ setpoint: Type.Optional(Setpoint), flag: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])), n: Type.Optional(Type.Union([Type.Integer(), Type.String()])) });
    const plain = serialize(view);
    const given = serialize(serializerSchema(view));
    for (const doc of [{}, { setpoint: 'mean' }, { setpoint: 0 }, { setpoint: 0.7 }, { setpoint: 1 }, { flag: true }, { flag: false }, { flag: null }, { n: 3 }, { n: 'x' }, { setpoint: 0.5, flag: null, n: -1 }])
      expect(given(doc)).toBe(plain(doc));
  });
});

describe('the admin API\'s answers', () => {
  const { app, close } = adminStoreApp('fulcrum-serializer-schema-');
  const answers: { route: string; schema: unknown }[] = [];
  // Before ready: every route plugin registers its routes after this hook is in place.
  app.addHook('onRoute', (route: RouteOptions) => {
    for (const [status, schema] of Object.entries((route.schema?.response ?? {}) as Record<string, unknown>))
      answers.push({ route: `${[route.method].flat().join(',')} ${route.url} ${status}`, schema });
  });
  afterAll(async () => {
    await app.close();
    close();
  });

  it('need no Ajv to serialize: no anyOf, oneOf or if is left in what fast-json-stringify is given', async () => {
    await app.ready();
    expect(answers.length).toBeGreaterThan(50);
    const needAjv = answers.filter((a) => ajvSchemasOf(serializerSchema(a.schema)).length > 0).map((a) => a.route);
    expect(needAjv).toEqual([]);
    // Before the rewrite, the cluster and policy answers did (the setpoint: "mean" or a number).
    const setpoint = answers.filter((a) => ajvSchemasOf(a.schema).length > 0).map((a) => a.route);
    expect(setpoint).toContain('PUT /v1/clusters/:name 200');
    expect(setpoint).toContain('PATCH /v1/clusters/:name/policy 200');
  });
});
