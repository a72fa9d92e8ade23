import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/catalog/store/index.js';
import { CHECKPOINT_EVERY_COMMITS, WalCheckpointer } from '../../src/catalog/store/wal-checkpointer.js';
import type { Endpoint } from '../../src/catalog/types.js';
import { cleanupTempDirs, cluster, endpoint, tempDir } from './helpers.js';
import { waitFor } from '../support/wait.js';

const API = { actor: 'alice', owner: 'api' } as const;
const open: Store[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  cleanupTempDirs();
});

const many = (n: number, weight: number): Endpoint[] =>
  Array.from({ length: n }, (_, i) => endpoint(`10.0.${(i >> 8) & 255}.${i & 255}`, 8080, { weight }));

describe('WAL checkpoints of the SQLite store', () => {
  it('are not run inside a commit at SQLite\'s default threshold: the worker copies the pages after enough commits', async () => {
    // Writes as the API makes them (durably: the COMMIT itself does not fsync), the WAL's fsync faked: fast.
    const s = openStore(tempDir(), { flushWal: () => Promise.resolve() });
    open.push(s);
    const put = (name: string, n: number, weight: number): Promise<unknown> => s.durably(() => s.putCluster(cluster(name, many(n, weight)), API));
    await put('c', 300, 1);
    const size = (): number => statSync(s.file).size;
    const before = size();
    // 40 writes re-weighting 300 endpoints, each audited before and after: more than SQLite's
    // default 1,000 pages (4 MB) in the WAL, which its own checkpoint would have copied into the
    // database file inside one of these commits, with the event loop held.
    for (let w = 2; w < 42; w++) await put('c', 300, w);
    expect(size()).toBe(before);
    expect(statSync(`${s.file}-wal`).size).toBeGreaterThan(4 * 1024 * 1024);
    // Small writes up to one commit short of the worker's turn: still nothing copied.
    for (let w = 42; w < CHECKPOINT_EVERY_COMMITS; w++) await put('d', 1, w);
    expect(size()).toBe(before);
    // The next commit starts the worker's checkpoint; it copies the pages with no further write.
    await put('d', 1, 1000);
    await waitFor(() => size() > before + 1024 * 1024 || undefined, { what: 'the worker checkpointed', timeoutMs: 60_000 });
    expect(s.getCluster('c')?.endpoints.map((e) => e.weight)).toEqual(many(300, 41).map(() => 41));
  });

  it('ends its worker thread once idle, and starts one again for the next checkpoint', async () => {
    const file = join(tempDir(), 'w.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (x)');
    const errors: string[] = [];
    const checkpointer = new WalCheckpointer(file, db, (m) => errors.push(m), 50);
    try {
      for (let round = 0; round < 2; round++) {
        db.prepare('INSERT INTO t VALUES (?)').run(round);
        await checkpointer.checkpoint();
        expect(checkpointer.started).toBe(true);
        await waitFor(() => !checkpointer.started || undefined, { what: 'the idle worker ended', timeoutMs: 30_000 });
      }
      expect(errors).toEqual([]);
      expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 2 });
    } finally {
      await checkpointer.close();
      db.close();
    }
  });

  it('closed during a checkpoint, lets it finish and settle before the worker ends (a thread ended inside SQLite can abort the process)', async () => {
    const file = join(tempDir(), 'c.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (x)');
    const insert = db.prepare('INSERT INTO t VALUES (?)');
    db.transaction(() => {
      for (let i = 0; i < 20_000; i++) insert.run('x'.repeat(100) + i);
    })();
    const checkpointer = new WalCheckpointer(file, db, () => undefined, 60_000);
    const order: string[] = [];
    const running = checkpointer.checkpoint().then(() => order.push('checkpoint settled'));
    const closed = checkpointer.close().then(() => order.push('closed'));
    await Promise.all([running, closed]);
    expect(order).toEqual(['checkpoint settled', 'closed']);
    expect(checkpointer.started).toBe(false);
    // Closed for good: a later call starts no thread.
    await checkpointer.checkpoint();
    expect(checkpointer.started).toBe(false);
    db.close();
  });
});
