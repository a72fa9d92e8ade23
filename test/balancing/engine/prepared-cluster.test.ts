import { describe, expect, it } from 'vitest';
import { WeightEngine, type PreparedCluster } from '../../../src/balancing/engine/weight-engine.js';
import type { EngineEndpoint, Sample, WeightingPolicy } from '../../../src/balancing/engine/types.js';
import { carryHeldWeights, HW_ROW, HW_SERVED } from '../../../src/balancing/engine/held-weights.js';
import { LATEST_SLOTS, noteSample } from '../../../src/balancing/engine/pid-rows.js';

const PID: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu' };
const BLEND: WeightingPolicy = { kind: 'blend', parts: { pid: 0.5, ewma: 0.3, static: 0.2 }, metric: 'cpu' };
const key = (i: number): string => `10.0.${i >> 8}.${i & 255}:80`;
const eps = (from: number, to: number, weight: (i: number) => number = () => 10): EngineEndpoint[] =>
  Array.from({ length: to - from }, (_, j) => ({ key: key(from + j), weight: weight(from + j), locality: `z${(from + j) % 3}` }));

/** Samples for every endpoint in [0, n) at `at`, the same on every engine given. */
function feed(engines: readonly WeightEngine[], n: number, at: number): void {
  for (const engine of engines) for (let i = 0; i < n; i++) engine.observeSample('svc', key(i), { at, cpu: 0.2 + ((i * 7 + at / 1_000) % 10) / 20, latencyMs: 5 + (i % 4), rps: 10 });
}

/** Weights and health of each tick of both engines over `ticks` more ticks with samples. */
function expectSameFuture(a: WeightEngine, b: WeightEngine, n: number, from: number): void {
  for (let t = from; t < from + 6_000; t += 1_000) {
    feed([a, b], n, t);
    const ta = a.tick(t).clusters.get('svc');
    const tb = b.tick(t).clusters.get('svc');
    expect([...(ta?.weights ?? [])]).toEqual([...(tb?.weights ?? [])]);
    expect([...(ta?.health ?? [])]).toEqual([...(tb?.health ?? [])]);
  }
  expect(a.exportClusterState('svc')).toEqual(b.exportClusterState('svc'));
}

/** Runs the preparation, calling `between` at each of its steps. */
function prepare(engine: WeightEngine, endpoints: readonly EngineEndpoint[], policy: WeightingPolicy, between: () => void, chunk = 7): PreparedCluster {
  const steps = engine.prepareCluster('svc', endpoints, policy, { chunk });
  for (let step = steps.next(); ; step = steps.next()) {
    if (step.done === true) return step.value;
    between();
  }
}

/** Two engines with the same history: 40 endpoints, a few ticks with samples. */
function twins(policy: WeightingPolicy = PID): [WeightEngine, WeightEngine] {
  const engines: [WeightEngine, WeightEngine] = [new WeightEngine(), new WeightEngine()];
  for (const e of engines) e.setCluster('svc', eps(0, 40, (i) => 10 + (i % 5)), policy);
  for (let t = 1_000; t <= 4_000; t += 1_000) {
    feed(engines, 40, t);
    for (const e of engines) e.tick(t);
  }
  return engines;
}

describe('WeightEngine.prepareCluster / commitCluster', () => {
  it('ends in the state setCluster gives at commit time, with ticks and samples between the steps', () => {
    for (const policy of [PID, BLEND, { kind: 'ewma' } as WeightingPolicy]) {
      const [stepped, whole] = twins(policy);
      // Endpoints 0–9 leave, 10–39 stay (some with new weights and localities), 40–59 join.
      const next = eps(10, 60, (i) => (i % 4 === 0 ? 30 : 10 + (i % 5))).map((e, j) => (j % 5 === 0 ? { ...e, locality: 'moved' } : e));
      let at = 4_100;
      const p = prepare(stepped, next, policy, () => {
        // Whatever happens between two steps happens to both engines.
        at += 100;
        feed([stepped, whole], 40, at);
        stepped.tick(at);
        whole.tick(at);
      });
      // Nothing changed before the commit: the stepped engine still has the old endpoints.
      expect([...(stepped.tick(at + 50).clusters.get('svc')?.weights.keys() ?? [])]).toHaveLength(40);
      whole.tick(at + 50);
      stepped.commitCluster(p);
      whole.setCluster('svc', next, policy);
      expectSameFuture(stepped, whole, 60, at + 1_000);
    }
  });

  it('a write that keeps every key in place: setCluster keeps the key index and frames, and gives the future a fresh layout gives', () => {
    type Internals = { clusters: Map<string, { byKey: unknown; groupOf: unknown; frames: unknown }> };
    const state = (e: WeightEngine) => (e as unknown as Internals).clusters.get('svc');
    for (const policy of [PID, BLEND, { kind: 'ewma' } as WeightingPolicy, { kind: 'static' } as WeightingPolicy]) {
      for (const moved of [false, true]) {
        const [kept, fresh] = twins(policy);
        // The same 40 keys in order: new weights, and with `moved` some endpoints in another locality.
        const next = eps(0, 40, (i) => (i % 3 === 0 ? 25 : 10 + (i % 5))).map((e, j) => (moved && j % 7 === 0 ? { ...e, locality: 'moved' } : e));
        const before = state(kept);
        kept.setCluster('svc', next, policy);
        fresh.commitCluster(prepare(fresh, next, policy, () => undefined));
        const after = state(kept);
        expect([after?.byKey === before?.byKey, after?.groupOf === before?.groupOf, after?.frames === before?.frames]).toEqual([true, !moved, true]);
        expect(state(fresh)?.byKey).not.toBe(before?.byKey);
        expectSameFuture(kept, fresh, 40, 6_000);
      }
    }
  });

  it('a write that keeps every key in place keeps the rows\' arrays, holding what carrying them to new arrays gives', () => {
    type Rows = { pidRows: { rows: Float64Array; latest: Float64Array }; held: Float64Array; errors: Float64Array; statics: number[]; order: { sample?: Sample }[] };
    const state = (e: WeightEngine) => (e as unknown as { clusters: Map<string, Rows> }).clusters.get('svc') as Rows;
    for (const write of ['set', 'commit'] as const) {
      const [engine] = twins(BLEND);
      const before = state(engine);
      const copy = { rows: before.pidRows.rows.slice(), held: before.held.slice(), errors: before.errors.slice(), statics: [...before.statics] };
      // New weights for a third of them (those count as not having served), the same keys in order.
      const next = eps(0, 40, (i) => (i % 3 === 0 ? 25 : 10 + (i % 5)));
      if (write === 'set') engine.setCluster('svc', next, BLEND);
      else engine.commitCluster(prepare(engine, next, BLEND, () => undefined));
      const after = state(engine);
      expect([after.pidRows === before.pidRows, after.held === before.held, after.errors === before.errors], write).toEqual([true, true, true]);
      const identity = Int32Array.from({ length: 40 }, (_, i) => i);
      const carried = { held: carryHeldWeights(after.order as never, { held: copy.held, statics: copy.statics }, identity) };
      expect([...after.held]).toEqual([...carried.held]);
      expect(after.held.some((v, k) => k % HW_ROW === HW_SERVED && v !== 1 && copy.held[k] === 1), write).toBe(true);
      expect([...after.pidRows.rows]).toEqual([...copy.rows]);
      expect([...after.errors]).toEqual([...copy.errors]);
      const latest = new Float64Array(LATEST_SLOTS * 40);
      after.order.forEach((e, i) => noteSample({ latest } as never, i, e.sample));
      expect([...after.pidRows.latest]).toEqual([...latest]);
    }
  });

  it('a policy change resets the controller state at commit as setCluster does', () => {
    const [stepped, whole] = twins(PID);
    const policy: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu', gains: { kp: 0.3, ki: 0.01, kd: 0 } };
    const p = prepare(stepped, eps(0, 40), policy, () => undefined);
    stepped.commitCluster(p);
    whole.setCluster('svc', eps(0, 40), policy);
    expectSameFuture(stepped, whole, 40, 6_000);
  });

  it('is setCluster at commit when the cluster was set, removed or given other error-window settings meanwhile', () => {
    for (const meanwhile of ['set', 'removed', 'window'] as const) {
      const [stepped, whole] = twins(PID);
      const next = eps(5, 45);
      const between = (): void => undefined;
      const p =
        meanwhile === 'window'
          ? (() => {
              const steps = stepped.prepareCluster('svc', next, PID, { chunk: 7, ejection: { errorWindowMs: 30_000 } });
              let s = steps.next();
              while (s.done !== true) s = steps.next();
              return s.value;
            })()
          : prepare(stepped, next, PID, between);
      for (const e of [stepped, whole]) {
        if (meanwhile === 'set') e.setCluster('svc', eps(0, 30, () => 20), PID);
        if (meanwhile === 'removed') e.removeCluster('svc');
      }
      stepped.commitCluster(p);
      whole.setCluster('svc', next, PID, undefined, meanwhile === 'window' ? { errorWindowMs: 30_000 } : undefined);
      expectSameFuture(stepped, whole, 45, 6_000);
    }
  });

  it('throws where setCluster throws, before anything changes', () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', eps(0, 3), PID);
    const dup = [...eps(0, 20), { key: key(3), weight: 1 }];
    expect(() => engine.setCluster('svc', dup, PID)).toThrow(/duplicate endpoint 10.0.0.3:80/);
    expect(() => prepare(engine, dup, PID, () => undefined)).toThrow(/duplicate endpoint 10.0.0.3:80/);
    expect(() => prepare(engine, eps(0, 20), { kind: 'pid', setpoint: 2, metric: 'cpu' }, () => undefined)).toThrow();
    expect([...(engine.tick(1_000).clusters.get('svc')?.weights.keys() ?? [])]).toEqual([key(0), key(1), key(2)]);
  });
});
