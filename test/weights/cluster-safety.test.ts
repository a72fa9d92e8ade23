import { describe, expect, it } from 'vitest';
import { WeightEngine } from '../../src/balancing/engine/weight-engine.js';
import { AdaptiveWeights } from '../../src/weights/adaptive-weights.js';
import { clusterSafety } from '../../src/weights/cluster-safety.js';
import { SAFETY_DEFAULTS } from '../../src/catalog/policy.js';
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
  it('with Envoy slow start a newcomer joins whole (Envoy ramps it), unless the cluster sets its own share; without, the engine default', () => {
    const slowStart = { windowMs: 20_000 };
    expect(clusterSafety({ safety: undefined, slowStart })).toEqual({ newcomerShare: 1 });
    expect(clusterSafety({ safety: { maxStepRatio: 2 }, slowStart })).toEqual({ maxStepRatio: 2, newcomerShare: 1 });
    const own = { newcomerShare: 0.5 };
    expect(clusterSafety({ safety: own, slowStart })).toBe(own);
    expect(clusterSafety({ safety: undefined })).toBeUndefined();
  });

  it('reaches the engine: an endpoint added to a serving cluster is published at that share of the others', () => {
    expect(newcomerRatio({ lbPolicy: 'LEAST_REQUEST' })).toBeCloseTo(SAFETY_DEFAULTS.newcomerShare, 1);
    expect(newcomerRatio({ lbPolicy: 'ROUND_ROBIN' })).toBeCloseTo(SAFETY_DEFAULTS.newcomerShare, 1);
    expect(newcomerRatio({ lbPolicy: 'LEAST_REQUEST', safety: { newcomerShare: 0.5 } })).toBeCloseTo(0.5, 1);
    expect(newcomerRatio({ lbPolicy: 'LEAST_REQUEST', slowStart: { windowMs: 20_000 } })).toBeCloseTo(1, 1);
  });
});
