/**
 * Published weights through a real etcd: the owner's overrides at every change (served/), its
 * controller state only every stateRefreshMs (weights/); another replica serves the newest; a new
 * owner continues from the state carried onto the overrides served since.
 */
import type { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { ExportedClusterState } from '../../src/balancing/engine/index.js';
import type { EndpointOverride } from '../../src/catalog/weight-overrides.js';
import { haKeys } from '../../src/ha/keys.js';
import { reanchored, WeightShare, type SharedWeights } from '../../src/ha/weight-share.js';
import { describeEtcd, etcdForBlock } from '../support/etcd-cluster.js';
import { waitFor } from '../support/wait.js';

const log = pino({ level: 'silent' });

function endpoint(w: number): ExportedClusterState['endpoints'][string] {
  return { w, pub: w, pidW: w, smoothed: 0.5, noise: 0, pid: { integral: 0.1, lastD: 0, lastMeasurement: 0.5, lastAt: 1 }, ewma: { value: 1, mass: 1, count: 1, lastAt: 1 }, latency: { value: 1, mass: 1, count: 1, lastAt: 1 }, sample: null, steerAt: null };
}

describe('reanchored', () => {
  it('scales each endpoint\'s weights by how its served weight moved since the state, and keeps the controller memory', () => {
    const state: ExportedClusterState = { version: 1, weights: { a: 100, b: 200, c: 50 }, endpoints: { a: endpoint(1), b: endpoint(2), c: endpoint(0.5) } };
    const moved = reanchored(state, { a: { weight: 125 }, b: { weight: 160 } });
    expect(moved.weights).toEqual({ a: 125, b: 160, c: 50 });
    expect(moved.endpoints.a).toMatchObject({ w: 1.25, pub: 1.25, pidW: 1.25, pid: state.endpoints.a?.pid });
    expect(moved.endpoints.b).toMatchObject({ w: 1.6, pub: 1.6, pidW: 1.6 });
    // Not served since (or no weight): as the state had it.
    expect(moved.endpoints.c).toBe(state.endpoints.c);
    expect(reanchored(state, { a: { weight: 0 } }).endpoints.a).toBe(state.endpoints.a);
  });

  describe('a backlog drain under way (its factor back to the controller\'s weight)', () => {
    const drained = (back: number): ExportedClusterState => ({
      version: 1,
      weights: { a: 100, b: 400, c: 400 },
      endpoints: { a: { ...endpoint(0.25), drain: { back, reportMsAgo: 500 } }, b: endpoint(1), c: endpoint(1) },
    });
    const drainOf = (state: ExportedClusterState, served: Record<string, number>): unknown =>
      reanchored(state, Object.fromEntries(Object.entries(served).map(([k, weight]) => [k, { weight }]))).endpoints.a?.drain;

    it('kept when every weight was rescaled alike (the largest maps to 1000)', () => {
      expect(drainOf(drained(4), { a: 250, b: 1000, c: 1000 })).toEqual({ back: 4, reportMsAgo: 500 });
    });

    it('shortened by how far it moved against its peers since the state; longer when drained again', () => {
      expect(drainOf(drained(4), { a: 200, b: 400, c: 400 })).toEqual({ back: 2, reportMsAgo: 500 });
      expect(drainOf(drained(4), { a: 50, b: 400, c: 400 })).toEqual({ back: 8, reportMsAgo: 500 });
    });

    it('dropped once served back (the drain ended after the state), within what the integers tell apart', () => {
      expect(drainOf(drained(4), { a: 400, b: 400, c: 400 })).toBeUndefined();
      expect(drainOf(drained(4), { a: 399, b: 400, c: 400 })).toBeUndefined();
      expect(drainOf(drained(4), { a: 500, b: 400, c: 400 })).toBeUndefined();
      expect(reanchored(drained(4), { a: { weight: 400 } }).endpoints.a).not.toHaveProperty('drain');
    });

    it('a malformed one is left for the import to refuse; an entry that is no object is carried as it is', () => {
      for (const drain of [null, 'x', { back: '4' }]) {
        const state = { ...drained(4), endpoints: { ...drained(4).endpoints, a: { ...endpoint(0.25), drain } } } as unknown as ExportedClusterState;
        expect(reanchored(state, { a: { weight: 200 } }).endpoints.a).toMatchObject({ w: 0.5, drain });
      }
      const nulled = { ...drained(4), endpoints: { ...drained(4).endpoints, a: null } } as unknown as ExportedClusterState;
      expect(() => reanchored(nulled, { a: { weight: 200 }, b: { weight: 400 } })).not.toThrow();
      expect(reanchored(nulled, { a: { weight: 200 } }).endpoints.a).toBeNull();
    });
  });
});

describeEtcd('weight share through etcd', () => {
  const etcd = etcdForBlock();

  /** A replica's adaptive weights as the share sees them: `overrides` published for `web`, a state to export, what it imported and serves from others. */
  function weights(overrides: () => ReadonlyMap<string, EndpointOverride>) {
    const served = new Map<string, ReadonlyMap<string, EndpointOverride> | undefined>();
    const imported: ExportedClusterState[] = [];
    const forgot: string[] = [];
    const shared: SharedWeights = {
      current: () => new Map([['web', overrides()]]),
      exportState: () => ({ version: 1, weights: Object.fromEntries([...overrides()].map(([k, o]) => [k, o.weight ?? 0])), endpoints: { a: endpoint(1) } }),
      importState: (_c, state) => (imported.push(state), 1),
      forgetNewcomers: (c) => void forgot.push(c),
      setRemote: (c, o) => void served.set(c, o),
    };
    return { shared, served, imported, forgot };
  }

  it('writes the overrides at every change and the state every refresh; the other replica serves the newest; a new owner continues from them', async () => {
    const prefix = '/share-1';
    const keys = haKeys(prefix);
    const owner = await etcd.client.put(keys.owner('web')).value('a');
    const revision = owner.header.revision;
    let weight = 100;
    let now = 1_000_000;
    const a = weights(() => new Map([['a', { weight }]]));
    const b = weights(() => new Map());
    const shareA = new WeightShare({ client: etcd.client, keys, replicaId: 'a', weights: a.shared, log, stateRefreshMs: 5_000, now: () => now });
    const shareB = new WeightShare({ client: etcd.client, keys, replicaId: 'b', weights: b.shared, log, stateRefreshMs: 5_000, now: () => now });
    await shareB.start();
    const version = async (key: string): Promise<number> => Number((await etcd.client.get(key).exec()).kvs[0]?.version ?? 0);
    for (let tick = 0; tick < 4; tick++) {
      weight += 5;
      now += 1_000;
      await shareA.flush(new Map([['web', revision]]));
    }
    // The first flush wrote the state; the three after it, within 5 s, only the overrides.
    expect([await version(keys.weight('web')), await version(keys.servedWeight('web'))]).toEqual([1, 3]);
    await waitFor(() => b.served.get('web')?.get('a')?.weight === 120, { what: 'b serves the newest overrides', timeoutMs: 10_000 });
    now += 5_000;
    await shareA.flush(new Map([['web', revision]]));
    expect(await version(keys.weight('web'))).toBe(2);
    // Unchanged within the refresh: nothing written.
    await shareA.flush(new Map([['web', revision]]));
    expect([await version(keys.weight('web')), await version(keys.servedWeight('web'))]).toEqual([2, 3]);
    weight = 130;
    await shareA.flush(new Map([['web', revision]]));
    // b takes the cluster over: the state (weight 120) carried onto what was served since (130).
    await shareB.acquired('web');
    expect(b.imported.at(-1)?.weights).toEqual({ a: 130 });
    // Continued from a state: the import clears its newcomer marks, nothing else to forget.
    expect(b.forgot).toEqual([]);
    // A cluster with no record to continue from: b's own marks of it are stale.
    await shareB.acquired('never-written');
    expect(b.forgot).toEqual(['never-written']);
    expect(b.imported.at(-1)?.endpoints.a?.pub).toBeCloseTo(130 / 120);
    await shareB.stop();
  });

  it('a replica started after a state refresh serves the newer record, not an older served one; a new owner then continues from the state alone', async () => {
    const prefix = '/share-2';
    const keys = haKeys(prefix);
    const revision = (await etcd.client.put(keys.owner('web')).value('a')).header.revision;
    let weight = 100;
    let now = 1_000_000;
    const a = weights(() => new Map([['a', { weight }]]));
    const shareA = new WeightShare({ client: etcd.client, keys, replicaId: 'a', weights: a.shared, log, stateRefreshMs: 5_000, now: () => now });
    const flush = (): Promise<void> => shareA.flush(new Map([['web', revision]]));
    await flush(); // state, 100
    weight = 110;
    now += 1_000;
    await flush(); // served, 110
    weight = 120;
    now += 5_000;
    await flush(); // state, 120: newer than the served record
    const b = weights(() => new Map());
    const shareB = new WeightShare({ client: etcd.client, keys, replicaId: 'b', weights: b.shared, log, stateRefreshMs: 5_000, now: () => now });
    await shareB.start();
    try {
      expect(b.served.get('web')?.get('a')?.weight).toBe(120);
      await shareB.acquired('web');
      expect(b.imported.at(-1)?.weights).toEqual({ a: 120 });
      expect(b.imported.at(-1)?.endpoints.a?.pub).toBe(1);
    } finally {
      await shareB.stop();
    }
  });

  it('a hand-over\'s final flush waits for the write round in flight: the last record is the final one', async () => {
    const prefix = '/share-4';
    const keys = haKeys(prefix);
    const revision = (await etcd.client.put(keys.owner('web')).value('a')).header.revision;
    // A client whose first transaction is slow to commit (a write round caught by a slow etcd).
    let slowOnce = true;
    const slow = Object.create(etcd.client) as Etcd3;
    slow.if = ((...args: Parameters<Etcd3['if']>) => {
      const txn = etcd.client.if(...args);
      if (!slowOnce) return txn;
      slowOnce = false;
      const commit = txn.commit.bind(txn);
      txn.commit = async () => (await new Promise((r) => setTimeout(r, 300)), commit());
      return txn;
    }) as Etcd3['if'];
    let weight = 100;
    const a = weights(() => new Map([['a', { weight }]]));
    const shareA = new WeightShare({ client: slow, keys, replicaId: 'a', weights: a.shared, log, stateRefreshMs: 5_000 });
    const round = shareA.flush(new Map([['web', revision]]));
    weight = 150;
    await Promise.all([round, shareA.flush(new Map([['web', revision]]), true)]);
    const last = JSON.parse((await etcd.client.get(keys.weight('web')).string()) ?? '{}') as { overrides?: Record<string, { weight: number }> };
    expect(last.overrides?.a?.weight).toBe(150);
  });

  it('hand-overs waiting their turn are written together: one transaction for every cluster released at once', async () => {
    const prefix = '/share-5';
    const keys = haKeys(prefix);
    const clusters = ['c1', 'c2', 'c3'];
    const owned = new Map<string, string>();
    for (const c of clusters) owned.set(c, (await etcd.client.put(keys.owner(c)).value('a')).header.revision);
    let transactions = 0;
    const counting = Object.create(etcd.client) as Etcd3;
    counting.if = ((...args: Parameters<Etcd3['if']>) => (transactions++, etcd.client.if(...args))) as Etcd3['if'];
    const a = weights(() => new Map([['a', { weight: 100 }]]));
    const shareA = new WeightShare({ client: counting, keys, replicaId: 'a', weights: a.shared, log, stateRefreshMs: 5_000 });
    const round = shareA.flush(owned);
    // A stopping replica releases every cluster at once while its write round is in flight.
    await Promise.all([round, ...clusters.map((c) => shareA.flush(new Map([[c, owned.get(c) as string]]), true))]);
    expect(transactions).toBe(2);
    for (const c of clusters) expect(Number((await etcd.client.get(keys.weight(c)).exec()).kvs[0]?.version)).toBe(2);
  });

  it('retiring a cluster deletes its records and its owner key in one transaction: a flush after it writes nothing', async () => {
    const prefix = '/share-3';
    const keys = haKeys(prefix);
    const revision = (await etcd.client.put(keys.owner('web')).value('a')).header.revision;
    const a = weights(() => new Map([['a', { weight: 100 }]]));
    const shareA = new WeightShare({ client: etcd.client, keys, replicaId: 'a', weights: a.shared, log, stateRefreshMs: 5_000 });
    await shareA.flush(new Map([['web', revision]]));
    await shareA.retire('web', revision);
    // A flush that was in flight with the old snapshot of what this replica owns.
    await shareA.flush(new Map([['web', revision]]), true);
    const left = await etcd.client.getAll().prefix(`${prefix}/`).keys();
    expect(left).toEqual([]);
  });

  /** A state of `n` endpoints: ~400 B each, as the engine exports them. */
  function bigState(n: number): ExportedClusterState {
    const keys = Array.from({ length: n }, (_, i) => `10.0.${i >> 8}.${i & 255}:8080`);
    return { version: 1, weights: Object.fromEntries(keys.map((k) => [k, 100])), endpoints: Object.fromEntries(keys.map((k) => [k, endpoint(1)])) };
  }

  it('every owned cluster\'s state is written when a batch of them would exceed 1.5 MiB in one transaction', async () => {
    const keys = haKeys('/share-big');
    const clusters = Array.from({ length: 32 }, (_, i) => `c${i}`);
    const owned = new Map<string, string>();
    for (const c of clusters) owned.set(c, (await etcd.client.put(keys.owner(c)).value('a')).header.revision);
    // 32 clusters of 200 endpoints: each record ~100 KB (well within one request), ~3 MB together.
    const state = bigState(200);
    const overrides = new Map(Object.keys(state.weights).map((k) => [k, { weight: 100 }]));
    const shared: SharedWeights = {
      current: () => new Map(clusters.map((c) => [c, overrides])),
      exportState: () => state,
      importState: () => 1,
      forgetNewcomers: () => undefined,
      setRemote: () => undefined,
    };
    const size = JSON.stringify(state).length;
    expect(size * clusters.length).toBeGreaterThan(1.5 * 1024 * 1024);
    expect(size).toBeLessThan(512 * 1024);
    const share = new WeightShare({ client: etcd.client, keys, replicaId: 'a', weights: shared, log, stateRefreshMs: 5_000 });
    await share.flush(owned).catch(() => undefined);
    const written = await etcd.client.getAll().prefix(keys.weights).keys();
    expect(written.length).toBe(clusters.length);
  });

  it('a record whose state alone exceeds 1.5 MiB is served without its state, and the other clusters are written', async () => {
    const keys = haKeys('/share-huge');
    const owned = new Map<string, string>();
    for (const c of ['huge', 'small']) owned.set(c, (await etcd.client.put(keys.owner(c)).value('a')).header.revision);
    // A discovered cluster of 6,000 endpoints (not bounded by the store's write limit): ~2 MB of state.
    const states = { huge: bigState(6_000), small: bigState(3) };
    const overrides = (s: ExportedClusterState) => new Map(Object.keys(s.weights).map((k) => [k, { weight: 100 }]));
    const current = new Map([['huge', overrides(states.huge)], ['small', overrides(states.small)]]);
    const shared: SharedWeights = {
      current: () => current,
      exportState: (c) => states[c as keyof typeof states],
      importState: () => 1,
      forgetNewcomers: () => undefined,
      setRemote: () => undefined,
    };
    expect(JSON.stringify(states.huge).length).toBeGreaterThan(1.5 * 1024 * 1024);
    const share = new WeightShare({ client: etcd.client, keys, replicaId: 'a', weights: shared, log, stateRefreshMs: 5_000 });
    await share.flush(owned).catch(() => undefined);
    const served = JSON.parse((await etcd.client.get(keys.servedWeight('huge')).string()) ?? '{}') as { overrides?: Record<string, unknown> };
    expect(Object.keys(served.overrides ?? {}).length).toBe(6_000);
    expect(await etcd.client.get(keys.weight('small')).string()).not.toBeNull();
  });
  for (const [n, withWeights] of [[6_000, true], [20_000, false]] as const) {
    it(`a record of ${n} endpoints whose state exceeds one request keeps its ejections${withWeights ? ' and published weights' : ''}: a new owner imports them`, async () => {
      const keys = haKeys(`/share-ejections-${n}`);
      const revision = (await etcd.client.put(keys.owner('big')).value('a')).header.revision;
      const out = '10.0.0.7:8080';
      const ejections = { [out]: { forMs: 8_000, reason: 'all-failing', level: 1, count: 2, onProbation: false } };
      const state: ExportedClusterState = { ...bigState(n), at: 1_000, ejections, departed: {} };
      const overrides = new Map(Object.keys(state.weights).map((k) => [k, { weight: 100 }]));
      const a: SharedWeights = { current: () => new Map([['big', overrides]]), exportState: () => state, importState: () => 1, forgetNewcomers: () => undefined, setRemote: () => undefined };
      await new WeightShare({ client: etcd.client, keys, replicaId: 'a', weights: a, log, stateRefreshMs: 5_000 }).flush(new Map([['big', revision]]));
      // Before: written without its state (the overrides alone), so the new owner served the ejected endpoint again.
      const b = weights(() => new Map());
      await new WeightShare({ client: etcd.client, keys, replicaId: 'b', weights: b.shared, log, stateRefreshMs: 5_000 }).acquired('big');
      const imported = b.imported[0];
      expect(imported?.ejections).toEqual(ejections);
      expect(imported?.endpoints).toEqual({});
      expect(Object.keys(imported?.weights ?? {})).toHaveLength(withWeights ? n : 0);
    });
  }

  it('a cluster grown past one etcd request: the other replicas stop serving its last record that fit (stale weights, endpoints out)', async () => {
    const keys = haKeys('/share-grown');
    const revision = (await etcd.client.put(keys.owner('grown')).value('a')).header.revision;
    const out = '10.0.0.1:8080';
    let overrides = new Map<string, EndpointOverride>([[out, { weight: 100, health: 'UNHEALTHY' }]]);
    const a: SharedWeights = { ...weights(() => overrides).shared, current: () => new Map([['grown', overrides]]) };
    const b = weights(() => new Map());
    const shareA = new WeightShare({ client: etcd.client, keys, replicaId: 'a', weights: a, log, stateRefreshMs: 5_000 });
    const shareB = new WeightShare({ client: etcd.client, keys, replicaId: 'b', weights: b.shared, log, stateRefreshMs: 5_000 });
    await shareB.start();
    try {
      await shareA.flush(new Map([['grown', revision]]));
      await waitFor(() => b.served.get('grown')?.get(out)?.health === 'UNHEALTHY', { what: 'b serves the small record', timeoutMs: 10_000 });
      // Scaled up to 40,000 endpoints, the one taken out back: its overrides alone pass 1 MiB.
      overrides = new Map(Array.from({ length: 40_000 }, (_, i): [string, EndpointOverride] => [`10.0.${i >> 8}.${i & 255}:8080`, { weight: 100 }]));
      expect(JSON.stringify(Object.fromEntries(overrides)).length).toBeGreaterThan(1024 * 1024);
      await shareA.flush(new Map([['grown', revision]]));
      // "weights not shared (other replicas serve the catalog's)": not the last record that fit.
      await waitFor(() => b.served.get('grown')?.get(out)?.health !== 'UNHEALTHY', { what: 'b stops serving the stale record', timeoutMs: 10_000 });
    } finally {
      await shareB.stop();
    }
  });
});
