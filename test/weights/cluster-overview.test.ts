import { describe, expect, it } from 'vitest';
import type { ClusterTick, PublishedHealth } from '../../src/balancing/engine/types.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
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
    expect(clusterOverview(cluster, undefined, new Map(), () => 'UNHEALTHY', 2)).toEqual({
      cluster: 'web', lbPolicy: 'RING_HASH', policy: 'ewma',
      endpoints: 5, inRotation: 2, unhealthy: 2, draining: 1, computed: false, failStatic: false, missingSignals: 2,
    });
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

/** Counts of /v1/weights/{cluster}'s entries (explain's endpoints with publishedHealthOf), as an operator would add them up. */
function countsOf(a: AdaptiveWeights, name: string): { endpoints: number; inRotation: number; unhealthy: number; draining: number } {
  const keys = [...(a.explain(name)?.tick.weights.keys() ?? [])];
  const health = a.publishedHealthOf(name);
  const draining = keys.filter((k) => health(k) === 'DRAINING').length;
  const unhealthy = keys.filter((k) => health(k) !== 'DRAINING' && !inRotation(health(k))).length;
  return { endpoints: keys.length, inRotation: keys.length - unhealthy - draining, unhealthy, draining };
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

  it('a DEGRADED endpoint the probes fail is published DEGRADED, in rotation: counted so, as /v1/weights/{cluster} shows it', () => {
    const a = new AdaptiveWeights();
    a.setCatalog(catalog);
    for (let t = 1; t <= 3; t++) a.observeProbe('web', '10.0.0.1:80', { at: t * 1_000, ok: false });
    a.tick(4_000);
    expect(a.publishedHealthOf('web')('10.0.0.1:80')).toBe('DEGRADED');
    const [line] = a.overview();
    expect(line).toMatchObject(countsOf(a, 'web'));
    expect(line).toMatchObject({ endpoints: 4, inRotation: 3, unhealthy: 0, draining: 1 });
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
    expect(line).toMatchObject(countsOf(a, 'web'));
    expect(line).toMatchObject({ endpoints: 4, inRotation: 2, unhealthy: 1, draining: 1, computed: true });
    // The owner's lifting its UNHEALTHY is counted at once.
    a.setRemote('web', new Map([...owners, ['10.0.0.2:80', { weight: 2 }]]));
    expect(a.overview()[0]).toMatchObject({ inRotation: 3, unhealthy: 0 });
  });
});
