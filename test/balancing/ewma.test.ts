import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { EwmaLatency } from '../../src/balancing/ewma.js';

const latency = fc.double({ min: 0, max: 10_000, noNaN: true });

describe('EwmaLatency', () => {
  it('starts unmeasured, with the full exploration bonus', () => {
    const e = new EwmaLatency();
    expect(e.estimate).toBeUndefined();
    expect(e.samples).toBe(0);
    expect(e.bonus()).toBe(1000);
    expect(e.score()).toBe(-1000);
    expect(e.weight()).toBe(1); // 1 / weightFloorMs
  });

  it('takes the first sample as the estimate', () => {
    const e = new EwmaLatency();
    expect(e.observe(42, 5_000)).toBe(1);
    expect(e.estimate).toBe(42);
    expect(e.bonus()).toBe(500);
  });

  it('settles at α = decay (0.3) when samples arrive once per reference interval', () => {
    const e = new EwmaLatency();
    let alpha = 0;
    for (let t = 0; t < 100; t++) alpha = e.observe(10, t * 1000);
    expect(alpha).toBeCloseTo(0.3, 12);
    const before = e.estimate as number;
    e.observe(110, 100_000);
    expect(e.estimate).toBeCloseTo(before + 0.3 * (110 - before), 9);
  });

  it('property: for any regular spacing dt, α settles at 1 − (1 − decay)^(dt/τ)', () => {
    fc.assert(
      fc.property(fc.double({ min: 10, max: 20_000, noNaN: true }), fc.double({ min: 0.05, max: 1, noNaN: true }), (dt, decay) => {
        const e = new EwmaLatency({ decay });
        const expected = 1 - (1 - decay) ** (dt / 1000);
        // The start-up bias fades like (1 − expected)^k, so 20/expected samples leave < e^−20 of it.
        const steps = Math.ceil(20 / expected);
        let alpha = 0;
        for (let k = 0; k < steps; k++) alpha = e.observe(10, k * dt);
        expect(Math.abs(alpha / expected - 1)).toBeLessThan(1e-6);
      }),
      { numRuns: 50 },
    );
  });

  it('trusts a sample after a long silence almost entirely', () => {
    const e = new EwmaLatency();
    for (let t = 0; t < 10; t++) e.observe(10, t * 1000);
    const alpha = e.observe(500, 10_000 + 3_600_000);
    expect(alpha).toBeGreaterThan(0.999999);
    expect(e.estimate).toBeCloseTo(500, 3);
  });

  it('averages a batch stamped with one time instead of ignoring all but the first', () => {
    const e = new EwmaLatency();
    for (const s of [10, 20, 30, 40]) e.observe(s, 7_000);
    expect(e.estimate).toBeCloseTo(25, 12);
  });

  it('treats a timestamp that goes backwards as no elapsed time', () => {
    const a = new EwmaLatency();
    const b = new EwmaLatency();
    a.observe(10, 5_000);
    a.observe(30, 4_000);
    b.observe(10, 5_000);
    b.observe(30, 5_000);
    expect(a.estimate).toBe(b.estimate);
    expect(a.lastSampleAt).toBe(5_000);
  });

  it('forgets in time, not in samples: 1 sample/s and 20 samples/s track a step identically', () => {
    const slow = new EwmaLatency();
    const fast = new EwmaLatency();
    // Warm both up at 10 ms for a minute, then step to 100 ms for 3 s.
    for (let t = 0; t <= 60_000; t += 1000) slow.observe(10, t);
    for (let t = 0; t <= 60_000; t += 50) fast.observe(10, t);
    for (let t = 61_000; t <= 63_000; t += 1000) slow.observe(100, t);
    for (let t = 60_050; t <= 63_000; t += 50) fast.observe(100, t);
    // The step's share after 3 s is 1 − 0.7^3 ≈ 0.657 at either rate.
    expect(slow.estimate).toBeCloseTo(10 + 90 * (1 - 0.7 ** 3), 6);
    expect(fast.estimate).toBeCloseTo(slow.estimate as number, 6);
  });

  it('property: the estimate stays within the range of samples seen, for any timing', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(latency, fc.integer({ min: -500, max: 100_000 })), { minLength: 1, maxLength: 80 }), (events) => {
        const e = new EwmaLatency();
        let now = 0;
        let lo = Infinity;
        let hi = -Infinity;
        for (const [sample, dt] of events) {
          now += dt;
          const alpha = e.observe(sample, now);
          lo = Math.min(lo, sample);
          hi = Math.max(hi, sample);
          expect(alpha).toBeGreaterThan(0);
          expect(alpha).toBeLessThanOrEqual(1);
          const est = e.estimate as number;
          expect(est).toBeGreaterThanOrEqual(lo - 1e-9 * hi);
          expect(est).toBeLessThanOrEqual(hi + 1e-9 * hi);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('property: weight is finite and positive, and ∝ 1/estimate once the bonus has faded', () => {
    fc.assert(
      fc.property(fc.double({ min: 1, max: 10_000, noNaN: true }), fc.integer({ min: 0, max: 50 }), (value, n) => {
        const e = new EwmaLatency();
        for (let k = 0; k < n; k++) e.observe(value, k * 1000);
        const w = e.weight();
        expect(Number.isFinite(w) && w > 0).toBe(true);
        expect(e.bonus()).toBeCloseTo(1000 / (n + 1), 12);
        expect(w).toBe(1 / Math.max((n === 0 ? 0 : value) - 1000 / (n + 1), 1));
      }),
      { numRuns: 200 },
    );
    const e = new EwmaLatency();
    for (let k = 0; k < 1_000_000; k += 1) e.observe(50, k);
    expect(e.weight() * 50).toBeCloseTo(1, 3);
  });

  it('ranks an unmeasured endpoint first so it gets sampled', () => {
    const measured = new EwmaLatency();
    for (let k = 0; k < 20; k++) measured.observe(500, k * 1000);
    const fresh = new EwmaLatency();
    expect(fresh.score()).toBeLessThan(measured.score());
    expect(fresh.weight()).toBeGreaterThan(measured.weight());
  });

  // With the seed's scale (1000), an endpoint faster than bonus + floor sits at the floor:
  // 5 ms needs n >= 1000/4 samples before its weight reflects its latency. Until then all
  // such endpoints share the same (maximal) weight, i.e. they are explored equally.
  it('keeps fast, lightly-measured endpoints at the floor until the bonus drops below their latency', () => {
    const e = new EwmaLatency();
    for (let k = 0; k < 249; k++) e.observe(5, k * 1000);
    expect(e.weight()).toBe(1);
    for (let k = 249; k < 400; k++) e.observe(5, k * 1000);
    expect(e.weight()).toBeCloseTo(1 / (5 - 1000 / 401), 12);
  });

  it('reports decayed evidence and resets', () => {
    const e = new EwmaLatency();
    e.observe(10, 0);
    expect(e.effectiveSamples(0)).toBe(1);
    expect(e.effectiveSamples(1000)).toBeCloseTo(0.7, 12);
    e.reset();
    expect(e.samples).toBe(0);
    expect(e.estimate).toBeUndefined();
    expect(e.effectiveSamples(0)).toBe(0);
  });

  it('measuredWeight is what the samples alone say: no bonus, the same floor, 0 before the first', () => {
    const e = new EwmaLatency();
    expect(e.measuredWeight()).toBe(0);
    e.observe(20, 0);
    expect(e.weight()).toBe(1); // the bonus (500 ms) takes it to the 1 ms floor
    expect(e.measuredWeight()).toBeCloseTo(1 / 20, 12);
    const tiny = new EwmaLatency();
    tiny.observe(0, 0);
    expect(tiny.measuredWeight()).toBe(1);
  });

  it('rejects bad samples and options', () => {
    const e = new EwmaLatency();
    expect(() => e.observe(-1, 0)).toThrow(RangeError);
    expect(() => e.observe(Number.NaN, 0)).toThrow(RangeError);
    expect(() => e.observe(1, Number.NaN)).toThrow(RangeError);
    expect(() => new EwmaLatency({ decay: 0 })).toThrow(RangeError);
    expect(() => new EwmaLatency({ decay: 1.5 })).toThrow(RangeError);
    expect(() => new EwmaLatency({ referenceIntervalMs: 0 })).toThrow(RangeError);
  });
});
