/**
 * An endpoint whose static weight changes rejoins at its new fair share; one whose weight is
 * written changed and written back before the next tick has not changed for any tick. It used to
 * rejoin all the same: each write compared the weight with the write before it, so the second
 * write saw a change too, and a half-capacity endpoint the PID had brought to 20% of the traffic
 * was handed its full third at once (found by churn-properties.test.ts, "never written again").
 */
import { describe, expect, it } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { WeightingPolicy } from '../../../src/balancing/engine/types.js';

const POLICY: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu' };
const KEYS = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'] as const;
const CAPACITY = [1, 1, 0.5];
const endpoints = (third: number) => KEYS.map((key, i) => ({ key, weight: i === 2 ? third : 1 }));

/**
 * The third endpoint's share of the traffic each tick, in a closed loop (cpu = share × load /
 * capacity), with `writes` of its static weight applied in order before tick 20.
 */
function sharesOfThird(writes: readonly number[], ticks = 25): number[] {
  const engine = new WeightEngine();
  engine.setCluster('svc', endpoints(1), POLICY);
  const shares: number[] = [];
  let share = 1 / 3;
  for (let t = 1; t <= ticks; t++) {
    if (t === 20) for (const w of writes) engine.setCluster('svc', endpoints(w), POLICY);
    KEYS.forEach((key, i) => {
      const mine = i === 2 ? share : (1 - share) / 2;
      engine.observeSample('svc', key, { at: t * 1_000, cpu: Math.min(1, (mine * 1.5) / (CAPACITY[i] as number)) });
    });
    const tick = engine.tick(t * 1_000).clusters.get('svc');
    const weights = KEYS.map((k) => tick?.weights.get(k) ?? 0);
    share = (weights[2] as number) / weights.reduce((a, b) => a + b, 0);
    shares.push(share);
  }
  return shares;
}

describe('static weight writes', () => {
  it('a weight written changed and back before a tick keeps the endpoint where the controller had it', () => {
    const untouched = sharesOfThird([]);
    expect(untouched[18]).toBeLessThan(0.25);
    expect(sharesOfThird([2, 1])).toEqual(untouched);
    expect(sharesOfThird([2, 3, 1])).toEqual(untouched);
  });

  it('a weight that stays changed still rejoins at its new fair share', () => {
    const changed = sharesOfThird([2]);
    // Fair share of weights 1, 1, 2: a half.
    expect(changed[19]).toBeCloseTo(0.5, 3);
  });

  it('a seeded endpoint written changed and back keeps its seeded weight', () => {
    const publishedAfter = (writes: readonly number[]): number | undefined => {
      const engine = new WeightEngine();
      engine.setCluster('svc', endpoints(1), POLICY);
      engine.seedWeights('svc', new Map([[KEYS[0], 10], [KEYS[1], 10], [KEYS[2], 2]]));
      for (const w of writes) engine.setCluster('svc', endpoints(w), POLICY);
      return engine.tick(1_000).clusters.get('svc')?.weights.get(KEYS[2]);
    };
    expect(publishedAfter([2, 1])).toBe(publishedAfter([]));
  });
});
