/**
 * A big write's body is validated (sliced-validation.ts) and parsed (sliced-parse.ts) in slices:
 * the answers to bad bodies are byte for byte those of checking them whole (the expected bodies
 * below were taken from `main` 4ce72f6, which checked them whole), a bad entry at the start, the
 * middle or the end alike; a good body gives the same store input as the whole parse; and other
 * work runs between the slices.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AdminApp } from '../../src/admin/app.js';
import type { ClusterIn } from '../../src/admin/api-schemas.js';
import { parseClusterBody } from '../../src/admin/resources.js';
import { parseClusterBodySliced } from '../../src/admin/sliced-parse.js';
import { BODY_SLICE, slicedBodyValidator, type BodyValidator } from '../../src/admin/sliced-validation.js';
import { adminStoreApp } from '../support/admin-store-app.js';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function fixture(): Promise<AdminApp> {
  const { app, close } = adminStoreApp('fulcrum-sliced-request-');
  closers.push(close);
  const res = await app.inject({ method: 'PUT', url: '/v1/clusters/web', payload: { endpoints: [{ address: '10.0.0.1', port: 80 }] } });
  expect(res.statusCode).toBe(201);
  return app;
}

const N = 3000;
const address = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const entries = (): Record<string, unknown>[] => Array.from({ length: N }, (_, i) => ({ address: address(i), port: 8080, weight: 1 }));
const at =
  (i: number, change: (e: Record<string, unknown>) => void) =>
  (es: Record<string, unknown>[]): object => {
    change(es[i] ?? {});
    return { endpoints: es };
  };

const bad = (message: string, path: string, code = 'VALIDATION_FAILED'): string => JSON.stringify({ error: 'Bad Request', message, code, path });

/** [case, route (c: cluster PUT, b: bulk endpoint PUT), body, the answer main gave]. */
const CASES: [string, 'c' | 'b', (es: Record<string, unknown>[]) => object, string][] = [
  ...[0, 1500, N - 1].flatMap((i): [string, 'c' | 'b', (es: Record<string, unknown>[]) => object, string][] => [
    [`port out of range at ${i}`, 'c', at(i, (e) => (e.port = 70000)), bad(`body/endpoints/${i}/port must be <= 65535`, `/body/endpoints/${i}/port`)],
    [`unknown field at ${i}`, 'c', at(i, (e) => (e.foo = 1)), bad(`body/endpoints/${i} must NOT have additional properties`, `/body/endpoints/${i}/foo`)],
    [`hostname at ${i}`, 'c', at(i, (e) => (e.address = 'example.com')), bad(`body/endpoints/${i}/address must be ipv4 or ipv6`, `/body/endpoints/${i}/address`)],
    [`bulk: port 0 at ${i}`, 'b', at(i, (e) => (e.port = 0)), bad(`body/endpoints/${i}/port must be >= 1`, `/body/endpoints/${i}/port`)],
  ]),
  ['duplicate at the start', 'c', at(0, (e) => (e.address = address(7))), bad('duplicate endpoint 10.0.0.7:8080', '/body/endpoints/7', 'BAD_REQUEST')],
  ['duplicate in the middle', 'c', at(1500, (e) => (e.address = address(1499))), bad('duplicate endpoint 10.0.5.219:8080', '/body/endpoints/1500', 'BAD_REQUEST')],
  ['duplicate at the end', 'c', at(N - 1, (e) => (e.address = address(N - 2))), bad('duplicate endpoint 10.0.11.182:8080', '/body/endpoints/2999', 'BAD_REQUEST')],
  [
    'two duplicates in two slices',
    'c',
    (es) => ((es[10] = { ...es[10], address: address(3) }), (es[2500] = { ...es[2500], address: address(4) }), { endpoints: es }),
    bad('duplicate endpoint 10.0.0.3:8080 (and 1 more problem)', '/body/endpoints/10', 'BAD_REQUEST'),
  ],
  [
    'a settings problem and two duplicates',
    'c',
    (es) => ((es[10] = { ...es[10], address: address(3) }), (es[2500] = { ...es[2500], address: address(4) }), { ringHash: {}, endpoints: es }),
    bad('only valid with lbPolicy RING_HASH (is ROUND_ROBIN) (and 2 more problems)', '/body/ringHash', 'BAD_REQUEST'),
  ],
  ['a bad entry and an unknown field at the top', 'c', (es) => ((es[2000] = { ...es[2000], port: -1 }), { zzz: 1, endpoints: es }), bad('body must NOT have additional properties', '/body/zzz')],
  [
    'a bad entry and a bad lbPolicy',
    'c',
    (es) => ((es[2000] = { ...es[2000], port: -1 }), { lbPolicy: 'NOPE', endpoints: es }),
    bad('body/lbPolicy must be one of ROUND_ROBIN, LEAST_REQUEST, RING_HASH, MAGLEV, RANDOM, CLIENT_SIDE_WEIGHTED_ROUND_ROBIN', '/body/lbPolicy'),
  ],
  ['a name that differs from the path', 'c', (es) => ({ name: 'other', endpoints: es }), bad('cluster name "other" differs from the path\'s "web"', '/body/name', 'BAD_REQUEST')],
  [
    'bulk: a duplicate past the first slice',
    'b',
    (es) => ((es[2500] = { ...es[2500], address: address(4) }), { endpoints: es }),
    bad('endpoints[2500]: duplicate endpoint 10.0.0.4:8080 (also endpoints[4])', '/body/endpoints/2500', 'BAD_REQUEST'),
  ],
];

describe('a big write\'s body checked in slices', () => {
  it.each(CASES)('%s: the 400 is byte for byte the one of checking the body whole', async (_name, route, make, expected) => {
    const app = await fixture();
    const url = route === 'c' ? '/v1/clusters/web' : '/v1/clusters/web/endpoints';
    const res = await app.inject({ method: 'PUT', url, payload: make(entries()) });
    expect(res.statusCode).toBe(400);
    expect(res.body).toBe(expected);
    const rec = await app.inject({ method: 'GET', url: '/v1/clusters/web' });
    expect((JSON.parse(rec.body) as { endpoints: unknown[] }).endpoints).toHaveLength(1);
  });

  it('a good body gives the store the same input as the whole parse (operator states, settings, order)', async () => {
    const endpoints = entries().map((e, i) => ({ ...e, ...(i % 7 === 0 ? { state: 'draining' } : {}), ...(i % 3 === 0 ? { priority: 1, locality: { region: 'r', zone: `z${i % 4}` } } : {}) }));
    const body = { lbPolicy: 'LEAST_REQUEST', leastRequest: { choiceCount: 3 }, weighting: { policy: 'pid', setpoint: 0.6 }, endpoints } as unknown as ClusterIn;
    expect(await parseClusterBodySliced(body, 'web')).toEqual(parseClusterBody(body, 'web'));
    const auto = { weighting: { policy: 'auto', traits: {} }, endpoints } as unknown as ClusterIn;
    expect(await parseClusterBodySliced(auto, 'web')).toEqual(parseClusterBody(auto, 'web'));
  });

  it('a long array is checked a slice per turn, other work running between, and only a failure is checked whole', async () => {
    const checked: unknown[] = [];
    let wholeCalls = 0;
    const whole: BodyValidator = (data) => {
      wholeCalls++;
      const items = (data as { items: unknown[] }).items;
      whole.errors = items.includes('bad') ? [{ message: 'whole says no' }] : null;
      return whole.errors === null;
    };
    const item: BodyValidator = (v) => (checked.push(v), v !== 'bad');
    let turns = 0;
    const validate = slicedBodyValidator(whole, { key: 'items', items: {}, minItems: 0, maxItems: 100_000 }, () => item, async () => void turns++);
    const items = Array.from({ length: BODY_SLICE * 3 + 1 }, (_, i) => i);
    const body = { items };
    expect(await validate(body)).toBe(true);
    expect([turns, checked.length, wholeCalls]).toEqual([3, items.length, 1]); // the head once, with the array empty
    expect(body.items).toBe(items);
    items[BODY_SLICE * 2] = 'bad' as unknown as number;
    expect(await validate(body)).toBe(false);
    expect(validate.errors).toEqual([{ message: 'whole says no' }]);
    expect(wholeCalls).toBe(3); // the head, then the whole body for its errors
    expect(validate({ items: [1, 2] })).toBe(true); // a short array: whole, at once
  });
});
