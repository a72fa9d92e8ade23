/**
 * SQLite's refusals of a write, as the store's own errors: a locked database, a full disk, a
 * read-only or failing file are the machine's state, not a bug, and the operator needs to know
 * which (and that the write's transaction was rolled back) to act; a bare 500 "internal error"
 * said neither.
 */
import { StoreUnavailableError } from './errors.js';

/** What each family of SQLite result codes means for the operator (SQLITE_IOERR_WRITE is in SQLITE_IOERR's). */
const CAUSES: ReadonlyArray<readonly [prefix: string, cause: string]> = [
  ['SQLITE_BUSY', 'another process or connection holds the database\'s write lock'],
  ['SQLITE_LOCKED', 'the database is locked'],
  ['SQLITE_FULL', 'the disk is full'],
  ['SQLITE_READONLY', 'the database file or its directory is read-only'],
  ['SQLITE_IOERR', 'the database file could not be read or written'],
  ['SQLITE_CANTOPEN', 'the database file could not be opened'],
];

/** `err` as a StoreUnavailableError when it is SQLite refusing the write for the machine's state; else `err` itself. */
export function storeFailure(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !(err instanceof Error)) return err;
  const found = CAUSES.find(([prefix]) => code === prefix || code.startsWith(`${prefix}_`));
  if (!found) return err;
  return new StoreUnavailableError(`${found[1]} (${code}: ${err.message}); nothing was written`);
}

/** Rethrows `err` as storeFailure gives it (for a promise's catch). */
export function rethrowStoreFailure(err: unknown): never {
  throw storeFailure(err);
}
