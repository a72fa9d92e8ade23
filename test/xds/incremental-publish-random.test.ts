import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../examples/backends/poisson-load.js';
import type { Catalog, Cluster, Listener, NodeGroup } from '../../src/catalog/types.js';
import type { EndpointOverride, WeightOverrides } from '../../src/catalog/weight-overrides.js';
import { RandomWeights } from '../support/random-weights.js';
import { byName, reread, runWeighted, shuffled, type WeightedWrite } from '../support/random-writes.js';
import { subscription, XdsCache, type SotwBody } from '../../src/xds/cache.js';
import { PUSH_ORDER, TYPE } from '../../src/xds/envoy-api.js';
import type { ResourceSet } from '../../src/xds/resource-set.js';
import { translate, Translator } from '../../src/xds/translator.js';

/**
 * The incremental publish path (translator memo, created/deleted clusters carried by position,
 * node-group selections kept or derived, the cache's carried versions) against whole translations,
 * over random sequences of the writes stores and the weight loop hand over: after every step the
 * incremental translator's output equals a whole translation's, and a cache fed incrementally holds
 * what a cache fed whole translations holds (versions, per-type versions, SotW bodies) and reports
 * the same changed groups. The scripted steps in incremental-publish.test.ts name each path; these
 * sequences mix them in orders nobody wrote down.
 */

const endpoint = (i: number, weight: number) => ({
  address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 8080, weight, priority: 0, health: 'HEALTHY' as const,
  locality: { region: 'eu', zone: `z${i % 3}`, subZone: '' },
});

const keyOf = (e: { address: string; port: number }): string => `${e.address}:${e.port}`;

/** Every type's names (in order) and hashes, per group. */
function shape(groups: ReadonlyMap<string, ResourceSet>): unknown {
  return [...groups].map(([g, set]) => [g, PUSH_ORDER.map((t) => [...(set.get(t) ?? [])].map(([name, r]) => `${name}=${r.hash}`))]);
}

/** A fleet and its writes, drawn from one seed. */
class Fleet {
  catalog: Catalog;
  private readonly ticks: RandomWeights;
  /** Whether the clusters are in name order (what the stores hand over) or were shuffled. */
  ordered = true;
  private serial = 0;
  private readonly r: () => number;

  get weights(): WeightOverrides | undefined {
    return this.ticks.weights;
  }

  constructor(seed: number, size: number) {
    this.r = seededRandom(seed);
    this.ticks = new RandomWeights(this.r, (c) => this.overridesFor(c));
    const clusters = Array.from({ length: size }, () => this.newCluster()).sort(byName);
    const listeners: Listener[] = [this.listener('ingress', 10000, clusters)];
    this.catalog = { clusters, listeners, nodeGroups: [] };
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.r() * xs.length)] as T;
  }

  private newCluster(): Cluster {
    const n = this.serial++;
    // Names drawn apart from the serial, so creates land anywhere in name order.
    const name = `svc-${Math.floor(this.r() * 1e6).toString(36)}-${n}`;
    const size = 1 + Math.floor(this.r() * 4);
    return {
      name, lbPolicy: this.r() < 0.8 ? 'ROUND_ROBIN' : 'LEAST_REQUEST', connectTimeoutMs: 1000, http2: this.r() < 0.3,
      weighting: { kind: 'static' }, endpoints: Array.from({ length: size }, (_, k) => endpoint(n * 8 + k, 1 + Math.floor(this.r() * 5))),
    };
  }

  private listener(name: string, port: number, clusters: readonly Cluster[]): Listener {
    return { name, kind: 'socket', address: '0.0.0.0', port, routes: [{ domain: '*', prefix: '/', cluster: this.pick(clusters).name }] };
  }

  private setClusters(clusters: readonly Cluster[]): void {
    this.catalog = { ...this.catalog, clusters };
  }

  private replaceAt(i: number, by: (c: Cluster) => Cluster): void {
    this.setClusters(this.catalog.clusters.map((c, k) => (k === i ? by(c) : c)));
  }

  /** A name some listener routes to: not deleted, so every route keeps its cluster (as the stores' validation demands). */
  private routed(): Set<string> {
    return new Set(this.catalog.listeners.flatMap((l) => (l.kind === 'socket' ? l.routes.map((x) => x.cluster) : [])));
  }

  /** One write, chosen at random; returns its label. */
  step(): string {
    const writes: WeightedWrite[] = [
      [30, () => this.endpointWrite()],
      [6, () => this.settingWrite()],
      [12, () => this.create()],
      [10, () => this.remove()],
      [10, () => this.ticks.few(this.catalog.clusters)],
      [4, () => this.ticks.most(this.catalog.clusters)],
      [3, () => this.ticks.same()],
      [4, () => this.reroute()],
      [8, () => this.groups()],
      [2, () => this.shuffle()],
      [2, () => this.clone()],
      [5, () => [this.endpointWrite(), this.create(), this.remove()].join(' + ')],
      [2, () => 'nothing'],
    ];
    return runWeighted(this.r, writes);
  }

  private endpointWrite(): string {
    const i = Math.floor(this.r() * this.catalog.clusters.length);
    this.replaceAt(i, (c) => {
      const endpoints = [...c.endpoints];
      const k = Math.floor(this.r() * endpoints.length);
      if (this.r() < 0.7 || endpoints.length === 1) endpoints[k] = { ...endpoints[k]!, weight: 1 + Math.floor(this.r() * 9) };
      else endpoints.splice(k, 1);
      return { ...c, endpoints };
    });
    return `endpoint write ${this.catalog.clusters[i]!.name}`;
  }

  private settingWrite(): string {
    const i = Math.floor(this.r() * this.catalog.clusters.length);
    this.replaceAt(i, (c) => ({ ...c, connectTimeoutMs: 500 + Math.floor(this.r() * 5000), retryPolicy: { numRetries: 1 + Math.floor(this.r() * 4) } }));
    return `setting ${this.catalog.clusters[i]!.name}`;
  }

  private create(): string {
    const c = this.newCluster();
    const clusters = this.ordered ? [...this.catalog.clusters, c].sort(byName) : [...this.catalog.clusters, c];
    this.setClusters(clusters);
    return `create ${c.name}`;
  }

  private remove(): string {
    const routed = this.routed();
    const candidates = this.catalog.clusters.filter((c) => !routed.has(c.name));
    if (candidates.length < 2) return 'remove (none)';
    const gone = this.pick(candidates).name;
    this.setClusters(this.catalog.clusters.filter((c) => c.name !== gone));
    if (this.ticks.weights?.has(gone) === true) this.ticks.weights = new Map([...this.ticks.weights].filter(([n]) => n !== gone));
    return `delete ${gone}`;
  }

  private overridesFor(c: Cluster): ReadonlyMap<string, EndpointOverride> {
    return new Map(c.endpoints.map((e) => [keyOf(e), this.r() < 0.1 ? { health: 'UNHEALTHY' as const } : { weight: 1 + Math.floor(this.r() * 500) }]));
  }


  private reroute(): string {
    const listeners = [...this.catalog.listeners];
    if (this.r() < 0.3 && listeners.length < 4) listeners.push(this.listener(`l${this.serial++}`, 11000 + listeners.length, this.catalog.clusters));
    else {
      const k = Math.floor(this.r() * listeners.length);
      listeners[k] = this.listener(listeners[k]!.name, (listeners[k] as { port: number }).port, this.catalog.clusters);
    }
    this.catalog = { ...this.catalog, listeners };
    return 'listener routes';
  }

  private groups(): string {
    const groups: NodeGroup[] = [...this.catalog.nodeGroups];
    const names = this.catalog.clusters.map((c) => c.name);
    const selection = (): string[] => {
      // A few (the looked-up selection) or most (the walked one), now and then a name no cluster has.
      const share = this.r() < 0.5 ? 0.03 : 0.7;
      const out = names.filter(() => this.r() < share);
      if (this.r() < 0.2) out.push('no-such-cluster');
      return out;
    };
    const listeners = (): string[] => this.catalog.listeners.filter(() => this.r() < 0.5).map((l) => l.name);
    const choice = this.r();
    if (choice < 0.4 && groups.length < 4) groups.push({ nodeCluster: `g${this.serial++}`, listeners: listeners(), clusters: selection() });
    else if (choice < 0.6 && groups.length > 0) groups.splice(Math.floor(this.r() * groups.length), 1);
    else if (groups.length > 0) {
      const k = Math.floor(this.r() * groups.length);
      groups[k] = { ...groups[k]!, listeners: listeners(), clusters: selection() };
    }
    this.catalog = { ...this.catalog, nodeGroups: groups };
    return 'node groups';
  }

  private shuffle(): string {
    this.setClusters(this.ordered ? shuffled(this.r, this.catalog.clusters) : [...this.catalog.clusters].sort(byName));
    this.ordered = !this.ordered;
    return this.ordered ? 'back in name order' : 'shuffled';
  }

  /** Every cluster a new, equal object (a store that re-read its data). */
  private clone(): string {
    this.setClusters(reread(this.catalog.clusters));
    return 'every cluster re-read';
  }
}

function groupsOf(catalog: Catalog): string[] {
  return ['', ...catalog.nodeGroups.map((g) => g.nodeCluster)];
}

describe('incremental publish over random write sequences', () => {
  const cases: [seed: number, clusters: number][] = [
    [1, 40],
    [2, 120],
    [3, 300],
    [4, 64],
    [5, 200],
    [6, 3],
    [7, 8],
  ];
  it.each(cases)('seed %i, %i clusters: every step equals a whole translation, in the translator and in the cache', (seed, size) => {
    const fleet = new Fleet(seed, size);
    const translator = new Translator();
    const incremental = new XdsCache();
    const whole = new XdsCache();
    /** Per group and type, the wildcard bodies each cache gave at the step before (what a stream holds). */
    const held = new Map<string, [SotwBody, SotwBody]>();
    for (let k = 0; k < 90; k++) {
      const label = k === 0 ? 'start' : fleet.step();
      const at = `seed ${seed} step ${k}: ${label}`;
      const { catalog, weights } = fleet;
      const out = translator.translate(catalog, weights);
      const reference = translate(catalog, weights);
      expect(shape(out), at).toEqual(shape(reference));
      const changed = incremental.update(out);
      const changedWhole = whole.update(reference);
      // Versions are a function of the catalog alone (two replicas agree whatever their histories,
      // orders included): a fresh cache of this step's whole translation holds the same.
      const fresh = new XdsCache();
      fresh.update(reference);
      expect([...changed].sort(), at).toEqual([...changedWhole].sort());
      for (const group of groupsOf(catalog)) {
        const a = incremental.snapshotFor(group);
        const b = whole.snapshotFor(group);
        expect(a.version, `${at} [${group}]`).toBe(b.version);
        expect(a.version, `${at} [${group}] fresh`).toBe(fresh.snapshotFor(group).version);
        for (const type of PUSH_ORDER) {
          expect(a.typeVersion(type), `${at} [${group}] ${type}`).toBe(b.typeVersion(type));
          // A wildcard, every name (as an Envoy names its clusters' assignments), and a few names with one that does not exist.
          const names = [...b.resources(type).keys()];
          for (const sub of [subscription(type, true, []), subscription(type, false, names), subscription(type, false, [...names.filter((_, i) => i % 5 === 0), 'no-such-resource'])]) {
            const [x, y] = [a.sotwBody(type, sub), b.sotwBody(type, sub)];
            expect(x.version, `${at} [${group}] ${type} ${sub.key.slice(0, 60)}`).toBe(y.version);
            expect(Buffer.from(x.bytes).equals(Buffer.from(y.bytes)), `${at} [${group}] ${type} body`).toBe(true);
          }
          // What a stream holding the last step's body is sent: the changed (EDS, RDS) or the body with the dropped kept (CDS, LDS).
          const wildcard = subscription(type, true, []);
          const now = [a.sotwBody(type, wildcard), b.sotwBody(type, wildcard)] as const;
          const before = held.get(`${group}|${type}`);
          if (before !== undefined) {
            const incremental = type === TYPE.endpoint || type === TYPE.route;
            const [x, y] = incremental ? [a.sotwUpdate(type, before[0], now[0]), b.sotwUpdate(type, before[1], now[1])] : [a.keepRemoved(type, before[0], now[0]), b.keepRemoved(type, before[1], now[1])];
            expect(x?.names, `${at} [${group}] ${type} update`).toEqual(y?.names);
            expect(x?.version, `${at} [${group}] ${type} update version`).toBe(y?.version);
            // And what the protocol asks for, worked out here from the two bodies.
            const was = new Map(before[1].resources.map((r) => [r.name, r.version]));
            const expected = incremental
              ? now[1].resources.filter((r) => was.get(r.name) !== r.version).map((r) => r.name)
              : [...now[1].names, ...[...was.keys()].filter((n) => !now[1].names.includes(n))].sort();
            const dropped = [...was.keys()].some((n) => !now[1].names.includes(n));
            expect(x?.names ?? [], `${at} [${group}] ${type} update names`).toEqual(incremental || dropped ? expected : []);
          }
          held.set(`${group}|${type}`, [now[0], now[1]]);
        }
      }
    }
  });
});
