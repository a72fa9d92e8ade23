import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Debouncer } from '../../src/runtime/debounce.js';

describe('Debouncer', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('fires once, quietMs after the last change of a burst', () => {
    let fired = 0;
    const d = new Debouncer(100, 1_000, () => fired++);
    d.trigger();
    vi.advanceTimersByTime(60);
    d.trigger();
    vi.advanceTimersByTime(99);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(1);
    expect(fired).toBe(1);
    vi.advanceTimersByTime(5_000);
    expect(fired).toBe(1);
  });

  it('fires no later than maxMs after the first change of a burst that keeps going', () => {
    let fired = 0;
    const d = new Debouncer(100, 250, () => fired++);
    for (let t = 0; t < 250; t += 50) {
      d.trigger();
      vi.advanceTimersByTime(50);
    }
    expect(fired).toBe(1);
  });

  it('with maxMs Infinity waits for quiet however long the burst', () => {
    let fired = 0;
    const d = new Debouncer(100, Infinity, () => fired++);
    for (let t = 0; t < 10_000; t += 50) {
      d.trigger();
      vi.advanceTimersByTime(50);
    }
    expect(fired).toBe(0);
    vi.advanceTimersByTime(100);
    expect(fired).toBe(1);
  });

  it('fires synchronously when quietMs is 0', () => {
    let fired = 0;
    new Debouncer(0, 0, () => fired++).trigger();
    expect(fired).toBe(1);
  });

  it('flush fires a pending change now, and only a pending one; cancel drops it', () => {
    let fired = 0;
    const d = new Debouncer(100, 1_000, () => fired++);
    d.flush();
    expect(fired).toBe(0);
    d.trigger();
    d.flush();
    expect(fired).toBe(1);
    d.trigger();
    d.cancel();
    vi.advanceTimersByTime(5_000);
    expect(fired).toBe(1);
  });
});
