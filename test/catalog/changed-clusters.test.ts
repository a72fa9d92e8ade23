import { describe, expect, it } from 'vitest';
import { changedInPlace } from '../../src/catalog/changed-clusters.js';
import { cluster, endpoint } from './helpers.js';

const a = cluster('a', [endpoint('10.0.0.1')]);
const b = cluster('b', [endpoint('10.0.0.2')]);
const c = cluster('c', [endpoint('10.0.0.3')]);

describe('changedInPlace', () => {
  it('gives the clusters that are other objects at the same positions, in order', () => {
    const b2 = cluster('b', [endpoint('10.0.0.9')]);
    const c2 = cluster('c', [endpoint('10.0.0.8')]);
    expect(changedInPlace([a, b, c], [a, b, c])).toEqual([]);
    const changed = changedInPlace([a, b, c], [a, b2, c2]);
    expect(changed).toHaveLength(2);
    expect(changed?.[0]).toBe(b2);
    expect(changed?.[1]).toBe(c2);
    // An equal copy is still another object: told as changed (identity is the stores' promise, not content).
    expect(changedInPlace([a], [{ ...a }])).toHaveLength(1);
  });

  it('is undefined once a name was added, removed, moved or renamed', () => {
    expect(changedInPlace([a, b], [a, b, c])).toBeUndefined();
    expect(changedInPlace([a, b, c], [a, c])).toBeUndefined();
    expect(changedInPlace([a, b, c], [a, c, b])).toBeUndefined();
    expect(changedInPlace([a, b], [a, cluster('x', [])])).toBeUndefined();
    expect(changedInPlace([], [])).toEqual([]);
  });
});
