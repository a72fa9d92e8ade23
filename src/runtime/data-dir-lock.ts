import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Component } from './lifecycle.js';

/**
 * One fulcrum per data directory: two processes writing one SQLite store would both serve
 * and overwrite each other's state.
 *
 * The lock itself is the kernel's: an exclusive SQLite lock (an fcntl lock) on `fulcrum.lock.db`,
 * held while the process runs and released by the kernel when it ends, however it ends. A pid
 * file alone cannot tell a live holder from a dead one: the image runs node as PID 1, so after an
 * OOM kill the restarted container's fulcrum had the very pid its lock named and was refused for
 * ever; and two starters taking over one stale pid file at once could both remove it and both
 * hold it. `fulcrum.lock` still holds the holder's pid, for the refusal's message and operators.
 */

export const LOCK_FILE = 'fulcrum.lock';
/** The file whose kernel lock is the data directory's lock (left in place: its inode is what is locked). */
export const KERNEL_LOCK_FILE = 'fulcrum.lock.db';

export class DataDirLockedError extends Error {
  override readonly name = 'DataDirLockedError';
}

function holder(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The exclusive lock on `file`, or undefined when another connection (this process's too) holds it. */
function takeKernelLock(file: string): Database.Database | undefined {
  const db = new Database(file, { timeout: 0 });
  try {
    // EXCLUSIVE locking mode keeps the lock a write transaction takes until the connection closes.
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('COMMIT');
    return db;
  } catch (err) {
    db.close();
    if ((err as { code?: unknown }).code === 'SQLITE_BUSY') return undefined;
    throw err;
  }
}

/** takeKernelLock, its failures naming the file (SQLite's own say only "unable to open database file"). */
function kernelLockOf(file: string): Database.Database | undefined {
  try {
    return takeKernelLock(file);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new Error(`cannot lock ${file}: ${err instanceof Error ? err.message : String(err)}${typeof code === 'string' ? ` (${code})` : ''}`, { cause: err });
  }
}

export class DataDirLock implements Component {
  readonly name = 'data-dir-lock';
  private held: Database.Database | undefined;

  constructor(
    private readonly dir: string,
    private readonly onTakeOver: (stalePid: number | undefined) => void = () => undefined,
  ) {}

  get file(): string {
    return join(this.dir, LOCK_FILE);
  }

  start(): void {
    mkdirSync(this.dir, { recursive: true });
    const locked = kernelLockOf(join(this.dir, KERNEL_LOCK_FILE));
    if (!locked) {
      const pid = holder(this.file);
      throw new DataDirLockedError(`data directory ${this.dir} is in use by another fulcrum (pid ${pid ?? 'unknown'}, lock ${this.file}); stop it or use another --data-dir`);
    }
    this.held = locked;
    // Whoever wrote a pid file found here is gone (its kernel lock was free), whatever pid it names.
    if (existsSync(this.file)) this.onTakeOver(holder(this.file));
    writeFileSync(this.file, `${process.pid}\n`);
  }

  stop(): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    if (holder(this.file) === process.pid) rmSync(this.file, { force: true });
    held.close();
  }
}
