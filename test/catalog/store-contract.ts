/**
 * The contract every durable store keeps (SQLite and etcd alike): ownership, revisions as
 * ETags, If-Match, no-op writes, operator state, config-file seeding, audit, change events and
 * the published-weights archive. Revisions are compared by order, not value: SQLite counts its
 * own, etcd's are the cluster's. store.test.ts keeps the SQLite-only details.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConflictError,
  NotFoundError,
  OwnershipError,
  type AuditEntry,
  type CatalogStore,
  type MaybePromise,
  type StoreChange,
} from '../../src/catalog/store/index.js';
import type { OperatorState, WriteGuard, WriteOptions } from '../../src/catalog/store/records.js';
import type { Catalog } from '../../src/catalog/types.js';
import { seededRandom } from '../../examples/backends/poisson-load.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { cluster, endpoint, listener, sorted } from './helpers.js';

export interface StoreHarness {
  /** A fresh, empty store. */
  open(): Promise<CatalogStore>;
}

const API = { actor: 'alice', owner: 'api' } as const;

/** A write's failure, whether the store throws at once (SQLite) or rejects (etcd). */
const attempt = async (fn: () => MaybePromise<unknown>): Promise<unknown> => fn();

export const FILE_V1 = `
clusters:
  - name: web
    lbPolicy: LEAST_REQUEST
    leastRequest: { choiceCount: 3 }
    slowStart: { windowMs: 30000, aggression: 1.5, minWeightPercent: 5 }
    weighting: { policy: pid, setpoint: 0.7, metric: cpu, gains: { kp: 0.4 } }
    safety: { maxStepRatio: 2 }
    endpoints:
      - { address: 10.0.0.1, port: 80, weight: 2, priority: 1, locality: { region: eu, zone: a } }
      - { address: "::1", port: 81 }
  - name: sticky
    lbPolicy: RING_HASH
    ringHash: { virtualNodesPerHost: 100, hashFunction: MURMUR_HASH_2 }
    endpoints:
      - { address: 10.0.1.1, port: 80 }
  - name: old
    endpoints: [{ address: 10.0.2.1, port: 80 }]
listeners:
  - name: ingress
    port: 10000
    routes:
      - { prefix: /s, cluster: sticky }
      - { domain: api.example.com, prefix: /, cluster: web, timeoutMs: 1500 }
nodeGroups:
  - { nodeCluster: edge, listeners: [ingress] }
`;

/** v2: "old" is gone, web's weight changes, a new cluster appears, the node group is dropped. */
export const FILE_V2 = FILE_V1.replace('weight: 2,', 'weight: 5,')
  .replace('  - name: old\n    endpoints: [{ address: 10.0.2.1, port: 80 }]', '  - name: fresh')
  .replace(/nodeGroups:[^]*$/, '');

export const fileCatalog = (text: string): Catalog => parseConfig(text, 'fulcrum.yaml').catalog;

export function storeContract(harness: () => StoreHarness): void {
  const open: CatalogStore[] = [];
  const fresh = async (): Promise<CatalogStore> => {
    const s = await harness().open();
    open.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  describe('clusters and endpoints', () => {
    it('round-trips a cluster with its endpoints and every domain field', async () => {
      const s = await fresh();
      const c = fileCatalog(FILE_V1).clusters[0]!;
      const { revision } = await s.putCluster(c, API);
      expect(revision).toBeGreaterThan(0);
      expect(s.catalog().clusters).toEqual(sorted({ clusters: [c], listeners: [], nodeGroups: [] }).clusters);
      expect(s.getCluster('web')).toMatchObject({
        name: 'web', owner: 'api', revision, lbPolicy: 'LEAST_REQUEST', slowStart: { windowMs: 30_000, aggression: 1.5, minWeightPercent: 5 }, safety: { maxStepRatio: 2 },
      });
      expect(s.getCluster('web')!.endpoints.map((e) => [e.address, e.state, e.owner, e.revision])).toEqual([
        ['10.0.0.1', 'active', 'api', revision],
        ['::1', 'active', 'api', revision],
      ]);
      expect(s.revision()).toBeGreaterThanOrEqual(revision);
    });

    it('catalog() after a write: the changed clusters read again, every other cluster the same object as before', async () => {
      const s = await fresh();
      await s.putCluster(cluster('a', [endpoint('10.0.0.1'), endpoint('10.0.0.2')]), API);
      await s.putCluster(cluster('b', [endpoint('10.0.1.1')]), API);
      await s.putCluster(cluster('c', [endpoint('10.0.2.1')]), API);
      const before = s.catalog();
      expect(s.catalog()).toEqual(before);
      await s.putEndpoint('a', endpoint('10.0.0.1', 8080, { weight: 9 }), API);
      await s.setEndpointState('c', '10.0.2.1', 8080, 'disabled', API);
      const after = s.catalog();
      const byName = (cat: Catalog, name: string) => cat.clusters.find((c) => c.name === name);
      expect(byName(after, 'b')).toBe(byName(before, 'b'));
      expect(byName(after, 'a')).not.toBe(byName(before, 'a'));
      expect(byName(after, 'a')?.endpoints.map((e) => e.weight)).toEqual([9, 1]);
      expect(byName(after, 'c')?.endpoints).toEqual([]);
      await s.deleteCluster('b', API);
      await s.putCluster(cluster('0-first', []), API);
      expect(s.catalog().clusters.map((c) => c.name)).toEqual(['0-first', 'a', 'c']);
    });

    it('catalog() after a cluster write keeps the listener and node group lists as they were (the translator keeps them by identity)', async () => {
      const s = await fresh();
      await s.putCluster(cluster('web', [endpoint('10.0.0.1')]), API);
      await s.putListener(listener('in', 'web'), API);
      await s.putListener(listener('out', 'web', 10002), API);
      await s.putNodeGroup({ nodeCluster: 'edge', listeners: ['in'], clusters: [] }, API);
      const before = s.catalog();
      await s.putEndpoint('web', endpoint('10.0.0.1', 8080, { weight: 9 }), API);
      const after = s.catalog();
      expect(after.listeners).toBe(before.listeners);
      expect(after.nodeGroups).toBe(before.nodeGroups);
      await s.putListener(listener('out', 'web', 10003), API);
      const moved = s.catalog();
      expect(moved.listeners).not.toBe(before.listeners);
      expect(moved.listeners.map((l) => (l.kind === 'api' ? undefined : l.port))).toEqual([10000, 10003]);
    });

    it('catalog() after clusters created and deleted one by one: each placed in name order, the others the same objects', async () => {
      const s = await fresh();
      const names = ['m', 'c', 'x', 'a', 'q', 'b0', 'b10', 'b9', 'Z', 'a_b', 'a-b'];
      const live = new Set<string>();
      for (const [i, n] of names.entries()) {
        const before = s.catalog();
        await s.putCluster(cluster(n, [endpoint(`10.8.${i}.1`)]), API);
        live.add(n);
        const after = s.catalog();
        expect(after.clusters.map((c) => c.name)).toEqual([...live].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
        for (const c of before.clusters) expect(after.clusters.find((x) => x.name === c.name)).toBe(c);
        if (i % 3 === 2) {
          const gone = names[i - 1] as string;
          await s.deleteCluster(gone, API);
          live.delete(gone);
          expect(s.catalog().clusters.map((c) => c.name)).toEqual([...live].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
        }
      }
    });

    it('catalog() follows random write sequences: the model\'s clusters in code-unit name order, each cluster as its record serves it, the unwritten the same objects', async () => {
      const s = await fresh();
      const r = seededRandom(7);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
      const alphabet = ['a', 'b', 'B', 'z', 'Z', '0', '9', '-', '_', '.'];
      /** The model: each cluster's endpoints by address, with their operator state. */
      const model = new Map<string, Map<string, OperatorState>>();
      const written = new Set<string>();
      let serial = 0;
      const newName = (): string => {
        let n = pick(['a', 'b', 'Z', 'm']);
        for (let k = Math.floor(r() * 4); k > 0; k--) n += pick(alphabet);
        return `${n}${serial++ % 3 === 0 ? '' : `-${serial}`}`;
      };
      const address = (): string => `10.${Math.floor(r() * 4)}.${Math.floor(r() * 8)}.${1 + Math.floor(r() * 200)}`;
      const create = async (): Promise<void> => {
        const name = newName();
        if (model.has(name)) return;
        const addresses = [...new Set(Array.from({ length: Math.floor(r() * 4) }, address))];
        await s.putCluster(cluster(name, addresses.map((a) => endpoint(a, 8080, { weight: 1 + Math.floor(r() * 9) }))), API);
        model.set(name, new Map(addresses.map((a) => [a, 'active' as OperatorState])));
        written.add(name);
      };
      let before = s.catalog();
      for (let step = 0; step < 160; step++) {
        const names = [...model.keys()];
        const choice = r();
        if (names.length < 3 || choice < 0.22) await create();
        else if (choice < 0.3) {
          // A burst of creates between reads: past the view's splice limit it sorts anew.
          for (let k = 0; k < (r() < 0.3 ? 70 : 3); k++) await create();
        } else if (choice < 0.42) {
          const name = pick(names);
          await s.deleteCluster(name, API);
          model.delete(name);
          written.add(name);
        } else if (choice < 0.52) {
          const name = pick(names);
          const { endpoints: _kept, ...spec } = cluster(name, [], { connectTimeoutMs: 100 + Math.floor(r() * 5000) });
          await s.putCluster(spec, API);
          written.add(name);
        } else {
          const name = pick(names);
          const eps = model.get(name) as Map<string, OperatorState>;
          const known = [...eps.keys()];
          const op = r();
          if (known.length === 0 || op < 0.35) {
            const a = address();
            await s.putEndpoint(name, endpoint(a, 8080, { weight: 1 + Math.floor(r() * 9) }), API);
            if (!eps.has(a)) eps.set(a, 'active');
          } else if (op < 0.55) {
            const a = pick(known);
            await s.removeEndpoint(name, a, 8080, API);
            eps.delete(a);
          } else {
            const a = pick(known);
            const state = pick(['active', 'draining', 'disabled'] as const);
            await s.setEndpointState(name, a, 8080, state, { actor: 'bob' });
            eps.set(a, state);
          }
          written.add(name);
        }
        if (r() < 0.4) continue; // writes pile up in the view between reads
        const after = s.catalog();
        const at = `step ${step}`;
        expect(after.clusters.map((c) => c.name), at).toEqual([...model.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
        for (const c of after.clusters) {
          const eps = model.get(c.name) as Map<string, OperatorState>;
          const served = [...eps].filter(([, st]) => st !== 'disabled').map(([a, st]) => `${a}=${st === 'draining' ? 'DRAINING' : 'HEALTHY'}`);
          expect(c.endpoints.map((e) => `${e.address}=${e.health}`).sort(), `${at} ${c.name}`).toEqual(served.sort());
          // The order the record gives, so the view's patched endpoints are where a whole read puts them.
          const record = s.getCluster(c.name)?.endpoints.filter((e) => e.state !== 'disabled').map((e) => e.address);
          expect(c.endpoints.map((e) => e.address), `${at} ${c.name} order`).toEqual(record);
          const old = before.clusters.find((x) => x.name === c.name);
          if (old !== undefined && !written.has(c.name)) expect(c, `${at} ${c.name} kept`).toBe(old);
        }
        written.clear();
        before = after;
      }
    });

    it('clusterOwner: the owner of a stored cluster, undefined for none or once deleted', async () => {
      const s = await fresh();
      expect(s.clusterOwner('web')).toBeUndefined();
      await s.putCluster(cluster('web', [endpoint('10.0.0.1')]), API);
      expect(s.clusterOwner('web')).toBe('api');
      expect(s.clusterOwner('we')).toBeUndefined();
      await s.seedFromConfig({ clusters: [cluster('filed', [])], listeners: [], nodeGroups: [] });
      expect(s.clusterOwner('filed')).toBe('file');
      await s.deleteCluster('web', API);
      expect(s.clusterOwner('web')).toBeUndefined();
    });

    it('catalog() after one-endpoint writes across many clusters: each lands in its place (code-unit name order), the others stay the same objects', async () => {
      const s = await fresh();
      const names = ['Z', 'a', 'a-b', 'a.b', 'a_b', 'aa', 'b', 'b0', 'b10', 'b9', 'c', 'x-1', 'x_1', 'y', 'zz'];
      for (const [i, n] of names.entries()) await s.putCluster(cluster(n, [endpoint(`10.9.${i}.1`), endpoint(`10.9.${i}.2`)]), API);
      const sorted = [...names].sort((p, q) => (p < q ? -1 : p > q ? 1 : 0));
      let before = s.catalog();
      expect(before.clusters.map((c) => c.name)).toEqual(sorted);
      for (const [round, i] of [14, 0, 7, 3, 3, 11, 1, 13, 5, 9].entries()) {
        const name = names[i] as string;
        await s.putEndpoint(name, endpoint(`10.9.${i}.2`, 8080, { weight: 10 + round }), API);
        const after = s.catalog();
        expect(after.clusters.map((c) => c.name)).toEqual(sorted);
        for (const [k, c] of after.clusters.entries()) {
          if (c.name === name) expect(c.endpoints.map((e) => e.weight)).toContain(10 + round);
          else expect(c).toBe(before.clusters[k]);
        }
        before = after;
      }
    });

    it('an update takes a higher revision; an identical put is a no-op (same revision, no audit, no event)', async () => {
      const s = await fresh();
      const events: StoreChange[] = [];
      s.onChange((e) => events.push(e));
      const r1 = (await s.putCluster(cluster('a', [endpoint('10.0.0.1')]), API)).revision;
      expect((await s.putCluster(cluster('a', [endpoint('10.0.0.1')]), API)).revision).toBe(r1);
      const r2 = (await s.putCluster(cluster('a', [endpoint('10.0.0.1')], { http2: true }), API)).revision;
      expect(r2).toBeGreaterThan(r1);
      // Without `endpoints` the endpoint set is left alone.
      const { endpoints: _e, ...spec } = cluster('a', [], { http2: true, connectTimeoutMs: 5 });
      const r3 = (await s.putCluster(spec, API)).revision;
      expect(r3).toBeGreaterThan(r2);
      expect(s.getCluster('a')!.endpoints).toHaveLength(1);
      expect(s.getCluster('a')!.endpoints[0]!.revision).toBe(r1);
      expect(s.audit().map((a) => [a.action, a.revision])).toEqual([['update', r3], ['update', r2], ['create', r1]]);
      expect(events.map((e) => [e.revision, e.actor, e.changes])).toEqual([
        [r1, 'alice', [{ kind: 'cluster', name: 'a', action: 'create' }]],
        [r2, 'alice', [{ kind: 'cluster', name: 'a', action: 'update' }]],
        [r3, 'alice', [{ kind: 'cluster', name: 'a', action: 'update' }]],
      ]);
    });

    it('endpoint writes bump the endpoint and its cluster; delete cascades', async () => {
      const s = await fresh();
      const r1 = (await s.putCluster(cluster('a'), API)).revision;
      const r2 = (await s.putEndpoint('a', endpoint('10.0.0.1'), API)).revision;
      const r3 = (await s.putEndpoint('a', endpoint('10.0.0.2', 81, { weight: 7 }), API)).revision;
      expect(r1 < r2 && r2 < r3).toBe(true);
      expect((await s.putEndpoint('a', endpoint('10.0.0.2', 81, { weight: 7 }), API)).revision).toBe(r3); // no-op
      expect(s.getCluster('a')!.revision).toBe(r3);
      expect(s.getEndpoint('a', '10.0.0.1', 8080)!.revision).toBe(r2);
      expect((await s.removeEndpoint('a', '10.0.0.1', 8080, API)).revision).toBeGreaterThan(r3);
      expect(s.catalog().clusters[0]!.endpoints.map((e) => [e.address, e.weight])).toEqual([['10.0.0.2', 7]]);
      await expect(attempt(() => s.removeEndpoint('a', '10.0.0.1', 8080, API))).rejects.toThrow(NotFoundError);
      await expect(attempt(() => s.putEndpoint('nope', endpoint('10.0.0.1'), API))).rejects.toThrow(NotFoundError);
      await s.deleteCluster('a', API);
      expect(s.getCluster('a')).toBeUndefined();
      expect(s.getEndpoint('a', '10.0.0.2', 81)).toBeUndefined();
      await expect(attempt(() => s.deleteCluster('a', API))).rejects.toThrow(NotFoundError);
    });

    it('operator state: draining is served as DRAINING, disabled is left out; putCluster keeps the state', async () => {
      const s = await fresh();
      await s.putCluster(cluster('a', [endpoint('10.0.0.1'), endpoint('10.0.0.2'), endpoint('10.0.0.3', 8080, { health: 'UNHEALTHY' })]), API);
      await s.setEndpointState('a', '10.0.0.1', 8080, 'draining', { actor: 'bob' });
      await s.setEndpointState('a', '10.0.0.2', 8080, 'disabled', { actor: 'bob' });
      const health = () => s.catalog().clusters[0]!.endpoints.map((e) => `${e.address}=${e.health}`);
      expect(health()).toEqual(['10.0.0.1=DRAINING', '10.0.0.3=UNHEALTHY']);
      await s.putCluster({ ...cluster('a'), endpoints: [endpoint('10.0.0.1'), { ...endpoint('10.0.0.2'), state: 'active' }, endpoint('10.0.0.3')] }, API);
      expect(health()).toEqual(['10.0.0.1=DRAINING', '10.0.0.2=HEALTHY', '10.0.0.3=HEALTHY']);
      const before = s.getEndpoint('a', '10.0.0.1', 8080)!.revision;
      expect((await s.setEndpointState('a', '10.0.0.1', 8080, 'draining', { actor: 'bob' })).revision).toBe(before); // no-op
      await expect(attempt(() => s.setEndpointState('a', '10.9.9.9', 1, 'disabled', { actor: 'bob' }))).rejects.toThrow(NotFoundError);
      expect(s.getEndpoint('a', '10.0.0.1', 8080)).toMatchObject({ health: 'HEALTHY', state: 'draining' });
    });

    it('listeners and node groups: put, no-op, delete', async () => {
      const s = await fresh();
      await s.putCluster(cluster('web'), API);
      const r1 = (await s.putListener(listener('in', 'web'), API)).revision;
      expect((await s.putListener(listener('in', 'web'), API)).revision).toBe(r1);
      const r2 = (await s.putListener(listener('in', 'web', 10001), API)).revision;
      expect(r2).toBeGreaterThan(r1);
      await s.putNodeGroup({ nodeCluster: 'edge', listeners: ['in'], clusters: [] }, API);
      expect(s.catalog()).toEqual({
        clusters: [cluster('web')],
        listeners: [listener('in', 'web', 10001)],
        nodeGroups: [{ nodeCluster: 'edge', listeners: ['in'], clusters: [] }],
      });
      expect(s.getListener('in')).toMatchObject({ owner: 'api', revision: r2, port: 10001 });
      expect(s.getNodeGroup('edge')).toMatchObject({ owner: 'api', listeners: ['in'] });
      await s.deleteNodeGroup('edge', API);
      await s.deleteListener('in', API);
      expect(s.catalog().listeners).toEqual([]);
      expect(s.catalog().nodeGroups).toEqual([]);
      await expect(attempt(() => s.deleteListener('in', API))).rejects.toThrow(NotFoundError);
    });

    it('rejects "file" as a writer: file rows are only written by seedFromConfig', async () => {
      const s = await fresh();
      await expect(attempt(() => s.putCluster(cluster('a'), { actor: 'x', owner: 'file' as never }))).rejects.toThrow(TypeError);
    });
  });

  describe('optimistic concurrency (If-Match)', () => {
    it('a stale revision throws ConflictError and writes nothing: no change, no audit, no event', async () => {
      const s = await fresh();
      const r1 = (await s.putCluster(cluster('a', [endpoint('10.0.0.1')]), API)).revision;
      const r2 = (await s.putCluster(cluster('a', [endpoint('10.0.0.1')], { connectTimeoutMs: 2 }), { ...API, ifMatch: r1 })).revision;
      expect(r2).toBeGreaterThan(r1);
      const events: StoreChange[] = [];
      s.onChange((e) => events.push(e));
      const snapshot = { cluster: s.getCluster('a'), audit: s.audit() };
      const err = await attempt(() => s.putCluster(cluster('a', [], { connectTimeoutMs: 3 }), { ...API, ifMatch: r1 })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect(err).toMatchObject({ status: 409, kind: 'cluster', resource: 'a', expected: r1, actual: r2 });
      await expect(attempt(() => s.deleteCluster('a', { ...API, ifMatch: r1 }))).rejects.toThrow(ConflictError);
      await expect(attempt(() => s.putEndpoint('a', endpoint('10.0.0.1', 8080, { weight: 9 }), { ...API, ifMatch: r1 + 100 }))).rejects.toThrow(ConflictError);
      await expect(attempt(() => s.setEndpointState('a', '10.0.0.1', 8080, 'disabled', { actor: 'x', ifMatch: r2 + 1 }))).rejects.toThrow(ConflictError);
      expect({ cluster: s.getCluster('a'), audit: s.audit() }).toEqual(snapshot);
      expect(events).toEqual([]);
      expect((await s.deleteCluster('a', { ...API, ifMatch: r2 })).revision).toBeGreaterThan(r2);
    });

    it('ifMatch 0 means create-only; revisions are not reused after delete + re-create', async () => {
      const s = await fresh();
      const r1 = (await s.putListener(listener('l', 'x'), { ...API, ifMatch: 0 })).revision;
      await expect(attempt(() => s.putListener(listener('l', 'x', 1), { ...API, ifMatch: 0 }))).rejects.toThrow(/already exists/);
      await s.deleteListener('l', API);
      const r3 = (await s.putListener(listener('l', 'x'), API)).revision;
      expect(r3).toBeGreaterThan(r1);
      await expect(attempt(() => s.putListener(listener('l', 'x', 2), { ...API, ifMatch: r1 }))).rejects.toThrow(ConflictError);
      await expect(attempt(() => s.putCluster(cluster('ghost'), { ...API, ifMatch: 5 }))).rejects.toThrow(/does not exist/);
    });
  });

  describe('write guards', () => {
    // Three endpoints: behind the write lane (store-contract.test.ts) the cluster writes take the sliced path.
    const three = [endpoint('10.0.0.1'), endpoint('10.0.0.2'), endpoint('10.0.0.3')];
    const refusal = new Error('refused by the guard');
    const reads = { clusters: ['a'], listeners: true, nodeGroups: true };

    /** A store holding one of each resource, so that every write below changes something. */
    const stocked = async (): Promise<CatalogStore> => {
      const s = await fresh();
      await s.putCluster(cluster('a', three), API);
      await s.putListener(listener('in', 'a'), API);
      await s.putNodeGroup({ nodeCluster: 'edge', listeners: ['in'], clusters: [] }, API);
      return s;
    };

    /** Every write that takes write options, each a change on the stocked store. */
    const writes = (s: CatalogStore, opts: WriteOptions): ReadonlyArray<readonly [string, () => MaybePromise<unknown>]> => [
      ['putCluster', () => s.putCluster(cluster('a', three, { connectTimeoutMs: 2 }), opts)],
      ['putEndpoint', () => s.putEndpoint('a', endpoint('10.0.0.4'), opts)],
      ['removeEndpoint', () => s.removeEndpoint('a', '10.0.0.1', 8080, opts)],
      ['putListener', () => s.putListener(listener('in', 'a', 10001), opts)],
      ['putNodeGroup', () => s.putNodeGroup({ nodeCluster: 'edge', listeners: [], clusters: [] }, opts)],
      ['deleteNodeGroup', () => s.deleteNodeGroup('edge', opts)],
      ['deleteListener', () => s.deleteListener('in', opts)],
      ['deleteCluster', () => s.deleteCluster('a', opts)],
    ];

    it('every write that takes write options runs its guard: a refusal is thrown and writes nothing (no change, no audit, no event)', async () => {
      const s = await stocked();
      const events: StoreChange[] = [];
      s.onChange((e) => events.push(e));
      const snapshot = { catalog: s.catalog(), audit: s.audit() };
      const guard: WriteGuard = { check: () => { throw refusal; }, reads };
      const accepted: string[] = [];
      for (const [name, write] of writes(s, { ...API, guard })) {
        const refused = await attempt(write).then(
          () => false,
          (err: unknown) => {
            if (err !== refusal) throw err;
            return true;
          },
        );
        if (!refused) accepted.push(name);
      }
      expect(accepted).toEqual([]);
      expect({ catalog: s.catalog(), audit: s.audit() }).toEqual(snapshot);
      expect(events).toEqual([]);
    });

    it('a guard that lets a write through has been checked, and the write is made', async () => {
      const s = await stocked();
      let checks = 0;
      const guard: WriteGuard = { check: () => void checks++, reads };
      const unchecked: string[] = [];
      for (const [name, write] of writes(s, { ...API, guard })) {
        const before = checks;
        await write();
        if (checks === before) unchecked.push(name);
      }
      expect(unchecked).toEqual([]);
      expect(s.catalog()).toEqual({ clusters: [], listeners: [], nodeGroups: [] });
    });
  });

  describe('config file vs API ownership', () => {
    it('seeds file-owned resources to equal the file catalog; re-seeding an unchanged file is invisible', async () => {
      const s = await fresh();
      const res = await s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' });
      expect(res.conflicts).toEqual([]);
      expect(res.changes).toHaveLength(3 + 1 + 1);
      expect(sorted(s.catalog())).toEqual(sorted(fileCatalog(FILE_V1)));
      expect(s.listClusters().every((c) => c.owner === 'file')).toBe(true);
      const audits = s.audit().length;
      const again = await s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' });
      expect(again).toEqual({ revision: res.revision, changes: [], conflicts: [] });
      expect(s.audit()).toHaveLength(audits);
    });

    it('file-owned resources are read-only through the API, except endpoint operator state', async () => {
      const s = await fresh();
      await s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' });
      await expect(attempt(() => s.putCluster(cluster('web'), API))).rejects.toThrow(/config file/);
      await expect(attempt(() => s.deleteCluster('web', API))).rejects.toThrow(OwnershipError);
      await expect(attempt(() => s.putEndpoint('web', endpoint('10.0.0.9'), API))).rejects.toThrow(OwnershipError);
      await expect(attempt(() => s.removeEndpoint('web', '10.0.0.1', 80, API))).rejects.toThrow(OwnershipError);
      await expect(attempt(() => s.putListener(listener('ingress', 'web'), API))).rejects.toThrow(OwnershipError);
      await expect(attempt(() => s.deleteNodeGroup('edge', { actor: 'k8s', owner: 'kubernetes' }))).rejects.toThrow(OwnershipError);
      await s.setEndpointState('web', '10.0.0.1', 80, 'draining', { actor: 'bob' });
      await s.seedFromConfig(fileCatalog(FILE_V2), { actor: 'config-file' });
      expect(s.getEndpoint('web', '10.0.0.1', 80)).toMatchObject({ state: 'draining', weight: 5 });
    });

    it('a reload deletes file-owned resources the file dropped (and their weights) and never touches API-owned ones', async () => {
      const s = await fresh();
      await s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' });
      const mine = (await s.putCluster(cluster('mine', [endpoint('10.1.0.1')]), API)).revision;
      await s.putListener(listener('mine', 'mine', 20000), API);
      await s.saveAllWeights(new Map([['old', new Map([['10.0.2.1:80', 3]])]]));
      expect(s.loadWeights().has('old')).toBe(true);
      const res = await s.seedFromConfig(fileCatalog(FILE_V2), { actor: 'config-file' });
      expect(res.conflicts).toEqual([]);
      expect(res.changes).toEqual(
        expect.arrayContaining([
          { kind: 'cluster', name: 'web', action: 'update' },
          { kind: 'cluster', name: 'fresh', action: 'create' },
          { kind: 'cluster', name: 'old', action: 'delete' },
          { kind: 'node-group', name: 'edge', action: 'delete' },
        ]),
      );
      expect(res.changes).toHaveLength(4);
      expect(s.getCluster('old')).toBeUndefined();
      expect(s.loadWeights().has('old')).toBe(false);
      expect(s.getCluster('mine')).toMatchObject({ owner: 'api', revision: mine });
      expect(s.catalog().clusters.map((c) => c.name)).toEqual(['fresh', 'mine', 'sticky', 'web']);
    });

    it('the API cannot create a name the file owns; a file name the API already owns is skipped and reported', async () => {
      const s = await fresh();
      await s.putCluster(cluster('web', [endpoint('10.9.9.9')]), API);
      const res = await s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' });
      expect(res.conflicts).toEqual([{ kind: 'cluster', name: 'web', owner: 'api' }]);
      expect(s.getCluster('web')).toMatchObject({ owner: 'api', endpoints: [expect.objectContaining({ address: '10.9.9.9' })] });
      await expect(attempt(() => s.putCluster(cluster('sticky'), API))).rejects.toThrow(OwnershipError);
      await s.deleteCluster('web', API);
      expect((await s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' })).conflicts).toEqual([]);
      expect(s.getCluster('web')).toMatchObject({ owner: 'file', lbPolicy: 'LEAST_REQUEST' });
    });

    it('hands a cluster the file defines too from the API to the file in one transaction: never absent, audited as the delete and the file\'s create', async () => {
      const s = await fresh();
      // Three endpoints: behind the write lane of the harness that slices over two, the sliced delete.
      await s.putCluster(cluster('web', [endpoint('10.9.9.7'), endpoint('10.9.9.8'), endpoint('10.9.9.9')]), API);
      await s.saveAllWeights(new Map([['web', new Map([['10.9.9.9:8080', 3]])]]));
      expect((await s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' })).conflicts).toEqual([{ kind: 'cluster', name: 'web', owner: 'api' }]);
      const file = fileCatalog(FILE_V1).clusters.find((c) => c.name === 'web')!;
      // What every later stage would build from at each committed change: web is never missing.
      const seen: { change: StoreChange; web: string[] | undefined }[] = [];
      s.onChange((change) => seen.push({ change, web: s.catalog().clusters.find((c) => c.name === 'web')?.endpoints.map((e) => `${e.address}:${e.port}/${e.weight}`) }));

      const { revision } = await s.deleteCluster('web', { ...API, successor: { cluster: file, actor: 'config-file' } });
      const changes = [{ kind: 'cluster', name: 'web', action: 'delete' }, { kind: 'cluster', name: 'web', action: 'create' }];
      expect(seen).toEqual([{ change: { revision, actor: 'alice', changes }, web: ['10.0.0.1:80/2', '::1:81/1'] }]);
      expect(s.getCluster('web')).toMatchObject({ owner: 'file', revision, lbPolicy: 'LEAST_REQUEST', endpoints: [expect.objectContaining({ address: '10.0.0.1', weight: 2 }), expect.objectContaining({ address: '::1' })] });
      const [create, del] = s.audit(2) as [AuditEntry, AuditEntry];
      expect([create, del].map((a) => [a.actor, a.action, a.kind, a.name, a.revision])).toEqual([['config-file', 'create', 'cluster', 'web', revision], ['alice', 'delete', 'cluster', 'web', revision]]);
      expect(del.before).toMatchObject({ owner: 'api', endpoints: [expect.objectContaining({ address: '10.9.9.7' }), expect.anything(), expect.anything()] });
      expect(create).toMatchObject({ before: null, after: { owner: 'file', lbPolicy: 'LEAST_REQUEST' } });
      // The API's published weights went with its cluster, as at a delete.
      expect(s.loadWeights().has('web')).toBe(false);
      // The file's next seed finds nothing left to do.
      expect(await s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' })).toMatchObject({ changes: [], conflicts: [] });
      // A successor is the deleted name defined again, nothing else.
      await s.putCluster(cluster('mine'), API);
      await expect(attempt(() => s.deleteCluster('mine', { ...API, successor: { cluster: file, actor: 'config-file' } }))).rejects.toThrow(/cannot be handed over/);
      expect(s.getCluster('mine')?.owner).toBe('api');
    });

    it('hands a listener the file defines too from the API to the file in one transaction: never absent, audited as the delete and the file\'s create', async () => {
      const s = await fresh();
      await s.putCluster(cluster('mine'), API);
      await s.putListener(listener('ingress', 'mine', 10005), API);
      expect((await s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' })).conflicts).toEqual([{ kind: 'listener', name: 'ingress', owner: 'api' }]);
      const file = fileCatalog(FILE_V1).listeners.find((l) => l.name === 'ingress')!;
      // What every later stage would build from at each committed change: ingress is never missing (Envoy would drain it).
      const seen: { change: StoreChange; port: number | undefined }[] = [];
      s.onChange((change) => seen.push({ change, port: s.catalog().listeners.find((l) => l.name === 'ingress')?.port }));

      const { revision } = await s.deleteListener('ingress', { ...API, successor: { listener: file, actor: 'config-file' } });
      const changes = [{ kind: 'listener', name: 'ingress', action: 'delete' }, { kind: 'listener', name: 'ingress', action: 'create' }];
      expect(seen).toEqual([{ change: { revision, actor: 'alice', changes }, port: 10000 }]);
      expect(s.getListener('ingress')).toMatchObject({ owner: 'file', revision, port: 10000, routes: [expect.objectContaining({ cluster: 'sticky' }), expect.objectContaining({ cluster: 'web' })] });
      const [create, del] = s.audit(2) as [AuditEntry, AuditEntry];
      expect([create, del].map((a) => [a.actor, a.action, a.kind, a.name, a.revision])).toEqual([['config-file', 'create', 'listener', 'ingress', revision], ['alice', 'delete', 'listener', 'ingress', revision]]);
      expect(del.before).toMatchObject({ owner: 'api', port: 10005 });
      expect(create).toMatchObject({ before: null, after: expect.objectContaining({ owner: 'file' }) });
      // The file's next seed finds nothing left to do.
      expect(await s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' })).toMatchObject({ changes: [], conflicts: [] });
      // A successor is the deleted name defined again, nothing else.
      await s.putListener(listener('other', 'mine', 10008), API);
      await expect(attempt(() => s.deleteListener('other', { ...API, successor: { listener: file, actor: 'config-file' } }))).rejects.toThrow(/cannot be handed over/);
      expect(s.getListener('other')?.owner).toBe('api');
    });

    it('a hand-over does not write the file\'s listener onto a socket another source\'s listener binds: the delete alone, as a seed would skip it', async () => {
      // Envoy NACKs two listeners on one socket: the whole listener update, on every proxy.
      const s = await fresh();
      await s.putCluster(cluster('mine'), API);
      await s.putListener(listener('bound', 'mine', 10007), API);
      await s.putListener(listener('taken', 'mine', 10006), API);
      const { revision } = await s.deleteListener('taken', { ...API, successor: { listener: listener('taken', 'mine', 10007), actor: 'config-file' } });
      expect(s.listListeners().map((l) => [l.name, l.owner, l.port])).toEqual([['bound', 'api', 10007]]);
      expect(s.audit(1).map((a) => [a.actor, a.action, a.name, a.revision])).toEqual([['alice', 'delete', 'taken', revision]]);
    });

    it('a file listener on a socket an API listener binds, however spelled, is skipped and reported until the socket is free', async () => {
      // Envoy NACKs two listeners on one socket: the whole listener update, on every proxy.
      const s = await fresh();
      await s.putCluster(cluster('mine'), API);
      await s.putListener(listener('mine', 'mine', 10000), API);
      await s.putListener({ ...listener('six', 'mine', 10001), address: '::' }, API);
      const file: Catalog = {
        clusters: [cluster('filed')],
        listeners: [listener('ingress', 'filed', 10000), { ...listener('ingress6', 'filed', 10001), address: '0::0' }, listener('free', 'filed', 10002)],
        nodeGroups: [],
      };
      const res = await s.seedFromConfig(file, { actor: 'config-file' });
      const six = { kind: 'listener', name: 'ingress6', owner: 'api', boundBy: 'six' };
      expect([...res.conflicts].sort((a, b) => a.name.localeCompare(b.name))).toEqual([{ kind: 'listener', name: 'ingress', owner: 'api', boundBy: 'mine' }, six]);
      expect(s.listListeners().map((l) => [l.name, l.owner])).toEqual([['free', 'file'], ['mine', 'api'], ['six', 'api']]);
      await s.deleteListener('mine', API);
      expect((await s.seedFromConfig(file, { actor: 'config-file' })).conflicts).toEqual([six]);
      expect(s.listListeners().map((l) => [l.name, l.owner, l.port])).toEqual([['free', 'file', 10002], ['ingress', 'file', 10000], ['six', 'api', 10001]]);
    });

    it('kubernetes and api do not edit each other', async () => {
      const s = await fresh();
      await s.putCluster(cluster('k'), { actor: 'kubernetes', owner: 'kubernetes' });
      await expect(attempt(() => s.putCluster(cluster('k'), API))).rejects.toThrow(/owned by the kubernetes source/);
      await expect(attempt(() => s.putEndpoint('k', endpoint('10.0.0.1'), API))).rejects.toThrow(OwnershipError);
      await s.putEndpoint('k', endpoint('10.0.0.1'), { actor: 'kubernetes', owner: 'kubernetes' });
      await s.setEndpointState('k', '10.0.0.1', 8080, 'disabled', { actor: 'bob' });
      expect(s.catalog().clusters[0]!.endpoints).toEqual([]);
    });
  });

  describe('audit', () => {
    it('records actor, action, kind, name and before/after, at the revision of the change', async () => {
      const s = await fresh();
      const r1 = (await s.putCluster(cluster('a', [endpoint('10.0.0.1')]), API)).revision;
      const r2 = (await s.putCluster(cluster('a', [endpoint('10.0.0.1')], { connectTimeoutMs: 250 }), { ...API, actor: 'bob' })).revision;
      const r3 = (await s.setEndpointState('a', '10.0.0.1', 8080, 'draining', { actor: 'carol' })).revision;
      const r4 = (await s.deleteCluster('a', API)).revision;
      const rows = s.audit();
      expect(rows.map((r) => [r.actor, r.action, r.kind, r.name, r.revision])).toEqual([
        ['alice', 'delete', 'cluster', 'a', r4],
        ['carol', 'set-state', 'endpoint', 'a/10.0.0.1:8080', r3],
        ['bob', 'update', 'cluster', 'a', r2],
        ['alice', 'create', 'cluster', 'a', r1],
      ]);
      const [del, state, upd, create] = rows as [(typeof rows)[0], (typeof rows)[0], (typeof rows)[0], (typeof rows)[0]];
      expect(create.before).toBeNull();
      expect(create.after).toMatchObject({ name: 'a', owner: 'api', revision: r1, connectTimeoutMs: 1000, endpoints: [{ address: '10.0.0.1', revision: r1 }] });
      expect(upd.before).toMatchObject({ connectTimeoutMs: 1000, revision: r1 });
      expect(upd.after).toMatchObject({ connectTimeoutMs: 250, revision: r2 });
      expect(state.before).toMatchObject({ state: 'active' });
      expect(state.after).toMatchObject({ state: 'draining', revision: r3 });
      expect(del.before).toMatchObject({ connectTimeoutMs: 250, revision: r3 });
      expect(del.after).toBeNull();
      expect(s.audit(2).map((r) => r.revision)).toEqual([r4, r3]);
      expect(s.audit(2, rows[1]!.id).map((r) => r.revision)).toEqual([r2, r1]);
    });
  });

  describe('published weights', () => {
    it('round-trip, replace per cluster, add no revision of desired state and no audit', async () => {
      const s = await fresh();
      await s.saveAllWeights(new Map([['web', new Map([['10.0.0.1:80', 10], ['10.0.0.2:80', 30]])]]));
      await s.saveAllWeights(new Map([['api', new Map([['::1:81', 1]])]]));
      await s.saveAllWeights(new Map([['web', new Map([['10.0.0.2:80', 25]])]]));
      expect(s.audit()).toEqual([]);
      expect(s.loadWeights()).toEqual(new Map([['api', new Map([['::1:81', 1]])], ['web', new Map([['10.0.0.2:80', 25]])]]));
      await expect(attempt(() => s.saveAllWeights(new Map([['web', new Map([['x', 1.5]])]])))).rejects.toThrow();
      expect(s.loadWeights().get('web')).toEqual(new Map([['10.0.0.2:80', 25]]));
    });

    it('are deleted per cluster (a discovered cluster that went), others kept', async () => {
      const s = await fresh();
      await s.saveAllWeights(new Map([['web', new Map([['10.0.0.1:80', 10]])], ['api', new Map([['::1:81', 1]])], ['db', new Map([['10.0.0.9:5432', 4]])]]));
      expect([...s.weightedClusters()].sort()).toEqual(['api', 'db', 'web']);
      await s.deleteWeights(['web', 'db', 'never-saved']);
      await s.deleteWeights([]);
      expect(s.weightedClusters()).toEqual(['api']);
      expect(s.loadWeights()).toEqual(new Map([['api', new Map([['::1:81', 1]])]]));
      expect(s.audit()).toEqual([]);
    });
  });

  describe('overrides on discovered clusters', () => {
    const EP = { cluster: 'ns/web:http', endpoint: { address: '10.1.0.5', port: 8080 } } as const;
    const POLICY = { lbPolicy: 'LEAST_REQUEST', leastRequest: { choiceCount: 2 }, slowStart: { windowMs: 10_000 }, weighting: { kind: 'pid', setpoint: 0.6 } } as const;

    it('are created, replaced, listed, deleted and audited, each with its own revision', async () => {
      const s = await fresh();
      const drained = await s.putOverride(EP, { state: 'draining' }, { actor: 'alice' });
      const policy = await s.putOverride({ cluster: 'ns/web:http' }, { policy: POLICY }, { actor: 'bob' });
      expect(policy.revision).toBeGreaterThan(drained.revision);
      expect(s.listOverrides().map((o) => [o.name, o.value, o.revision])).toEqual([
        ['ns/web:http', { policy: POLICY }, policy.revision],
        ['ns/web:http/10.1.0.5:8080', { state: 'draining' }, drained.revision],
      ]);
      expect(s.getOverride('ns/web:http/10.1.0.5:8080')?.target).toEqual(EP);
      // The same value again is a no-op: same revision, no audit entry.
      expect((await s.putOverride(EP, { state: 'draining' }, { actor: 'alice' })).revision).toBe(drained.revision);
      const disabled = await s.putOverride(EP, { state: 'disabled' }, { actor: 'alice', ifMatch: drained.revision });
      expect(disabled.revision).toBeGreaterThan(policy.revision);
      const deleted = await s.deleteOverride('ns/web:http/10.1.0.5:8080', { actor: 'carol' });
      expect(s.getOverride('ns/web:http/10.1.0.5:8080')).toBeUndefined();
      const audit = s.audit();
      expect(audit.map((a) => [a.kind, a.action, a.actor, a.name])).toEqual([
        ['override', 'delete', 'carol', 'ns/web:http/10.1.0.5:8080'],
        ['override', 'update', 'alice', 'ns/web:http/10.1.0.5:8080'],
        ['override', 'create', 'bob', 'ns/web:http'],
        ['override', 'create', 'alice', 'ns/web:http/10.1.0.5:8080'],
      ]);
      expect(audit[0]?.revision).toBe(deleted.revision);
      expect(audit[1]).toMatchObject({ before: { value: { state: 'draining' } }, after: { value: { state: 'disabled' }, revision: disabled.revision } });
    });

    it('check If-Match, refuse a value that does not fit the target, and emit change events', async () => {
      const s = await fresh();
      const seen: StoreChange[] = [];
      s.onChange((c) => seen.push(c));
      const first = await s.putOverride(EP, { state: 'draining' }, { actor: 'alice', ifMatch: 0 });
      await expect(attempt(() => s.putOverride(EP, { state: 'disabled' }, { actor: 'alice', ifMatch: 0 }))).rejects.toBeInstanceOf(ConflictError);
      await expect(attempt(() => s.putOverride(EP, { state: 'disabled' }, { actor: 'alice', ifMatch: first.revision + 100 }))).rejects.toBeInstanceOf(ConflictError);
      await expect(attempt(() => s.deleteOverride('nope', { actor: 'alice' }))).rejects.toBeInstanceOf(NotFoundError);
      await expect(attempt(() => s.putOverride({ cluster: 'c' }, { state: 'draining' }, { actor: 'alice' }))).rejects.toThrow(/a cluster a policy/);
      expect(s.getOverride('ns/web:http/10.1.0.5:8080')?.value).toEqual({ state: 'draining' });
      expect(seen[0]?.changes).toEqual([{ kind: 'override', name: 'ns/web:http/10.1.0.5:8080', action: 'create' }]);
    });
  });

  it('is writable and says what it is', async () => {
    const s = await fresh();
    expect(s.health()).toEqual({ writable: true });
    expect(['sqlite', 'etcd']).toContain(s.describe().kind);
  });
}
