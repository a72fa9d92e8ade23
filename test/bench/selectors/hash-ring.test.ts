import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { HashRing } from '../../../bench/selectors/hash-ring.js';
import type { HashName } from '../../../bench/selectors/hash-functions.js';

const KEYS = Array.from({ length: 5000 }, (_, i) => `session-${i}`);

function owners(ring: HashRing, count = KEYS.length): string[] {
  return KEYS.slice(0, count).map((k) => ring.lookup(k) as string);
}

const nodeNames = (min: number, max: number) =>
  fc.uniqueArray(fc.string({ minLength: 1, maxLength: 24 }), { minLength: min, maxLength: max });

describe('HashRing', () => {
  it('is empty until a node is added', () => {
    const ring = new HashRing();
    expect(ring.lookup('x')).toBeUndefined();
    ring.add('a');
    expect(ring.lookup('x')).toBe('a');
    expect(ring.pointCount).toBe(160);
  });

  it('honours the virtual node count, default and per node', () => {
    const ring = new HashRing(['a', 'b'], { virtualNodes: 10 });
    expect(ring.pointCount).toBe(20);
    ring.add('c', 30);
    expect(ring.pointCount).toBe(50);
    expect(ring.add('c')).toBe(false);
    expect(ring.remove('c')).toBe(true);
    expect(ring.remove('c')).toBe(false);
    expect(ring.pointCount).toBe(20);
    expect(ring.nodes).toEqual(['a', 'b']);
    expect(() => new HashRing([], { virtualNodes: 0 })).toThrow(RangeError);
  });

  it('addAll builds the same ring as adding one by one, skipping known nodes', () => {
    const names = Array.from({ length: 30 }, (_, i) => `node-${i}`);
    const bulk = new HashRing();
    expect(bulk.addAll(names.slice(0, 20))).toBe(20);
    expect(bulk.addAll(names)).toBe(10);
    const single = new HashRing();
    for (const n of names) single.add(n);
    expect(bulk.pointCount).toBe(single.pointCount);
    expect(owners(bulk)).toEqual(owners(single));
  });

  it('accepts a custom hash, and wraps keys past the last point to the first', () => {
    const ring = new HashRing(['a', 'b'], { virtualNodes: 1, hash: (k) => (k === 'a#0' ? 100 : k === 'b#0' ? 200 : Number(k)) });
    expect(ring.lookup('50')).toBe('a');
    expect(ring.lookup('100')).toBe('a');
    expect(ring.lookup('150')).toBe('b');
    expect(ring.lookup('250')).toBe('a');
    expect(ring.lookupHash(0xffffffff)).toBe('a');
  });

  it('resolves colliding points by node name, whatever the insertion order', () => {
    const constant = (): number => 7;
    const ab = new HashRing(['b', 'a'], { virtualNodes: 3, hash: constant });
    const ba = new HashRing(['a', 'b'], { virtualNodes: 3, hash: constant });
    expect(ab.lookup('k')).toBe('a');
    expect(ba.lookup('k')).toBe('a');
  });

  for (const hash of ['murmur3', 'md5'] as const satisfies readonly HashName[]) {
    it(`spreads keys evenly with ${hash} (every node within ±30% of fair, 10 nodes × 160 points)`, () => {
      const nodes = Array.from({ length: 10 }, (_, i) => `10.0.0.${i}:8080`);
      const ring = new HashRing(nodes, { hash });
      const counts = new Map<string, number>();
      for (const o of owners(ring)) counts.set(o, (counts.get(o) ?? 0) + 1);
      for (const c of counts.values()) expect(Math.abs(c / (KEYS.length / 10) - 1)).toBeLessThan(0.3);
    });
  }

  it('property: placement depends only on the set of nodes, not on insertion order or history', () => {
    fc.assert(
      fc.property(nodeNames(1, 8), fc.string(), (nodes, extra) => {
        fc.pre(!nodes.includes(extra));
        const a = new HashRing(nodes, { virtualNodes: 20 });
        const b = new HashRing([...nodes].reverse(), { virtualNodes: 20 });
        b.add(extra);
        b.remove(extra);
        expect(owners(b, 500)).toEqual(owners(a, 500));
      }),
      { numRuns: 30 },
    );
  });

  // Removing one of N nodes: exactly the keys it owned move (everyone else keeps theirs),
  // and their share is 1/N within ±50%. A node's share with 160 points has a relative
  // standard deviation of about 1/sqrt(160) ≈ 8%, and 5000 keys add ≤ 6% of sampling noise,
  // so ±50% is a ~5σ band: it catches a broken ring (e.g. rehashing everything) without flaking.
  for (const hash of ['murmur3', 'md5'] as const satisfies readonly HashName[]) {
    it(`property (${hash}): removing one of N nodes remaps only its keys, about 1/N of them`, () => {
      fc.assert(
        fc.property(nodeNames(2, 12), fc.nat(), (nodes, pick) => {
          const ring = new HashRing(nodes, { hash });
          const before = owners(ring);
          const victim = nodes[pick % nodes.length] as string;
          ring.remove(victim);
          const after = owners(ring);
          let moved = 0;
          for (let i = 0; i < KEYS.length; i++) {
            if (before[i] === after[i]) continue;
            moved++;
            expect(before[i]).toBe(victim);
          }
          expect(after).not.toContain(victim);
          const fair = 1 / nodes.length;
          expect(Math.abs(moved / KEYS.length - fair)).toBeLessThanOrEqual(0.5 * fair);
        }),
        { numRuns: hash === 'md5' ? 8 : 25 },
      );
    });
  }

  it('property: adding a node moves keys only onto the new node, about 1/(N+1) of them', () => {
    fc.assert(
      fc.property(nodeNames(2, 12), (nodes) => {
        const [newcomer, ...rest] = nodes as [string, ...string[]];
        const ring = new HashRing(rest);
        const before = owners(ring);
        ring.add(newcomer);
        const after = owners(ring);
        let moved = 0;
        for (let i = 0; i < KEYS.length; i++) {
          if (before[i] === after[i]) continue;
          moved++;
          expect(after[i]).toBe(newcomer);
        }
        const fair = 1 / nodes.length;
        expect(Math.abs(moved / KEYS.length - fair)).toBeLessThanOrEqual(0.5 * fair);
      }),
      { numRuns: 25 },
    );
  });
});
