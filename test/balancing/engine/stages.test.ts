import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  clampToBounds,
  classifyFreshness,
  decayToward,
  exceedsHysteresis,
  policyParts,
  resolveSafety,
  stepLimit,
  utilizations,
  validatePolicy,
  validateSample,
  validateEndpoints,
} from '../../../src/balancing/engine/stages.js';
import { SAFETY_DEFAULTS } from '../../../src/balancing/engine/types.js';

describe('safety settings', () => {
  it('defaults to the documented values and layers overrides', () => {
    expect(resolveSafety()).toEqual(SAFETY_DEFAULTS);
    expect(resolveSafety({ hysteresis: 0.05 }, undefined, { tickMs: 500 })).toMatchObject({ hysteresis: 0.05, tickMs: 500, maxStepRatio: 1.25 });
  });

  it('rejects nonsense', () => {
    expect(() => resolveSafety({ maxStepRatio: 1 })).toThrow(/maxStepRatio/);
    expect(() => resolveSafety({ minWeightRatio: 0 })).toThrow(/minWeightRatio/);
    expect(() => resolveSafety({ maxWeightRatio: 0.5 })).toThrow(/maxWeightRatio/);
    expect(() => resolveSafety({ staleAfterMs: 10_000, decayAfterMs: 5_000 })).toThrow(/decayAfterMs/);
    expect(() => resolveSafety({ tickMs: Number.NaN })).toThrow(/tickMs/);
  });
});

describe('policies', () => {
  it('treats pure policies as one-part blends', () => {
    expect(policyParts({ kind: 'static' })).toEqual({ pid: 0, ewma: 0, static: 1 });
    expect(policyParts({ kind: 'pid', setpoint: 'mean', metric: 'cpu' })).toEqual({ pid: 1, ewma: 0, static: 0 });
    expect(policyParts({ kind: 'blend', parts: { pid: 0.25, static: 0.75 } })).toEqual({ pid: 0.25, ewma: 0, static: 0.75 });
  });

  it('validates blends, setpoints and gains', () => {
    expect(() => validatePolicy({ kind: 'blend', parts: { pid: 0.5, ewma: 0.4 } })).toThrow(/sum to 1/);
    expect(() => validatePolicy({ kind: 'blend', parts: { pid: 1.5, ewma: -0.5 } })).toThrow(/\[0, 1\]/);
    expect(() => validatePolicy({ kind: 'pid', setpoint: 1.5, metric: 'cpu' })).toThrow(/setpoint/);
    expect(() => validatePolicy({ kind: 'pid', setpoint: 'mean', metric: 'cpu', gains: { kp: -1 } })).toThrow(/kp/);
    expect(() => validatePolicy({ kind: 'ewma', decay: 0 })).toThrow(/decay/);
    expect(() => validatePolicy({ kind: 'pid', setpoint: 0.7, metric: 'max' })).not.toThrow();
  });

  it('validates endpoints and samples', () => {
    expect(() => validateEndpoints([{ key: 'a:1', weight: 0.5 }])).toThrow(/>= 1/);
    expect(() => validateEndpoints([{ key: 'a:1', weight: 1 }, { key: 'a:1', weight: 2 }])).toThrow(/duplicate/);
    expect(() => validateSample({ at: 0, cpu: Number.NaN })).toThrow(/cpu/);
    expect(() => validateSample({ at: 0, latencyMs: -1 })).toThrow(/latencyMs/);
    expect(() => validateSample({ at: 0, cpu: 0.4, inflight: 3 })).not.toThrow();
  });
});

describe('freshness', () => {
  const s = { staleAfterMs: 5_000, decayAfterMs: 30_000 };
  it('classifies by sample age, boundaries inclusive', () => {
    expect(classifyFreshness(undefined, s)).toBe('none');
    expect(classifyFreshness(0, s)).toBe('fresh');
    expect(classifyFreshness(5_000, s)).toBe('fresh');
    expect(classifyFreshness(5_001, s)).toBe('stale');
    expect(classifyFreshness(30_000, s)).toBe('stale');
    expect(classifyFreshness(30_001, s)).toBe('expired');
  });

  it('decays in log space with the half-life', () => {
    expect(decayToward(4, 1, 30_000, 30_000)).toBeCloseTo(2, 12);
    expect(decayToward(0.25, 1, 30_000, 30_000)).toBeCloseTo(0.5, 12);
    expect(decayToward(3, 1, 0, 30_000)).toBe(3);
  });

  it('property: decay moves toward the target and never past it', () => {
    const w = fc.double({ min: 0.01, max: 100, noNaN: true });
    fc.assert(
      fc.property(w, w, fc.double({ min: 0, max: 1e6, noNaN: true }), (weight, target, dt) => {
        const d = decayToward(weight, target, dt, 30_000);
        expect(Math.abs(Math.log(d / target))).toBeLessThanOrEqual(Math.abs(Math.log(weight / target)) + 1e-12);
        expect(Math.sign(Math.log(d / target)) * Math.sign(Math.log(weight / target))).not.toBe(-1);
      }),
    );
  });
});

describe('utilization', () => {
  const ep = (sample: object, staticWeight = 1, capacity?: number) => ({ sample: { at: 0, ...sample }, staticWeight, capacity });

  it('cpu is taken as reported', () => {
    expect(utilizations('cpu', [ep({ cpu: 0.4 }), ep({ inflight: 3 })])).toEqual([0.4, undefined]);
  });

  it('inflight uses capacity hints when every endpoint has one', () => {
    expect(utilizations('inflight', [ep({ inflight: 5 }, 1, 10), ep({ inflight: 5 }, 1, 20)])).toEqual([0.5, 0.25]);
  });

  it('inflight without hints is relative to static weight and to the busiest endpoint', () => {
    // 10 in flight on weight 2 is as loaded as 5 on weight 1.
    expect(utilizations('inflight', [ep({ inflight: 5 }, 1), ep({ inflight: 10 }, 2), ep({ inflight: 2 }, 1)])).toEqual([1, 1, 0.4]);
    expect(utilizations('inflight', [ep({ inflight: 0 }), ep({ inflight: 0 })])).toEqual([0, 0]);
  });

  it('max takes the larger of cpu and inflight utilization', () => {
    expect(utilizations('max', [ep({ cpu: 0.9, inflight: 4 }, 1, 10), ep({ cpu: 0.1, inflight: 8 }, 1, 10), ep({ cpu: 0.3 }, 1, 10)])).toEqual([
      0.9, 0.8, 0.3,
    ]);
  });
});

describe('safety stages', () => {
  it('limits a step to ×/÷ ratio of the anchor', () => {
    expect(stepLimit(10, 4, 1.25)).toEqual({ value: 5, fired: true });
    expect(stepLimit(1, 4, 1.25)).toEqual({ value: 3.2, fired: true });
    expect(stepLimit(4.5, 4, 1.25)).toEqual({ value: 4.5, fired: false });
  });

  it('clamps to floor and ceiling of the fair share', () => {
    expect(clampToBounds(0.01, 2, 0.05, 20)).toEqual({ value: 0.1, rule: 'floor' });
    expect(clampToBounds(100, 2, 0.05, 20)).toEqual({ value: 40, rule: 'ceiling' });
    expect(clampToBounds(3, 2, 0.05, 20)).toEqual({ value: 3, rule: undefined });
  });

  it('hysteresis fires only beyond the relative threshold', () => {
    expect(exceedsHysteresis([1.01, 2.03], [1, 2], 0.02)).toBe(false);
    expect(exceedsHysteresis([1.01, 2.05], [1, 2], 0.02)).toBe(true);
    expect(exceedsHysteresis([0.97], [1], 0.02)).toBe(true);
    expect(exceedsHysteresis([0.5, 1], [1, 1], 0.02, [0, 1])).toBe(false); // excluded endpoints do not count
  });
});
