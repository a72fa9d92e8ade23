import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store, type StoreChange } from '../../src/catalog/store/index.js';
import { prepareDelete, type PreparedDelete } from '../../src/catalog/store/sliced-delete.js';
import { unpackText } from '../../src/catalog/store/packed-text.js';
import type { Endpoint } from '../../src/catalog/types.js';
import { closeStoresAndCleanup, cluster, endpoint, tempDir } from './helpers.js';

const API = { actor: 'alice', owner: 'api' } as const;
const AT = new Date('2026-12-03T00:00:00Z');
const open: Store[] = [];
function fresh(dir = tempDir()): Store {
  const s = openStore(dir, { now: () => AT });
  open.push(s);
  return s;
}
afterEach(() => closeStoresAndCleanup(open));

const many = (n: number): Endpoint[] => Array.from({ length: n }, (_, i) => endpoint(`10.1.${(i >> 8) & 255}.${i & 255}`, 8080, { weight: 1 + (i % 4) }));
const weightsOf = (endpoints: readonly Endpoint[]): Map<string, number> => new Map(endpoints.map((e, i) => [`${e.address}:${e.port}`, 1 + (i % 9)]));
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A store holding `big` (3,000 endpoints, weights published for each) and `small`. */
async function seeded(dir?: string): Promise<Store> {
  const s = fresh(dir);
  const big = many(3000);
  s.putCluster(cluster('big', big), API);
  s.putCluster(cluster('small', many(3)), API);
  await s.durably(() => s.saveAllWeights(new Map([['big', weightsOf(big)], ['small', weightsOf(many(3))]])));
  s.catalog();
  return s;
}

describe('Store.deleteClusterSliced', () => {
  it('deletes rows, published weights, audit row and revision exactly as deleteCluster does', async () => {
    const plain = await seeded();
    const sliced = await seeded();
    const events: StoreChange[][] = [[], []];
    plain.onChange((c) => events[0]?.push(c));
    sliced.onChange((c) => events[1]?.push(c));
    expect(await sliced.deleteClusterSliced('big', API, 0)).toEqual(plain.deleteCluster('big', API));
    expect(sliced.loadWeights()).toEqual(plain.loadWeights());
    expect(sliced.loadWeights().has('big')).toBe(false);
    expect(sliced.audit(10)).toEqual(plain.audit(10));
    expect(sliced.audit(1, undefined, { trimOver: 1024 })).toEqual(plain.audit(1, undefined, { trimOver: 1024 }));
    expect(sliced.catalog()).toEqual(plain.catalog());
    expect(events[1]).toEqual(events[0]);
    // The same checks as deleteCluster: owner, If-Match, absent.
    await expect(sliced.deleteClusterSliced('small', { ...API, ifMatch: 1 }, 0)).rejects.toThrow(/small/);
    await expect(sliced.deleteClusterSliced('small', { actor: 'k', owner: 'kubernetes' }, 0)).rejects.toThrow(/small/);
    await expect(sliced.deleteClusterSliced('big', API, 0)).rejects.toThrow(/big/);
    expect(sliced.getCluster('small')?.endpoints).toHaveLength(3);
  });

  it('takes turns inside its transaction, and readers see the whole cluster until it commits', async () => {
    const s = await seeded();
    const before = s.revision();
    let committed = false;
    s.onChange(() => (committed = true));
    const seen: number[] = [];
    const done = s.deleteClusterSliced('big', API, 0);
    while (!committed) {
      // What the publisher builds snapshots from: never a part of the cluster.
      seen.push(s.catalog().clusters.find((c) => c.name === 'big')?.endpoints.length ?? -1);
      expect(s.revision()).toBe(before);
      expect(s.endpointCount('big')).toBe(3000); // the rows themselves, read past every cache
      await turn();
    }
    await done;
    // Two turns to prepare, then the endpoint rows in chunks, each chunk a turn with no time slice.
    expect(seen.length).toBeGreaterThan(6);
    expect(new Set(seen)).toEqual(new Set([3000]));
    expect(s.getCluster('big')).toBeUndefined();
    expect(s.revision()).toBe(before + 1);
  });

  it('rolls the whole delete back when its last step fails, and leaves the store writable', async () => {
    const s = await seeded();
    const revision = s.revision();
    const audit = s.audit(5);
    // Fails the audit row's insert, and only once every endpoint row is gone within the transaction.
    const db = new Database(s.file);
    db.exec(`CREATE TRIGGER fail_delete BEFORE INSERT ON audit WHEN (SELECT count(*) FROM endpoints WHERE cluster = 'big') = 0
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END`);
    await expect(s.deleteClusterSliced('big', API, 0)).rejects.toThrow(/injected failure/);
    expect(s.getCluster('big')?.endpoints).toHaveLength(3000);
    expect(s.loadWeights().get('big')?.size).toBe(3000);
    expect(s.catalog().clusters.find((c) => c.name === 'big')?.endpoints).toHaveLength(3000);
    expect(s.revision()).toBe(revision);
    expect(s.audit(5)).toEqual(audit);
    db.exec('DROP TRIGGER fail_delete');
    db.close();
    expect(await s.deleteClusterSliced('big', API, 0)).toEqual({ revision: revision + 1 });
    expect(s.getCluster('big')).toBeUndefined();
  });

  it.each([3, 5, 8])('leaves the cluster whole when the store closes %i turns into the delete (as a crash would)', async (turns) => {
    const dir = tempDir();
    const s = await seeded(dir);
    const revision = s.revision();
    const audit = s.audit(5);
    let committed = false;
    s.onChange(() => (committed = true));
    const done = s.deleteClusterSliced('big', API, 0);
    const failed = expect(done).rejects.toThrow();
    for (let i = 0; i < turns; i++) await turn();
    expect(committed).toBe(false); // closed inside the transaction, before its COMMIT
    s.close();
    await failed;
    const reopened = fresh(dir);
    expect(reopened.getCluster('big')?.endpoints).toHaveLength(3000);
    expect(reopened.loadWeights().get('big')?.size).toBe(3000);
    expect(reopened.revision()).toBe(revision);
    expect(reopened.audit(5)).toEqual(audit);
    expect(await reopened.deleteClusterSliced('big', API, 0)).toEqual({ revision: revision + 1 });
  });

  it('prepares the audit text JSON.stringify gives the record, packed, a turn every 1,000 endpoints', async () => {
    const s = await seeded();
    const record = s.getCluster('big');
    if (!record) throw new Error('no big cluster');
    let turns = 0;
    const prepared = await prepareDelete(record, () => Promise.resolve(void turns++));
    const text = (p: PreparedDelete): string => unpackText(p.before.packed, p.before.bytes);
    expect(text(prepared)).toBe(JSON.stringify(record));
    expect(prepared.before.bytes).toBe(Buffer.byteLength(JSON.stringify(record)));
    // Deflated: endpoint entries are alike, so the packed text is a small part of the text.
    expect(prepared.before.packed.length).toBeLessThan(prepared.before.bytes / 5);
    // Serialized in three slices, then handed to the packer in three.
    expect(turns).toBe(4);
    const odd = { ...record, name: 'has "endpoints":[] in it', endpoints: record.endpoints.slice(0, 2) };
    expect(text(await prepareDelete(odd, () => Promise.resolve()))).toBe(JSON.stringify(odd));
    const empty = { ...record, endpoints: [] };
    expect(text(await prepareDelete(empty, () => Promise.resolve()))).toBe(JSON.stringify(empty));
  });
});
