import { describe, it, expect } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { WeightingPolicy } from '../../../src/balancing/engine/types.js';

const key = (i: number): string => `10.0.0.${i + 1}:80`;
const POLICIES: Record<string, WeightingPolicy> = {
  'blend pid/ewma': { kind: 'blend', parts: { pid: 0.5, ewma: 0.5 } },
  'blend pid/static': { kind: 'blend', parts: { pid: 0.5, static: 0.5 } },
  'blend ewma/static': { kind: 'blend', parts: { ewma: 0.7, static: 0.3 } },
};

/**
 * Five endpoints, the last of half the capacity, in a closed loop at 60%; the last one's reports
 * stop after 60 ticks. Its share each tick from then on, and before.
 */
function silenced(policy: WeightingPolicy): { before: number; after: number[] } {
  const e = new WeightEngine();
  e.setCluster('svc', Array.from({ length: 5 }, (_, i) => ({ key: key(i), weight: 1 })), policy);
  const capacity = [1, 1, 1, 1, 0.5];
  let share = [0.2, 0.2, 0.2, 0.2, 0.2];
  let before = Number.NaN;
  const after: number[] = [];
  for (let t = 1; t <= 200; t++) {
    const now = t * 1000;
    for (let i = 0; i < 5; i++) {
      if (i === 4 && t > 60) continue;
      const u = (0.6 * 5 * (share[i] as number)) / (capacity[i] as number);
      e.observeSample('svc', key(i), { at: now - 100, cpu: u, latencyMs: 10 + 40 * u });
    }
    const w = [...(e.tick(now).clusters.get('svc')?.weights.values() ?? [])];
    const sum = w.reduce((a, b) => a + b, 0);
    share = w.map((x) => x / sum);
    if (t === 60) before = share[4] as number;
    if (t > 60) after.push(share[4] as number);
  }
  return { before, after };
}

describe('blend: an endpoint whose reports stop holds, then decays toward its fair share', () => {
  for (const [name, policy] of Object.entries(POLICIES)) {
    it(name, () => {
      const { before, after } = silenced(policy);
      expect(before).toBeLessThan(0.19);
      // Held (staleAfterMs 5 s), then decaying (from decayAfterMs 30 s): never below what it had.
      for (const s of after) expect(s).toBeGreaterThan(before * 0.97);
      // 140 s on, most of the way to its fair share (0.2): half-lives of 30 s.
      expect(after.at(-1) as number).toBeGreaterThan(before + 0.6 * (0.2 - before));
    });
  }
});
