import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { loadMallocTrim, NativeMemoryTrimmer, TRIM_GROWTH_BYTES, TRIM_INTERVAL_MS, type Trimmed } from '../../src/runtime/native-memory.js';
import { waitFor } from '../support/wait.js';

const MiB = 1024 * 1024;

/** A trimmer on fakes: the test sets the loop's quiet, resident memory and the clock, and calls check(). */
function harness(options: { failing?: boolean } = {}) {
  const state = { quiet: true, rss: 100 * MiB, now: 0, trims: 0, marks: 0, freed: 10 * MiB };
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
    expect(h.trimmed).toEqual([{ returnedBytes: 10 * MiB, ms: 3, reason: 'interval' }]);
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

  it('a failing trim is reported and tried again only after the interval', async () => {
    const h = harness({ failing: true });
    await h.check();
    expect(h.errors).toHaveLength(1);
    expect(h.trimmed).toHaveLength(1);
    await h.check();
    expect(h.state.trims).toBe(1);
    h.state.now += TRIM_INTERVAL_MS;
    await h.check();
    expect(h.state.trims).toBe(2);
  });

  it('start looks on its timer; after stop it looks no more', async () => {
    const h = harness();
    const trimmer = new NativeMemoryTrimmer({
      trim: async () => {
        h.state.trims++;
        return true;
      },
      rss: () => h.state.rss,
      now: () => h.state.now,
      quiet: { mark: () => undefined, quiet: () => true },
      checkMs: 5,
    });
    trimmer.start();
    await waitFor(() => h.state.trims === 1, { what: 'the first quiet check trims' });
    await trimmer.stop();
    h.state.now += 2 * TRIM_INTERVAL_MS;
    const trims = h.state.trims;
    await new Promise((r) => setImmediate(r));
    expect(h.state.trims).toBe(trims);
  });
});

describe("glibc's malloc_trim through the FFI", () => {
  it('is there on this Linux, and hands back memory freed between blocks still in use', async () => {
    const trim = await loadMallocTrim();
    // CI runs on glibc Linux: a missing FFI binary must fail here, not turn the feature off silently.
    expect(trim).toBeDefined();
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
    expect(await (trim as () => Promise<boolean>)()).toBe(true);
    expect(process.memoryUsage.rss()).toBeLessThan(held - 60 * MiB);
    expect(kept).toHaveLength(2_000);
  });
});

function fullGc(): () => void {
  setFlagsFromString('--expose-gc');
  try {
    return runInNewContext('gc') as () => void;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}
