/**
 * A cluster given another error window (ejection.errorWindowMs) rebuilds each endpoint's state
 * from its predecessor, so that the error counts start over under the new window. The latency
 * estimators have nothing to do with that window: rebuilt without them, every endpoint looked
 * unmeasured again under an EWMA policy, its exploration bonus back at full, and the slow
 * endpoint got 25% more traffic for several ticks.
 */
import { describe, expect, it } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { WeightingPolicy } from '../../../src/balancing/engine/types.js';

const ENDPOINTS = [
  { key: '10.0.0.1:80', weight: 1 },
  { key: '10.0.0.2:80', weight: 1 },
  { key: '10.0.0.3:80', weight: 1 },
];
const LATENCY_MS = [200, 200, 2_000];

/** Each tick's weights from 30 ticks on, the cluster written again at tick 30 with `ejection`. */
function weightsAfterWrite(policy: WeightingPolicy, ejection: { errorWindowMs: number } | undefined): string[] {
  const engine = new WeightEngine();
  engine.setCluster('svc', ENDPOINTS, policy);
  const out: string[] = [];
  for (let t = 1; t <= 40; t++) {
    if (t === 30) engine.setCluster('svc', ENDPOINTS, policy, undefined, ejection);
    ENDPOINTS.forEach((ep, i) => engine.observeSample('svc', ep.key, { at: t * 1_000, latencyMs: LATENCY_MS[i] as number, cpu: 0.5 }));
    const tick = engine.tick(t * 1_000).clusters.get('svc');
    if (t >= 30) out.push(`${t}: ${JSON.stringify([...(tick?.weights ?? [])])}`);
  }
  return out;
}

describe('another error window keeps the endpoints\' latency estimators', () => {
  for (const policy of [{ kind: 'ewma' }, { kind: 'blend', parts: { ewma: 0.5, pid: 0.5 } }, { kind: 'pid', setpoint: 'mean', metric: 'cpu-latency' }] as WeightingPolicy[]) {
    it(`${policy.kind}: without errors to count, the weights are those of a write that kept the window`, () => {
      expect(weightsAfterWrite(policy, { errorWindowMs: 8_000 })).toEqual(weightsAfterWrite(policy, undefined));
    });
  }
});
