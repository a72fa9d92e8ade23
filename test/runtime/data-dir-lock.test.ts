import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirLock, DataDirLockedError, KERNEL_LOCK_FILE, LOCK_FILE } from '../../src/runtime/data-dir-lock.js';

describe('DataDirLock', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('one holder at a time: a second is refused naming the directory and pid; stop releases', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-lock-'));
    const data = join(dir, 'data');
    const first = new DataDirLock(data);
    first.start();
    expect(readFileSync(join(data, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
    expect(() => new DataDirLock(data).start()).toThrow(`data directory ${data} is in use by another fulcrum (pid ${process.pid}`);
    first.stop();
    expect(existsSync(join(data, LOCK_FILE))).toBe(false);
    const again = new DataDirLock(data);
    again.start();
    again.stop();
  });

  it('takes over a lock whose process is gone, and an unreadable one', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-lock-'));
    // A pid that existed and has exited: a finished child's.
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    writeFileSync(join(dir, LOCK_FILE), `${dead}\n`);
    const taken: (number | undefined)[] = [];
    const lock = new DataDirLock(dir, (pid) => taken.push(pid));
    lock.start();
    expect(taken).toEqual([dead]);
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
    lock.stop();
    writeFileSync(join(dir, LOCK_FILE), 'garbage');
    const second = new DataDirLock(dir, (pid) => taken.push(pid));
    second.start();
    expect(taken).toEqual([dead, undefined]);
    second.stop();
  });

  // The image runs node as PID 1 (Dockerfile): after an OOM kill the restarted container's fulcrum
  // is PID 1 again, and the lock its predecessor left names that very pid.
  it('a lock naming this very pid (a restarted container: PID 1 again) is stale: taken over, not refused', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-lock-'));
    writeFileSync(join(dir, LOCK_FILE), `${process.pid}\n`);
    const taken: (number | undefined)[] = [];
    const lock = new DataDirLock(dir, (pid) => taken.push(pid));
    lock.start();
    expect(taken).toEqual([process.pid]);
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
    lock.stop();
  });

  it('two starters taking over one stale lock at once: one holds it, the other is refused', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-lock-'));
    writeFileSync(join(dir, LOCK_FILE), `${spawnSync(process.execPath, ['-e', '']).pid}\n`);
    const racer = new DataDirLock(dir);
    let raced: unknown = 'not run';
    // The other starter runs between this one's look at the stale lock and its take-over.
    const lock = new DataDirLock(dir, () => {
      try {
        racer.start();
        raced = 'held';
      } catch (err) {
        raced = err;
      }
    });
    lock.start();
    expect(raced).toBeInstanceOf(DataDirLockedError);
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
    lock.stop();
    racer.stop();
  });

  it('a lock that cannot be taken (its file not a file) fails naming the file', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-lock-'));
    mkdirSync(join(dir, KERNEL_LOCK_FILE));
    expect(() => new DataDirLock(dir as string).start()).toThrow(`cannot lock ${join(dir, KERNEL_LOCK_FILE)}: `);
  });

  it('stop leaves a lock another process has taken since', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-lock-'));
    const lock = new DataDirLock(dir);
    lock.start();
    writeFileSync(join(dir, LOCK_FILE), '1\n');
    lock.stop();
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe('1\n');
  });
});
