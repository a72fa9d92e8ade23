import { describe, expect, it } from 'vitest';
import { WeightEngine } from '../../../src/balancing/engine/weight-engine.js';
import type { EngineEndpoint, WeightingPolicy } from '../../../src/balancing/engine/types.js';

// Each endpoint's smoothed request and error counts live in rows by position
// (src/balancing/engine/error-window.ts): these check that a row belongs to its endpoint, not to a
// position, across endpoint-set changes, and that a new error window starts every row afresh.
const PID: WeightingPolicy = { kind: 'pid', setpoint: 'mean', metric: 'cpu' };
const eps: EngineEndpoint[] = [1, 2, 3].map((i) => ({ key: `10.0.0.${i}:80`, weight: 1 }));
/** Errors per second of each endpoint (rps 100): different rates, so a mix-up shows. */
const ERRORS = [1, 4, 9];
// Ejection off: the counts are read, never reset by a release.
const EJECTION = { enabled: false, errorWindowMs: 10_000 };

function warmed(): WeightEngine {
  const engine = new WeightEngine();
  engine.setCluster('svc', eps, PID, undefined, EJECTION);
  for (let t = 0; t < 5; t++) {
    eps.forEach((e, i) => engine.observeSample('svc', e.key, { at: t * 1_000 - 100, cpu: 0.5, rps: 100, errors: ERRORS[i] as number }));
    engine.tick(t * 1_000);
  }
  return engine;
}

/** Each endpoint's smoothed error rate as the tick at `now` explains it. */
function errorRates(engine: WeightEngine, now: number, keys: readonly string[]): (number | undefined)[] {
  const tick = engine.tick(now).clusters.get('svc');
  return keys.map((k) => tick?.explanations.get(k)?.inputs.errorRate);
}

describe('WeightEngine: error counts by endpoint position', () => {
  it('move with their endpoint when the endpoint set is reordered and grows', () => {
    const keys = eps.map((e) => e.key);
    const expected = errorRates(warmed(), 5_000, keys);
    expect(new Set(expected).size).toBe(3);
    for (const r of expected) expect(r).toBeGreaterThan(0);

    const engine = warmed();
    const [a, b, c] = eps as [EngineEndpoint, EngineEndpoint, EngineEndpoint];
    const added = '10.0.0.9:80';
    engine.setCluster('svc', [{ key: added, weight: 1 }, c, a, b], PID, undefined, EJECTION);
    expect(errorRates(engine, 5_000, [...keys, added])).toEqual([...expected, undefined]);
  });

  it('start afresh under another error window', () => {
    const engine = warmed();
    engine.setCluster('svc', eps, PID, undefined, { ...EJECTION, errorWindowMs: 20_000 });
    expect(errorRates(engine, 5_000, eps.map((e) => e.key))).toEqual([undefined, undefined, undefined]);
  });
});
