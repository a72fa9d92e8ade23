import { describe, expect, it } from 'vitest';
import type { ClusterTick, PublishedHealth } from '../../src/balancing/engine/types.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { clusterOverview, declaredOutOfRotation, inRotation } from '../../src/weights/cluster-overview.js';

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
    expect(clusterOverview(cluster, undefined, undefined, declaredOutOfRotation(cluster), 2)).toEqual({
      cluster: 'web', lbPolicy: 'RING_HASH', policy: 'ewma',
      endpoints: 5, inRotation: 2, unhealthy: 2, draining: 1, computed: false, failStatic: false, missingSignals: 2,
    });
  });

  it('after a tick counts the tick\'s endpoints with their published health: declared out stays out, else the engine\'s', () => {
    const declaredOut = declaredOutOfRotation(cluster);
    expect([...declaredOut]).toEqual([['10.0.0.1:80', 'TIMEOUT'], ['10.0.0.2:80', 'DRAINING'], ['10.0.0.3:80', 'UNHEALTHY']]);
    // The engine says HEALTHY for the drained one (it knows only in and out): it stays DRAINING.
    const t = tick({ '10.0.0.2:80': 'HEALTHY', '10.0.0.4:80': 'HEALTHY', '10.0.0.5:80': 'UNHEALTHY' }, true);
    expect(clusterOverview(cluster, t, undefined, declaredOut, 0)).toMatchObject({ endpoints: 3, inRotation: 1, unhealthy: 1, draining: 1, computed: true, failStatic: true });
    // This replica's own health, when given, is counted rather than the tick's (publishedHealth).
    const local = new Map([['10.0.0.4:80', 'UNHEALTHY']]);
    expect(clusterOverview(cluster, t, local, declaredOut, 0)).toMatchObject({ endpoints: 1, inRotation: 0, unhealthy: 1 });
  });
});
