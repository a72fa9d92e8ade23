import { describe, expect, it } from 'vitest';
import { needsMark, provenRevision } from '../../src/catalog/store/watch-revision.js';

describe('the revision a watch response proves', () => {
  it('is its last event\'s, not the header\'s: a replay response is stamped with etcd\'s current revision', () => {
    expect(provenRevision([11, 12, 12, 1_010], 5_000)).toBe(1_010);
  });

  it('is the header\'s for a response without events (a progress notification)', () => {
    expect(provenRevision([], 5_000)).toBe(5_000);
  });

  it('takes any number of events', () => {
    expect(provenRevision(Array.from({ length: 300_000 }, (_, i) => i + 1), 1)).toBe(300_000);
  });
});

describe('whether the mirror writes a mark', () => {
  it('only for a waiter beyond what it applied and what a mark already covers', () => {
    expect(needsMark([], 10, 0)).toBe(false);
    expect(needsMark([9, 10], 10, 0)).toBe(false);
    expect(needsMark([11], 10, 0)).toBe(true);
    expect(needsMark([11], 10, 12)).toBe(false);
    expect(needsMark([13], 10, 12)).toBe(true);
  });
});
