import { describe, expect, it } from 'vitest';
import { WeightEngine } from '../../src/balancing/engine/weight-engine.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
import { clusterSafety } from '../../src/weights/cluster-safety.js';
import { LEAST_REQUEST_NEWCOMER_SHARE } from '../../src/catalog/policy.js';
import type { Catalog, Cluster } from '../../src/catalog/types.js';
import { cluster, endpoint } from '../catalog/helpers.js';

const PID = { kind: 'pid', setpoint: 'mean', metric: 'cpu' } as const;
const web = (n: number, fields: Partial<Cluster>): Cluster =>
  cluster('web', Array.from({ length: n }, (_, i) => endpoint(`10.0.0.${i + 1}`)), { weighting: PID, ...fields });
const catalog = (c: Cluster): Catalog => ({ clusters: [c], listeners: [], nodeGroups: [] });

/** The newcomer's published weight ÷ a continuing endpoint's, at the tick after it was added to a serving cluster. */
function newcomerRatio(fields: Partial<Cluster>): number {
  const a = new AdaptiveWeights(new WeightEngine());
  a.setCatalog(catalog(web(3, fields)));
  a.tick(1_000);
  a.setCatalog(catalog(web(4, fields)));
  const w = a.tick(2_000)?.get('web');
  return (w?.get('10.0.0.4:8080')?.weight ?? Number.NaN) / (w?.get('10.0.0.1:8080')?.weight ?? Number.NaN);
}

describe('clusterSafety: the safety settings a catalog cluster gives the engine', () => {
  it('under LEAST_REQUEST a newcomer starts at a quarter unless the cluster sets its own share; elsewhere whole', () => {
    expect(clusterSafety({ lbPolicy: 'LEAST_REQUEST', safety: undefined })).toEqual({ newcomerShare: LEAST_REQUEST_NEWCOMER_SHARE });
    expect(clusterSafety({ lbPolicy: 'LEAST_REQUEST', safety: { maxStepRatio: 2 } })).toEqual({ maxStepRatio: 2, newcomerShare: LEAST_REQUEST_NEWCOMER_SHARE });
    const own = { newcomerShare: 1 };
    expect(clusterSafety({ lbPolicy: 'LEAST_REQUEST', safety: own })).toBe(own);
    expect(clusterSafety({ lbPolicy: 'ROUND_ROBIN', safety: undefined })).toBeUndefined();
  });

  it('reaches the engine: an endpoint added to a serving cluster is published at that share of the others', () => {
    expect(newcomerRatio({ lbPolicy: 'LEAST_REQUEST' })).toBeCloseTo(LEAST_REQUEST_NEWCOMER_SHARE, 1);
    expect(newcomerRatio({ lbPolicy: 'LEAST_REQUEST', safety: { newcomerShare: 0.5 } })).toBeCloseTo(0.5, 1);
    expect(newcomerRatio({ lbPolicy: 'ROUND_ROBIN' })).toBeCloseTo(1, 1);
  });
});
