import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { loopQuiet } from '../../src/runtime/loop-quiet.js';
import { waitFor } from '../support/wait.js';

describe('loopQuiet', () => {
  it('is not quiet after a stretch spent in a callback, and quiet again over a stretch spent waiting', async () => {
    const loop = loopQuiet(0.5);
    loop.mark();
    const end = performance.now() + 30;
    while (performance.now() < end) {
      // Busy: the whole stretch in this callback.
    }
    expect(loop.quiet()).toBe(false);
    loop.mark();
    // Idle: the loop polls until a timer is due; under load the wake-up is late, and still idle.
    await waitFor(() => loop.quiet() && performance.now() > end + 60, { timeoutMs: 30_000, what: 'a quiet stretch' });
    expect(loop.quiet()).toBe(true);
  });

  it('compares the busy share with its threshold, over the stretch since mark', () => {
    const reads: { utilization: number }[] = [];
    let util = 0;
    const loop = loopQuiet(0.5, (from) => {
      const r = { idle: 0, active: 0, utilization: from ? util : 0 };
      reads.push(r);
      return r;
    });
    loop.mark();
    util = 0.5;
    expect(loop.quiet()).toBe(true);
    util = 0.51;
    expect(loop.quiet()).toBe(false);
    expect(reads).toHaveLength(4);
  });
});
