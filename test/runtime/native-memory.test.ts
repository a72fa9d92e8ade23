import { describe, expect, it } from 'vitest';
import { loadMallocTrim, NativeMemoryTrimmer, TRIM_CHECK_MS, TRIM_DEPARTED_PROXIES, TRIM_GROWTH_BYTES, TRIM_INTERVAL_MS, TRIM_MAX_INTERVAL_MS, type Trimmed } from '../../src/runtime/native-memory.js';
import { fullGc } from '../../src/runtime/startup-garbage.js';
import { waitFor } from '../support/wait.js';

const MiB = 1024 * 1024;

/** A trimmer on fakes: the test sets the loop's quiet, resident memory and the clock, and calls check(). */
function harness(options: { failing?: boolean; proxies?: boolean } = {}) {
  const state = { quiet: true, rss: 100 * MiB, old: 50 * MiB, now: 0, trims: 0, marks: 0, freed: 10 * MiB, proxies: 0 };
  const trimmed: Trimmed[] = [];
  const errors: unknown[] = [];
  let release: (() => void) | undefined;
  const trimmer = new NativeMemoryTrimmer({
    trim: () => {
      state.trims++;
      if (options.failing) return Promise.reject(new Error('no allocator'));
      return new Promise<boolean>((resolve) => {
        release = () => {
          state.rss -= state.freed;
          state.now += 3;
          resolve(true);
        };
      });
    },
    rss: () => state.rss,
    oldGenerationUsed: () => state.old,
    ...(options.proxies ? { proxies: () => state.proxies } : {}),
    now: () => state.now,
    quiet: { mark: () => void state.marks++, quiet: () => state.quiet },
    onTrimmed: (t) => void trimmed.push(t),
    onError: (err) => void errors.push(err),
  });
  /** One check, its trim (if any) completed. */
  const check = async () => {
    const done = trimmer.check();
    release?.();
    release = undefined;
    await done;
  };
  return { trimmer, state, trimmed, errors, check, release: () => release?.() };
}

describe('NativeMemoryTrimmer', () => {
  it('trims at the first quiet check, then only after growth or the interval', async () => {
    const h = harness();
    await h.check();
    expect(h.trimmed).toEqual([{ returnedBytes: 10 * MiB, ms: 3, reason: 'interval', nextIntervalMs: TRIM_INTERVAL_MS }]);
    // Nothing grew, the interval has not passed: no trim, however quiet.
    h.state.now += TRIM_INTERVAL_MS - 10;
    h.state.rss += TRIM_GROWTH_BYTES - 1;
    await h.check();
    expect(h.state.trims).toBe(1);
    h.state.rss += 1;
    await h.check();
    expect(h.trimmed[1]).toMatchObject({ reason: 'growth' });
    // Memory freed without growth (proxies leaving) is trimmed once the interval has passed.
    h.state.now += TRIM_INTERVAL_MS - 1;
    await h.check();
    expect(h.state.trims).toBe(2);
    h.state.now += 1;
    await h.check();
    expect(h.trimmed.map((t) => t.reason)).toEqual(['interval', 'growth', 'interval']);
  });

  it('trims after V8 collected old objects (proxies that left), seen even at a busy check', async () => {
    const h = harness();
    await h.check();
    // A fleet connects: the old generation grows (seen at a check while the loop is busy) ...
    h.state.quiet = false;
    h.state.old += 40 * MiB;
    await h.check();
    h.state.rss -= 1; // RSS never grew enough to trim on its own
    // ... then leaves, and a full collection frees its objects: the native memory they held is free now.
    h.state.old -= TRIM_GROWTH_BYTES - 1;
    h.state.quiet = true;
    await h.check();
    expect(h.state.trims).toBe(1);
    h.state.old -= 1;
    await h.check();
    expect(h.trimmed.map((t) => t.reason)).toEqual(['interval', 'collected']);
    // The peak restarts at the trim: what was freed before it does not count again.
    h.state.old -= 1;
    await h.check();
    expect(h.state.trims).toBe(2);
  });

  it('a sawtooth of the old generation (pushes promoting garbage) prompts one trim, not one per collection, until a trim returns more', async () => {
    const h = harness();
    await h.check();
    h.state.freed = 0;
    // Each full collection frees the 10 MiB of garbage the pushes promoted, every other check.
    for (let i = 0; i < 40; i++) {
      h.state.old += i % 2 === 0 ? 10 * MiB : -10 * MiB;
      h.state.now += TRIM_CHECK_MS;
      await h.check();
    }
    // 40 checks (200 s): the first collection's trim returned nothing; after it only the interval,
    // doubling from there (30 s, 60 s, 120 s), prompted one.
    expect(h.trimmed.map((t) => t.reason)).toEqual(['interval', 'collected', 'interval', 'interval']);
    // Proxies leave: the interval's trim returns a lot, and a collection prompts one again.
    h.state.freed = 50 * MiB;
    h.state.now += TRIM_MAX_INTERVAL_MS;
    await h.check();
    h.state.freed = 0;
    h.state.old += 10 * MiB;
    await h.check();
    h.state.old -= 10 * MiB;
    await h.check();
    expect(h.trimmed.map((t) => t.reason).slice(-2)).toEqual(['interval', 'collected']);
  });

  it('proxies leaving after little trims: the collection of their objects prompts one trim, not the interval (up to minutes later)', async () => {
    const h = harness({ proxies: true });
    h.state.proxies = 10_000;
    await h.check();
    // A connected fleet at rest: trims return little, and the sawtooth no longer prompts any.
    h.state.freed = 0;
    h.state.now += TRIM_INTERVAL_MS;
    await h.check();
    expect(h.trimmed.map((t) => t.returnedBytes)).toEqual([10 * MiB, 0]);
    const sawtooth = async () => {
      h.state.old += 20 * MiB;
      await h.check();
      h.state.old -= 20 * MiB;
      await h.check();
    };
    await sawtooth();
    expect(h.state.trims).toBe(2);
    // Fewer than TRIM_DEPARTED_PROXIES leave: still only growth and the interval.
    h.state.proxies -= TRIM_DEPARTED_PROXIES - 1;
    await sawtooth();
    expect(h.state.trims).toBe(2);
    // One more: a collection now prompts a trim, here that of the departed proxies' objects.
    h.state.proxies -= 1;
    await h.check();
    expect(h.state.trims).toBe(2);
    h.state.freed = 200 * MiB;
    h.state.old -= TRIM_GROWTH_BYTES;
    await h.check();
    expect(h.trimmed.map((t) => t.reason)).toEqual(['interval', 'interval', 'collected']);
    // The trim returned a lot, so collections count again until one returns little.
    expect(h.trimmed[2]?.nextIntervalMs).toBe(TRIM_INTERVAL_MS);
  });

  it('after a departure only later collections count: a fall before it (the sawtooth) does not prompt the trim early', async () => {
    const h = harness({ proxies: true });
    h.state.proxies = 5_000;
    h.state.freed = 0;
    await h.check();
    // The peak of a sawtooth, then the fleet leaves and its objects are not yet collected.
    h.state.old += 30 * MiB;
    await h.check();
    h.state.old -= 30 * MiB;
    h.state.proxies = 0;
    await h.check();
    expect(h.state.trims).toBe(1);
    // Their collection: now the trim, once.
    h.state.old -= TRIM_GROWTH_BYTES;
    await h.check();
    expect(h.trimmed.map((t) => t.reason)).toEqual(['interval', 'collected']);
    // It returned little: the sawtooth that follows prompts none.
    for (let i = 0; i < 6; i++) {
      h.state.old += i % 2 === 0 ? 20 * MiB : -20 * MiB;
      await h.check();
    }
    expect(h.state.trims).toBe(2);
  });

  it('a trim for growth between the departure and the collection does not spend it: the collection still prompts one', async () => {
    const h = harness({ proxies: true });
    h.state.proxies = 10_000;
    h.state.freed = 0;
    await h.check();
    h.state.proxies = 0;
    await h.check();
    // The departure's own work grows RSS: a trim for growth, before V8 collected the proxies' objects.
    h.state.rss += TRIM_GROWTH_BYTES;
    await h.check();
    expect(h.trimmed.map((t) => t.reason)).toEqual(['interval', 'growth']);
    h.state.freed = 200 * MiB;
    h.state.old -= TRIM_GROWTH_BYTES;
    await h.check();
    expect(h.trimmed.map((t) => t.reason)).toEqual(['interval', 'growth', 'collected']);
    // Spent now: a later little-trim sawtooth prompts none.
    h.state.freed = 0;
    h.state.now += TRIM_INTERVAL_MS;
    await h.check();
    for (let i = 0; i < 6; i++) {
      h.state.old += i % 2 === 0 ? 20 * MiB : -20 * MiB;
      await h.check();
    }
    expect(h.trimmed.map((t) => t.reason)).toEqual(['interval', 'growth', 'collected', 'interval']);
  });

  it('waits while the loop is busy (a storm of connections, a big write), and trims once it is quiet', async () => {
    const h = harness();
    h.state.quiet = false;
    await h.check();
    await h.check();
    expect(h.state.trims).toBe(0);
    h.state.quiet = true;
    await h.check();
    expect(h.state.trims).toBe(1);
  });

  it('runs one trim at a time: a check while one is in flight waits for it', async () => {
    const h = harness();
    const first = h.trimmer.check();
    h.state.rss += 2 * TRIM_GROWTH_BYTES;
    const second = h.trimmer.check();
    expect(h.state.trims).toBe(1);
    h.release();
    await Promise.all([first, second]);
    expect(h.state.trims).toBe(1);
  });

  it('a failing trim is reported, not counted, and ends the trimming', async () => {
    const h = harness({ failing: true });
    await h.check();
    expect(h.errors).toHaveLength(1);
    expect(h.trimmed).toEqual([]);
    h.state.now += 10 * TRIM_MAX_INTERVAL_MS;
    h.state.rss += 10 * TRIM_GROWTH_BYTES;
    await h.check();
    expect(h.state.trims).toBe(1);
  });

  it('at rest the interval doubles while trims return little, up to the maximum, and resets after one that returns more', async () => {
    const h = harness();
    h.state.freed = 0;
    const intervals: number[] = [];
    for (let i = 0; i < 8; i++) {
      await h.check();
      intervals.push(h.trimmed.at(-1)?.nextIntervalMs ?? 0);
      h.state.now += intervals.at(-1) ?? 0;
    }
    expect(intervals).toEqual([30_000, 60_000, 120_000, 240_000, 300_000, 300_000, 300_000, 300_000].map((ms) => (ms * TRIM_INTERVAL_MS) / 15_000));
    h.state.now -= 1;
    await h.check();
    expect(h.state.trims).toBe(8);
    // Proxies left: the next trim at the long interval returns a lot, and the interval is short again.
    h.state.now += 1;
    h.state.freed = 40 * MiB;
    await h.check();
    expect(h.trimmed.at(-1)).toMatchObject({ returnedBytes: 40 * MiB, nextIntervalMs: TRIM_INTERVAL_MS });
  });

  it('start looks on its timer; stop waits for the trim in flight, then it looks no more', async () => {
    let trims = 0;
    let release: (() => void) | undefined;
    const trimmer = new NativeMemoryTrimmer({
      trim: () => {
        trims++;
        return new Promise<boolean>((resolve) => (release = () => resolve(true)));
      },
      rss: () => 100 * MiB,
      oldGenerationUsed: () => 50 * MiB,
      now: () => 0,
      quiet: { mark: () => undefined, quiet: () => true },
      checkMs: 5,
      intervalMs: 0,
    });
    trimmer.start();
    await waitFor(() => trims === 1, { what: 'the first quiet check trims' });
    let stopped = false;
    const stopping = trimmer.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(stopped).toBe(false);
    release?.();
    await stopping;
    // Every check would trim (interval 0): none does after stop.
    await new Promise((r) => setTimeout(r, 100));
    expect(trims).toBe(1);
  });
});

describe("glibc's malloc_trim through the FFI", () => {
  it('is there with glibc, and hands back memory freed between blocks still in use', async () => {
    const loaded = await loadMallocTrim();
    const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime;
    if (glibc === undefined) {
      // musl, macOS: said so, and nothing called.
      expect(loaded).toHaveProperty('unavailable');
      return;
    }
    // CI runs on glibc: a missing FFI binary must fail here, not turn the feature off silently.
    expect(loaded).toHaveProperty('trim');
    const trim = (loaded as { trim: () => Promise<boolean> }).trim;
    const gc = fullGc();
    // Large buffers interleaved with small ones that stay (as a proxy's first request lies between
    // its connection's long-lived allocations): freed, the large ones leave holes the allocator keeps.
    const large: (Buffer | undefined)[] = [];
    const kept: Buffer[] = [];
    for (let i = 0; i < 2_000; i++) {
      large.push(Buffer.allocUnsafeSlow(60_000).fill(1));
      kept.push(Buffer.allocUnsafeSlow(2_000).fill(2));
    }
    large.fill(undefined);
    // V8 frees backing stores after a collection (its sweeper): wait until it accounts them gone.
    await waitFor(
      () => {
        gc();
        return process.memoryUsage().arrayBuffers < 40 * MiB;
      },
      { what: 'the large buffers freed' },
    );
    const held = process.memoryUsage.rss();
    expect(await trim()).toBe(true);
    expect(process.memoryUsage.rss()).toBeLessThan(held - 60 * MiB);
    expect(kept).toHaveLength(2_000);
  });
});
