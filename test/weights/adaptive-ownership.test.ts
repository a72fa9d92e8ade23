import { describe, expect, it } from 'vitest';
import { WeightEngine } from '../../src/balancing/engine/weight-engine.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
import { cluster, endpoint } from '../catalog/helpers.js';

const catalog = {
  clusters: ['a', 'b'].map((name) => cluster(name, [endpoint('10.0.0.1'), endpoint('10.0.0.2')], { weighting: { kind: 'pid', setpoint: 'mean', metric: 'cpu' } })),
  listeners: [],
  nodeGroups: [],
};
const remoteB = new Map([['10.0.0.1:8080', { weight: 7 }], ['10.0.0.2:8080', { weight: 3 }]]);

function adaptive(): AdaptiveWeights {
  const a = new AdaptiveWeights(new WeightEngine());
  a.setCatalog(catalog);
  return a;
}

describe('AdaptiveWeights in replicated mode', () => {
  it('ticks only owned clusters and serves the owner\'s overrides for the others', () => {
    const a = adaptive();
    a.setOwnership((c) => c === 'a');
    a.setRemote('b', remoteB);
    const out = a.tick(1_000);
    expect(out?.get('b')).toEqual(remoteB);
    expect(out?.get('a')?.size).toBe(2);
    expect(a.explain('a')?.explanations.size).toBe(2);
    // The admin API shows the owner's weights for b, without explanations.
    expect(a.explain('b')?.tick.weights).toEqual(new Map([['10.0.0.1:8080', 7], ['10.0.0.2:8080', 3]]));
    expect(a.explain('b')?.explanations.size).toBe(0);
    expect(a.exportState('a')).toBeDefined();
    expect(a.exportState('b')).toBeUndefined();
  });

  it('publishes a remote change at the next tick, and nothing when nothing changed', () => {
    const a = adaptive();
    a.setOwnership(() => false);
    a.setRemote('b', remoteB);
    expect(a.tick(1_000)?.get('b')).toEqual(remoteB);
    expect(a.tick(2_000)).toBeUndefined();
    const next = new Map([['10.0.0.1:8080', { weight: 5 }], ['10.0.0.2:8080', { weight: 5 }]]);
    a.setRemote('b', next);
    expect(a.tick(3_000)?.get('b')).toEqual(next);
  });

  it('keeps serving what it published for a cluster it stops owning until the new owner publishes', () => {
    const a = adaptive();
    const first = a.tick(1_000);
    a.setOwnership(() => false);
    a.setRemote('a', new Map([['10.0.0.1:8080', { weight: 1 }]]));
    a.setRemote('a', undefined);
    expect(a.tick(2_000)?.get('a')).toEqual(first?.get('a'));
    expect(a.explain('a')?.tick.weights).toBeDefined();
  });

  it('the scrape-time gauges read another owner\'s cluster from its overrides: its last resort, and no fail-static or freshness line of its own', () => {
    const a = new AdaptiveWeights(new WeightEngine());
    const pid = { weighting: { kind: 'pid', setpoint: 'mean', metric: 'cpu' } } as const;
    a.setCatalog({ ...catalog, clusters: [catalog.clusters[0]!, cluster('b', [endpoint('10.0.0.1', 8080, { health: 'DEGRADED' }), endpoint('10.0.0.2')], pid)] });
    // This replica ticked b while it owned it: that tick must not speak for b once another replica owns it.
    a.tick(1_000);
    a.setOwnership((c) => c === 'a');
    // The owner's probes took the HEALTHY one out: only the DEGRADED one is left to route to.
    a.setRemote('b', new Map([['10.0.0.1:8080', { weight: 7 }], ['10.0.0.2:8080', { health: 'UNHEALTHY' as const }]]));
    a.tick(2_000);
    expect(a.lastResorts()).toEqual([{ cluster: 'b', lastResort: 'DEGRADED' }]);
    expect(a.signalsNotFresh().map((l) => l.cluster)).toEqual(['a']);
    expect(a.failStaticClusters()).toEqual([]);
  });
});
