/**
 * The copy-on-write parts of a Delta stream's per-type state (delta-type-state.ts): streams hold
 * shared read-only collections while they agree, and a change made by one never shows in another.
 */
import { describe, expect, test } from 'vitest';
import { DeltaTypeState } from '../../src/xds/delta-type-state.js';

function named(...names: string[]): DeltaTypeState {
  const st = new DeltaTypeState();
  for (const n of names) st.subscribe(n);
  st.subscriptionChanged();
  return st;
}

describe('Delta type state shared copy-on-write', () => {
  test('states that subscribe to the same names, in any order, hold one set', () => {
    const a = named('x', 'y', 'z');
    const b = named('z', 'x', 'y');
    expect(b.names).toBe(a.names);
    expect([...a.names].sort()).toEqual(['x', 'y', 'z']);
  });

  test('a state that changes its names copies them: the other keeps its own', () => {
    const a = named('x', 'y');
    const b = named('x', 'y');
    expect(b.unsubscribe('y')).toBe(true);
    expect(b.subscribe('w')).toBe(true);
    expect(b.subscribe('w')).toBe(false);
    b.subscriptionChanged();
    expect([...a.names].sort()).toEqual(['x', 'y']);
    expect([...b.names].sort()).toEqual(['w', 'x']);
    expect(named('y', 'x').names).toBe(a.names);
  });

  test('names whose joined key collides with another subscription are never shared with it', () => {
    const two = named('p', 'q');
    const one = named('p\nq');
    expect(one.names).not.toBe(two.names);
    expect([...one.names]).toEqual(['p\nq']);
    expect([...two.names].sort()).toEqual(['p', 'q']);
  });

  test('a shared known map is copied before the first change, and never changed itself', () => {
    const shared: ReadonlyMap<string, string> = new Map([
      ['x', '1'],
      ['y', '1'],
    ]);
    const a = new DeltaTypeState();
    const b = new DeltaTypeState();
    a.holdShared(shared);
    b.holdShared(shared);
    expect(a.known).toBe(shared);
    a.hold('x', '2');
    a.forget('y');
    b.hold('x', '1'); // unchanged: no copy needed
    expect([...shared]).toEqual([
      ['x', '1'],
      ['y', '1'],
    ]);
    expect([...a.known]).toEqual([['x', '2']]);
    expect(b.known).toBe(shared);
    b.forget('absent');
    expect(b.known).toBe(shared);
  });

  test('a subscription change forgets the sync point and re-keys', () => {
    const st = named('x');
    st.synced = 'v1';
    expect(st.subKey).toBe('["x"]');
    st.subscribe('y');
    st.subscriptionChanged();
    expect(st.synced).toBeUndefined();
    expect(st.subKey).toBe('["x","y"]');
  });

  test('a response applied with the shared result holds that map; without it, the changes are applied to a copy', () => {
    const before: ReadonlyMap<string, string> = new Map([
      ['x', '1'],
      ['y', '1'],
    ]);
    const after: ReadonlyMap<string, string> = new Map([['x', '2']]);
    const piece = { sent: new Map([['x', '2']]), removed: ['y'] };
    const fast = new DeltaTypeState();
    fast.holdShared(before);
    fast.apply(piece, after);
    expect(fast.known).toBe(after);
    const slow = new DeltaTypeState();
    slow.holdShared(before);
    slow.apply(piece);
    expect([...slow.known]).toEqual([...after]);
    expect([...before]).toEqual([
      ['x', '1'],
      ['y', '1'],
    ]);
  });
});

