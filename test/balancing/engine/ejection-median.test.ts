import { describe, expect, it } from 'vitest';
import { medianWithout } from '../../../src/balancing/engine/tick/ejection.js';

/** The peers' median as the detector computed it before: the others' rates sorted, per endpoint. */
function naive(rates: readonly number[], self: number): number {
  const others = rates.filter((_, j) => j !== self).sort((a, b) => a - b);
  if (others.length === 0) return Number.NaN;
  const mid = others.length >> 1;
  return others.length % 2 === 1 ? (others[mid] as number) : ((others[mid - 1] as number) + (others[mid] as number)) / 2;
}

describe('medianWithout (the outlier detector\'s peers\' median off one sorted list)', () => {
  it('equals sorting the other endpoints\' rates, to the bit, duplicates and all', () => {
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let trial = 0; trial < 2000; trial++) {
      const n = 1 + Math.floor(rand() * 30);
      // Few distinct values (ties) in half the trials, arbitrary fractions in the others.
      const rates = Array.from({ length: n }, () => (trial % 2 === 0 ? Math.floor(rand() * 4) / 10 : rand() * 0.5));
      const sorted = rates.slice().sort((a, b) => a - b);
      for (let i = 0; i < n; i++) expect(Object.is(medianWithout(sorted, rates[i]), naive(rates, i))).toBe(true);
      expect(Object.is(medianWithout(sorted, undefined), naive(rates, -1))).toBe(true);
    }
  });

  it('is NaN with no peer left', () => {
    expect(medianWithout([0.2], 0.2)).toBeNaN();
    expect(medianWithout([], undefined)).toBeNaN();
  });
});
