import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS, SCHEMA_VERSION, SchemaVersionError, migrate, openStore } from '../../src/catalog/store/index.js';
import { cleanupTempDirs, cluster, tempDir } from './helpers.js';

afterEach(cleanupTempDirs);

function versions(file: string): Array<{ version: number; applied_at: string }> {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT version, applied_at FROM schema_migrations ORDER BY version').all() as Array<{ version: number; applied_at: string }>;
  } finally {
    db.close();
  }
}

describe('schema migrations', () => {
  it('a fresh database gets every migration, recorded in schema_migrations', () => {
    const dir = tempDir();
    const s = openStore(dir);
    s.close();
    const v = versions(join(dir, 'fulcrum.db'));
    expect(v.map((r) => r.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
    expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
    const db = new Database(join(dir, 'fulcrum.db'), { readonly: true });
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as Array<{ name: string }>).map(
      (t) => t.name,
    );
    db.close();
    expect(tables).toEqual(
      expect.arrayContaining(['audit', 'clusters', 'endpoints', 'listeners', 'node_groups', 'published_weights', 'schema_migrations']),
    );
  });

  it('re-opening applies nothing and keeps the data', () => {
    const dir = tempDir();
    const s = openStore(dir);
    s.putCluster(cluster('a'), { actor: 't', owner: 'api' });
    s.close();
    const before = versions(join(dir, 'fulcrum.db'));
    const t = openStore(dir);
    expect(t.getCluster('a')).toBeDefined();
    t.close();
    expect(versions(join(dir, 'fulcrum.db'))).toEqual(before);
  });

  it('a version 3 store opens at version 4 with its audit rows (text, with and without summary) read as before', () => {
    const dir = tempDir();
    const file = join(dir, 'fulcrum.db');
    const db = new Database(file);
    migrate(db, file, MIGRATIONS.slice(0, 3));
    const before = JSON.stringify({ name: 'big', endpoints: [{ address: '10.0.0.1', port: 8080 }] });
    const insert = db.prepare(`INSERT INTO audit (at, actor, action, kind, name, revision, before, after, summary) VALUES ('t', 'a', 'delete', 'cluster', ?, 1, ?, NULL, ?)`);
    insert.run('big', before, JSON.stringify({ before: { name: 'big' }, after: null, endpoints: { before: 1, after: null } }));
    insert.run('small', before, null);
    db.close();
    const s = openStore(dir);
    try {
      expect(s.settings().schemaVersion).toBe(4);
      expect(s.audit(10).map((e) => [e.name, e.before])).toEqual([
        ['small', JSON.parse(before)],
        ['big', JSON.parse(before)],
      ]);
      expect(s.audit(10, undefined, { trimOver: 10 }).map((e) => e.trimmed?.endpoints)).toEqual([
        { before: 1, after: null },
        { before: 1, after: null },
      ]);
    } finally {
      s.close();
    }
  });

  it('refuses a database written by a newer version, with a clear error, and leaves it untouched', () => {
    const dir = tempDir();
    openStore(dir).close();
    const file = join(dir, 'fulcrum.db');
    const db = new Database(file);
    db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(SCHEMA_VERSION + 1, 'future');
    db.close();
    const before = versions(file);
    let err: unknown;
    try {
      openStore(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SchemaVersionError);
    expect(err).toMatchObject({ found: SCHEMA_VERSION + 1, supported: SCHEMA_VERSION });
    expect(String(err)).toContain(`schema version ${SCHEMA_VERSION + 1} is newer than this fulcrum supports (${SCHEMA_VERSION})`);
    expect(versions(file)).toEqual(before);
  });

  it('applies only pending migrations, in order; a failing migration rolls back entirely', () => {
    const file = join(tempDir(), 'm.db');
    const db = new Database(file);
    try {
      expect(migrate(db, file, ['CREATE TABLE a (x INTEGER)'])).toEqual([0, 1]);
      expect(migrate(db, file, ['CREATE TABLE a (x INTEGER)', 'CREATE TABLE b (y INTEGER)', 'INSERT INTO b VALUES (1)'])).toEqual([1, 3]);
      expect(db.prepare('SELECT count(*) AS n FROM b').get()).toEqual({ n: 1 });
      const broken = ['CREATE TABLE a (x INTEGER)', 'CREATE TABLE b (y INTEGER)', 'INSERT INTO b VALUES (1)', 'CREATE TABLE c (z INTEGER)', 'NOT SQL'];
      expect(() => migrate(db, file, broken)).toThrow();
      expect(db.prepare(`SELECT count(*) AS n FROM sqlite_master WHERE name = 'c'`).get()).toEqual({ n: 0 });
      expect(db.prepare('SELECT max(version) AS v FROM schema_migrations').get()).toEqual({ v: 3 });
    } finally {
      db.close();
    }
  });
});
