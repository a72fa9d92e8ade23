import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Component } from './lifecycle.js';

/**
 * One fulcrum per data directory: two processes writing one SQLite store would both serve
 * and overwrite each other's state. The lock is a file holding the owner's pid, created
 * exclusively; a lock whose pid no longer runs (a crash, SIGKILL) is taken over.
 */

export const LOCK_FILE = 'fulcrum.lock';

export class DataDirLockedError extends Error {
  override readonly name = 'DataDirLockedError';
}

/** Whether a process with this pid exists (EPERM: it exists but belongs to someone else). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function holder(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export class DataDirLock implements Component {
  readonly name = 'data-dir-lock';
  private held = false;

  constructor(
    private readonly dir: string,
    private readonly onTakeOver: (stalePid: number | undefined) => void = () => undefined,
  ) {}

  get file(): string {
    return join(this.dir, LOCK_FILE);
  }

  start(): void {
    mkdirSync(this.dir, { recursive: true });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(this.file, `${process.pid}\n`, { flag: 'wx' });
        this.held = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const pid = holder(this.file);
      if (pid !== undefined && running(pid)) {
        throw new DataDirLockedError(`data directory ${this.dir} is in use by another fulcrum (pid ${pid}, lock ${this.file}); stop it or use another --data-dir`);
      }
      // Stale (its owner is gone) or unreadable: remove it and try once more; a racing
      // instance that creates it first wins, and this one then fails on the retry.
      this.onTakeOver(pid);
      rmSync(this.file, { force: true });
    }
    throw new DataDirLockedError(`data directory ${this.dir}: another fulcrum took the lock ${this.file} while this one was starting`);
  }

  stop(): void {
    if (!this.held) return;
    this.held = false;
    if (holder(this.file) === process.pid) rmSync(this.file, { force: true });
  }
}
