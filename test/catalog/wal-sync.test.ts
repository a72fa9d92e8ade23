import { readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/catalog/store/index.js';
import { WalFile, WalSync } from '../../src/catalog/store/wal-sync.js';
import { WriteLane } from '../../src/catalog/store/write-lane.js';
import { cleanupTempDirs, cluster, endpoint, tempDir } from './helpers.js';
import { scaled } from '../support/timing.js';

afterAll(cleanupTempDirs);

const API = { actor: 'test', owner: 'api' } as const;

/** A flush the test ends by hand: `flushes` counts the fsyncs started, `end(i)` finishes the i-th. */
function manualFlush(): { flush: () => Promise<void>; flushes: () => number; end: (i: number, err?: Error) => void } {
  const pending: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  return {
    flush: () => new Promise<void>((resolve, reject) => void pending.push({ resolve, reject })),
    flushes: () => pending.length,
    end: (i, err) => (err ? pending[i]?.reject(err) : pending[i]?.resolve()),
  };
}

const settled = async (p: Promise<unknown>): Promise<boolean> => {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return done;
};

describe('WalSync', () => {
  it('covers a commit made during a running fsync only with the next one, which callers share', async () => {
    const f = manualFlush();
    const sync = new WalSync(f.flush);
    const first = sync.synced();
    const second = sync.synced(); // its commit may not be in the running fsync
    const third = sync.synced();
    expect(f.flushes()).toBe(1);
    f.end(0);
    await first;
    expect(await settled(second)).toBe(false);
    expect(f.flushes()).toBe(2); // one more fsync for both waiting callers
    f.end(1);
    await Promise.all([second, third]);
    expect(f.flushes()).toBe(2);
    // Idle again: the next caller starts its own.
    const fourth = sync.synced();
    expect(f.flushes()).toBe(3);
    f.end(2);
    await fourth;
  });

  it('a failed fsync fails its callers; the next caller gets a fresh one', async () => {
    const f = manualFlush();
    const sync = new WalSync(f.flush);
    const failing = sync.synced();
    f.end(0, new Error('EIO'));
    await expect(failing).rejects.toThrow('EIO');
    const next = sync.synced();
    expect(f.flushes()).toBe(2);
    f.end(1);
    await next;
  });
});

describe('WalFile', () => {
  /** What this process holds open under `path` (Linux: /proc/self/fd), "(deleted)" marking a replaced file. */
  const held = (path: string): string[] =>
    readdirSync('/proc/self/fd').flatMap((fd) => {
      try {
        const target = readlinkSync(`/proc/self/fd/${fd}`);
        return target.startsWith(path) ? [target] : [];
      } catch {
        return [];
      }
    });

  it.runIf(process.platform === 'linux')('holds the WAL open across fsyncs and follows it when SQLite replaces it', async () => {
    const path = join(tempDir(), 'x.db-wal');
    const wal = new WalFile(path);
    await wal.flush(); // no WAL yet: nothing to do, nothing opened
    expect(held(path)).toEqual([]);
    writeFileSync(path, 'frames');
    await wal.flush();
    await wal.flush();
    expect(held(path)).toEqual([path]); // one descriptor, kept
    rmSync(path);
    writeFileSync(path, 'new frames');
    await wal.flush();
    expect(held(path)).toEqual([path]); // the new file, not the deleted one
    wal.close();
    expect(held(path)).toEqual([]);
  });
});

describe('Store.durably through the write lane', () => {
  it('pushes (runs change listeners) at commit, before the fsync; the write settles only after it', async () => {
    const f = manualFlush();
    const lane = new WriteLane(openStore(tempDir(), { flushWal: f.flush }));
    const created = lane.putCluster(cluster('c', [endpoint('10.0.0.1')]), API);
    f.end(0);
    await created;
    const heard: Array<{ revision: number; flushes: number }> = [];
    lane.onChange((change) => heard.push({ revision: change.revision, flushes: f.flushes() }));
    const write = lane.putEndpoint('c', endpoint('10.0.0.1', 8080, { weight: 9 }), API);
    // Committed and pushed already: listeners ran and readers see it, while the fsync (started
    // at COMMIT, before the listeners, so that it overlaps the push) runs.
    expect(heard).toEqual([{ revision: 2, flushes: 2 }]);
    expect(lane.getEndpoint('c', '10.0.0.1', 8080)?.weight).toBe(9);
    expect(await settled(Promise.resolve(write))).toBe(false);
    f.end(1);
    expect(await write).toEqual({ revision: 2 });
    // A failed fsync fails the write (the API answers 500) saying the change is applied but not durable.
    const failing = lane.putEndpoint('c', endpoint('10.0.0.1', 8080, { weight: 4 }), API);
    f.end(2, new Error('EIO: fsync failed'));
    await expect(failing).rejects.toThrow(/applied and served, but the store could not make it durable \(fsync of the WAL failed: EIO/);
    expect(lane.getEndpoint('c', '10.0.0.1', 8080)?.weight).toBe(4);
    // The connection is back to FULL for every other write (config reload, sliced writes' own connection).
    expect(lane.describe()).toMatchObject({ kind: 'sqlite', synchronous: 2 });
    await lane.close();
  });

  it('closes only once a committed write\'s fsync has ended, so the write is not failed by the close', async () => {
    const f = manualFlush();
    const lane = new WriteLane(openStore(tempDir(), { flushWal: f.flush }));
    const write = lane.putCluster(cluster('c', [endpoint('10.0.0.1')]), API);
    const closed = lane.close();
    expect(await settled(closed)).toBe(false);
    f.end(0);
    expect(await write).toEqual({ revision: 1 });
    await closed;
    expect(() => lane.describe()).toThrow(/not open/);
  });
});

describe('a sliced cluster write (Store.putClusterSliced)', () => {
  it('commits without an fsync on the event loop, pushes at commit, and settles only once the WAL is fsynced', async () => {
    const f = manualFlush();
    // Clusters of more than 2 endpoints take the sliced path.
    const lane = new WriteLane(openStore(tempDir(), { flushWal: f.flush }), 2);
    const heard: Array<{ revision: number; flushes: number }> = [];
    lane.onChange((change) => heard.push({ revision: change.revision, flushes: f.flushes() }));
    const many = (n: number, weight: number) => Array.from({ length: n }, (_, i) => endpoint(`10.0.0.${i + 1}`, 8080, { weight }));
    const write = lane.putCluster(cluster('big', many(5, 1)), API);
    await new Promise((r) => setImmediate(r));
    await waitUntil(() => heard.length > 0);
    // Committed and pushed, readable, with the fsync started after the commit and still running.
    expect(heard).toEqual([{ revision: 1, flushes: 0 }]);
    expect(lane.getCluster('big')?.endpoints).toHaveLength(5);
    expect(f.flushes()).toBe(1);
    expect(await settled(Promise.resolve(write))).toBe(false);
    f.end(0);
    expect(await write).toEqual({ revision: 1 });
    const failing = lane.putCluster(cluster('big', many(5, 2)), API);
    await waitUntil(() => f.flushes() > 1);
    f.end(1, new Error('EIO: fsync failed'));
    await expect(failing).rejects.toThrow(/applied and served, but the store could not make it durable \(fsync of the WAL failed: EIO/);
    expect(lane.getCluster('big')?.endpoints.map((e) => e.weight)).toEqual([2, 2, 2, 2, 2]);
    await lane.close();
  });
});

describe('a sliced cluster delete (Store.deleteClusterSliced)', () => {
  it('pushes at commit and settles (the API answers) only once the WAL holding its commit is fsynced', async () => {
    const f = manualFlush();
    const lane = new WriteLane(openStore(tempDir(), { flushWal: f.flush }), 2);
    const many = Array.from({ length: 5 }, (_, i) => endpoint(`10.0.0.${i + 1}`, 8080));
    const put = lane.putCluster(cluster('big', many), API);
    await waitUntil(() => f.flushes() === 1);
    f.end(0);
    await put;
    const heard: Array<{ revision: number; flushes: number }> = [];
    lane.onChange((change) => heard.push({ revision: change.revision, flushes: f.flushes() }));
    const deleted = lane.deleteCluster('big', API);
    await waitUntil(() => heard.length > 0);
    expect(heard).toEqual([{ revision: 2, flushes: 1 }]);
    expect(lane.getCluster('big')).toBeUndefined();
    expect(f.flushes()).toBe(2); // the fsync started after the commit, and still running
    expect(await settled(Promise.resolve(deleted))).toBe(false);
    f.end(1);
    expect(await deleted).toEqual({ revision: 2 });
    await lane.close();
  });
});

/**
 * Turns of the event loop until `ok()`, checked every turn (the sliced write yields a few times
 * before it commits, and packs its audit text on libuv's thread pool), for at most a deadline: a
 * count of turns ran out on a loaded CI machine while the pool was busy.
 */
async function waitUntil(ok: () => boolean): Promise<void> {
  const deadline = Date.now() + scaled(10_000);
  while (!ok() && Date.now() < deadline) await new Promise((r) => setImmediate(r));
  expect(ok()).toBe(true);
}
