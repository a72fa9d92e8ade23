import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { collectStartupGarbage, collectStartupGarbageAfter, collectStartupHeap, compactHeap, compactIfSmall, FullCollections } from '../../src/runtime/startup-garbage.js';
import { waitFor } from '../support/wait.js';

const oldSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space') ?? { space_size: NaN, space_used_size: NaN };

describe('compactHeap', () => {
  it('gives back the old-generation pages that only garbage held, and leaves gc unexposed', () => {
    compactHeap();
    const before = oldSpace().space_size;
    // ~40 MiB of old-generation objects (they survive the scavenges that promote them), then every
    // other one dropped: without compaction each page stays committed, half empty.
    const kept: unknown[] = [];
    for (let i = 0; i < 400_000; i++) kept.push({ i, payload: `x${i}`.repeat(4) });
    const grown = oldSpace().space_size;
    for (let i = 0; i < kept.length; i += 2) kept[i] = undefined;
    compactHeap();
    const after = oldSpace().space_size;
    expect(grown).toBeGreaterThan(before + 16 * 1024 * 1024);
    expect(after).toBeLessThan(grown - 8 * 1024 * 1024);
    expect(kept.length).toBe(400_000);
    expect(runInNewContext('typeof gc')).toBe('undefined');
  });

  it('leaves a heap larger than the limit alone (the pause grows with it)', () => {
    compactHeap();
    const kept: unknown[] = [];
    for (let i = 0; i < 400_000; i++) kept.push({ i, payload: `x${i}`.repeat(4) });
    for (let i = 0; i < kept.length; i += 2) kept[i] = undefined;
    const grown = oldSpace().space_size;
    expect(compactIfSmall(1024 * 1024)).toBe(false);
    expect(oldSpace().space_size).toBeGreaterThanOrEqual(grown);
    expect(compactIfSmall()).toBe(true);
    expect(oldSpace().space_size).toBeLessThan(grown - 8 * 1024 * 1024);
    expect(kept.length).toBe(400_000);
  });

  it('collects a heap over the limit when more of it is garbage than the last full collection kept, else leaves it to V8', () => {
    const used = (): number => getHeapStatistics().used_heap_size;
    compactHeap();
    const watch = new FullCollections();
    const kept: unknown[] = [];
    for (let i = 0; i < 200_000; i++) kept.push({ i, payload: `x${i}`.repeat(4) });
    compactHeap(); // a full collection: the watch records what it kept
    watch.stop();
    const live = watch.kept as number;
    expect(live).toBeGreaterThan(used() * 0.8);
    // Garbage in the old generation (promoted while held, then dropped): more than what stays.
    let held: unknown[] = [];
    for (let i = 0; i < 1_500_000; i++) held.push({ i, payload: `y${i}`.repeat(4) });
    held = [];
    const before = used();
    expect(before - live).toBeGreaterThan(live);
    const limit = 1024 * 1024;
    const outcome = (k: number | undefined): string => collectStartupHeap(k, limit).outcome;
    expect(outcome(before)).toBe('left'); // as kept as it is: nothing to gain
    expect(outcome(0.6 * before)).toBe('left'); // less allocated since than kept
    expect(outcome(undefined)).toBe('left'); // no full collection seen: left to V8
    expect(used()).toBeGreaterThan(before - (before - live) / 2);
    // Too much alive to compact: collected (objects freed), not compacted.
    const plain = collectStartupHeap(live, limit, 1024 * 1024);
    expect([plain.outcome, plain.keptBytes]).toEqual(['collected', live]);
    expect(Math.abs(plain.usedBytes - before)).toBeLessThan(before / 20);
    expect(plain.liveBytes).toBeLessThan(before - (before - live) / 2);
    expect(used()).toBeLessThan(before - (before - live) / 2);
    // Garbage again, and little alive: collected, then compacted.
    for (let i = 0; i < 1_500_000; i++) held.push({ i, payload: `y${i}`.repeat(4) });
    held = [];
    const again = used();
    const done = collectStartupHeap(live, limit);
    expect(done.outcome).toBe('collected, then compacted');
    expect(done.pauseMs).toBeGreaterThan(0);
    expect(used()).toBeLessThan(again - (again - live) / 2);
    expect(collectStartupHeap(live, 1024 * 1024 * 1024).outcome).toBe('compacted'); // small again: compacted
    expect([kept.length, held.length]).toEqual([200_000, 0]);
  });

  it('watches full collections across its restarts, the last one counting, until stopped', async () => {
    const watch = new FullCollections(20);
    compactHeap();
    await new Promise((resolve) => setTimeout(resolve, 80)); // read and restarted meanwhile
    const first = watch.kept as number;
    expect(first).toBeGreaterThan(0);
    const more = Array.from({ length: 300_000 }, (_, i) => ({ i, payload: `z${i}`.repeat(4) }));
    compactHeap();
    await new Promise((resolve) => setTimeout(resolve, 80));
    watch.stop();
    const second = watch.kept as number;
    expect(second).toBeGreaterThan(first + 10 * 1024 * 1024);
    compactHeap(); // after stop: not seen
    watch.stop();
    expect(watch.kept).toBe(second);
    expect(more.length).toBe(300_000);
  });

  it('collects start-up garbage once, when the event loop has gone quiet (not in a restart storm)', async () => {
    let busyPolls = 3;
    let compactions = 0;
    const loop = { mark: () => undefined, quiet: () => busyPolls-- <= 0 };
    collectStartupGarbage(0, 5, loop, () => void (compactions += 1));
    await waitFor(() => busyPolls < 0, { timeoutMs: 10_000, what: 'the loop looked at until quiet' });
    await waitFor(() => compactions === 1, { timeoutMs: 10_000, what: 'the compaction' });
    expect(busyPolls).toBe(-1);
  });

  it('compacts a serving process only after start-up and the admin warm-up, or once the warm-up is overdue', async () => {
    let compactions = 0;
    let warm: () => void = () => undefined;
    const warmed = new Promise<void>((resolve) => (warm = resolve));
    collectStartupGarbageAfter(Promise.resolve(), warmed, { warmUpMs: 600_000, delayMs: 0 }, () => void (compactions += 1));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(compactions).toBe(0); // started, but the warm-up is still running
    warm();
    await waitFor(() => compactions === 1, { timeoutMs: 10_000, what: 'the compaction after the warm-up' });

    // A warm-up that never ends (never ready) holds the compaction back only so long.
    let late = 0;
    collectStartupGarbageAfter(Promise.resolve(), new Promise(() => undefined), { warmUpMs: 50, delayMs: 0 }, () => void (late += 1));
    await waitFor(() => late === 1, { timeoutMs: 10_000, what: 'the compaction after the warm-up limit' });
    expect(compactions).toBe(1);
  });
});
