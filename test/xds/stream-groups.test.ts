import { describe, expect, test } from 'vitest';
import { DEFAULT_GROUP } from '../../src/xds/resource-set.js';
import { StreamGroups } from '../../src/xds/stream-groups.js';
import { formGroupKey } from '../../src/xds/client-form.js';

const stream = (name: string) => ({ name, onCacheChange: () => undefined });

describe('StreamGroups', () => {
  const edge = stream('edge-1');
  const core = stream('core-1');
  const bare = stream('no-cluster');
  const build = () => {
    const g = new StreamGroups<ReturnType<typeof stream>>();
    g.add(edge, 'edge');
    g.add(core, 'core');
    g.add(bare, '');
    return g;
  };
  const hasOwn = (groups: string[]) => (nodeCluster: string) => groups.includes(nodeCluster);
  const names = (xs: { name: string }[]) => xs.map((x) => x.name).sort();

  test('a change to a node group wakes only its streams', () => {
    expect(names(build().affected(new Set(['edge']), hasOwn(['edge'])))).toEqual(['edge-1']);
  });

  test('a change to the default group wakes the streams without a group of their own, not the grouped ones', () => {
    expect(names(build().affected(new Set([DEFAULT_GROUP]), hasOwn(['edge'])))).toEqual(['core-1', 'no-cluster']);
  });

  test('a group that appears or disappears is reported under its name and reaches the streams moving', () => {
    // Appears: edge-1 moves from the default group into edge; the default group did not change.
    expect(names(build().affected(new Set(['edge']), hasOwn(['edge'])))).toEqual(['edge-1']);
    // Disappears: edge-1 falls back to the default group.
    expect(names(build().affected(new Set(['edge']), hasOwn([])))).toEqual(['edge-1']);
  });

  test('a gRPC client is woken by its group in either form, or the default group in either form when it has none', () => {
    const g = build();
    const grpcEdge = stream('grpc-edge');
    const grpcBare = stream('grpc-bare');
    g.add(grpcEdge, 'edge', 'grpc');
    g.add(grpcBare, 'core', 'grpc');
    const wakes = (changed: string[]) => names(g.affected(new Set(changed), hasOwn(['edge'])));
    expect(wakes([formGroupKey('edge', 'grpc')])).toEqual(['grpc-edge']);
    expect(wakes(['edge'])).toEqual(['edge-1', 'grpc-edge']);
    expect(wakes([formGroupKey(DEFAULT_GROUP, 'grpc')])).toEqual(['grpc-bare']);
    expect(wakes([DEFAULT_GROUP])).toEqual(['core-1', 'grpc-bare', 'no-cluster']);
  });

  test('a deleted stream is not woken; adding twice indexes once', () => {
    const g = build();
    g.add(edge, 'core');
    g.delete(core);
    expect(g.has(core)).toBe(false);
    expect(names(g.affected(new Set(['edge', 'core', DEFAULT_GROUP]), hasOwn(['edge', 'core'])))).toEqual(['edge-1', 'no-cluster']);
  });
});
