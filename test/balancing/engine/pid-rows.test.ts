import { describe, expect, it } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { ExportedClusterState, ExportedEndpoint } from '../../../src/balancing/engine/index.js';
import type { EngineEndpoint, WeightingPolicy } from '../../../src/balancing/engine/types.js';

// The PID's per-endpoint state lives in rows by position (src/balancing/engine/pid-rows.ts):
// these check that a row belongs to its endpoint, not to a position, across endpoint-set changes.
const PID: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu', gains: { ki: 0.2 } };
const eps: EngineEndpoint[] = [1, 2, 3].map((i) => ({ key: `10.0.0.${i}:80`, weight: 1 }));
const CPU = [0.2, 0.5, 0.9];

function warmed(): WeightEngine {
  const engine = new WeightEngine();
  engine.setCluster('svc', eps, PID);
  for (let t = 0; t < 6; t++) {
    eps.forEach((e, i) => engine.observeSample('svc', e.key, { at: t * 1_000 - 100, cpu: (CPU[i] as number) + 0.01 * t }));
    engine.tick(t * 1_000);
  }
  return engine;
}

const pidState = (x: ExportedEndpoint | undefined): unknown => (x === undefined ? undefined : { pid: x.pid, smoothed: x.smoothed, noise: x.noise });

function exported(engine: WeightEngine): Readonly<Record<string, ExportedEndpoint>> {
  return (engine.exportClusterState('svc') as ExportedClusterState).endpoints;
}

describe('WeightEngine: PID state by endpoint position', () => {
  it('moves with its endpoint when the endpoint set is reordered and grows', () => {
    const engine = warmed();
    const before = exported(engine);
    // Every endpoint's controller has history, and the histories differ (so a mix-up would show).
    const states = eps.map((e) => pidState(before[e.key]));
    for (const s of states) expect((s as { pid: { lastAt: number | null } }).pid.lastAt).not.toBeNull();
    expect(new Set(states.map((s) => JSON.stringify(s))).size).toBe(3);

    const [a, b, c] = eps as [EngineEndpoint, EngineEndpoint, EngineEndpoint];
    engine.setCluster('svc', [{ key: '10.0.0.9:80', weight: 1 }, c, a, b], PID);
    const after = exported(engine);
    for (const e of eps) expect(pidState(after[e.key])).toEqual(pidState(before[e.key]));
  });

  it('keeps the PID weight but restarts the controller when the controller settings or the error window change', () => {
    for (const change of [(en: WeightEngine) => en.setCluster('svc', eps, { ...PID, gains: { ki: 0.3 } }), (en: WeightEngine) => en.setCluster('svc', eps, PID, undefined, { errorWindowMs: 12_345 })]) {
      const engine = warmed();
      const before = exported(engine);
      change(engine);
      const after = exported(engine);
      for (const e of eps) {
        expect(after[e.key]?.pidW).toBe(before[e.key]?.pidW);
        expect(after[e.key]?.pid).toEqual({ integral: 0, lastD: 0, lastMeasurement: null, lastAt: null });
      }
      expect(new Set(eps.map((e) => after[e.key]?.pidW)).size).toBe(3);
    }
  });

  it('keeps a sample that arrived before the controller settings changed for the restarted controller', () => {
    const engine = warmed();
    eps.forEach((e, i) => engine.observeSample('svc', e.key, { at: 5_900, cpu: CPU[i] as number }));
    engine.setCluster('svc', eps, { ...PID, gains: { ki: 0.3 } });
    engine.tick(6_000);
    const after = exported(engine);
    for (const e of eps) expect(after[e.key]?.pid.lastAt).toBe(5_900);
  });

  it('restarts every controller when the controller settings change, and starts a new endpoint fresh', () => {
    const engine = warmed();
    // The joiner takes position 0, where a warmed-up controller's row was.
    engine.setCluster('svc', [{ key: '10.0.0.9:80', weight: 1 }, ...eps], { ...PID, gains: { ki: 0.3 } });
    engine.observeSample('svc', '10.0.0.9:80', { at: 5_900, cpu: 0.5 });
    engine.tick(6_000);
    const after = exported(engine);
    for (const e of eps) expect(pidState(after[e.key])).toEqual({ pid: { integral: 0, lastD: 0, lastMeasurement: null, lastAt: null }, smoothed: null, noise: 0 });
    // The joiner's one sample is all its controller has seen (a first update integrates nothing).
    expect(pidState(after['10.0.0.9:80'])).toEqual({ pid: { integral: 0, lastD: 0, lastMeasurement: 0.5, lastAt: 5_900 }, smoothed: 0.5, noise: 0 });
  });

  it('starts a joiner fresh in the row of a position another endpoint held, under unchanged settings', () => {
    const engine = warmed();
    engine.setCluster('svc', [{ key: '10.0.0.9:80', weight: 1 }, ...eps.slice(1)], PID);
    engine.observeSample('svc', '10.0.0.9:80', { at: 5_900, cpu: 0.5 });
    engine.tick(6_000);
    expect(pidState(exported(engine)['10.0.0.9:80'])).toEqual({ pid: { integral: 0, lastD: 0, lastMeasurement: 0.5, lastAt: 5_900 }, smoothed: 0.5, noise: 0 });
  });

  it("steers on each endpoint's own latest cpu after a reorder and an rps-only report", () => {
    const engine = new WeightEngine();
    engine.setCluster('svc', eps, PID);
    eps.forEach((e, i) => engine.observeSample('svc', e.key, { at: 900, cpu: CPU[i] as number }));
    const [a, b, c] = eps as [EngineEndpoint, EngineEndpoint, EngineEndpoint];
    // Reordered after the samples arrived, and one endpoint's report without cpu merged in since.
    engine.setCluster('svc', [c, a, b], PID);
    engine.observeSample('svc', a.key, { at: 950, rps: 10 });
    const ex = engine.tick(1_000).clusters.get('svc')?.explanations;
    eps.forEach((e, i) => expect(ex?.get(e.key)?.pid?.measurement).toBe(CPU[i]));
  });
});

