import { describe, expect, it } from 'vitest';
import type { ClusterTick, PublishedHealth } from '../../src/balancing/engine/types.js';
import type { Catalog } from '../../src/catalog/types.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
import { Registry } from 'prom-client';
import { receivesTraffic } from '../../src/catalog/routable-tier.js';
import { registerLastResorts } from '../../src/telemetry/operator-metrics.js';
import { loadAssignmentResource, publishedEndpoint } from '../../src/xds/translate-clusters.js';
import { clusterOverview, declaredSpecialHealth, inRotation } from '../../src/weights/cluster-overview.js';

const cluster = parseConfig(
  JSON.stringify({
    clusters: [
      {
        name: 'web',
        lbPolicy: 'RING_HASH',
        weighting: { policy: 'ewma' },
        endpoints: ['TIMEOUT', 'DRAINING', 'UNHEALTHY', 'DEGRADED', 'HEALTHY'].map((health, i) => ({ address: `10.0.0.${i + 1}`, port: 80, health })),
      },
    ],
  }),
  'overview.json',
).catalog.clusters[0]!;

function tick(health: Record<string, PublishedHealth>, failStatic = false): ClusterTick {
  const keys = Object.keys(health);
  return { weights: new Map(keys.map((k) => [k, 1])), health: new Map(Object.entries(health)), changed: true, explanations: new Map(), failStatic, setpoint: undefined };
}

describe('clusterOverview', () => {
  it('Envoy takes UNHEALTHY, TIMEOUT and DRAINING out of rotation; HEALTHY, DEGRADED and UNKNOWN stay in', () => {
    for (const h of ['UNHEALTHY', 'TIMEOUT', 'DRAINING']) expect(inRotation(h), h).toBe(false);
    for (const h of ['HEALTHY', 'DEGRADED', 'UNKNOWN', undefined]) expect(inRotation(h), String(h)).toBe(true);
  });

  it('before the first tick counts the catalog\'s endpoints by their declared health', () => {
    expect(clusterOverview(cluster, undefined, declaredSpecialHealth(cluster), undefined, 2)).toEqual({
      cluster: 'web', lbPolicy: 'RING_HASH', policy: 'ewma',
      endpoints: 5, inRotation: 2, unhealthy: 2, draining: 1, computed: false, failStatic: false, missingSignals: 2,
    });
    // Published from elsewhere (another replica owns it, this one never ticked it): the live health by key over the declared.
    const live = (key: string): string | undefined => (key === '10.0.0.5:80' || key === '10.0.0.4:80' ? 'UNHEALTHY' : undefined);
    expect(clusterOverview(cluster, undefined, declaredSpecialHealth(cluster), live, 0)).toMatchObject({ endpoints: 5, inRotation: 0, unhealthy: 4, draining: 1 });
    expect([...declaredSpecialHealth(cluster)]).toEqual([['10.0.0.1:80', 'TIMEOUT'], ['10.0.0.2:80', 'DRAINING'], ['10.0.0.3:80', 'UNHEALTHY'], ['10.0.0.4:80', 'DEGRADED']]);
  });

  it('after a tick counts the tick\'s endpoints by the health given, and says fail-static', () => {
    const t = tick({ '10.0.0.2:80': 'HEALTHY', '10.0.0.4:80': 'HEALTHY', '10.0.0.5:80': 'UNHEALTHY' }, true);
    const special = declaredSpecialHealth(cluster);
    const expected = { endpoints: 3, inRotation: 1, unhealthy: 1, draining: 1, computed: true, failStatic: true };
    // The tick's own health map walked, or any health read by key: the same counts.
    expect(clusterOverview(cluster, t, special, t.health, 0)).toMatchObject(expected);
    expect(clusterOverview(cluster, t, special, (k) => t.health.get(k), 0)).toMatchObject(expected);
    expect(clusterOverview(cluster, t, special, new Map(t.health), 0)).toMatchObject(expected);
  });
});

/** Adds up healths the way an operator would: endpoints, in rotation, unhealthy, draining. */
function tally(healths: readonly (string | undefined)[]): { endpoints: number; inRotation: number; unhealthy: number; draining: number } {
  const draining = healths.filter((h) => h === 'DRAINING').length;
  const unhealthy = healths.filter((h) => h !== 'DRAINING' && !inRotation(h)).length;
  return { endpoints: healths.length, inRotation: healths.length - unhealthy - draining, unhealthy, draining };
}

/** Counts of /v1/weights/{cluster}'s entries (explain's endpoints, each read with publishedHealthOf). */
function countsOf(a: AdaptiveWeights, name: string): ReturnType<typeof tally> {
  const health = a.publishedHealthOf(name);
  return tally([...(a.explain(name)?.tick.weights.keys() ?? [])].map(health));
}

/** Counts of what the translator publishes for the catalog's endpoints (publishedEndpoint over current()). */
function publishedCounts(a: AdaptiveWeights, catalog: Catalog, name: string): ReturnType<typeof tally> {
  const c = catalog.clusters.find((x) => x.name === name)!;
  return tally(c.endpoints.map((e) => publishedEndpoint(e, a.current().get(name)?.get(`${e.address}:${e.port}`)).endpoint.health));
}

describe('AdaptiveWeights.overview', () => {
  const catalog = parseConfig(
    JSON.stringify({
      clusters: [
        {
          name: 'web',
          weighting: { policy: 'pid' },
          endpoints: ['DEGRADED', 'HEALTHY', 'HEALTHY', 'DRAINING'].map((health, i) => ({ address: `10.0.0.${i + 1}`, port: 80, health })),
        },
      ],
    }),
    'overview.json',
  ).catalog;

  it('a DEGRADED endpoint is published DEGRADED (in rotation) while its probes pass, UNHEALTHY once they fail, and counted so, as /v1/weights/{cluster} shows it', () => {
    const a = new AdaptiveWeights();
    a.setCatalog(catalog);
    a.tick(500);
    expect(a.publishedHealthOf('web')('10.0.0.1:80')).toBe('DEGRADED');
    expect(a.overview()[0]).toMatchObject({ ...countsOf(a, 'web'), endpoints: 4, inRotation: 3, unhealthy: 0, draining: 1 });
    for (let t = 1; t <= 3; t++) a.observeProbe('web', '10.0.0.1:80', { at: t * 1_000, ok: false });
    a.tick(4_000);
    expect(a.explain('web')?.tick.health.get('10.0.0.1:80')).toBe('UNHEALTHY'); // the probes did fail it
    expect(a.publishedHealthOf('web')('10.0.0.1:80')).toBe('UNHEALTHY');
    // What the translator publishes for it: the same.
    const declared = catalog.clusters[0]!.endpoints[0]!;
    expect(publishedEndpoint(declared, a.current().get('web')?.get('10.0.0.1:80')).endpoint.health).toBe('UNHEALTHY');
    expect(a.overview()[0]).toMatchObject({ ...countsOf(a, 'web'), ...publishedCounts(a, catalog, 'web'), endpoints: 4, inRotation: 2, unhealthy: 1, draining: 1 });
  });

  it('a cluster another replica owns: counted with its owner\'s health, fresh or after this replica ticked it, as /v1/weights/{cluster} shows it', () => {
    const a = new AdaptiveWeights();
    a.setCatalog(catalog);
    a.tick(1_000); // owned here first: a local tick this replica keeps
    a.setOwnership(() => false);
    const owners = new Map([
      ['10.0.0.1:80', { weight: 3 }],
      ['10.0.0.2:80', { weight: 2, health: 'UNHEALTHY' as const }],
      ['10.0.0.3:80', { weight: 1 }],
      ['10.0.0.4:80', { weight: 1 }],
    ]);
    a.setRemote('web', owners);
    a.tick(2_000);
    expect(a.publishedHealthOf('web')('10.0.0.2:80')).toBe('UNHEALTHY');
    const [line] = a.overview();
    expect(line).toMatchObject({ ...countsOf(a, 'web'), ...publishedCounts(a, catalog, 'web') });
    expect(line).toMatchObject({ endpoints: 4, inRotation: 2, unhealthy: 1, draining: 1, computed: true });
    // The owner lifts its UNHEALTHY: published at this replica's next tick, counted so.
    a.setRemote('web', new Map([...owners, ['10.0.0.2:80', { weight: 2 }]]));
    a.tick(3_000);
    expect(a.overview()[0]).toMatchObject({ ...publishedCounts(a, catalog, 'web'), inRotation: 3, unhealthy: 0 });
  });

  it('a static cluster another replica owns (its owner publishes health only): counted as published, not from this replica\'s stale tick', () => {
    const statics = parseConfig(
      JSON.stringify({ clusters: [{ name: 'files', endpoints: [1, 2, 3].map((i) => ({ address: `10.1.0.${i}`, port: 80 })) }] }),
      'statics.json',
    ).catalog;
    for (const tickedHere of [false, true]) {
      const a = new AdaptiveWeights();
      a.setCatalog(statics);
      if (tickedHere) a.tick(1_000); // owned here first: every endpoint HEALTHY in this replica's tick
      a.setOwnership(() => false);
      a.setRemote('files', new Map([['10.1.0.2:80', { health: 'UNHEALTHY' as const }]]));
      a.tick(2_000);
      expect(a.publishedHealthOf('files')('10.1.0.2:80'), `ticked here: ${tickedHere}`).toBe('UNHEALTHY');
      expect(a.overview()[0], `ticked here: ${tickedHere}`).toMatchObject({ ...publishedCounts(a, statics, 'files'), endpoints: 3, inRotation: 2, unhealthy: 1 });
    }
  });
});

/** What proxies route to in `c`'s assignment (with the weight loop's `overrides`): each endpoint sent HEALTHY, UNKNOWN or DEGRADED, by key. */
function routedByProxies(c: Catalog['clusters'][number], overrides?: Parameters<typeof loadAssignmentResource>[1]): Set<string> {
  type Sent = { lb_endpoints: { health_status?: string; endpoint: { address: { socket_address: { address: string; port_value: number } } } }[] };
  const groups = loadAssignmentResource(c, overrides).endpoints as Sent[];
  const routed = new Set<string>();
  for (const g of groups) {
    for (const e of g.lb_endpoints) {
      const a = e.endpoint.address.socket_address;
      if (['HEALTHY', 'UNKNOWN', 'DEGRADED'].includes(e.health_status ?? 'UNKNOWN')) routed.add(`${a.address}:${a.port_value}`);
    }
  }
  return routed;
}

describe('a cluster with nothing routable (lastResort)', () => {
  const HEALTHS = ['HEALTHY', 'UNKNOWN', 'DEGRADED', 'DRAINING', 'UNHEALTHY', 'TIMEOUT'] as const;

  it('is said by the overview exactly when the translator sends the best tier left as UNKNOWN, naming the endpoints proxies then route to (every mix of 3 healths)', () => {
    for (const a of HEALTHS) for (const b of HEALTHS) for (const d of HEALTHS) {
      const healths = [a, b, d];
      const c = parseConfig(
        JSON.stringify({ clusters: [{ name: 'dark', endpoints: healths.map((health, i) => ({ address: `10.9.0.${i + 1}`, port: 80, health })) }] }),
        'dark.json',
      ).catalog.clusters[0]!;
      const line = clusterOverview(c, undefined, declaredSpecialHealth(c), undefined, 0);
      const routable = healths.some((h) => h === 'HEALTHY' || h === 'UNKNOWN');
      expect(line.lastResort !== undefined, healths.join()).toBe(!routable);
      const routed = routedByProxies(c);
      const told = c.endpoints.filter((e) => receivesTraffic(e.health, line.lastResort)).map((e) => `${e.address}:${e.port}`);
      expect(told, `${healths.join()}: lastResort ${String(line.lastResort)}`).toEqual([...routed]);
    }
  });

  it('after a tick whose probes took the HEALTHY endpoints out, a DEGRADED one left: the overview, the gauge and the translator agree', () => {
    const catalog = parseConfig(
      JSON.stringify({
        clusters: [
          { name: 'dark', weighting: { policy: 'pid' }, endpoints: ['DEGRADED', 'HEALTHY', 'HEALTHY'].map((health, i) => ({ address: `10.9.1.${i + 1}`, port: 80, health })) },
          { name: 'lit', endpoints: [{ address: '10.9.2.1', port: 80 }] },
        ],
      }),
      'dark.json',
    ).catalog;
    const a = new AdaptiveWeights();
    a.setCatalog(catalog);
    a.tick(500);
    expect(a.overview().map((l) => l.lastResort)).toEqual([undefined, undefined]);
    expect(a.lastResorts()).toEqual([]);
    for (let t = 1; t <= 3; t++) for (const i of [2, 3]) a.observeProbe('dark', `10.9.1.${i}:80`, { at: t * 1_000, ok: false });
    a.tick(4_000);
    // The engine does not fail static (the DEGRADED endpoint may serve); proxies are sent it as UNKNOWN, alone.
    expect([...routedByProxies(catalog.clusters[0]!, a.current().get('dark'))]).toEqual(['10.9.1.1:80']);
    expect(a.overview()[0]).toMatchObject({ cluster: 'dark', inRotation: 1, unhealthy: 2, failStatic: false, lastResort: 'DEGRADED' });
    expect(a.overview()[1]?.lastResort).toBeUndefined();
    // The gauge's source (read at every scrape, stopping at each cluster's first routable endpoint) agrees.
    expect(a.lastResorts()).toEqual([{ cluster: 'dark', lastResort: 'DEGRADED' }]);
    const registry = new Registry();
    registerLastResorts(registry, () => a.lastResorts());
    return registry.metrics().then((text) => {
      expect(text).toContain('# HELP fulcrum_cluster_last_resort ');
      expect(text).toContain('fulcrum_cluster_last_resort{cluster="dark",sent="DEGRADED"} 1');
      expect(text).not.toContain('cluster="lit"');
    });
  });
});
