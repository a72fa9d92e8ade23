import { describe, expect, it } from 'vitest';
import { changedByName, changedInPlace } from '../../src/catalog/changed-clusters.js';
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

describe('changedByName', () => {
  it('gives the clusters new or other by name, and the names gone, whatever the order', () => {
    const b2 = cluster('b', [endpoint('10.0.0.9')]);
    const x = cluster('x', []);
    const changes = changedByName([a, b, c], [x, c, b2]);
    expect(changes.changed).toHaveLength(2);
    expect(changes.changed[0]).toBe(x);
    expect(changes.changed[1]).toBe(b2);
    expect(changes.removed).toEqual(['a']);
    expect(changedByName([a, b, c], [c, b, a])).toEqual({ changed: [], removed: [] });
    expect(changedByName([a, b], [])).toEqual({ changed: [], removed: ['a', 'b'] });
  });

  it('gives the same answer for lists in name order (walked in step) and out of it as a reference comparison by name', () => {
    let seed = 7;
    const random = (): number => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const pool = Array.from({ length: 60 }, (_, i) => cluster(`n${String(i).padStart(2, '0')}`, [endpoint(`10.1.0.${i}`)]));
    // Each round's list is the next round's `before` half the time: the order the walk told for it is then trusted.
    let previous: readonly (typeof pool)[number][] = [];
    for (let round = 0; round < 200; round++) {
      const before = round % 2 === 1 ? previous : pool.filter(() => random() < 0.6);
      const inOrder = pool.filter(() => random() < 0.6).map((c) => (before.includes(c) && random() < 0.1 ? cluster(c.name, [endpoint('10.2.0.1')]) : c));
      // A third of the rounds move two clusters: no longer in name order, compared by name instead.
      const after = round % 3 === 0 && inOrder.length > 2 ? [inOrder[inOrder.length - 1]!, ...inOrder.slice(1, -1), inOrder[0]!] : inOrder;
      const byNameBefore = new Map(before.map((c) => [c.name, c]));
      const afterNames = new Set(after.map((c) => c.name));
      const changes = changedByName(before, after);
      expect(changes.changed).toEqual(after.filter((c) => byNameBefore.get(c.name) !== c));
      for (const [i, c] of changes.changed.entries()) expect(c).toBe(after.filter((x) => byNameBefore.get(x.name) !== x)[i]);
      expect(changes.removed).toEqual(before.filter((c) => !afterNames.has(c.name)).map((c) => c.name));
      previous = after;
    }
  });

  it('answers the same two lists from memory, and other lists anew', () => {
    const before = [a, b];
    const after = [a, b, c];
    const first = changedByName(before, after);
    expect(changedByName(before, after)).toBe(first);
    expect(changedByName(before, [a, c]).removed).toEqual(['b']);
  });
});
