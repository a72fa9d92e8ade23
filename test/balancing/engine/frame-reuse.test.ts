import { describe, it, expect } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import { ArrayMap, sameEntries } from '../../../src/balancing/engine/indexed-map.js';
import { newFrame, recycleFrame, S_SETPOINT, S_UPDATED, STEP_SLOTS, takeEwmaFrame, takePidFrame, takeUtil, type Frame, type PidFrame } from '../../../src/balancing/engine/tick/frame.js';
import type { ClusterTick, EngineEndpoint, Explanation } from '../../../src/balancing/engine/types.js';

const eps = (n: number): EngineEndpoint[] => Array.from({ length: n }, (_, i) => ({ key: `10.0.0.${i + 1}:80`, weight: 1 + (i % 3), locality: `z${i % 2}` }));

/** An engine under PID whose endpoints report new, uneven CPU before every tick. */
function drive(engine: WeightEngine, n: number, ticks: number, from = 0): ClusterTick[] {
  const out: ClusterTick[] = [];
  for (let t = from; t < from + ticks; t++) {
    const now = (t + 1) * 1_000;
    for (let i = 0; i < n; i++) engine.observeSample('svc', `10.0.0.${i + 1}:80`, { at: now, cpu: 0.2 + ((i * 7 + t * 3) % 10) / 15, rps: 50 + i });
    out.push(engine.tick(now).clusters.get('svc') as ClusterTick);
  }
  return out;
}

const snapshot = (t: ClusterTick): { weights: [string, number][]; explanations: [string, Explanation][] } => ({
  weights: [...t.weights],
  explanations: [...t.explanations],
});

describe('WeightEngine: recycled tick frames', () => {
  it('a tick result reads the same after the next tick, and refuses to read after the one after', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', eps(12), { kind: 'pid', setpoint: 'mean', metric: 'cpu' });
    const [first] = drive(engine, 12, 1) as [ClusterTick];
    const before = snapshot(first);
    expect(before.explanations.some(([, x]) => x.pid !== undefined)).toBe(true);
    drive(engine, 12, 1, 1);
    expect(snapshot(first)).toEqual(before);
    drive(engine, 12, 1, 2);
    // The weights are the tick's own array: still readable. The explanations' frame moved on.
    expect([...first.weights]).toEqual(before.weights);
    expect(() => first.explanations.get('10.0.0.1:80')).toThrow(/ticked twice more/);
  });

  it('a recycled frame resets stepTicks, the per-tick scalars and the PID row markers, and keeps its vectors', () => {
    const init = { n: 5, now: 1_000, dt: 1_000, freshMs: 5_000, policy: 'pid' as const, keys: ['a', 'b', 'c', 'd', 'e'], statics: [1, 1, 2, 2, 3] };
    const used = newFrame(init);
    // Dirty everything a tick writes.
    for (const v of Object.values(used)) if (Array.isArray(v)) v.fill(7);
    for (const part of [takePidFrame(used), takeEwmaFrame(used)]) for (const v of Object.values(part)) (v as number[]).fill(7);
    takeUtil(used).fill(7);
    used.failStatic = true;
    used.ejections = [undefined, { reason: 'x', until: 1, count: 1 }, undefined, undefined, undefined];
    const next = { ...init, now: 2_000, freshMs: 15_000, keys: ['v', 'w', 'x', 'y', 'z'] };
    const recycled = recycleFrame(used, next.now, next.dt, next.freshMs, next.policy, next);
    expect(recycled).toBe(used);
    const fresh = newFrame(next);
    expect(recycled.generation).toBe(1);
    expect(recycled.stepTicks).toEqual(fresh.stepTicks);
    expect([recycled.now, recycled.freshMs, recycled.keys, recycled.failStatic, recycled.ejections, recycled.util, recycled.pid]).toEqual([2_000, 15_000, next.keys, false, undefined, undefined, undefined]);
    // The PID's steps are read only where setpoint is set, and the PID stage writes every slot of
    // a stride where it sets it: setpoint and updated are reset.
    const markers = (p: PidFrame): number[] => [...p.steps].filter((_, k) => k % STEP_SLOTS === S_SETPOINT || k % STEP_SLOTS === S_UPDATED);
    expect(markers(takePidFrame(recycled))).toEqual(markers(takePidFrame(fresh)));
    expect(takeEwmaFrame(recycled)).toEqual(takeEwmaFrame(fresh));
    expect(takeUtil(recycled)).toEqual(takeUtil(fresh));
  });

  it('the stages write every slot they read: garbage left in a recycled frame changes no tick', () => {
    const policies = [{ kind: 'pid', setpoint: 'mean', metric: 'cpu' }, { kind: 'ewma' }, { kind: 'blend', parts: { pid: 0.5, static: 0.5 } }, { kind: 'static' }] as const;
    for (const policy of policies) {
      const clean = new WeightEngine();
      const dirty = new WeightEngine();
      for (const e of [clean, dirty]) e.setCluster('svc', eps(9), policy);
      // The engine's state (private): the frame the next tick will recycle.
      const frames = (dirty as unknown as { clusters: Map<string, { frames: { spare: Frame | undefined } }> }).clusters.get('svc')?.frames;
      for (let t = 0; t < 6; t++) {
        const spare = frames?.spare;
        // Every vector the frame owns (keys and statics are the cluster's own).
        const owned = Object.entries(spare ?? {}).filter(([name, v]) => Array.isArray(v) && name !== 'keys' && name !== 'statics');
        for (const [, v] of owned) (v as unknown[]).fill(t % 2 === 0 ? 1e9 : Number.NaN);
        if (t >= 2) expect(owned.length).toBeGreaterThanOrEqual(15);
        expect(snapshot(drive(dirty, 9, 1, t)[0] as ClusterTick)).toEqual(snapshot(drive(clean, 9, 1, t)[0] as ClusterTick));
      }
    }
  });
});

describe('WeightEngine: tick scratch shared by clusters', () => {
  it('a cluster ticks the same beside clusters of other sizes and policies as alone', () => {
    const policies = { a: { kind: 'pid', setpoint: 'mean', metric: 'cpu' }, b: { kind: 'blend', parts: { pid: 0.5, ewma: 0.5 } }, c: { kind: 'pid', setpoint: 0.5, metric: 'cpu' } } as const;
    const sizes = { a: 4, b: 30, c: 11 };
    const names = ['a', 'b', 'c'] as const;
    const together = new WeightEngine();
    const alone = names.map(() => new WeightEngine());
    names.forEach((name, k) => {
      for (const e of [together, alone[k] as WeightEngine]) e.setCluster(name, eps(sizes[name]), policies[name]);
    });
    for (let t = 0; t < 8; t++) {
      const now = (t + 1) * 1_000;
      names.forEach((name, k) => {
        // Uneven reports, and some endpoints silent on some ticks (steered sets differ per tick).
        for (let i = 0; i < sizes[name]; i++) {
          if ((i + t) % 4 === 3) continue;
          const sample = { at: now, cpu: 0.1 + ((i * 5 + t * 3 + k) % 9) / 10, latencyMs: 5 + i, rps: 20 + i };
          for (const e of [together, alone[k] as WeightEngine]) e.observeSample(name, `10.0.0.${i + 1}:80`, sample);
        }
      });
      const all = together.tick(now);
      names.forEach((name, k) => {
        const own = (alone[k] as WeightEngine).tick(now).clusters.get(name) as ClusterTick;
        expect(snapshot(all.clusters.get(name) as ClusterTick)).toEqual(snapshot(own));
      });
    }
  });
});

describe('ArrayMap', () => {
  const index = new Map([
    ['a', 0],
    ['b', 1],
  ]);
  const keys = ['a', 'b'];

  it('reads like a Map of the same entries', () => {
    const m = new ArrayMap(keys, index, [5, 7]);
    const ref = new Map([
      ['a', 5],
      ['b', 7],
    ]);
    expect(m.size).toBe(2);
    expect(m.get('b')).toBe(7);
    expect(m.get('c')).toBeUndefined();
    expect(m.has('a') && !m.has('c')).toBe(true);
    expect([...m]).toEqual([...ref]);
    expect([...m.keys()]).toEqual(['a', 'b']);
    expect([...m.values()]).toEqual([5, 7]);
    const seen: string[] = [];
    m.forEach((v, k) => seen.push(`${k}=${v}`));
    expect(seen).toEqual(['a=5', 'b=7']);
    expect(new Map(m)).toEqual(ref);
    expect(Object.fromEntries(m)).toEqual({ a: 5, b: 7 });
  });

  it('sameEntries compares by position over the same keys, by key otherwise', () => {
    expect(sameEntries(new ArrayMap(keys, index, [5, 7]), new ArrayMap(keys, index, [5, 7]))).toBe(true);
    expect(sameEntries(new ArrayMap(keys, index, [5, 7]), new ArrayMap(keys, index, [5, 8]))).toBe(false);
    expect(sameEntries(new ArrayMap(keys, index, [5, 7]), new Map([['b', 7], ['a', 5]]))).toBe(true);
    expect(sameEntries(new ArrayMap(keys, index, [5, 7]), new Map([['a', 5]]))).toBe(false);
    expect(sameEntries(new ArrayMap(keys, index, [5, 7]), undefined)).toBe(false);
  });
});
