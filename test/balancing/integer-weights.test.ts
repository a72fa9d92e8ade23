import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  MAX_LOCALITY_WEIGHT_SUM,
  integerWeightTargets,
  toIntegerWeightGroups,
  toIntegerWeights,
  toIntegerWeightsByGroup,
  kthLargest,
} from '../../src/balancing/integer-weights.js';

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

describe('integer weights', () => {
  it('maps the largest weight to the resolution and keeps ratios', () => {
    expect(toIntegerWeights([1, 2, 3])).toEqual([333, 667, 1000]);
    expect(toIntegerWeights([0.25, 0.5], { resolution: 10 })).toEqual([5, 10]);
    expect(toIntegerWeights([])).toEqual([]);
  });

  it('raises unrepresentably small and zero weights to 1', () => {
    expect(toIntegerWeights([1e-9, 1])).toEqual([1, 1000]);
    expect(toIntegerWeights([0, 0, 0])).toEqual([1, 1, 1]);
  });

  it('hands out the units rounding still owes to the largest remainders', () => {
    // Targets 3.33 ×3 and 10: floors sum to 19, round(20) = 20, so one unit goes to the
    // earliest of the equal remainders. Per-weight rounding would publish a sum of 19.
    expect(toIntegerWeights([1, 1, 1, 3], { resolution: 10 })).toEqual([4, 3, 3, 10]);
    // Targets 3.5, 3.5, 10: one unit owed, the tie goes to the earlier index.
    expect(toIntegerWeights([1.05, 1.05, 3], { resolution: 10 })).toEqual([4, 3, 10]);
    // Targets 2.9, 1.6, 10 (sum 14.5 → 15): floors 2, 1, 10 owe two units, to 2.9 then 1.6.
    expect(toIntegerWeights([2.9, 1.6, 10], { resolution: 10 })).toEqual([3, 2, 10]);
  });

  it('shares one scale across localities, so cross-locality ratios survive', () => {
    expect(toIntegerWeightGroups([[1, 2], [4]])).toEqual([[250, 500], [1000]]);
  });

  it('lowers the scale when a locality would exceed the sum limit', () => {
    const weights = Array.from({ length: 5000 }, (_, i) => 1 + (i % 7));
    const ints = toIntegerWeights(weights, { resolution: 10_000_000 });
    expect(sum(ints)).toBeLessThanOrEqual(MAX_LOCALITY_WEIGHT_SUM);
    expect(Math.max(...ints)).toBeLessThan(10_000_000);
    expect(ints[6]! / ints[0]!).toBeCloseTo(7, 4);
  });

  it('does not overflow on huge or subnormal weights', () => {
    expect(toIntegerWeights([1e308, 1e308, 5e307])).toEqual([1000, 1000, 500]);
    expect(toIntegerWeights([5e-324])).toEqual([1000]);
    expect(toIntegerWeights([1e-320, 5e-321])).toEqual([1000, 500]);
  });

  it('rejects what Envoy cannot represent or what makes no sense', () => {
    expect(() => toIntegerWeights([-1])).toThrow(RangeError);
    expect(() => toIntegerWeights([Number.NaN])).toThrow(RangeError);
    expect(() => toIntegerWeights([Infinity])).toThrow(RangeError);
    expect(() => toIntegerWeights([1, 1, 1], { maxSum: 2 })).toThrow(RangeError);
    expect(() => toIntegerWeights([1], { resolution: 0.5 })).toThrow(RangeError);
    expect(() => toIntegerWeights([1], { maxSum: 2 ** 32 })).toThrow(RangeError);
  });

  const weight = fc.oneof(
    fc.double({ min: 0, max: 1e6, noNaN: true }),
    fc.double({ min: 0, max: 1, noNaN: true }),
    fc.double({ min: 0, max: 1e-300, noNaN: true }),
    fc.constant(0),
    fc.integer({ min: 1, max: 100 }),
  );
  const groups = fc.array(fc.array(weight, { minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 5 });
  const opts = fc.record({
    resolution: fc.oneof(fc.constant(1000), fc.integer({ min: 1, max: 1_000_000 })),
    maxSum: fc.oneof(fc.constant(MAX_LOCALITY_WEIGHT_SUM), fc.integer({ min: 40, max: 100_000 })),
  });

  // The ratio bound: with s the shared scale and t = max(w·s, 1) the target, every integer
  // is within 1 of its target. So a weight's relative error is < 1/(w·s) (< 0.1% for the
  // largest weight at the default resolution), and weights below 1/s, which no integer
  // >= 1 can represent next to the largest, are exactly 1.
  it('property: integers >= 1, each within 1 of max(w·s, 1), group sums <= maxSum, max → resolution unless capped', () => {
    fc.assert(
      fc.property(groups, opts, (gs, o) => {
        const out = toIntegerWeightGroups(gs, o);
        const allTargets = integerWeightTargets(gs, o);
        const max = Math.max(...gs.flat());
        // One scale for all: every target above the floor is the same multiple of its
        // weight (compared as w / max, which cannot overflow the way t / w can).
        const scaled = gs.flatMap((ws, g) => ws.map((w, i) => [w / max, allTargets[g]![i]!] as const)).filter(([r, t]) => t > 1 && r > 0);
        const k = scaled.length > 0 ? scaled[0]![1] / scaled[0]![0] : 0;
        for (const [r, t] of scaled) expect(t / r / k).toBeCloseTo(1, 9);
        out.forEach((ints, g) => {
          const ws = gs[g]!;
          expect(ints).toHaveLength(ws.length);
          expect(sum(ints)).toBeLessThanOrEqual(o.maxSum);
          const targets = allTargets[g]!;
          expect(sum(ints)).toBe(Math.round(sum(targets)));
          ints.forEach((v, i) => {
            expect(Number.isInteger(v) && v >= 1).toBe(true);
            expect(Math.abs(v - targets[i]!)).toBeLessThan(1);
          });
        });
        const capped = gs.some((ws) => sum(ws.map((w) => w / max)) * o.resolution + ws.length > o.maxSum);
        if (max > 0 && !capped) expect(Math.max(...out.flat())).toBe(o.resolution);
      }),
      { numRuns: 400 },
    );
  });

  it('property: ratios between representable weights are preserved within the rounding bound', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 1, max: 1000, noNaN: true }), { minLength: 2, maxLength: 30 }), (ws) => {
        const ints = toIntegerWeights(ws);
        const s = 1000 / Math.max(...ws);
        const violations: string[] = [];
        for (let i = 0; i < ws.length; i++) {
          for (let j = 0; j < ws.length; j++) {
            const a = ws[i]! * s;
            const b = ws[j]! * s;
            if (a < 1 || b < 1) continue;
            // (a ± 1)/(b ∓ 1) bounds the ratio of the rounded values.
            const ratio = ints[i]! / ints[j]!;
            if (ratio < (a - 1) / (b + 1) - 1e-12 || ratio > (a + 1) / Math.max(b - 1, 1) + 1e-12) violations.push(`${i}/${j}`);
          }
        }
        expect(violations).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });

  // The selection-based rounding must give exactly what sorting by remainder (ties to the earlier
  // index) gives: the definition in the module's header.
  const bySorting = (targets: readonly number[]): number[] => {
    const result = targets.map(Math.floor);
    const missing = Math.round(sum(targets)) - sum(result);
    const order = targets.map((t, i) => ({ i, r: t - Math.floor(t) })).sort((a, b) => b.r - a.r || a.i - b.i);
    for (let k = 0; k < missing; k++) result[order[k]!.i]! += 1;
    return result;
  };

  it('property: flat per-group conversion equals sorting each group by remainder, ties and all', () => {
    // Few distinct values, so remainders tie often.
    const tied = fc.oneof(weight, fc.constantFrom(1, 2, 3, 1.5, 2.5, 0.3333));
    fc.assert(
      fc.property(fc.array(fc.array(tied, { minLength: 1, maxLength: 60 }), { minLength: 1, maxLength: 6 }), opts, (gs, o) => {
        const targets = integerWeightTargets(gs, o);
        const expected = targets.map(bySorting);
        expect(toIntegerWeightGroups(gs, o)).toEqual(expected);
        // Interleaved groups (the engine's layout: localities mixed in endpoint order).
        const flat: number[] = [];
        const groupOf: number[] = [];
        const maxLen = Math.max(...gs.map((g) => g.length));
        for (let i = 0; i < maxLen; i++) gs.forEach((g, k) => i < g.length && (flat.push(g[i]!), groupOf.push(k)));
        const ints = toIntegerWeightsByGroup(flat, groupOf, gs.length, o);
        const seen = gs.map(() => 0);
        groupOf.forEach((g, j) => expect(ints[j]).toBe(expected[g]![seen[g]!++]));
      }),
      { numRuns: 400 },
    );
  });

  it('selects by sorting up to 16 values and by quickselect above, with the same answers', () => {
    // Both sides of the switch, every k, many ties (a locality's remainders often repeat).
    for (const n of [1, 2, 15, 16, 17, 33]) {
      const xs = Array.from({ length: n }, (_, i) => ((i * 7) % 5) / 4);
      const desc = [...xs].sort((a, b) => b - a);
      for (let k = 1; k <= n; k++) expect(kthLargest(xs.slice(), k)).toBe(desc[k - 1]);
    }
  });

  it('property: kthLargest is the k-th value in descending order', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 9 }).map((x) => x / 4), { minLength: 1, maxLength: 80 }), fc.nat(), (xs, k0) => {
        const k = (k0 % xs.length) + 1;
        expect(kthLargest(xs.slice(), k)).toBe([...xs].sort((a, b) => b - a)[k - 1]);
      }),
      { numRuns: 500 },
    );
  });
});
