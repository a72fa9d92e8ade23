import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { HealthTracker, type HealthOptions } from '../../src/balancing/health.js';

const SEC = 1_000;
const MIN = 60_000;

function fail(h: HealthTracker, times: number, now: number): void {
  for (let k = 0; k < times; k++) h.observe(false, now);
}
function succeed(h: HealthTracker, times: number, now: number): void {
  for (let k = 0; k < times; k++) h.observe(true, now);
}

describe('HealthTracker', () => {
  it('starts AVAILABLE, so missing data never reads as unhealthy', () => {
    const h = new HealthTracker();
    expect(h.state(0)).toBe('AVAILABLE');
    expect(h.isServing(0)).toBe(true);
    expect(h.shouldProbe(0)).toBe(true);
  });

  it('3 failures out, probe again after 5 seconds (not the seed\'s 5 minutes), 3 successes back', () => {
    const h = new HealthTracker();
    fail(h, 2, 0);
    expect(h.state(0)).toBe('AVAILABLE');
    expect(h.observe(false, 1_000)).toEqual({ from: 'AVAILABLE', to: 'UNAVAILABLE', ignored: false });
    expect(h.isServing(1_000)).toBe(false);
    expect(h.shouldProbe(1_000 + 5 * SEC - 1)).toBe(false);
    expect(h.snapshot(2_000)).toMatchObject({ retryAt: 1_000 + 5 * SEC, lastBackoffMs: 5 * SEC });
    const t = 1_000 + 5 * SEC;
    expect(h.state(t)).toBe('RECOVERING');
    expect(h.shouldProbe(t)).toBe(true);
    expect(h.isServing(t)).toBe(false);
    succeed(h, 2, t);
    expect(h.state(t)).toBe('RECOVERING');
    expect(h.observe(true, t + 1)).toEqual({ from: 'RECOVERING', to: 'AVAILABLE', ignored: false });
  });

  it('needs consecutive failures: a success in between starts the count again', () => {
    const h = new HealthTracker();
    for (let k = 0; k < 10; k++) {
      fail(h, 2, k);
      h.observe(true, k);
    }
    expect(h.state(10)).toBe('AVAILABLE');
  });

  it('ignores results during the backoff', () => {
    const h = new HealthTracker();
    fail(h, 3, 0);
    expect(h.observe(true, 4 * SEC)).toEqual({ from: 'UNAVAILABLE', to: 'UNAVAILABLE', ignored: true });
    succeed(h, 10, 4 * SEC);
    expect(h.state(4 * SEC)).toBe('UNAVAILABLE');
    expect(h.snapshot(4 * SEC).consecutiveSuccesses).toBe(0);
  });

  it('keeps the backoff while the endpoint never came back: a dead backend is retried every 5 s', () => {
    const h = new HealthTracker();
    let now = 0;
    fail(h, 3, now);
    const backoffs: number[] = [];
    for (let k = 0; k < 6; k++) {
      now = h.snapshot(now).retryAt as number;
      h.observe(true, now);
      h.observe(false, now); // failing its probation: it never came back
      backoffs.push(h.snapshot(now).lastBackoffMs as number);
    }
    expect(backoffs.map((b) => b / SEC)).toEqual([5, 5, 5, 5, 5, 5]);
  });

  it('doubles the backoff on each relapse after a comeback (a flapping endpoint), up to the cap', () => {
    const h = new HealthTracker();
    let now = 0;
    fail(h, 3, now);
    const backoffs: number[] = [];
    for (let k = 0; k < 8; k++) {
      now = h.snapshot(now).retryAt as number;
      succeed(h, 3, now); // back in rotation ...
      now += 10 * SEC;
      fail(h, 3, now); // ... and out again soon after
      backoffs.push(h.snapshot(now).lastBackoffMs as number);
    }
    expect(backoffs.map((b) => b / SEC)).toEqual([10, 20, 40, 80, 160, 300, 300, 300]);
  });

  it('forgives past relapses after staying available for stableAfterMs (5 minutes)', () => {
    const h = new HealthTracker();
    fail(h, 3, 0);
    let now = 5 * SEC;
    succeed(h, 3, now);
    now += 10 * SEC; // healthy for 10 seconds only
    fail(h, 3, now);
    expect(h.snapshot(now).lastBackoffMs).toBe(10 * SEC);
    now += 10 * SEC;
    succeed(h, 3, now);
    expect(h.nextBackoffMs(now + 4 * MIN)).toBe(20 * SEC);
    expect(h.nextBackoffMs(now + 5 * MIN)).toBe(5 * SEC);
    now += 10 * MIN;
    fail(h, 3, now);
    expect(h.snapshot(now).lastBackoffMs).toBe(5 * SEC);
  });

  it('honours configured thresholds', () => {
    const h = new HealthTracker({ failureThreshold: 1, successThreshold: 2, probationFailureThreshold: 2, baseBackoffMs: 10, maxBackoffMs: 15 });
    h.observe(false, 0);
    expect(h.state(9)).toBe('UNAVAILABLE');
    h.observe(false, 10);
    expect(h.state(10)).toBe('RECOVERING'); // one probation failure is tolerated
    h.observe(false, 10);
    expect(h.snapshot(10)).toMatchObject({ state: 'UNAVAILABLE', lastBackoffMs: 10 }); // never came back: not doubled
  });

  it('keeps a zero base backoff at zero however often the endpoint relapses', () => {
    const h = new HealthTracker({ baseBackoffMs: 0, failureThreshold: 1 });
    for (let k = 0; k < 2_000; k++) h.observe(false, k);
    expect(h.snapshot(2_000)).toMatchObject({ lastBackoffMs: 0, backoffLevel: 0 });
  });

  it('rejects nonsensical options', () => {
    expect(() => new HealthTracker({ failureThreshold: 0 })).toThrow(RangeError);
    expect(() => new HealthTracker({ successThreshold: 1.5 })).toThrow(RangeError);
    expect(() => new HealthTracker({ baseBackoffMs: 10, maxBackoffMs: 5 })).toThrow(RangeError);
    expect(() => new HealthTracker({ backoffMultiplier: 0.5 })).toThrow(RangeError);
  });

  const options: fc.Arbitrary<Required<HealthOptions>> = fc
    .record({
      failureThreshold: fc.integer({ min: 1, max: 5 }),
      successThreshold: fc.integer({ min: 1, max: 5 }),
      probationFailureThreshold: fc.integer({ min: 1, max: 3 }),
      baseBackoffMs: fc.integer({ min: 1, max: 10_000 }),
      capFactor: fc.integer({ min: 1, max: 64 }),
      backoffMultiplier: fc.constantFrom(1, 1.5, 2, 3),
      stableAfterMs: fc.integer({ min: 0, max: 200_000 }),
    })
    .map(({ capFactor, ...o }) => ({ ...o, maxBackoffMs: o.baseBackoffMs * capFactor }));

  // The test keeps its own streak counters and checks each transition against the rules
  // in the module's header; it does not reuse the implementation's arithmetic.
  it('property: every transition happens exactly when the rules say, with the specified backoff', () => {
    fc.assert(
      fc.property(
        options,
        // Runs of equal results, so long success streaks (recoveries) are common too.
        fc.array(
          fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 6 }), fc.oneof(fc.integer({ min: 0, max: 2_000 }), fc.integer({ min: 0, max: 400_000 }))),
          { maxLength: 60 },
        ),
        (o, runs) => {
          const events = runs.flatMap(([ok, repeat, dt]) => Array.from({ length: repeat }, (_, k) => [ok, k === 0 ? dt : 1_000] as const));
          const h = new HealthTracker(o);
          let now = 0;
          let failStreak = 0;
          let okStreak = 0;
          let previousBackoff: number | undefined;
          let availableSince: number | undefined;
          let retryAt: number | undefined;
          for (const [ok, dt] of events) {
            now += dt;
            const before = h.state(now);
            expect(h.shouldProbe(now)).toBe(before !== 'UNAVAILABLE');
            expect(h.isServing(now)).toBe(before === 'AVAILABLE');
            if (before !== 'AVAILABLE') expect(before === 'RECOVERING').toBe(now >= (retryAt as number));

            const t = h.observe(ok, now);
            expect(t.from).toBe(before);
            if (before === 'UNAVAILABLE') {
              expect(t).toEqual({ from: before, to: before, ignored: true });
              continue;
            }
            failStreak = ok ? 0 : failStreak + 1;
            okStreak = ok ? okStreak + 1 : 0;
            const threshold = before === 'AVAILABLE' ? o.failureThreshold : o.probationFailureThreshold;
            const goesDown = !ok && failStreak >= threshold;
            const comesBack = before === 'RECOVERING' && ok && okStreak >= o.successThreshold;
            expect(t.to).toBe(goesDown ? 'UNAVAILABLE' : comesBack ? 'AVAILABLE' : before);

            if (goesDown) {
              const forgiven = before === 'AVAILABLE' && availableSince !== undefined && now - availableSince >= o.stableAfterMs;
              // Only a relapse after a comeback grows the backoff; failing probation keeps it.
              const expected =
                previousBackoff === undefined || forgiven
                  ? o.baseBackoffMs
                  : before === 'AVAILABLE'
                    ? Math.min(o.maxBackoffMs, previousBackoff * o.backoffMultiplier)
                    : previousBackoff;
              const snap = h.snapshot(now);
              expect(snap.lastBackoffMs).toBeCloseTo(expected, 6);
              expect(snap.retryAt).toBeCloseTo(now + expected, 6);
              expect(expected).toBeGreaterThanOrEqual(o.baseBackoffMs);
              expect(expected).toBeLessThanOrEqual(o.maxBackoffMs);
              previousBackoff = expected;
              retryAt = snap.retryAt;
              failStreak = 0;
              okStreak = 0;
            }
            if (comesBack) {
              availableSince = now;
              failStreak = 0;
              okStreak = 0;
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
