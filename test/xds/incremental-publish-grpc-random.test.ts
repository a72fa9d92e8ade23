import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../examples/backends/poisson-load.js';
import type { Catalog, Cluster, Endpoint, HealthStatus, LbPolicy, NodeGroup } from '../../src/catalog/types.js';
import type { EndpointOverride, WeightOverrides } from '../../src/catalog/weight-overrides.js';
import { RandomWeights } from '../support/random-weights.js';
import { byName, reread, runWeighted, shuffled, type WeightedWrite } from '../support/random-writes.js';
import { subscription, XdsCache } from '../../src/xds/cache.js';
import { PUSH_ORDER } from '../../src/xds/envoy-api.js';
import type { ResourceSet } from '../../src/xds/resource-set.js';
import { translate, Translator, type TranslationForms } from '../../src/xds/translator.js';

/**
 * The incremental translator with gRPC's form of the assignments (grpc-assignments.ts) against
 * whole translations, over random sequences of every kind of catalog change: endpoint writes
 * (weights, health, priority, locality), weight ticks, clusters created, deleted, renamed and
 * reordered, node groups, a cluster's policy flipping whether gRPC clients get it split, big
 * clusters (> BIG_CLUSTER_ENDPOINTS) encoded ahead through bigPending/prepare as the publisher
 * does, and the form turned on part way (the first gRPC client). After every step both forms of
 * every group equal a fresh Translator's, byte for byte, and so do the caches fed by each.
 */

const ADAPTIVE = { kind: 'pid', setpoint: 'mean' } as Cluster['weighting'];
const POLICIES: readonly LbPolicy[] = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV', 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN'];
const HEALTHS: readonly HealthStatus[] = ['HEALTHY', 'UNKNOWN', 'UNHEALTHY', 'DRAINING', 'DEGRADED', 'TIMEOUT'];
const BIG = 1_100;

const keyOf = (e: { address: string; port: number }): string => `${e.address}:${e.port}`;

/** Every type's names (in order) and hashes, per group key. */
function shape(groups: ReadonlyMap<string, ResourceSet>): unknown {
  return [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([g, set]) => [g, PUSH_ORDER.map((t) => [...(set.get(t) ?? [])].map(([name, r]) => `${name}=${r.hash}`))]);
}

/** A fleet of clusters of every policy, and its writes, drawn from one seed. */
class Fleet {
  catalog: Catalog;
  private readonly ticks: RandomWeights;
  private serial = 0;
  private readonly r: () => number;

  get weights(): WeightOverrides | undefined {
    return this.ticks.weights;
  }

  constructor(seed: number, size: number, big: number) {
    this.r = seededRandom(seed);
    this.ticks = new RandomWeights(this.r, (c) => this.overridesFor(c));
    const clusters = [...Array.from({ length: size }, () => this.newCluster(1 + Math.floor(this.r() * 5))), ...Array.from({ length: big }, () => this.newCluster(BIG))].sort(byName);
    this.catalog = { clusters, listeners: [], nodeGroups: [] };
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.r() * xs.length)] as T;
  }

  private endpoint(n: number, k: number): Endpoint {
    const i = n * 2048 + k;
    return {
      address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 8080, weight: this.r() < 0.5 ? 1 : 1 + Math.floor(this.r() * 5),
      priority: this.r() < 0.85 ? 0 : 2, health: this.r() < 0.85 ? 'HEALTHY' : this.pick(HEALTHS),
      locality: { region: 'eu', zone: `z${k % 3}`, subZone: this.r() < 0.8 ? '' : 'rack' },
    };
  }

  private newCluster(size: number): Cluster {
    const n = this.serial++;
    const name = `svc-${Math.floor(this.r() * 1e6).toString(36)}-${n}`;
    return this.withPolicy({ name, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: true, weighting: { kind: 'static' }, endpoints: Array.from({ length: size }, (_, k) => this.endpoint(n, k)) });
  }

  /** `c` under a policy drawn anew: one that gRPC clients get split or not (grpc-assignments.ts splitsForGrpc). */
  private withPolicy(c: Cluster): Cluster {
    const lbPolicy = this.pick(POLICIES);
    const rest = { ...c, lbPolicy, weighting: this.r() < 0.5 ? ADAPTIVE : ({ kind: 'static' } as const) };
    delete (rest as { ringHash?: unknown }).ringHash;
    delete (rest as { maglev?: unknown }).maglev;
    if (lbPolicy === 'RING_HASH') return { ...rest, ringHash: { virtualNodesPerHost: 100, hashFunction: 'XX_HASH' } };
    if (lbPolicy === 'MAGLEV') return { ...rest, maglev: { tableSize: 65537 } };
    return rest;
  }

  private setClusters(clusters: readonly Cluster[]): void {
    this.catalog = { ...this.catalog, clusters };
  }

  private replaceAt(i: number, by: (c: Cluster) => Cluster): string {
    this.setClusters(this.catalog.clusters.map((c, k) => (k === i ? by(c) : c)));
    return this.catalog.clusters[i]?.name ?? '';
  }

  private anyIndex(): number {
    return Math.floor(this.r() * this.catalog.clusters.length);
  }

  /** One write, chosen at random; returns its label. */
  step(): string {
    const writes: WeightedWrite[] = [
      [25, () => this.endpointWrite()],
      [8, () => `policy of ${this.replaceAt(this.anyIndex(), (c) => this.withPolicy(c))}`],
      [4, () => `even weights in ${this.replaceAt(this.anyIndex(), (c) => ({ ...c, endpoints: c.endpoints.map((e) => ({ ...e, weight: 3 })) }))}`],
      [8, () => this.create()],
      [6, () => this.remove()],
      [4, () => this.rename()],
      [12, () => this.ticks.few(this.catalog.clusters)],
      [4, () => this.ticks.most(this.catalog.clusters)],
      [3, () => this.ticks.same()],
      [6, () => this.groups()],
      [3, () => this.shuffle()],
      [2, () => this.clone()],
      [2, () => 'nothing'],
    ];
    return runWeighted(this.r, writes);
  }

  private endpointWrite(): string {
    return `endpoint write ${this.replaceAt(this.anyIndex(), (c) => {
      const endpoints = [...c.endpoints];
      const k = Math.floor(this.r() * endpoints.length);
      const e = endpoints[k] as Endpoint;
      const choice = this.r();
      if (choice < 0.4 || endpoints.length === 1) endpoints[k] = { ...e, weight: 1 + Math.floor(this.r() * 9) };
      else if (choice < 0.6) endpoints[k] = { ...e, health: this.pick(HEALTHS) };
      else if (choice < 0.7) endpoints[k] = { ...e, priority: e.priority === 0 ? 1 : 0 };
      else if (choice < 0.8) endpoints[k] = { ...e, locality: { ...e.locality, zone: `z${Math.floor(this.r() * 4)}` } };
      else if (choice < 0.9) endpoints.splice(k, 1);
      else endpoints.push(this.endpoint(this.serial++, 0));
      return { ...c, endpoints };
    })}`;
  }

  private create(): string {
    const c = this.newCluster(this.r() < 0.05 ? BIG : 1 + Math.floor(this.r() * 5));
    this.setClusters(this.r() < 0.8 ? [...this.catalog.clusters, c].sort(byName) : [...this.catalog.clusters, c]);
    return `create ${c.name}`;
  }

  private remove(): string {
    if (this.catalog.clusters.length < 3) return 'remove (none)';
    const gone = this.pick(this.catalog.clusters).name;
    this.setClusters(this.catalog.clusters.filter((c) => c.name !== gone));
    return `delete ${gone}`;
  }

  private rename(): string {
    const i = this.anyIndex();
    const was = this.catalog.clusters[i]?.name;
    const name = `renamed-${this.serial++}`;
    this.replaceAt(i, (c) => ({ ...c, name }));
    if (this.r() < 0.5) this.setClusters([...this.catalog.clusters].sort(byName));
    return `rename ${was} to ${name}`;
  }

  private overridesFor(c: Cluster): ReadonlyMap<string, EndpointOverride> {
    return new Map(c.endpoints.map((e) => [keyOf(e), this.r() < 0.1 ? { health: 'UNHEALTHY' as const } : { weight: 1 + Math.floor(this.r() * (this.r() < 0.05 ? 4e9 : 500)) }]));
  }


  private groups(): string {
    const groups: NodeGroup[] = [...this.catalog.nodeGroups];
    const selection = (): string[] => this.catalog.clusters.map((c) => c.name).filter(() => this.r() < (this.r() < 0.5 ? 0.05 : 0.7));
    const choice = this.r();
    if (choice < 0.4 && groups.length < 4) groups.push({ nodeCluster: `g${this.serial++}`, listeners: [], clusters: selection() });
    else if (choice < 0.6 && groups.length > 0) groups.splice(Math.floor(this.r() * groups.length), 1);
    else if (groups.length > 0) {
      const k = Math.floor(this.r() * groups.length);
      groups[k] = { ...(groups[k] as NodeGroup), clusters: selection() };
    }
    this.catalog = { ...this.catalog, nodeGroups: groups };
    return 'node groups';
  }

  private shuffle(): string {
    this.setClusters(shuffled(this.r, this.catalog.clusters));
    return 'shuffled';
  }

  private clone(): string {
    this.setClusters(reread(this.catalog.clusters));
    return 'every cluster re-read';
  }
}

/**
 * What the publisher does for one publication: encode ahead what bigPending names, then translate.
 * `ahead`: the forms when the encoding ahead started (the first gRPC client may connect meanwhile).
 */
async function publish(t: Translator, catalog: Catalog, weights: WeightOverrides | undefined, forms: TranslationForms, ahead: TranslationForms): Promise<{ out: Map<string, ResourceSet>; encodedAhead: number }> {
  const big = t.bigPending(catalog, weights, ahead);
  if (big.length > 0) await t.prepare(big, weights, async () => undefined, ahead);
  return { out: t.translate(catalog, weights, undefined, forms), encodedAhead: big.length };
}

describe('incremental publish with gRPC\'s form, over random write sequences', () => {
  const cases: [seed: number, clusters: number, big: number][] = [
    [11, 12, 0],
    [12, 40, 1],
    [13, 90, 0],
    [14, 6, 2],
    [15, 25, 0],
  ];
  it.each(cases)('seed %i, %i small and %i big clusters: both forms of every group equal a whole translation at every step', async (seed, size, big) => {
    const fleet = new Fleet(seed, size, big);
    const translator = new Translator();
    const incremental = new XdsCache();
    const whole = new XdsCache();
    const turnOn = 5 + (seed % 10);
    let aheadWithGrpc = 0;
    for (let k = 0; k < 70; k++) {
      const label = k === 0 ? 'start' : fleet.step();
      const forms = { grpc: k >= turnOn };
      const at = `seed ${seed} step ${k} (${forms.grpc ? 'gRPC on' : 'Envoy only'}): ${label}`;
      const { catalog, weights } = fleet;
      const { out, encodedAhead } = await publish(translator, catalog, weights, forms, { grpc: k > turnOn });
      if (k > turnOn) aheadWithGrpc += encodedAhead;
      const reference = translate(catalog, weights, undefined, forms);
      expect(shape(out), at).toEqual(shape(reference));
      expect([...incremental.update(out)].sort(), at).toEqual([...whole.update(reference)].sort());
      for (const group of ['', ...catalog.nodeGroups.map((g) => g.nodeCluster)]) {
        for (const form of ['envoy', 'grpc'] as const) {
          const [a, b] = [incremental.snapshotFor(group, form), whole.snapshotFor(group, form)];
          expect(a.group, `${at} [${group}] ${form}`).toBe(b.group);
          expect(a.version, `${at} [${group}] ${form}`).toBe(b.version);
          for (const type of PUSH_ORDER) {
            const sub = subscription(type, true, []);
            expect(Buffer.from(a.sotwBody(type, sub).bytes).equals(Buffer.from(b.sotwBody(type, sub).bytes)), `${at} [${group}] ${form} ${type}`).toBe(true);
          }
        }
      }
    }
    // The seeds with big clusters take the encoding-ahead path with gRPC's form on.
    if (big > 0) expect(aheadWithGrpc).toBeGreaterThan(0);
  });
});
