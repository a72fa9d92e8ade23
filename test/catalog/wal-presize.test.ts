import { copyFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/catalog/store/index.js';
import { presizeWal, WAL_PRESIZE_BYTES } from '../../src/catalog/store/wal-presize.js';
import { cleanupTempDirs, cluster, endpoint, tempDir } from './helpers.js';

const API = { actor: 'alice', owner: 'api' } as const;
const open: Store[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  cleanupTempDirs();
});

const walSize = (db: string): number => statSync(`${db}-wal`).size;

/** A copy of the files as a crash leaves them: the database and its WAL, copied while still open. */
function crashCopy(db: string): string {
  const copy = join(tempDir(), 'copy.db');
  copyFileSync(db, copy);
  copyFileSync(`${db}-wal`, `${copy}-wal`);
  return copy;
}

describe('the SQLite store\'s WAL, written out to its size at open', () => {
  it('is that large from the start, and one-endpoint writes overwrite it in place instead of growing it', async () => {
    const s = openStore(tempDir());
    open.push(s);
    expect(walSize(s.file)).toBe(WAL_PRESIZE_BYTES);
    await s.durably(() => s.putCluster(cluster('web', [endpoint('10.0.0.1')]), API));
    for (let w = 2; w < 60; w++) await s.durably(() => s.putEndpoint('web', endpoint('10.0.0.1', 8080, { weight: w }), API));
    // 59 commits with their audit rows: far from filling 8 MiB, so not one of them changed the size.
    expect(walSize(s.file)).toBe(WAL_PRESIZE_BYTES);
    expect(s.getEndpoint('web', '10.0.0.1', 8080)?.weight).toBe(59);
  });

  it('keeps every committed write across a crash: the zeros after the last frame read as the end of the log', async () => {
    const s = openStore(tempDir());
    open.push(s);
    await s.durably(() => s.putCluster(cluster('web', [endpoint('10.0.0.1'), endpoint('10.0.0.2')]), API));
    await s.durably(() => s.putEndpoint('web', endpoint('10.0.0.1', 8080, { weight: 7 }), API));
    const copy = crashCopy(s.file);
    expect(walSize(copy)).toBe(WAL_PRESIZE_BYTES);
    const recovered = openStore(join(copy, '..'), { fileName: 'copy.db' });
    open.push(recovered);
    expect(recovered.getCluster('web')?.endpoints.map((e) => [e.address, e.weight])).toEqual([['10.0.0.1', 7], ['10.0.0.2', 1]]);
    // Writing on after the recovery, then reopening: the new frames are found, the old tail ignored.
    await recovered.durably(() => recovered.putEndpoint('web', endpoint('10.0.0.2', 8080, { weight: 9 }), API));
    recovered.close();
    open.pop();
    const again = openStore(join(copy, '..'), { fileName: 'copy.db' });
    open.push(again);
    expect(again.getEndpoint('web', '10.0.0.2', 8080)?.weight).toBe(9);
    expect(again.getEndpoint('web', '10.0.0.1', 8080)?.weight).toBe(7);
  });

  it('only appends zeros after a WAL that already holds frames (a crashed process\'s), which SQLite then recovers whole', () => {
    const file = join(tempDir(), 'raw.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    db.exec('CREATE TABLE t (x)');
    for (let i = 0; i < 100; i++) db.prepare('INSERT INTO t VALUES (?)').run(i);
    const copy = crashCopy(file);
    db.close();
    const frames = walSize(copy);
    expect(frames).toBeGreaterThan(0);
    expect(frames).toBeLessThan(WAL_PRESIZE_BYTES);
    expect(presizeWal(`${copy}-wal`)).toBe(WAL_PRESIZE_BYTES - frames);
    expect(presizeWal(`${copy}-wal`)).toBe(0);
    const recovered = new Database(copy);
    try {
      expect(recovered.prepare('SELECT count(*) AS n, sum(x) AS s FROM t').get()).toEqual({ n: 100, s: 4950 });
    } finally {
      recovered.close();
    }
  });

  it('leaves a missing WAL to SQLite', () => {
    expect(presizeWal(join(tempDir(), 'none.db-wal'))).toBe(0);
  });
});
