import { describe, expect, it } from 'vitest';
import { ArrayMap, withValues } from '../../../src/balancing/engine/indexed-map.js';

describe('withValues', () => {
  const base = new Map([['a', 1], ['b', 2], ['c', 3]]);

  it('is the base with the given values replaced, in the base order, and leaves the base as it was', () => {
    const next = withValues(base, [['b', 20]]);
    expect([...next]).toEqual([['a', 1], ['b', 20], ['c', 3]]);
    expect([next.get('b'), next.has('c'), next.has('z'), next.size]).toEqual([20, true, false, 3]);
    expect([...base]).toEqual([['a', 1], ['b', 2], ['c', 3]]);
  });

  it('shares the key index along a chain of replacements, each one its own values', () => {
    const one = withValues(base, [['a', 10]]);
    const two = withValues(one, [['c', 30], ['a', 11]]);
    expect(two).toBeInstanceOf(ArrayMap);
    expect(two.keyList).toBe(one.keyList);
    expect(two.index).toBe(one.index);
    expect([...one]).toEqual([['a', 10], ['b', 2], ['c', 3]]);
    expect([...two]).toEqual([['a', 11], ['b', 2], ['c', 30]]);
    expect(new Map(two)).toEqual(new Map([['a', 11], ['b', 2], ['c', 30]]));
  });

  it('refuses a key the base does not have (it would change the order)', () => {
    expect(() => withValues(base, [['d', 4]])).toThrow(RangeError);
  });
});
