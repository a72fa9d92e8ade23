import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { SmoothWeightedRoundRobin } from '../../../bench/selectors/smooth-weighted-round-robin.js';

function selector(weights: readonly number[]): SmoothWeightedRoundRobin<number> {
  return new SmoothWeightedRoundRobin(weights.map((weight, key) => ({ key, weight })));
}

function picks(s: SmoothWeightedRoundRobin<number>, k: number): number[] {
  return Array.from({ length: k }, () => s.next() as number);
}

/** Largest |count − k·w/W| over every window of every length, on the periodic sequence. */
function worstWindowExcess(weights: readonly number[]): number {
  const total = weights.reduce((a, b) => a + b, 0);
  const cycle = picks(selector(weights), total);
  const seq = cycle.concat(cycle);
  let worst = -Infinity;
  weights.forEach((w, i) => {
    const prefix = [0];
    for (const p of seq) prefix.push(prefix[prefix.length - 1]! + (p === i ? 1 : 0));
    for (let start = 0; start < total; start++) {
      for (let k = 1; k <= total; k++) {
        const count = prefix[start + k]! - prefix[start]!;
        worst = Math.max(worst, count - Math.ceil((k * w) / total));
      }
    }
  });
  return worst;
}

const weightList = (maxLen: number, maxWeight: number) =>
  fc.array(fc.integer({ min: 1, max: maxWeight }), { minLength: 1, maxLength: maxLen });

describe('SmoothWeightedRoundRobin', () => {
  it("reproduces nginx's sequence for {5, 1, 1}", () => {
    const s = new SmoothWeightedRoundRobin([
      { key: 'a', weight: 5 },
      { key: 'b', weight: 1 },
      { key: 'c', weight: 1 },
    ]);
    expect(Array.from({ length: 14 }, () => s.next()).join('')).toBe('aabacaaaabacaa');
  });

  it('returns undefined with no keys or only zero weights, and never picks weight 0', () => {
    expect(new SmoothWeightedRoundRobin().next()).toBeUndefined();
    const s = selector([0, 0]);
    expect(s.next()).toBeUndefined();
    s.setWeight(1, 2);
    expect(picks(s, 5)).toEqual([1, 1, 1, 1, 1]);
  });

  it('rejects negative, NaN and infinite weights', () => {
    expect(() => selector([-1])).toThrow(RangeError);
    expect(() => selector([Number.NaN])).toThrow(RangeError);
    expect(() => selector([1]).setWeight(0, Infinity)).toThrow(RangeError);
  });

  it('removes keys and keeps serving the rest in proportion', () => {
    const s = selector([3, 2, 1]);
    picks(s, 4);
    expect(s.remove(0)).toBe(true);
    expect(s.remove(0)).toBe(false);
    const counts = [0, 0, 0];
    for (const p of picks(s, 300)) counts[p]! += 1;
    expect(counts[0]).toBe(0);
    expect(Math.abs(counts[1]! - 200)).toBeLessThanOrEqual(2);
    expect(Math.abs(counts[2]! - 100)).toBeLessThanOrEqual(2);
  });

  it('property: every cycle of W = Σweights picks gives each key exactly its weight', () => {
    fc.assert(
      fc.property(weightList(12, 30), fc.integer({ min: 1, max: 3 }), (weights, cycles) => {
        const s = selector(weights);
        const total = weights.reduce((a, b) => a + b, 0);
        for (let c = 0; c < cycles; c++) {
          const counts = new Array<number>(weights.length).fill(0);
          for (const p of picks(s, total)) counts[p]! += 1;
          expect(counts).toEqual(weights);
        }
      }),
      { numRuns: 300 },
    );
  });

  // Proven bound. A picked key's score was the maximum after adding weights, which sum to
  // W, so it was >= W/m > 0 and ends > −W; unpicked scores only grow. Hence score > −W at
  // all times, and since score_i(k) = k·w_i − W·count_i(k), count_i(k) < k·w_i/W + 1.
  it('property: from a fresh state every prefix of k picks has count_i <= ceil(k·w_i/W)', () => {
    fc.assert(
      fc.property(weightList(30, 100), fc.integer({ min: 1, max: 400 }), (weights, k) => {
        const total = weights.reduce((a, b) => a + b, 0);
        const counts = new Array<number>(weights.length).fill(0);
        const s = selector(weights);
        let violations = 0;
        for (let step = 1; step <= k; step++) {
          counts[s.next() as number]! += 1;
          counts.forEach((c, i) => {
            if (c > Math.ceil((step * weights[i]!) / total)) violations++;
          });
        }
        expect(violations).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  // Sliding windows starting anywhere: count_i <= ceil(k·w_i/W) + 1. Scores can exceed W
  // (up to ~1.2·W in searches), so this is not a theorem for every input; the worst excess
  // found approaches 2 only with hundreds of keys. It was checked exhaustively for up to
  // 4 keys with weights up to 18 (worst excess 1.61), which is the domain sampled here.
  it('property: any window of k consecutive picks has count_i <= ceil(k·w_i/W) + 1 (<= 4 keys, w <= 18)', () => {
    fc.assert(
      fc.property(weightList(4, 18), (weights) => {
        expect(worstWindowExcess(weights)).toBeLessThanOrEqual(1);
      }),
      { numRuns: 300 },
    );
  });

  it('every window of {5, 1, 1} respects ceil(k·w/W) + 1, and b and c are never adjacent', () => {
    expect(worstWindowExcess([5, 1, 1])).toBeLessThanOrEqual(1);
    const seq = picks(selector([5, 1, 1]), 70).join('');
    expect(seq).not.toMatch(/[12][12]/);
  });

  // After an update the scores carry the old regime's credit and debt (argmax is invariant only
  // under a shift of every score, not of one): over N picks, count_i·W = N·w_i + s_i(start) −
  // s_i(end), so a share is off by what its score moves, up to the old totals over the new one
  // (seed -843736298: weights [1, 15] → [1, 1] left key 1 four picks behind over 40). So the
  // shares are checked once the carried scores are spent: after picks on the scale of the
  // largest total seen, every share is within a few picks of exact, with no reset.
  it('property: after arbitrary weight changes, scores stay bounded and shares converge to the new weights', () => {
    fc.assert(
      fc.property(
        weightList(10, 30),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 40 })), {
          maxLength: 20,
        }),
        (initial, updates) => expectConvergence(initial, updates),
      ),
      { numRuns: 200 },
    );
    expectConvergence([1, 1], [[3, 15, 23], [1, 1, 0]]);
  });

  it('exhaustive: ceil + 1 window bound for every weight vector of 3 keys with weights <= 12', () => {
    let worst = -Infinity;
    for (let a = 1; a <= 12; a++) for (let b = a; b <= 12; b++) for (let c = b; c <= 12; c++) worst = Math.max(worst, worstWindowExcess([a, b, c]));
    expect(worst).toBeLessThanOrEqual(1);
  });
});

/** Applies `updates` ([key, weight, picks after]) to a selector of `initial`, then checks the shares. */
function expectConvergence(initial: number[], updates: readonly (readonly [number, number, number])[]): void {
  const s = selector(initial);
  const weights = [...initial];
  const sum = (): number => weights.reduce((a, b) => a + b, 0);
  let largestTotal = sum();
  for (const [key, weight, gap] of updates) {
    const i = key % weights.length;
    weights[i] = weight;
    s.setWeight(i, weight);
    largestTotal = Math.max(largestTotal, sum());
    picks(s, gap);
  }
  const total = sum();
  if (total === 0) {
    expect(s.next()).toBeUndefined();
    return;
  }
  picks(s, 10 * weights.length * largestTotal);
  const cycles = 20;
  const counts = new Array<number>(weights.length).fill(0);
  for (const p of picks(s, cycles * total)) counts[p]! += 1;
  counts.forEach((c, i) => expect(Math.abs(c - cycles * weights[i]!)).toBeLessThanOrEqual(weights.length + 1));
}
