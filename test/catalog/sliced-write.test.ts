import { statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Store, StoreChange } from '../../src/catalog/store/index.js';
import { WriteLane } from '../../src/catalog/store/write-lane.js';
import { ENDPOINT_PAGE } from '../../src/catalog/store/sliced-write.js';
import { unpackText } from '../../src/catalog/store/packed-text.js';
import { closeStoresAndCleanup, cluster, endpoint, many, storeAt, twoStores } from './helpers.js';
import { waitFor } from '../support/wait.js';

const API = { actor: 'alice', owner: 'api' } as const;
const open: Store[] = [];
/** One clock for every store, so that two stores given the same writes hold the same rows. */
const AT = new Date('2026-12-02T00:00:00Z');
const fresh = (): Store => storeAt(open, AT);
afterEach(() => closeStoresAndCleanup(open));

describe('putClusterSliced', () => {
  it('stores, audits and announces exactly what putCluster does (create, re-weight, shrink, no-op, settings)', async () => {
    const { plain, sliced, events } = twoStores(fresh);
    // A cluster already in the catalog, so that the big one is added before it by name.
    for (const s of [plain, sliced]) {
      s.putCluster(cluster('zzz', many(2, 1)), API);
      s.catalog();
    }
    const steps = [
      cluster('big', many(3000, 1)),
      cluster('big', many(3000, 2)),
      cluster('big', many(1000, 2, 500)),
      cluster('big', many(1000, 2, 500)),
      cluster('big', many(1000, 2, 500), { connectTimeoutMs: 250 }),
    ];
    for (const step of steps) {
      const a = plain.putCluster(step, API);
      const b = await sliced.putClusterSliced(step, API, 1);
      expect(b).toEqual(a);
      expect(sliced.catalog()).toEqual(plain.catalog());
    }
    expect(sliced.listClusters()).toEqual(plain.listClusters());
    expect(sliced.audit(10)).toEqual(plain.audit(10));
    expect(events[1]).toEqual(events[0]);
    expect(events[0]).toHaveLength(5); // the repeated write changed nothing
    expect(sliced.catalog().clusters.map((c) => c.name)).toEqual(['big', 'zzz']);
  });

  it('reads a cluster a page at a time from where the last page ended (an index range), every row once', async () => {
    const s = fresh();
    // Addresses with many ports each, so pages end inside one address's ports.
    const ports = Array.from({ length: 1200 }, (_, i) => endpoint(`10.0.0.${i % 7}`, 1000 + Math.floor(i / 7), { weight: 1 + (i % 3) }));
    const plain = fresh();
    plain.putCluster(cluster('big', ports), API);
    await s.putClusterSliced(cluster('big', ports), API, 1);
    await s.putClusterSliced(cluster('big', ports.map((e) => ({ ...e, weight: e.weight + 1 }))), API, 1);
    plain.putCluster(cluster('big', ports.map((e) => ({ ...e, weight: e.weight + 1 }))), API);
    expect(s.getCluster('big')?.endpoints).toEqual(plain.getCluster('big')?.endpoints);
    expect(s.audit(1)[0]?.before).toEqual(plain.audit(1)[0]?.before);
    // Each page is a search of the primary key from the last row: no scan from the cluster's first row.
    const db = new Database(s.file, { readonly: true });
    try {
      const plan = db.prepare(`EXPLAIN QUERY PLAN ${ENDPOINT_PAGE}`).all('big', '10.0.0.3', 1050, 100) as { detail: string }[];
      expect(plan.map((p) => p.detail).join('\n')).toMatch(/USING INDEX \S+ \(cluster=\? AND \(address,port\)>\(\?,\?\)\)/);
    } finally {
      db.close();
    }
  });

  it('stores the audit texts packed, exactly the texts putCluster stores, and leaves the CHECK constraints on', async () => {
    const s = fresh();
    const plain = fresh();
    for (const step of [cluster('big', many(3000, 1)), cluster('big', many(2500, 3))]) {
      await s.putClusterSliced(step, API, 1);
      plain.putCluster(step, API);
    }
    const read = (file: string, sql: string): Record<string, unknown>[] => {
      const db = new Database(file, { readonly: true });
      try {
        return db.prepare(sql).all() as Record<string, unknown>[];
      } finally {
        db.close();
      }
    };
    const rows = read(s.file, 'SELECT before, after, before_packed AS bp, after_packed AS ap, packed_bytes AS bytes, json_valid(summary) AS s FROM audit ORDER BY id');
    // The plain store keeps the same texts as TEXT: the packed ones must be exactly those, and as long.
    const texts = read(plain.file, 'SELECT before, after, coalesce(octet_length(before), 0) + coalesce(octet_length(after), 0) AS bytes FROM audit ORDER BY id');
    expect(rows).toHaveLength(2);
    rows.forEach((row, i) => {
      const want = texts[i] as { before: string | null; after: string; bytes: number };
      expect(row).toMatchObject({ before: null, after: null, s: 1, bytes: want.bytes });
      const unpack = (b: unknown): string | null => (b === null ? null : unpackText(b as Buffer, row.bytes as number));
      expect(unpack(row.bp)).toBe(want.before);
      expect(unpack(row.ap)).toBe(want.after);
      expect(JSON.parse(unpack(row.ap) as string)).toMatchObject({ name: 'big' });
      // Packed: a small part of the text's size.
      expect((row.ap as Buffer).length).toBeLessThan(want.bytes / 10);
    });
    // The summary is what a page shows: both sides' settings and endpoint counts.
    const [latest] = s.audit(1, undefined, { trimOver: 64 * 1024 });
    expect(latest?.trimmed?.endpoints).toEqual({ before: 3000, after: 2500 });
    expect(latest?.before).toMatchObject({ name: 'big', owner: 'api' });
    // The writer connection checks again: an endpoint row breaking a CHECK is refused there too.
    await expect(s.putClusterSliced(cluster('big', many(1200, 0)), API, 1)).rejects.toThrow(/CHECK constraint failed/);
  });

  it('leaves the WAL checkpoint to a worker thread: the commit does not copy pages into the database file', async () => {
    const s = fresh();
    s.putCluster(cluster('small', many(3, 1)), API);
    const size = (): number => statSync(s.file).size;
    const before = size();
    // Measured when the commit is announced, in the task that committed: once the write settles
    // (after the WAL's fsync) the worker may well have copied the pages already.
    let atCommit: number | undefined;
    const stop = s.onChange(() => (atCommit ??= size()));
    await s.putClusterSliced(cluster('big', many(6000, 1)), API, 5);
    stop();
    // Committed (durable in the WAL) and readable, but not copied into the database file by the commit.
    expect(atCommit).toBe(before);
    expect(s.getCluster('big')?.endpoints).toHaveLength(6000);
    // The worker copies it with no further write on the store.
    await waitFor(() => size() > before + 256 * 1024 || undefined, { what: 'the worker checkpointed', timeoutMs: 60_000 });
    s.putCluster(cluster('small', many(4, 1)), API);
    expect(s.getCluster('small')?.endpoints).toHaveLength(4);
  });

  it('lets the event loop turn while it writes, and reads see the old state until it commits', async () => {
    const s = fresh();
    s.putCluster(cluster('big', many(100, 1)), API);
    const before = s.revision();
    let turns = 0;
    let sawOld = true;
    // Until its change is heard (at commit; the write settles later, once the WAL is fsynced).
    let committed = false;
    s.onChange(() => (committed = true));
    const timer = setInterval(() => {
      turns++;
      // The catalog is what the publisher builds snapshots from: never half of the write's endpoints.
      const served = (): number | undefined => s.catalog().clusters.find((c) => c.name === 'big')?.endpoints.length;
      if (!committed) sawOld &&= s.revision() === before && s.getCluster('big')?.endpoints.length === 100 && served() === 100;
    }, 1);
    const done = s.putClusterSliced(cluster('big', many(20_000, 3)), API, 2);
    let settled = false;
    void done.finally(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 5));
    const turnsBeforeCommit = settled ? -1 : turns;
    await done;
    clearInterval(timer);
    expect(turnsBeforeCommit).toBeGreaterThan(0);
    expect(sawOld).toBe(true);
    expect(s.getCluster('big')?.endpoints).toHaveLength(20_000);
    expect(s.revision()).toBe(before + 1);
  });

  it('rolls back on a failed precondition and leaves the store writable', async () => {
    const s = fresh();
    const { revision } = s.putCluster(cluster('big', many(10, 1)), API);
    await expect(s.putClusterSliced(cluster('big', many(2000, 5)), { ...API, ifMatch: revision + 7 }, 1)).rejects.toThrow(/big/);
    expect(s.getCluster('big')?.endpoints).toHaveLength(10);
    expect(s.putCluster(cluster('big', many(11, 1)), API).revision).toBe(revision + 1);
  });

  it('writes a bounded summary that audit pages read instead of the records', async () => {
    const s = fresh();
    await s.putClusterSliced(cluster('big', many(5000, 1)), API, 5);
    s.putCluster(cluster('big', many(4000, 2)), API);
    const [sync, sliced] = s.audit(2, undefined, { trimOver: 64 * 1024 });
    for (const e of [sync, sliced]) {
      expect(e?.trimmed?.bytes).toBeGreaterThan(64 * 1024);
      expect(e?.after).toMatchObject({ name: 'big', owner: 'api' });
      expect(e?.after).not.toHaveProperty('endpoints');
    }
    expect(sync?.trimmed?.endpoints).toEqual({ before: 5000, after: 4000 });
    expect(sliced?.trimmed?.endpoints).toEqual({ before: null, after: 5000 });
    // Read in full, the same entries are whole.
    expect((s.audit(1)[0]?.after as { endpoints: unknown[] }).endpoints).toHaveLength(4000);
  });
});

describe('WriteLane', () => {
  it('queues writes behind a sliced one, in order, and commits them synchronously when nothing is in flight', async () => {
    const lane = new WriteLane(fresh(), 100);
    const small = lane.putCluster(cluster('small', many(3, 1)), API);
    expect(lane.revision()).toBe(1); // nothing in flight: committed before the call returns
    expect(await small).toEqual({ revision: 1 }); // settled once the WAL is fsynced
    const big = lane.putCluster(cluster('big', many(5000, 1)), API);
    const endpointPut = lane.putEndpoint('small', endpoint('10.9.9.9'), API);
    const failing = lane.deleteCluster('absent', API);
    const weights = lane.saveAllWeights(new Map([['small', new Map([['10.9.9.9:8080', 3]])]]));
    expect(endpointPut).toBeInstanceOf(Promise);
    await expect(failing).rejects.toThrow(/absent/);
    expect(await big).toEqual({ revision: 2 });
    expect(await endpointPut).toEqual({ revision: 3 });
    await weights;
    expect(lane.loadWeights().get('small')?.get('10.9.9.9:8080')).toBe(3);
    const last = lane.putEndpoint('small', endpoint('10.9.9.8'), API);
    expect(lane.revision()).toBe(4);
    expect(await last).toEqual({ revision: 4 });
    await lane.close();
  });

  it('deletes a big cluster in turns, with the rows, revision, audit row and events of deleteCluster', async () => {
    const plain = fresh();
    const store = fresh();
    const lane = new WriteLane(store, 1000);
    const events: StoreChange[][] = [[], []];
    plain.onChange((c) => events[0]?.push(c));
    store.onChange((c) => events[1]?.push(c));
    for (const s of [plain, store]) {
      s.putCluster(cluster('big', many(3000, 2)), API);
      s.putCluster(cluster('zzz', many(2, 1)), API);
      s.catalog();
    }
    const turns = vi.spyOn(globalThis, 'setImmediate');
    try {
      const deleted = lane.deleteCluster('big', API);
      expect(deleted).toBeInstanceOf(Promise);
      expect(store.getCluster('big')).toBeDefined(); // not deleted within the call: it takes turns
      expect(await deleted).toEqual(plain.deleteCluster('big', API));
      expect(turns.mock.calls.length).toBeGreaterThanOrEqual(2);
    } finally {
      turns.mockRestore();
    }
    expect(store.audit(10)).toEqual(plain.audit(10));
    expect(store.audit(1, undefined, { trimOver: 1024 })).toEqual(plain.audit(1, undefined, { trimOver: 1024 }));
    expect(store.catalog()).toEqual(plain.catalog());
    expect(events[1]).toEqual(events[0]);
    // A small cluster is deleted at once, as before.
    const small = lane.deleteCluster('zzz', API);
    expect(store.getCluster('zzz')).toBeUndefined();
    await small;
    await lane.close();
  });

  it('audits the cluster as it is at commit when it changed after its delete was prepared', async () => {
    const plain = fresh();
    const store = fresh();
    const lane = new WriteLane(store, 1000);
    for (const s of [plain, store]) s.putCluster(cluster('big', many(3000, 2)), API);
    const deleted = lane.deleteCluster('big', API);
    // A turn later the record was read (and its texts maybe made): a write past the lane changes the cluster.
    await new Promise((resolve) => setImmediate(resolve));
    store.putEndpoint('big', endpoint('192.168.0.9'), API);
    plain.putEndpoint('big', endpoint('192.168.0.9'), API);
    expect(await deleted).toEqual(plain.deleteCluster('big', API));
    expect(store.audit(3)).toEqual(plain.audit(3));
    const [row] = store.audit(1);
    expect((row?.before as { endpoints: unknown[] }).endpoints).toHaveLength(3001);
    await lane.close();
  });
});
