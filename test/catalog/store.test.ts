import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConflictError,
  openStore,
  SCHEMA_VERSION,
  type Store,
  type StoreChange,
} from '../../src/catalog/store/index.js';
import { cleanupTempDirs, cluster, endpoint, tempDir } from './helpers.js';
import { FILE_V1, fileCatalog } from './store-contract.js';

const API = { actor: 'alice', owner: 'api' } as const;
const open: Store[] = [];
function fresh(dir = tempDir()): Store {
  const s = openStore(dir);
  open.push(s);
  return s;
}
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  cleanupTempDirs();
});

describe('cluster writes', () => {
  it('compares each listed endpoint with its stored row, a repeated one too: an unchanged write is no write', () => {
    const s = fresh();
    const put = s.putCluster(cluster('a', [endpoint('10.0.0.1'), endpoint('10.0.0.2')]), API);
    const drained = s.setEndpointState('a', '10.0.0.1', 8080, 'draining', API);
    expect(drained.revision).toBeGreaterThan(put.revision);
    // The same set with one endpoint listed twice: nothing changed, no revision, the operator's state kept.
    const again = s.putCluster(cluster('a', [endpoint('10.0.0.1'), endpoint('10.0.0.2'), endpoint('10.0.0.1')]), API);
    expect(again.revision).toBe(drained.revision);
    expect(s.getCluster('a')?.endpoints?.find((e) => e.address === '10.0.0.1')?.state).toBe('draining');
  });
});

describe('listing clusters in turns', () => {
  const many = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => endpoint(`10.${prefix}.${i >> 8}.${i & 255}`));

  it('gives what listClusters gives, a turn between slices of endpoint rows', async () => {
    const dir = tempDir();
    const s = fresh(dir);
    for (let c = 0; c < 5; c++) s.putCluster(cluster(`c${c}`, many(String(c), 1_500)), API);
    s.putCluster(cluster('empty', []), API);
    // A connection that has read nothing yet (the writer keeps the records it wrote).
    const reader = fresh(dir);
    let turns = 0;
    const listed = await reader.listClustersInTurns(async () => void turns++);
    expect(listed).toEqual(s.listClusters());
    // 7,500 rows in slices of about LIST_SLICE_ENDPOINTS (2,000): a turn after every two clusters.
    expect(turns).toBeGreaterThanOrEqual(2);
  });

  it('reads one big cluster\'s rows in pages, a turn between two', async () => {
    const dir = tempDir();
    const s = fresh(dir);
    s.putCluster(cluster('big', many('9', 5_000)), API);
    const reader = fresh(dir);
    let turns = 0;
    const listed = await reader.listClustersInTurns(async () => void turns++);
    expect(listed).toEqual(s.listClusters());
    expect(listed[0]?.endpoints).toHaveLength(5_000);
    expect(turns).toBeGreaterThanOrEqual(2);
  });

  it('is one snapshot: a write between two slices, here or on another connection, makes it read the list again whole', async () => {
    const dir = tempDir();
    const s = fresh(dir);
    const other = fresh(dir);
    for (let c = 0; c < 4; c++) s.putCluster(cluster(`c${c}`, many(String(c), 1_500)), API);
    for (const write of [
      // c0: read before the first turn, so only a second read can show the write.
      () => s.setEndpointState('c0', '10.0.0.1', 8080, 'draining', API),
      () => other.setEndpointState('c0', '10.0.0.2', 8080, 'disabled', API),
    ]) {
      let turns = 0;
      const reader = fresh(dir);
      const listed = await reader.listClustersInTurns(async () => {
        if (turns++ === 0) write();
      });
      expect(turns).toBeGreaterThan(0);
      expect(listed).toEqual(s.listClusters());
    }
    const c0 = (await fresh(dir).listClustersInTurns(async () => {})).find((c) => c.name === 'c0');
    expect(['10.0.0.1', '10.0.0.2'].map((a) => c0?.endpoints.find((e) => e.address === a)?.state)).toEqual(['draining', 'disabled']);
  });
});

describe('openStore', () => {
  it('creates <dir>/fulcrum.db in WAL mode with synchronous=FULL, foreign keys and a busy timeout', () => {
    const dir = join(tempDir(), 'nested', 'data');
    const s = fresh(dir);
    expect(existsSync(join(dir, 'fulcrum.db'))).toBe(true);
    expect(s.settings()).toMatchObject({ journalMode: 'wal', synchronous: 2, foreignKeys: true, busyTimeoutMs: 5000, schemaVersion: SCHEMA_VERSION });
    expect(s.catalog()).toEqual({ clusters: [], listeners: [], nodeGroups: [] });
    expect(s.revision()).toBe(0);
  });
});

describe('SQLite specifics (the shared contract is store-contract.ts)', () => {
  it('the incremental catalog and the kept cluster records equal a full read after any sequence of writes, also another connection\'s', () => {
    const dir = tempDir();
    const s = fresh(dir);
    const other = fresh(dir);
    const ops: ((st: Store) => unknown)[] = [
      (st) => st.putCluster(cluster('a', [endpoint('10.0.0.1'), endpoint('10.0.0.2')]), API),
      (st) => st.putCluster(cluster('b', [endpoint('10.0.1.1')]), API),
      (st) => st.putEndpoint('a', endpoint('10.0.0.3', 81, { weight: 4 }), API),
      (st) => st.setEndpointState('a', '10.0.0.1', 8080, 'draining', API),
      (st) => st.putListener({ name: 'in', kind: 'socket', address: '0.0.0.0', port: 10000, routes: [{ domain: '*', prefix: '/', cluster: 'a' }] }, API),
      (st) => st.removeEndpoint('a', '10.0.0.2', 8080, API),
      (st) => st.deleteCluster('b', API),
      (st) => st.putCluster(cluster('c', [endpoint('10.0.2.1')]), API),
      // One-endpoint writes patch the kept record and the view: insert in order, change, disable, enable, remove.
      (st) => st.putEndpoint('c', endpoint('10.0.1.9', 80), API),
      (st) => st.putEndpoint('c', endpoint('10.0.2.1', 79, { weight: 3 }), API),
      (st) => st.putEndpoint('c', endpoint('10.0.2.1', 8080, { weight: 5 }), API),
      (st) => st.setEndpointState('c', '10.0.2.1', 8080, 'disabled', API),
      (st) => st.setEndpointState('c', '10.0.1.9', 80, 'draining', API),
      (st) => st.putEndpoint('c', endpoint('10.0.3.0', 80), API),
      (st) => st.setEndpointState('c', '10.0.2.1', 8080, 'active', API),
      (st) => st.removeEndpoint('c', '10.0.1.9', 80, API),
      (st) => st.putEndpoint('c', endpoint('9.0.0.1'), API),
    ];
    ops.forEach((op, i) => {
      // Every third of the first writes comes from another connection: a revision this one did not make.
      op(i % 3 === 2 && i < 8 ? other : s);
      const reader = fresh(dir);
      expect(s.catalog()).toEqual(reader.catalog());
      // Cluster records are kept per revision: never stale, whoever wrote.
      for (const name of ['a', 'b', 'c']) expect(s.getCluster(name)).toEqual(reader.getCluster(name));
    });
  });

  it('state survives close and reopen', () => {
    const dir = tempDir();
    const s = openStore(dir);
    s.putCluster(cluster('a', [endpoint('10.0.0.1')]), API);
    s.setEndpointState('a', '10.0.0.1', 8080, 'draining', { actor: 'bob' });
    const before = s.catalog();
    s.close();
    const t = fresh(dir);
    expect(t.catalog()).toEqual(before);
    expect(t.revision()).toBe(2);
    expect(t.putCluster(cluster('b'), API).revision).toBe(3);
  });
});

describe('audit', () => {
  it('takes its time from the injected clock, counts revisions 1, 2, 3 and prunes the oldest', () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const s = openStore(tempDir(), { now: () => new Date((now += 1000)) });
    open.push(s);
    s.putCluster(cluster('a', [endpoint('10.0.0.1')]), API);
    s.putCluster(cluster('a', [endpoint('10.0.0.1')], { connectTimeoutMs: 250 }), { ...API, actor: 'bob' });
    s.setEndpointState('a', '10.0.0.1', 8080, 'draining', { actor: 'carol' });
    s.deleteCluster('a', API);
    const rows = s.audit();
    expect(rows.map((r) => r.revision)).toEqual([4, 3, 2, 1]);
    expect(rows[3]!.at).toBe('2026-01-01T00:00:01.000Z');
    expect(s.pruneAudit(1)).toBe(3);
    expect(s.audit().map((r) => r.revision)).toEqual([4]);
  });

  it('prunes at most maxRows of the oldest per call', () => {
    const s = openStore(tempDir());
    open.push(s);
    for (let i = 0; i < 6; i++) s.putCluster(cluster('a', [endpoint('10.0.0.1')], { connectTimeoutMs: 100 + i }), API);
    expect(s.pruneAudit(1, 2)).toBe(2);
    expect(s.audit().map((r) => r.revision)).toEqual([6, 5, 4, 3]);
    expect(s.pruneAudit(1, 2)).toBe(2);
    expect(s.pruneAudit(1, 2)).toBe(1);
    expect(s.pruneAudit(1, 2)).toBe(0);
    expect(s.audit().map((r) => r.revision)).toEqual([6]);
  });
});

describe('change events', () => {
  it('fire after commit, once per transaction, and a throwing listener does not undo the write', () => {
    const errors: unknown[] = [];
    const s = openStore(tempDir(), { onListenerError: (e) => errors.push(e) });
    open.push(s);
    const seen: Array<[StoreChange, number | undefined]> = [];
    const off = s.onChange((e) => {
      // Committed: a fresh connection already sees it.
      const other = new Database(s.file, { readonly: true });
      try {
        const row = other.prepare('SELECT revision FROM clusters WHERE name = ?').get('a') as { revision: number } | undefined;
        seen.push([e, row?.revision]);
      } finally {
        other.close();
      }
    });
    s.onChange(() => {
      throw new Error('boom');
    });
    s.putCluster(cluster('a'), API);
    expect(() => s.putCluster(cluster('a'), { ...API, ifMatch: 99 })).toThrow(ConflictError);
    s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' });
    expect(seen.map(([e, r]) => [e.revision, e.actor, e.changes.length, r])).toEqual([
      [1, 'alice', 1, 1],
      [2, 'config-file', 5, 1],
    ]);
    expect(errors).toHaveLength(2);
    off();
    s.deleteCluster('a', API);
    expect(seen).toHaveLength(2);
  });
});

describe('published weights', () => {
  it('round-trips, replaces per cluster, and survives reopen', () => {
    const dir = tempDir();
    const s = openStore(dir);
    s.saveWeights('web', new Map([['10.0.0.1:80', 10], ['10.0.0.2:80', 30]]));
    s.saveAllWeights(new Map([['api', new Map([['[::1]:81', 1]])]]));
    s.saveWeights('web', new Map([['10.0.0.2:80', 25]]));
    expect(s.revision()).toBe(0); // derived state: no revision, no audit
    expect(s.audit()).toEqual([]);
    s.close();
    const t = fresh(dir);
    expect(t.loadWeights()).toEqual(
      new Map([
        ['api', new Map([['[::1]:81', 1]])],
        ['web', new Map([['10.0.0.2:80', 25]])],
      ]),
    );
    expect(() => t.saveWeights('web', new Map([['x', 1.5]]))).toThrow();
    expect(t.loadWeights().get('web')).toEqual(new Map([['10.0.0.2:80', 25]])); // failed save rolled back
  });
});
