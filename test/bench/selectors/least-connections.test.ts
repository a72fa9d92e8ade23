import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { LeastConnections } from '../../../bench/selectors/least-connections.js';

/** Brute-force reference: a linear scan with the same documented tie-break. */
class Model {
  readonly entries = new Map<string, { active: number; lastPick: number; order: number }>();
  private picks = 0;
  private added = 0;

  add(key: string): boolean {
    if (this.entries.has(key)) return false;
    this.entries.set(key, { active: 0, lastPick: 0, order: this.added++ });
    return true;
  }

  remove(key: string): boolean {
    return this.entries.delete(key);
  }

  acquire(): string | undefined {
    let best: string | undefined;
    for (const [key, e] of this.entries) {
      const b = best === undefined ? undefined : this.entries.get(best);
      if (b === undefined || e.active < b.active || (e.active === b.active && (e.lastPick < b.lastPick || (e.lastPick === b.lastPick && e.order < b.order)))) {
        best = key;
      }
    }
    if (best === undefined) return undefined;
    const e = this.entries.get(best)!;
    e.active++;
    e.lastPick = ++this.picks;
    return best;
  }

  release(key: string): boolean {
    const e = this.entries.get(key);
    if (e === undefined || e.active === 0) return false;
    e.active--;
    return true;
  }

  minActive(): number {
    return Math.min(...[...this.entries.values()].map((e) => e.active));
  }
}

type Op =
  | { readonly kind: 'acquire' }
  | { readonly kind: 'release'; readonly key: number }
  | { readonly kind: 'add'; readonly key: number }
  | { readonly kind: 'remove'; readonly key: number };

const KEY_SPACE = 12;
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ kind: 'acquire' } as const) },
  { weight: 4, arbitrary: fc.integer({ min: 0, max: KEY_SPACE - 1 }).map((key) => ({ kind: 'release', key }) as const) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: KEY_SPACE - 1 }).map((key) => ({ kind: 'add', key }) as const) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: KEY_SPACE - 1 }).map((key) => ({ kind: 'remove', key }) as const) },
);

describe('LeastConnections', () => {
  it('returns undefined when empty', () => {
    expect(new LeastConnections().acquire()).toBeUndefined();
    expect(new LeastConnections().peek()).toBeUndefined();
  });

  it('round-robins among idle endpoints instead of always picking the first', () => {
    const lc = new LeastConnections(['a', 'b', 'c']);
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const key = lc.acquire() as string;
      seen.push(key);
      lc.release(key);
    }
    expect(seen).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('sends new work to the endpoint whose connection just ended', () => {
    const lc = new LeastConnections(['a', 'b', 'c']);
    lc.acquire();
    lc.acquire();
    lc.acquire();
    expect(lc.release('b')).toBe(true);
    expect(lc.acquire()).toBe('b');
  });

  it('ignores unknown endpoints and double releases', () => {
    const lc = new LeastConnections(['a']);
    expect(lc.release('a')).toBe(false);
    expect(lc.release('zzz')).toBe(false);
    expect(lc.activeConnections('a')).toBe(0);
  });

  it('property: matches a brute-force model and never hands out an endpoint busier than the least busy', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: KEY_SPACE }), fc.array(op, { maxLength: 300 }), (initial, ops) => {
        const names = Array.from({ length: initial }, (_, i) => `e${i}`);
        const lc = new LeastConnections(names);
        const model = new Model();
        names.forEach((n) => model.add(n));
        for (const o of ops) {
          if (o.kind === 'acquire') {
            const min = model.entries.size > 0 ? model.minActive() : undefined;
            const got = lc.acquire();
            expect(got).toBe(model.acquire());
            if (got !== undefined) expect(lc.activeConnections(got)).toBe((min as number) + 1);
          } else {
            const key = `e${o.key}`;
            expect(lc[o.kind](key)).toBe(model[o.kind](key));
          }
          expect(lc.size).toBe(model.entries.size);
        }
        for (const [key, e] of model.entries) expect(lc.activeConnections(key)).toBe(e.active);
      }),
      { numRuns: 300 },
    );
  });

  it('releases in O(log n): 200k operations on 20k endpoints stay fast', () => {
    const n = 20_000;
    const lc = new LeastConnections(Array.from({ length: n }, (_, i) => `e${i}`));
    for (let i = 0; i < 3 * n; i++) lc.acquire();
    const started = performance.now();
    for (let i = 0; i < 100_000; i++) {
      lc.release(`e${(i * 7919) % n}`);
      lc.acquire();
    }
    // A linear re-heapify per release would take ~20k steps each: minutes, not milliseconds.
    expect(performance.now() - started).toBeLessThan(2000);
  });
});
