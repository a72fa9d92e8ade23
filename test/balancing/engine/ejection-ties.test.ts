/**
 * Which of several equally bad endpoints the outlier detector ejects when maxEjectedRatio leaves
 * room for fewer: the same key whatever the order the cluster lists them in (found by
 * churn-properties.test.ts: two endpoints failing every request alike, reordered, swapped).
 */
import { describe, expect, it } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { ClusterTick, Sample } from '../../../src/balancing/engine/types.js';

describe('ties between endpoints are broken by key, not by position', () => {
  /** Four endpoints, `failing` two of them failing alike; the key the outlier detector ejects (the cap allows one). */
  function ejectedOf(order: readonly string[], sample: (key: string, at: number) => Sample): string[] {
    const engine = new WeightEngine();
    engine.setCluster('svc', order.map((key) => ({ key, weight: 1 })), { kind: 'pid', setpoint: 'mean', metric: 'cpu' });
    let tick: ClusterTick | undefined;
    for (let t = 1; t <= 3; t++) {
      for (const key of order) engine.observeSample('svc', key, sample(key, t * 1_000));
      tick = engine.tick(t * 1_000).clusters.get('svc');
    }
    return [...(tick?.health ?? [])].filter(([, h]) => h === 'UNHEALTHY').map(([k]) => k).sort();
  }

  const failing = new Set(['10.0.0.1:80', '10.0.0.2:80']);
  const keys = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80'];

  it('two endpoints failing every request alike: the same one is ejected whatever their order', () => {
    const sample = (key: string, at: number): Sample => ({ at, cpu: 0.3, rps: 40, errors: failing.has(key) ? 40 : 0 });
    const first = ejectedOf(keys, sample);
    expect(first).toHaveLength(1);
    expect(ejectedOf([keys[1], keys[0], keys[2], keys[3]] as string[], sample)).toEqual(first);
  });

  // peerInflight 0: the peers answer at once, and the stall is infinitely many times their latency (severity Infinity).
  for (const peerInflight of [4, 0]) {
    it(`two endpoints stalled alike (peers holding ${peerInflight} in progress): the same one is ejected whatever their order`, () => {
      const sample = (key: string, at: number): Sample =>
        failing.has(key)
          ? { at, cpu: 0.3, rps: 40, errors: 0, successes: 0, inflight: at / 50, peerInflight, peerCompletions: 80 }
          : { at, cpu: 0.3, rps: 40, errors: 0, successes: 40, inflight: 3, peerInflight, peerCompletions: 80 };
      const first = ejectedOf(keys, sample);
      expect(first).toHaveLength(1);
      expect(ejectedOf([keys[1], keys[0], keys[2], keys[3]] as string[], sample)).toEqual(first);
    });
  }
});
