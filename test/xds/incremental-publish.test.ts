import { describe, expect, it } from 'vitest';
import type { Catalog, Cluster } from '../../src/catalog/types.js';
import type { WeightOverrides } from '../../src/catalog/weight-overrides.js';
import { subscription, XdsCache } from '../../src/xds/cache.js';
import { PUSH_ORDER, TYPE } from '../../src/xds/envoy-api.js';
import { DEFAULT_GROUP, derivationOf, positionalOf, type ResourceSet } from '../../src/xds/resource-set.js';
import { translate, Translator } from '../../src/xds/translator.js';

/**
 * A publish after one write visits only the changed clusters (translator) and compares only their
 * resources (cache). What it produces must be exactly what a whole translation gives: the same
 * resources in the same order, since versions hash names and versions in map order.
 */

const endpoint = (i: number, weight = 1) => ({
  address: `10.0.${i >> 8}.${i & 255}`, port: 8080, weight, priority: 0, health: 'HEALTHY' as const,
  locality: { region: 'eu', zone: `z${i % 2}`, subZone: '' },
});

const cluster = (n: number, weight = 1): Cluster => ({
  name: `c${String(n).padStart(2, '0')}`, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false,
  weighting: { kind: 'static' }, endpoints: [endpoint(n * 3, weight), endpoint(n * 3 + 1), endpoint(n * 3 + 2)],
});

const base: Catalog = {
  clusters: Array.from({ length: 12 }, (_, n) => cluster(n)),
  listeners: [{ name: 'ingress', kind: 'socket', address: '0.0.0.0', port: 10000, routes: [{ domain: '*', prefix: '/', cluster: 'c03' }] }],
  nodeGroups: [{ nodeCluster: 'edge', listeners: [], clusters: ['c01', 'c02'] }],
};

const replace = (c: Catalog, n: number, by: (old: Cluster) => Cluster): Catalog => ({
  ...c,
  clusters: c.clusters.map((x, i) => (i === n ? by(x) : x)),
});

/** Every type's names (in order) and hashes, per group. */
function shape(groups: ReadonlyMap<string, ResourceSet>): unknown {
  return [...groups].map(([g, set]) => [g, PUSH_ORDER.map((t) => [...(set.get(t) ?? [])].map(([name, r]) => `${name}=${r.hash}`))]);
}

const REORDERED = 'the same clusters in another order';

describe('incremental publish', () => {
  // Each step: the catalog and weights after one change, as the stores and the weight loop hand them over.
  const steps: [string, Catalog, WeightOverrides | undefined][] = [];
  let c = base;
  steps.push(['start', c, undefined]);
  steps.push(['one endpoint weight', (c = replace(c, 4, (x) => ({ ...x, endpoints: [endpoint(12, 9), ...x.endpoints.slice(1)] }))), undefined]);
  steps.push(['weight overrides of one cluster', c, new Map([['c05', new Map([[`${endpoint(15).address}:8080`, { weight: 40 }]])]])]);
  steps.push(['the routed cluster\'s retry policy', (c = replace(c, 3, (x) => ({ ...x, retryPolicy: { numRetries: 5 } }))), undefined]);
  steps.push(['a cluster added', (c = { ...c, clusters: [...c.clusters, cluster(20)] }), undefined]);
  steps.push(['a cluster removed', (c = { ...c, clusters: c.clusters.filter((x) => x.name !== 'c07') }), undefined]);
  steps.push(['a cluster inserted in the middle of the order', (c = { ...c, clusters: [...c.clusters.slice(0, 5), cluster(30), ...c.clusters.slice(5)] }), undefined]);
  steps.push(['two removed, one changed and one added at once', (c = {
    ...c,
    clusters: [cluster(31), ...c.clusters.filter((x) => x.name !== 'c02' && x.name !== 'c09').map((x) => (x.name === 'c06' ? { ...x, connectTimeoutMs: 2500 } : x))],
  }), undefined]);
  steps.push([REORDERED, (c = { ...c, clusters: [...c.clusters].reverse() }), undefined]);
  steps.push(['a removed cluster back, with overrides', (c = { ...c, clusters: [...c.clusters, cluster(7)] }), new Map([['c07', new Map([[`${endpoint(21).address}:8080`, { weight: 3 }]])]])]);
  steps.push(['the listener routes elsewhere', (c = { ...c, listeners: [{ ...c.listeners[0]!, routes: [{ domain: '*', prefix: '/', cluster: 'c05' }] }] }), undefined]);
  steps.push(['a second node group, on the listener', (c = { ...c, nodeGroups: [...c.nodeGroups, { nodeCluster: 'ingress', listeners: ['ingress'], clusters: ['c08'] }] }), undefined]);
  steps.push(['the routed cluster of both groups changed', (c = replace(c, 5, (x) => ({ ...x, endpoints: x.endpoints.slice(1) }))), undefined]);
  steps.push(['a node group selects other clusters', (c = { ...c, nodeGroups: [{ nodeCluster: 'edge', listeners: [], clusters: ['c01', 'c04'] }, c.nodeGroups[1]!] }), undefined]);
  steps.push(['a node group\'s cluster changed', (c = replace(c, 1, (x) => ({ ...x, connectTimeoutMs: 3000 }))), undefined]);
  steps.push(['nothing', { ...c }, undefined]);

  it('gives, step by step, what a whole translation of the same catalog gives', () => {
    const translator = new Translator();
    for (const [label, catalog, weights] of steps) {
      expect(shape(translator.translate(catalog, weights)), label).toEqual(shape(translate(catalog, weights)));
    }
  });

  it('a one-cluster change is marked as derived from the previous output, naming that cluster only; an unchanged type is the previous map', () => {
    const translator = new Translator();
    const first = translator.translate(base).get(DEFAULT_GROUP);
    const next = translator.translate(replace(base, 4, (x) => ({ ...x, endpoints: x.endpoints.slice(1) }))).get(DEFAULT_GROUP);
    const map = next?.get(TYPE.endpoint);
    expect(map).toBeDefined();
    const d = map && derivationOf(map);
    expect(d?.base).toBe(first?.get(TYPE.endpoint));
    expect([...(d?.names ?? [])]).toEqual(['c04']);
    // Its Cluster resource is the same: the CDS map is handed on as it was, not copied.
    expect(next?.get(TYPE.cluster)).toBe(first?.get(TYPE.cluster));
    const retimed = translator.translate(replace(base, 4, (x) => ({ ...x, connectTimeoutMs: 4_321, endpoints: x.endpoints.slice(1) }))).get(DEFAULT_GROUP);
    const cds = retimed?.get(TYPE.cluster);
    expect(cds).not.toBe(first?.get(TYPE.cluster));
    expect(cds && derivationOf(cds)?.base).toBe(first?.get(TYPE.cluster));
    expect([...((cds && derivationOf(cds)?.names) ?? [])]).toEqual(['c04']);
    // Added clusters change the order: the maps are rebuilt in the catalog's order, not derived.
    const added = translator.translate({ ...base, clusters: [cluster(30), ...base.clusters] }).get(DEFAULT_GROUP)?.get(TYPE.endpoint);
    expect(added && derivationOf(added)).toBeUndefined();
    expect([...(added?.keys() ?? [])]).toEqual(['c30', ...base.clusters.map((x) => x.name)]);
  });

  it('node groups keep their maps when no cluster they select changed, and derive them from the last when one did', () => {
    const translator = new Translator();
    const first = translator.translate(base).get('edge');
    // c04: no group selects it; every type of the group is the previous map itself.
    const other = translator.translate(replace(base, 4, (x) => ({ ...x, endpoints: x.endpoints.slice(1) }))).get('edge');
    for (const type of PUSH_ORDER) expect(other?.get(type), type).toBe(first?.get(type));
    // c02: the group selects it; its EDS map is the last one with c02 replaced, marked so for the cache.
    const catalog = replace(replace(base, 4, (x) => ({ ...x, endpoints: x.endpoints.slice(1) })), 2, (x) => ({ ...x, endpoints: x.endpoints.slice(1) }));
    const next = translator.translate(catalog).get('edge');
    const eds = next?.get(TYPE.endpoint);
    expect(eds).not.toBe(first?.get(TYPE.endpoint));
    expect(eds && derivationOf(eds)?.base).toBe(first?.get(TYPE.endpoint));
    expect([...((eds && derivationOf(eds)?.names) ?? [])]).toEqual(['c02']);
    expect(next?.get(TYPE.cluster)).toBe(first?.get(TYPE.cluster));
    expect(next?.get(TYPE.listener)).toBe(first?.get(TYPE.listener));
    expect(shape(new Map([['edge', next!]]))).toEqual(shape(new Map([['edge', translate(catalog).get('edge')!]])));
  });

  it('a node group selecting a few of many clusters gets them in the catalog\'s order, the very resources of the whole set', () => {
    // Forty clusters, not in name order; the group names three of them and routes to a fourth.
    const clusters = Array.from({ length: 40 }, (_, i) => cluster((i * 17) % 40));
    const catalog: Catalog = {
      clusters,
      listeners: [{ name: 'in', kind: 'socket', address: '0.0.0.0', port: 10000, routes: [{ domain: '*', prefix: '/', cluster: 'c22' }] }],
      nodeGroups: [{ nodeCluster: 'few', listeners: ['in'], clusters: ['c30', 'c05', 'c17', 'c99'] }],
    };
    const wanted = new Set(['c30', 'c05', 'c17', 'c22']);
    const expected = clusters.map((c) => c.name).filter((n) => wanted.has(n));
    const translator = new Translator();
    for (const weights of [undefined, new Map(clusters.map((c) => [c.name, new Map([[`${c.endpoints[0]!.address}:8080`, { weight: 7 }]])]))]) {
      const out = translator.translate(catalog, weights);
      for (const type of [TYPE.cluster, TYPE.endpoint]) {
        const few = out.get('few')?.get(type);
        expect([...(few?.keys() ?? [])], type).toEqual(expected);
        for (const [name, r] of few ?? []) expect(r, `${type} ${name}`).toBe(out.get(DEFAULT_GROUP)?.get(type)?.get(name));
      }
    }
  });

  it('listeners and routes are handed on as they were until the listener or a routed cluster changes', () => {
    const translator = new Translator();
    const first = translator.translate(base).get(DEFAULT_GROUP);
    const written = translator.translate(replace(base, 4, (x) => ({ ...x, endpoints: x.endpoints.slice(1) }))).get(DEFAULT_GROUP);
    expect(written?.get(TYPE.listener)).toBe(first?.get(TYPE.listener));
    expect(written?.get(TYPE.route)).toBe(first?.get(TYPE.route));
    // c03 is routed: its retry policy is in the route configuration, which changes; the listener does not.
    const retried = replace(base, 3, (x) => ({ ...x, retryPolicy: { numRetries: 4 } }));
    const next = translator.translate(retried).get(DEFAULT_GROUP);
    expect(next?.get(TYPE.route)?.get('ingress')?.hash).not.toBe(first?.get(TYPE.route)?.get('ingress')?.hash);
    expect(next?.get(TYPE.route)?.get('ingress')?.hash).toBe(translate(retried).get(DEFAULT_GROUP)?.get(TYPE.route)?.get('ingress')?.hash);
    expect(next?.get(TYPE.listener)).toBe(first?.get(TYPE.listener));
  });

  it('a cluster created or deleted after another carries every other resource by position, in the translator and in the cache', () => {
    const translator = new Translator();
    const cache = new XdsCache();
    const wildcard = subscription(TYPE.endpoint, true, []);
    let c = base;
    let taken = translator.translate(c);
    cache.update(taken);
    const steps = [[40, 'add'], [3, 'write'], [41, 'add'], [40, 'remove'], [5, 'write'], [2, 'remove'], [42, 'add']] as const;
    for (const [n, step] of steps) {
      const before = cache.snapshotFor(DEFAULT_GROUP).resources(TYPE.endpoint);
      const name = cluster(n).name;
      if (step === 'add') c = { ...c, clusters: [...c.clusters, cluster(n)].sort((a, b) => (a.name < b.name ? -1 : 1)) };
      else if (step === 'remove') c = { ...c, clusters: c.clusters.filter((x) => x.name !== name) };
      else c = { ...c, clusters: c.clusters.map((x) => (x.name === name ? { ...x, endpoints: x.endpoints.slice(1) } : x)) };
      const out = translator.translate(c);
      cache.update(out);
      const eds = out.get(DEFAULT_GROUP)?.get(TYPE.endpoint);
      const lastEds = taken.get(DEFAULT_GROUP)?.get(TYPE.endpoint);
      const label = `${step} ${name}`;
      // Every create and delete is carried by position, the first after a whole translation too.
      if (step !== 'write') expect(eds && positionalOf(eds)?.base, label).toBe(lastEds);
      if (step === 'write') expect(eds && derivationOf(eds)?.base, label).toBe(lastEds);
      // One step only, whichever the kind: the base keeps no record of its own base.
      expect(lastEds && (derivationOf(lastEds) ?? positionalOf(lastEds)), label).toBeUndefined();
      const after = cache.snapshotFor(DEFAULT_GROUP).resources(TYPE.endpoint);
      expect([...after.keys()], label).toEqual(c.clusters.map((x) => x.name));
      for (const [key, v] of after) if (key !== name) expect(v, `${label}: ${key}`).toBe(before.get(key));
      const fresh = new XdsCache();
      fresh.update(translate(c));
      for (const group of [DEFAULT_GROUP, 'edge']) {
        expect(cache.snapshotFor(group).version, `${label} ${group}`).toBe(fresh.snapshotFor(group).version);
        expect(cache.snapshotFor(group).sotwBody(TYPE.endpoint, wildcard), `${label} ${group}`).toEqual(fresh.snapshotFor(group).sotwBody(TYPE.endpoint, wildcard));
      }
      taken = out;
    }
  });

  it('a cluster created or deleted visits that cluster alone, and a deleted one leaves the memo', () => {
    const translator = new Translator();
    translator.translate(base);
    expect(translator.visited).toBe(base.clusters.length);
    const added = { ...base, clusters: [...base.clusters.slice(0, 6), cluster(40), ...base.clusters.slice(6)] };
    translator.translate(added);
    expect(translator.visited).toBe(1);
    translator.translate(base);
    expect(translator.visited).toBe(0);
    // Back again: c40 is built anew (its memo went with it), so a changed c40 of the same name is not mistaken for the old.
    const changed40 = { ...base, clusters: [...base.clusters, { ...cluster(40), connectTimeoutMs: 7_000 }] };
    const out = translator.translate(changed40).get(DEFAULT_GROUP);
    expect(translator.visited).toBe(1);
    expect(out?.get(TYPE.cluster)?.get('c40')?.hash).toBe(translate(changed40).get(DEFAULT_GROUP)?.get(TYPE.cluster)?.get('c40')?.hash);
  });

  it('a snapshot after an endpoint-only change carries the other types from the snapshot that computed them (no chain)', () => {
    const translator = new Translator();
    const cache = new XdsCache();
    const wildcard = subscription(TYPE.cluster, true, []);
    cache.update(translator.translate(base));
    const first = cache.snapshotFor(DEFAULT_GROUP);
    const cds = first.sotwBody(TYPE.cluster, wildcard);
    let c = base;
    for (const weight of [5, 6, 7]) {
      c = replace(c, 4, (x) => ({ ...x, endpoints: [endpoint(12, weight), ...x.endpoints.slice(1)] }));
      cache.update(translator.translate(c));
      const snap = cache.snapshotFor(DEFAULT_GROUP);
      expect(snap).not.toBe(first);
      expect(snap.originOf(TYPE.cluster)).toBe(first);
      expect(snap.originOf(TYPE.endpoint)).toBe(snap);
      expect(snap.resources(TYPE.cluster)).toBe(first.resources(TYPE.cluster));
      expect(snap.sotwBody(TYPE.cluster, wildcard)).toBe(cds);
      // The snapshot version (Delta's system_version_info) covers every type's names and versions, carried or not.
      const fresh = new XdsCache();
      fresh.update(translate(c));
      expect(snap.version).toBe(fresh.snapshotFor(DEFAULT_GROUP).version);
      for (const type of PUSH_ORDER) expect(snap.typeVersion(type), type).toBe(fresh.snapshotFor(DEFAULT_GROUP).typeVersion(type));
    }
  });

  it('the cache fed incrementally holds the snapshots a fresh cache holds, and reports the same changes', () => {
    const translator = new Translator();
    const incremental = new XdsCache();
    for (const [label, catalog, weights] of steps) {
      const fresh = new XdsCache();
      const changed = incremental.update(translator.translate(catalog, weights));
      fresh.update(translate(catalog, weights));
      if (label === REORDERED) {
        // The same resources in another order are no change to push: the cache keeps its snapshot (and its order).
        expect(changed.size, label).toBe(0);
        continue;
      }
      for (const group of [DEFAULT_GROUP, 'edge', 'ingress']) {
        const a = incremental.snapshotFor(group);
        const b = fresh.snapshotFor(group);
        expect(a.version, `${label} ${group}`).toBe(b.version);
        for (const type of PUSH_ORDER) expect(a.typeVersion(type), `${label} ${group} ${type}`).toBe(b.typeVersion(type));
      }
      expect(changed.size > 0, label).toBe(label !== 'nothing');
    }
  });
});
