import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import { Type } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import { lazySerializers, lazyValidators, Warmer } from '../../src/admin/lazy-compilers.js';
import { buildSerializer } from '../../src/admin/serializers.js';
import { waitFor } from '../support/wait.js';

type Build = Parameters<typeof lazyValidators>[0];

/** A validator factory that records what it compiles, in order (every value valid). */
function counting(): { build: Build; compiled: () => number; order: string[] } {
  const order: string[] = [];
  const build = (() => (route: { url: string }) => {
    order.push(route.url);
    return Object.assign(() => true, { errors: null });
  }) as unknown as Build;
  return { build, compiled: () => order.length, order };
}

const route = (url: string, method = 'PUT') => ({ schema: { type: 'object' }, method, url, httpPart: 'body' }) as never;

describe('lazy compilers and their warmer', () => {
  it('compiles nothing at creation, and in the background only once ready', async () => {
    const { build, compiled } = counting();
    const warmer = new Warmer();
    const compiler = lazyValidators(build, warmer)({}, {} as never);
    const validators = ['/a', '/b', '/c'].map((u) => compiler(route(u)));
    expect(compiled()).toBe(0);
    expect(warmer.left).toBe(3);
    let ready = false;
    warmer.start(() => ready, 5, 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(compiled()).toBe(0); // not ready yet
    ready = true;
    await waitFor(() => warmer.left === 0, { timeoutMs: 10_000, what: 'every schema compiled' });
    expect(compiled()).toBe(3);
    // Compiled once: a request after the warm-up compiles nothing more.
    for (const v of validators) expect(v({})).toBe(true);
    expect(compiled()).toBe(3);
    warmer.stop();
  });

  it('warms writes only; a request before the warm-up compiles its own schema once, and the warmer skips it', async () => {
    const { build, compiled, order } = counting();
    const warmer = new Warmer();
    const compiler = lazyValidators(build, warmer)({}, {} as never);
    const first = compiler(route('/a'));
    const read = compiler(route('/c', 'GET'));
    compiler(route('/b'));
    const write = compiler(route('/d', 'PATCH'));
    first({});
    expect(compiled()).toBe(1);
    warmer.start(() => true, 5, 0);
    await waitFor(() => warmer.left === 0, { timeoutMs: 10_000, what: 'every schema compiled' });
    // /a by its request; then the writes' /b and /d. The read /c stays lazy (heap at rest).
    expect(order).toEqual(['/a', '/b', '/d']);
    expect(write({})).toBe(true);
    expect(compiled()).toBe(3);
    expect(read({})).toBe(true);
    expect(order).toEqual(['/a', '/b', '/d', '/c']);
    warmer.stop();
  });

  it('compiles nothing while the event loop is busy (a reconnecting fleet after a restart), and all once it is quiet', async () => {
    const { build, compiled } = counting();
    let busy = true;
    let marks = 0;
    const warmer = new Warmer({ mark: () => void (marks += 1), quiet: () => !busy });
    const compiler = lazyValidators(build, warmer)({}, {} as never);
    for (const u of ['/a', '/b', '/c']) compiler(route(u));
    warmer.start(() => true, 5, 0, 0);
    await waitFor(() => marks >= 5, { timeoutMs: 10_000, what: 'the warmer looking at the busy loop again' });
    expect(compiled()).toBe(0);
    busy = false;
    await waitFor(() => warmer.left === 0, { timeoutMs: 10_000, what: 'every schema compiled' });
    expect(compiled()).toBe(3);
    warmer.stop();
  });

  it('says when the warm-up is done (start-up compaction waits for it): after its last compile, or at stop', async () => {
    const { build, compiled } = counting();
    const warmer = new Warmer();
    const compiler = lazyValidators(build, warmer)({}, {} as never);
    for (const u of ['/a', '/b']) compiler(route(u));
    let done = false;
    void warmer.done.then(() => (done = true));
    let ready = false;
    warmer.start(() => ready, 5, 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(done).toBe(false); // not ready: nothing compiled, not done
    ready = true;
    await waitFor(() => done, { timeoutMs: 10_000, what: 'the warm-up done' });
    expect(compiled()).toBe(2);
    expect(warmer.left).toBe(0);

    // Stopped before it could start (the admin server closed): done all the same, nothing compiled.
    const idle = counting();
    const stopped = new Warmer();
    lazyValidators(idle.build, stopped)({}, {} as never)(route('/c'));
    stopped.start(() => false, 5, 0);
    stopped.stop();
    await stopped.done;
    expect(idle.compiled()).toBe(0);
    expect(stopped.left).toBe(1);
  });

  it('compiles a response schema object once, whichever routes and statuses use it', () => {
    const compiled: string[] = [];
    const select = (() => () => (route: { url: string; httpStatus: string }) => {
      compiled.push(`${route.url} ${route.httpStatus}`);
      return (doc: unknown) => JSON.stringify(doc);
    }) as unknown as Parameters<typeof lazySerializers>[1];
    const compiler = lazySerializers(undefined, select)({}, {} as never);
    const view = { type: 'object' };
    const serializer = (url: string, httpStatus: string, schema: object) => compiler({ schema, method: 'PUT', url, httpStatus } as never);
    const created = serializer('/c/:name', '201', view);
    const replaced = serializer('/c/:name', '200', view);
    const other = serializer('/c/:name', '400', { type: 'object' });
    expect(compiled).toEqual([]);
    expect(created({ a: 1 })).toBe('{"a":1}');
    expect(replaced({ a: 2 })).toBe('{"a":2}');
    expect(compiled).toEqual(['/c/:name 201']);
    expect(other({ e: 1 })).toBe('{"e":1}');
    expect(compiled).toEqual(['/c/:name 201', '/c/:name 400']);
  });

  it('warms a write\'s serializer in one step, big answers first, with no Ajv left for its first document, and the bytes of a plain build', async () => {
    // A view with a scalar union (as a cluster's setpoint): a plain build asks Ajv which branch a value takes.
    const view = Type.Object({
      name: Type.String(),
      setpoint: Type.Optional(Type.Union([Type.Literal('mean'), Type.Number({ minimum: 0, maximum: 1 })])),
      items: Type.Array(Type.Object({ a: Type.Integer() })),
    });
    const built: { url: string; ajvSchemas: number }[] = [];
    const select = () => {
      const build = SerializerSelector();
      return ((externalSchemas: unknown, options: object | undefined) => (route: { url: string; schema: unknown }) => {
        const debug = build(externalSchemas as never, { ...options, mode: 'debug' } as never)(route as never) as unknown as { validator: { getState(): { ajvSchemas: object } } };
        built.push({ url: route.url, ajvSchemas: Object.keys(debug.validator.getState().ajvSchemas).length });
        return build(externalSchemas as never, options as never)(route as never);
      }) as unknown as ReturnType<typeof SerializerSelector>;
    };
    const warmer = new Warmer();
    // As app.ts composes them: serializers.ts' compiler (which rewrites the union) behind the lazy one.
    const compiler = lazySerializers(warmer, () => buildSerializer(undefined, select), (schema) => schema === view)({}, {} as never);
    const other = compiler({ schema: Type.Object({ n: Type.Integer() }), method: 'PATCH', url: '/o', httpStatus: '200' } as never);
    const serialize = compiler({ schema: view, method: 'PUT', url: '/v', httpStatus: '200' } as never);
    expect(warmer.left).toBe(2);
    warmer.start(() => true, 5, 0);
    await waitFor(() => warmer.left === 0, { timeoutMs: 10_000, what: 'the serializers warmed' });
    // One step each, the big answer's first, and neither leaves Ajv a schema to compile.
    expect(built).toEqual([
      { url: '/v', ajvSchemas: 0 },
      { url: '/o', ajvSchemas: 0 },
    ]);
    const plain = SerializerSelector()({}, {})({ schema: view, method: 'PUT', url: '/v', httpStatus: '200' } as never);
    for (const doc of [
      { name: 'a', items: [] },
      { name: 'b', setpoint: 'mean', items: [{ a: 1 }] },
      { name: 'c', setpoint: 0.25, items: [{ a: 2 }, { a: 3 }] },
    ]) expect(serialize(doc)).toBe(plain(doc));
    expect(other({ n: 3 })).toBe('{"n":3}');
    expect(built).toHaveLength(2); // the warm builds are the routes' serializers: no second compile
    warmer.stop();
  });
});
