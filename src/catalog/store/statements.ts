/**
 * Statements prepared once per connection. The sliced writes (sliced-write.ts, sliced-seed.ts,
 * sliced-delete.ts) run the same few statements for every cluster and every page on the store's
 * second connection: a config file's seed of 1,000 clusters prepared ~10,000 of them.
 */
import type Database from 'better-sqlite3';

const STATEMENTS = new WeakMap<Database.Database, Map<string, Database.Statement>>();

/** `sql` prepared on `db`, the first time only. */
export function prepared<P extends unknown[] = unknown[], R = unknown>(db: Database.Database, sql: string): Database.Statement<P, R> {
  let byText = STATEMENTS.get(db);
  if (!byText) STATEMENTS.set(db, (byText = new Map()));
  let statement = byText.get(sql);
  if (!statement) byText.set(sql, (statement = db.prepare(sql)));
  return statement as unknown as Database.Statement<P, R>;
}
