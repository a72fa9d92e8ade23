import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Catalog, Endpoint } from '../../src/catalog/types.js';
import type { WeightOverrides } from '../../src/catalog/weight-overrides.js';
import { XdsCache } from '../../src/xds/cache.js';
import { encodeMessage, TYPE } from '../../src/xds/envoy-api.js';
import { Publisher } from '../../src/xds/publisher.js';
import { assignmentResource, assignmentResourceSliced, ELEMENTS_PER_PIECE, encodeAssignment } from '../../src/xds/assignment-encoding.js';
import { resourceOfBytes } from '../../src/xds/resource.js';
import { assignmentLayout, loadAssignmentResource } from '../../src/xds/translate-clusters.js';
import { BIG_CLUSTER_ENDPOINTS, BIG_PUBLICATION_ENDPOINTS, translate, Translator } from '../../src/xds/translator.js';
import { DEFAULT_GROUP } from '../../src/xds/resource-set.js';
import { waitFor } from '../support/wait.js';
import { cluster, endpoint } from '../catalog/helpers.js';

const address = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

/** Endpoints over three localities and two priorities, some draining, weights varied. */
function endpoints(n: number): Endpoint[] {
  return Array.from({ length: n }, (_, i) =>
    endpoint(address(i), 8080 + (i % 3), {
      weight: 1 + (i % 7),
      priority: i % 5 === 0 ? 1 : 0,
      health: i % 11 === 0 ? 'DRAINING' : 'HEALTHY',
      locality: { region: 'eu', zone: `z${i % 3}`, subZone: i % 2 === 0 ? 'even' : '' },
    }),
  );
}

const big = (name = 'big', n = 2 * ELEMENTS_PER_PIECE + 517) => cluster(name, endpoints(n));
const catalogOf = (...clusters: ReturnType<typeof cluster>[]): Catalog => ({ clusters, listeners: [], nodeGroups: [] });
const ASSIGNMENT = 'envoy.config.endpoint.v3.ClusterLoadAssignment';

describe('assignmentResourceSliced', () => {
  it('gives the bytes of a one-go encode, and of protobufjs, turning between pieces', async () => {
    const overrides = new Map([[`${address(4)}:8084`, { weight: 9 }], [`${address(6)}:8080`, { health: 'UNHEALTHY' as const }]]);
    for (const c of [big(), big('one-locality', 3 * ELEMENTS_PER_PIECE + 1), cluster('small', endpoints(3)), cluster('empty')]) {
      let turns = 0;
      const resource = await assignmentResourceSliced(c.name, assignmentLayout(c, overrides), async () => void turns++);
      const sliced = Buffer.from(resource.bytes);
      expect(sliced.equals(encodeAssignment(assignmentLayout(c, overrides))), c.name).toBe(true);
      expect(sliced.equals(Buffer.from(encodeMessage(ASSIGNMENT, loadAssignmentResource(c, overrides)))), c.name).toBe(true);
      // The envelopes too: what the resource of the one-go encode, and of the bytes copied in, hold.
      for (const other of [assignmentResource(c.name, assignmentLayout(c, overrides)), resourceOfBytes(TYPE.endpoint, c.name, sliced)]) {
        expect(Buffer.from(other.deltaBytes).equals(Buffer.from(resource.deltaBytes)), c.name).toBe(true);
        expect(other.hash).toBe(resource.hash);
      }
      expect(turns).toBe(Math.floor(c.endpoints.length / ELEMENTS_PER_PIECE));
    }
  });

  it('keeps its own sizes while one-go encodes run between its pieces', async () => {
    const c = big();
    const expected = encodeAssignment(assignmentLayout(c));
    const other = cluster('other', endpoints(3_000).map((e) => ({ ...e, address: `fd00::${e.address.replaceAll('.', ':')}` })));
    const sliced = await assignmentResourceSliced(c.name, assignmentLayout(c), async () => void assignmentResource(other.name, assignmentLayout(other)));
    expect(Buffer.from(sliced.bytes).equals(expected)).toBe(true);
  });
});

describe('Translator.prepare', () => {
  it('encodes a big cluster\'s assignment ahead; translate then uses it and gives what a fresh translation gives', async () => {
    const weights: WeightOverrides = new Map([['big', new Map([[`${address(1)}:8081`, { weight: 5 }]])]]);
    const catalog = catalogOf(big(), cluster('small', endpoints(10)));
    const t = new Translator();
    expect(t.bigPending(catalog, weights).map((c) => c.name)).toEqual(['big']);
    await t.prepare(t.bigPending(catalog, weights), weights, () => new Promise((resolve) => setImmediate(resolve)));
    expect(t.bigPending(catalog, weights)).toEqual([]);
    const prepared = t.translate(catalog, weights).get(DEFAULT_GROUP)?.get(TYPE.endpoint)?.get('big');
    const fresh = translate(catalog, weights).get(DEFAULT_GROUP)?.get(TYPE.endpoint)?.get('big');
    expect(prepared?.hash).toBeDefined();
    expect(prepared?.hash).toBe(fresh?.hash);
    // Other weights: the prepared assignment no longer matches and is not used.
    const changed: WeightOverrides = new Map([['big', new Map([[`${address(1)}:8081`, { weight: 6 }]])]]);
    expect(t.bigPending(catalog, changed).map((c) => c.name)).toEqual(['big']);
    expect(t.translate(catalog, changed).get(DEFAULT_GROUP)?.get(TYPE.endpoint)?.get('big')?.hash).toBe(translate(catalog, changed).get(DEFAULT_GROUP)?.get(TYPE.endpoint)?.get('big')?.hash);
  });

  it('encodes a publication that changes many small clusters ahead, a turn per piece, with the bytes of a fresh translation', async () => {
    const per = 100;
    const many = Array.from({ length: BIG_PUBLICATION_ENDPOINTS / per + 1 }, (_, i) => cluster(`c${i}`, endpoints(per)));
    const catalog = catalogOf(...many);
    const t = new Translator();
    t.translate(catalog);
    // One endpoint's weight in every cluster (a weight-loop tick): every assignment is pending.
    const tick: WeightOverrides = new Map(many.map((c) => [c.name, new Map([[`${address(3)}:8080`, { weight: 42 }]])]));
    expect(t.bigPending(catalog, tick)).toHaveLength(many.length);
    let turns = 0;
    await t.prepare(t.bigPending(catalog, tick), tick, async () => void turns++);
    expect(turns).toBeGreaterThanOrEqual(Math.floor((many.length * per) / ELEMENTS_PER_PIECE));
    expect(t.bigPending(catalog, tick)).toEqual([]);
    const prepared = t.translate(catalog, tick).get(DEFAULT_GROUP)?.get(TYPE.endpoint);
    const fresh = translate(catalog, tick).get(DEFAULT_GROUP)?.get(TYPE.endpoint);
    expect([...(prepared ?? new Map()).values()].map((r) => r.hash)).toEqual([...(fresh ?? new Map()).values()].map((r) => r.hash));
    // Fewer endpoints changed than the threshold (the other clusters keep their overrides): encoded in one go by translate.
    const few: WeightOverrides = new Map([...tick].map(([name, o], i) => [name, i < BIG_PUBLICATION_ENDPOINTS / per - 1 ? new Map([[`${address(3)}:8080`, { weight: 7 }]]) : o]));
    expect(t.bigPending(catalog, few)).toEqual([]);
  });

  it('counts only clusters above the threshold as big', () => {
    const t = new Translator();
    expect(t.bigPending(catalogOf(cluster('edge', endpoints(BIG_CLUSTER_ENDPOINTS))))).toEqual([]);
    expect(t.bigPending(catalogOf(cluster('over', endpoints(BIG_CLUSTER_ENDPOINTS + 1)))).map((c) => c.name)).toEqual(['over']);
  });
});

describe('Publisher with a big cluster', () => {
  it('lets the event loop turn while the big assignment is encoded, then publishes the latest catalog once', async () => {
    const cache = new XdsCache();
    const published: number[] = [];
    const publisher = new Publisher(cache, pino({ level: 'silent' }), { quietMs: 0, maxMs: 0 }, (groups) => void published.push(groups));
    publisher.setCatalog(catalogOf(cluster('small', endpoints(3))));
    publisher.start();
    const before = published.filter((n) => n > 0).length;
    publisher.setCatalog(catalogOf(cluster('small', endpoints(3)), big()));
    // Not published in the same turn: the encode runs in slices.
    expect(cache.snapshotFor('*').resources(TYPE.endpoint).has('big')).toBe(false);
    let turned = false;
    setImmediate(() => (turned = true));
    // A change while it is being encoded is folded into the one publication that follows.
    publisher.setCatalog(catalogOf(cluster('small', endpoints(4)), big()));
    await waitFor(() => cache.snapshotFor('*').resources(TYPE.endpoint).has('big') || undefined, { what: 'the big cluster published', timeoutMs: 30_000 });
    expect(turned).toBe(true);
    expect(published.filter((n) => n > 0).length - before).toBe(1);
    const expected = translate(catalogOf(cluster('small', endpoints(4)), big())).get(DEFAULT_GROUP);
    for (const name of ['big', 'small']) expect(cache.snapshotFor('*').resources(TYPE.endpoint).get(name)?.hash).toBe(expected?.get(TYPE.endpoint)?.get(name)?.hash);
    publisher.stop();
  });
});
