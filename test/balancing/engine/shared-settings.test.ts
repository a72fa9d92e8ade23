/**
 * shared-settings.ts: clusters with equal settings share one object (the tick reads it hot), and
 * settings that differ in any way a tick could see never share.
 */
import { describe, it, expect } from 'vitest';
import { SharedSettings } from '../../../src/balancing/engine/shared-settings.js';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';

describe('SharedSettings', () => {
  it('gives the first object for every equal value of the same kind, and never one of another kind', () => {
    const s = new SharedSettings();
    const a = s.share('safety', { tickMs: 1000, staleAfterMs: 5000 });
    expect(s.share('safety', { tickMs: 1000, staleAfterMs: 5000 })).toBe(a);
    expect(s.share('ejection', { tickMs: 1000, staleAfterMs: 5000 })).not.toBe(a);
    expect(s.share('safety', { tickMs: 1000, staleAfterMs: 6000 })).not.toBe(a);
  });

  it('tells Infinity, NaN and -0 apart from null and 0 (JSON writes them alike)', () => {
    const s = new SharedSettings();
    const inf = s.share('x', { v: Number.POSITIVE_INFINITY });
    expect(s.share('x', { v: null })).not.toBe(inf);
    expect(s.share('x', { v: Number.NaN })).not.toBe(inf);
    const zero = s.share('x', { v: 0 });
    expect(s.share('x', { v: -0 })).not.toBe(zero);
    expect(s.share('x', { v: Number.POSITIVE_INFINITY })).toBe(inf);
  });

  it('holds a bounded number of values (a caller cycling settings does not grow it forever)', () => {
    const s = new SharedSettings();
    const first = s.share('x', { v: 0 });
    for (let v = 1; v <= 64; v++) s.share('x', { v });
    expect(s.share('x', { v: 0 })).not.toBe(first);
  });
});

describe('clusters with equal settings', () => {
  it('tick as before: the same weights for a cluster whose settings another cluster shares', () => {
    const keys = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'];
    const alone = new WeightEngine();
    const together = new WeightEngine();
    alone.setCluster('a', keys.map((key) => ({ key, weight: 1 })), { kind: 'pid', setpoint: 'mean' }, { staleAfterMs: 4000 });
    for (const name of ['a', 'b']) together.setCluster(name, keys.map((key) => ({ key, weight: 1 })), { kind: 'pid', setpoint: 'mean' }, { staleAfterMs: 4000 });
    for (let t = 1; t <= 6; t++) {
      keys.forEach((key, i) => {
        const sample = { at: t * 1000, cpu: 0.2 + 0.3 * i, rps: 50, errors: i };
        alone.observeSample('a', key, sample);
        together.observeSample('a', key, sample);
        together.observeSample('b', key, sample);
      });
      const x = alone.tick(t * 1000).clusters.get('a');
      const y = together.tick(t * 1000).clusters.get('a');
      expect([...(y?.weights ?? [])]).toEqual([...(x?.weights ?? [])]);
    }
  });
});
