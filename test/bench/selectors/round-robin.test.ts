import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { RoundRobin } from '../../../bench/selectors/round-robin.js';

describe('RoundRobin', () => {
  it('returns undefined when empty', () => {
    expect(new RoundRobin<string>().next()).toBeUndefined();
  });

  it('cycles in order', () => {
    const rr = new RoundRobin(['a', 'b', 'c']);
    expect(Array.from({ length: 7 }, () => rr.next())).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a']);
  });

  it('keeps its position when the list is replaced', () => {
    const rr = new RoundRobin(['a', 'b', 'c']);
    rr.next();
    rr.setItems(['a', 'b', 'c', 'd']);
    expect(rr.next()).toBe('b');
    rr.setItems([]);
    expect(rr.next()).toBeUndefined();
    rr.setItems(['x']);
    expect(rr.next()).toBe('x');
  });

  it('property: any n·k consecutive picks give every item exactly k picks', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 5 }), (n, skip, k) => {
        const rr = new RoundRobin(Array.from({ length: n }, (_, i) => i));
        for (let i = 0; i < skip; i++) rr.next();
        const counts = new Array<number>(n).fill(0);
        for (let i = 0; i < n * k; i++) counts[rr.next() as number]! += 1;
        expect(counts.every((c) => c === k)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});
