import { describe, expect, it } from 'vitest';
import { haKeys, nameUnder } from '../../src/ha/keys.js';
import { rendezvousOwner } from '../../src/ha/rendezvous.js';

const clusters = Array.from({ length: 300 }, (_, i) => `cluster-${i}`);
const owners = (replicas: string[]): Map<string, string | undefined> => new Map(clusters.map((c) => [c, rendezvousOwner(c, replicas)]));

describe('rendezvous ownership', () => {
  it('is the same whatever the order of the member list, and undefined with no members', () => {
    expect(owners(['a', 'b', 'c'])).toEqual(owners(['c', 'a', 'b']));
    expect(rendezvousOwner('x', [])).toBeUndefined();
  });

  it('spreads clusters evenly', () => {
    const counts = new Map<string, number>();
    for (const o of owners(['a', 'b', 'c']).values()) counts.set(o as string, (counts.get(o as string) ?? 0) + 1);
    for (const r of ['a', 'b', 'c']) expect(counts.get(r)).toBeGreaterThan(70); // 100 each on average
  });

  it('moves only the clusters of a replica that leaves, and only clusters to one that joins', () => {
    const three = owners(['a', 'b', 'c']);
    const two = owners(['a', 'b']);
    const four = owners(['a', 'b', 'c', 'd']);
    for (const c of clusters) {
      if (three.get(c) !== 'c') expect(two.get(c)).toBe(three.get(c));
      if (four.get(c) !== 'd') expect(four.get(c)).toBe(three.get(c));
    }
    expect([...four.values()].filter((o) => o === 'd').length).toBeGreaterThan(50);
  });
});

describe('etcd key layout', () => {
  it('puts every kind under the prefix, whatever trailing slashes it has', () => {
    const k = haKeys('/fulcrum/');
    expect([k.replica('r1'), k.owner('web'), k.weight('web'), k.servedWeight('web'), k.signal('r1')]).toEqual(['/fulcrum/ha/replicas/r1', '/fulcrum/ha/owners/web', '/fulcrum/ha/weights/web', '/fulcrum/ha/served/web', '/fulcrum/ha/signals/r1']);
    expect(nameUnder(k.owners, '/fulcrum/ha/owners/web')).toBe('web');
    expect(nameUnder(k.owners, '/fulcrum/ha/owners/')).toBeUndefined();
    expect(nameUnder(k.owners, '/fulcrum/weights/web')).toBeUndefined();
  });
});
