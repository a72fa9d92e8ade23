import { GCProfiler, getHeapStatistics, setFlagsFromString } from 'node:v8';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { runInNewContext } from 'node:vm';
import { loopQuiet, type LoopQuiet } from './loop-quiet.js';

/**
 * Start-up allocates in a burst (module sources, Envoy's descriptor, the first translation and
 * encoding); much of it lives long enough to be promoted, then dies. With a 100 × 20 catalog the
 * old generation held ~40 MiB, ~27 MiB of it alive, and at rest nothing allocates enough to start
 * a major collection (V8's memory reducer did not run in 45 s idle). A plain full collection frees
 * the objects but not the pages: they stay committed, half empty. A compacting one moves the
 * survivors together and gives the pages back: old generation 41 → 28 MiB committed, RSS −12 MiB
 * (bench/RESULTS.md). Done once, after start-up, never on the hot path.
 */

/** V8's full collection. `gc` is a global only with --expose-gc; without it, it is taken from a fresh context. */
export function fullGc(): () => void {
  if (typeof globalThis.gc === 'function') return globalThis.gc;
  setFlagsFromString('--expose-gc');
  try {
    return runInNewContext('gc') as () => void;
  } finally {
    // Only that one context gets it; any later one is as before.
    setFlagsFromString('--no-expose-gc');
  }
}

/** One full collection that compacts every page it can (the flag is V8's, read when a collection starts). */
export function compactHeap(): void {
  const gc = fullGc();
  setFlagsFromString('--compact-on-every-full-gc');
  try {
    gc();
  } finally {
    setFlagsFromString('--no-compact-on-every-full-gc');
  }
}

/**
 * The pause grows with the live heap (~200 ms for 30 MiB at load 12): above `maxHeapBytes` it would
 * stall xDS for seconds to save a few percent, so a large heap is compacted only when most of it is
 * garbage (collectStartupHeap), else left to V8's own collections.
 */
export const COMPACT_UP_TO_BYTES = 128 * 1024 * 1024;

/**
 * A large heap that looks mostly garbage is compacted only if a plain full collection finds at
 * most this much alive: 176 MiB alive took 234 ms to compact at load 0.4 (bench/RESULTS.md
 * "external22"). The plain collection's own pause grows with what is alive too (104 ms there).
 */
export const COMPACT_LIVE_UP_TO_BYTES = 256 * 1024 * 1024;

/** Compacts when the heap in use is at most `maxHeapBytes`; says whether it did. */
export function compactIfSmall(maxHeapBytes = COMPACT_UP_TO_BYTES): boolean {
  if (getHeapStatistics().used_heap_size > maxHeapBytes) return false;
  compactHeap();
  return true;
}

/**
 * What the last full collection kept, watched from start-up until the start-up collection: V8
 * records the heap in use at the end of each collection (GCProfiler), where `used_heap_size` read
 * later cannot tell what is alive from garbage made since. The profiler keeps a record of every
 * collection, scavenges included (~3 KB each), so it is read and restarted every `restartMs`, and
 * the watch ends at `stop` or after `maxWatchMs`.
 */
export class FullCollections {
  private readonly profiler = new GCProfiler();
  private lastKept: number | undefined;
  private watching = true;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(restartMs = 10_000, maxWatchMs = 300_000) {
    const started = Date.now();
    this.profiler.start();
    this.timer = setInterval(() => (Date.now() - started >= maxWatchMs ? this.stop() : this.read(true)), restartMs);
    this.timer.unref();
  }

  /** Ends the watch (again: a no-op). */
  stop(): void {
    if (!this.watching) return;
    this.watching = false;
    clearInterval(this.timer);
    this.read(false);
  }

  /** The heap the last full collection seen kept (bytes); undefined if none ran while watched. */
  get kept(): number | undefined {
    return this.lastKept;
  }

  private read(again: boolean): void {
    for (const s of this.profiler.stop().statistics) if (s.gcType === 'MarkSweepCompact') this.lastKept = s.afterGC.heapStatistics.usedHeapSize;
    if (again) this.profiler.start();
  }
}

/** What the start-up collection did, for the log. */
export interface StartupHeapCollection {
  /** compacted: a small heap; collected: a plain full collection only (too much alive to compact); left: to V8. */
  readonly outcome: 'compacted' | 'collected, then compacted' | 'collected' | 'left';
  readonly usedBytes: number;
  readonly keptBytes: number | undefined;
  /** What the plain full collection left, when one ran. */
  readonly liveBytes: number | undefined;
  readonly pauseMs: number;
}

/**
 * The start-up collection: a small heap is compacted (compactIfSmall). A larger one is left to V8
 * unless what was allocated since the last full collection is more than that collection kept
 * (`kept`) and more than `maxHeapBytes`, a sign that most of it is garbage (only a sign: what is
 * still alive of it counts too). Then a plain full collection measures what is alive, and the heap
 * is compacted if that is at most `liveCap` (a plain collection leaves the emptied pages
 * committed). A 100k-endpoint config file parsed at start left ~1.1 GB of garbage beside ~176 MB
 * alive, which nothing at rest allocates enough for V8 to collect; its last full collection, in
 * the middle of the parse, kept 432 MB (bench/RESULTS.md "external22").
 */
export function collectStartupHeap(kept: number | undefined, maxHeapBytes = COMPACT_UP_TO_BYTES, liveCap = COMPACT_LIVE_UP_TO_BYTES): StartupHeapCollection {
  const t0 = performance.now();
  const usedBytes = getHeapStatistics().used_heap_size;
  const done = (outcome: StartupHeapCollection['outcome'], liveBytes?: number): StartupHeapCollection => ({ outcome, usedBytes, keptBytes: kept, liveBytes, pauseMs: performance.now() - t0 });
  if (compactIfSmall(maxHeapBytes)) return done('compacted');
  if (kept === undefined || usedBytes - kept < Math.max(kept, maxHeapBytes)) return done('left');
  fullGc()();
  const live = getHeapStatistics().used_heap_size;
  if (live > liveCap) return done('collected', live);
  compactHeap();
  return done('collected, then compacted', live);
}

/**
 * How long after start-up's last work (first view, admin warm-up) the compaction waits. V8 gives
 * back the young generation's second semi-space (8 → 1 MiB committed with --max-semi-space-size=4)
 * only in a full collection that finds the allocation rate low, which it measures over the last
 * ~5 s of collections: compacting within 5 s of the warm-up's burst kept 8 MiB committed at rest,
 * 6 s after it gave them back (RSS −7 MiB, bench/RESULTS.md "rss8").
 */
export const STARTUP_COMPACTION_DELAY_MS = 6_000;

/**
 * After `delayMs` (the first snapshot and engine tick done), compacts a small heap once, when the
 * event loop has been mostly idle for `pollMs`: a restart is when a whole fleet reconnects, and a
 * compacting pause in the middle of those initial syncs held every one of them (~0.1–0.3 s at
 * 60–100 MiB, bench/RESULTS.md "storm8"). Does not hold the process open.
 */
export function collectStartupGarbage(delayMs: number, pollMs = 500, loop: LoopQuiet = loopQuiet(), compact: () => void = compactIfSmall): void {
  const attempt = (): void => {
    if (loop.quiet()) {
      compact();
      return;
    }
    loop.mark();
    setTimeout(attempt, pollMs).unref();
  };
  setTimeout(() => {
    loop.mark();
    setTimeout(attempt, pollMs).unref();
  }, delayMs).unref();
}

/**
 * The compaction of a serving process: once start-up (`started`: the first complete view) and the
 * admin API's warm-up (`warmed`) are done, `after.delayMs` later. A warm-up that never runs (the
 * process never ready: a store without quorum) is waited for at most `after.warmUpMs`.
 */
export function collectStartupGarbageAfter(
  started: Promise<unknown>,
  warmed: Promise<unknown>,
  after = { warmUpMs: 30_000, delayMs: STARTUP_COMPACTION_DELAY_MS },
  compact: () => void = compactIfSmall,
): void {
  const warmedOrLate = Promise.race([warmed, delay(after.warmUpMs, undefined, { ref: false })]);
  void Promise.all([started, warmedOrLate]).then(() => collectStartupGarbage(after.delayMs, undefined, undefined, compact));
}
