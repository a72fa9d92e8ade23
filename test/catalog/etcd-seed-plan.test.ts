import { describe, expect, it } from 'vitest';
import type { Entry, Section, StoredCluster } from '../../src/catalog/store/etcd-layout.js';
import { planSeed, type MirrorView } from '../../src/catalog/store/etcd-plans.js';
import { clusterSpecJson } from '../../src/catalog/store/ownership.js';
import type { Catalog, Cluster } from '../../src/catalog/types.js';
import { cluster, endpoint } from './helpers.js';

const AT = '2026-12-05T00:00:00.000Z';

/** A mirror holding one file cluster `a` as stored from `stored`, at mod_revision `mod`. */
function mirrorOf(stored: Cluster, mod: number): MirrorView {
  const value: StoredCluster = {
    spec: clusterSpecJson(stored),
    owner: 'file',
    at: AT,
    endpoints: stored.endpoints.map((e) => ({ ...e, rev: null, at: AT, state: 'active' as const })),
  };
  const entries = new Map<string, Entry<unknown>>([['clusters/a', { value, mod, create: 1 }]]);
  return {
    revision: mod,
    get: <T>(section: Section, name: string) => entries.get(`${section}/${name}`) as Entry<T> | undefined,
    list: <T>(section: Section) => [...entries].filter(([k]) => k.startsWith(`${section}/`)).map(([k, v]) => [k.slice(section.length + 1), v as Entry<T>]),
  };
}

const catalogOf = (c: Cluster): Catalog => ({ clusters: [c], listeners: [], nodeGroups: [] });

describe('planSeed (etcd)', () => {
  it('skips a cluster given as the very object found unchanged before while its mod_revision has not moved', () => {
    const input = cluster('a', [endpoint('10.0.0.1', 80, { weight: 2 })]);
    // The stored cluster differs from the input (weight 1): only the skip can make the plan empty.
    const view = mirrorOf(cluster('a', [endpoint('10.0.0.1', 80, { weight: 1 })]), 5);
    expect(planSeed(view, catalogOf(input), AT).plans).toHaveLength(1);
    const skipped = planSeed(view, catalogOf(input), AT, new Map([['a', { input, mod: 5 }]]));
    expect(skipped.plans).toEqual([]);
    expect(skipped.seeded.get('a')).toEqual({ input, mod: 5 });
    // Another object, or the key written since: compared again.
    expect(planSeed(view, catalogOf(structuredClone(input)), AT, new Map([['a', { input, mod: 5 }]])).plans).toHaveLength(1);
    expect(planSeed(mirrorOf(cluster('a', [endpoint('10.0.0.1', 80, { weight: 1 })]), 6), catalogOf(input), AT, new Map([['a', { input, mod: 5 }]])).plans).toHaveLength(1);
  });

  it('reports every file cluster found unchanged, with its mod_revision, for the next seed', () => {
    const input = cluster('a', [endpoint('10.0.0.1', 80)]);
    const plan = planSeed(mirrorOf(input, 7), catalogOf(input), AT);
    expect(plan.plans).toEqual([]);
    expect(plan.seeded).toEqual(new Map([['a', { input, mod: 7 }]]));
  });
});
