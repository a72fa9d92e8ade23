import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { PidController } from '../../src/balancing/pid.js';

describe('PidController', () => {
  it('uses the seed gains and a [−1, 1] output by default', () => {
    expect(new PidController().getGains()).toEqual({ kp: 0.5, ki: 0.1, kd: 0.05 });
  });

  it('applies only P on the first update (no dt yet)', () => {
    const pid = new PidController();
    const step = pid.update({ setpoint: 0.7, measurement: 0.5, now: 1_000 });
    expect(step).toMatchObject({ i: 0, d: 0, dt: 0, antiWindup: false, saturated: false });
    expect(step.error).toBeCloseTo(0.2, 12);
    expect(step.p).toBeCloseTo(0.1, 12);
    expect(step.output).toBeCloseTo(0.1, 12);
  });

  it('computes P, I and D from timestamps (gains per second)', () => {
    const pid = new PidController();
    pid.update({ setpoint: 0.7, measurement: 0.5, now: 0 });
    const step = pid.update({ setpoint: 0.7, measurement: 0.6, now: 2_000 });
    expect(step.dt).toBe(2);
    expect(step.p).toBeCloseTo(0.5 * 0.1, 12);
    expect(step.i).toBeCloseTo(0.1 * 0.1 * 2, 12);
    expect(step.d).toBeCloseTo((-0.05 * 0.1) / 2, 12);
    expect(step.output).toBeCloseTo(step.p + step.i + step.d, 12);
  });

  it('does not kick on a setpoint step: the derivative follows the measurement', () => {
    const pid = new PidController({ kp: 0, ki: 0, kd: 1 });
    pid.update({ setpoint: 0.2, measurement: 0.5, now: 0 });
    expect(pid.update({ setpoint: 0.9, measurement: 0.5, now: 1_000 }).d).toBe(0);
    expect(pid.update({ setpoint: 0.9, measurement: 0.7, now: 2_000 }).d).toBeCloseTo(-0.2, 12);
  });

  it('neither integrates nor differentiates over a repeated or backwards timestamp', () => {
    const pid = new PidController();
    pid.update({ setpoint: 1, measurement: 0, now: 0 });
    const first = pid.update({ setpoint: 1, measurement: 0.2, now: 1_000 });
    const same = pid.update({ setpoint: 1, measurement: 0.9, now: 1_000 });
    expect(same).toMatchObject({ dt: 0, i: first.i, d: first.d });
    const back = pid.update({ setpoint: 1, measurement: 0.9, now: 500 });
    expect(back).toMatchObject({ dt: 0, i: first.i });
    // The next real interval is measured from the last accepted sample (t = 1000, m = 0.2).
    const next = pid.update({ setpoint: 1, measurement: 0.4, now: 2_000 });
    expect(next.dt).toBe(1);
    expect(next.d).toBeCloseTo(-0.05 * 0.2, 12);
  });

  it('changing gains does not make the integral term jump', () => {
    const pid = new PidController();
    for (let t = 0; t < 5; t++) pid.update({ setpoint: 0.5, measurement: 0.4, now: t * 1000 });
    const before = pid.integralTerm;
    pid.setGains({ ki: 1 });
    expect(pid.integralTerm).toBe(before);
    expect(pid.getGains().ki).toBe(1);
    expect(() => pid.setGains({ kp: -1 })).toThrow(RangeError);
  });

  it('resets to a fresh controller', () => {
    const pid = new PidController();
    for (let t = 0; t < 5; t++) pid.update({ setpoint: 0.5, measurement: 0.1, now: t * 1000 });
    pid.reset();
    expect(pid.integralTerm).toBe(0);
    expect(pid.update({ setpoint: 0.5, measurement: 0.1, now: 10_000 })).toMatchObject({ dt: 0, i: 0, d: 0 });
  });

  it('rejects non-finite inputs and bad options', () => {
    expect(() => new PidController().update({ setpoint: Number.NaN, measurement: 0, now: 0 })).toThrow(RangeError);
    expect(() => new PidController({ outputMin: 1, outputMax: 1 })).toThrow(RangeError);
    expect(() => new PidController({ ki: Number.POSITIVE_INFINITY })).toThrow(RangeError);
  });

  const bounds = fc
    .tuple(fc.double({ min: -10, max: 10, noNaN: true }), fc.double({ min: 0.01, max: 10, noNaN: true }))
    .map(([min, width]) => ({ outputMin: min, outputMax: min + width }));
  const gains = fc.record({
    kp: fc.double({ min: 0, max: 5, noNaN: true }),
    ki: fc.double({ min: 0, max: 5, noNaN: true }),
    kd: fc.double({ min: 0, max: 5, noNaN: true }),
  });
  const signal = fc.double({ min: -100, max: 100, noNaN: true });

  it('starts the integral inside a range that excludes zero', () => {
    const pid = new PidController({ outputMin: 0.5, outputMax: 2 });
    expect(pid.integralTerm).toBe(0.5);
    expect(pid.update({ setpoint: 0, measurement: 0, now: 0 }).output).toBe(0.5);
  });

  it('property: output and integral stay within [min, max] for any inputs and timing', () => {
    fc.assert(
      fc.property(bounds, gains, fc.array(fc.tuple(signal, signal, fc.integer({ min: -1_000, max: 60_000 })), { maxLength: 60 }), (b, g, steps) => {
        const pid = new PidController({ ...b, ...g });
        let now = 0;
        for (const [setpoint, measurement, dt] of steps) {
          now += dt;
          const s = pid.update({ setpoint, measurement, now });
          const inBounds = (x: number): boolean => x >= b.outputMin && x <= b.outputMax;
          if (!inBounds(s.output) || !inBounds(s.i) || !Number.isFinite(s.p + s.i + s.d)) {
            expect.fail(`out of bounds at t=${now}: ${JSON.stringify(s)}`);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  // Windup: after a long stretch pinned at one bound, a naive integral would have grown by
  // ki·error·duration and hold the output pinned for about as long again once the error
  // reverses. With conditional integration the integral stays within the bounds and stops
  // growing once saturated, so the first update after the error changes sign already
  // leaves saturation, whether the flip comes from the setpoint or from the measurement.
  it('property: after long saturation the output leaves saturation on the first update after the error flips sign', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 10, max: 2_000 }),
        fc.double({ min: 0.5, max: 50, noNaN: true }),
        fc.double({ min: 0.01, max: 50, noNaN: true }),
        fc.boolean(),
        fc.boolean(),
        (saturatedSteps, pushMagnitude, flipMagnitude, high, viaSetpoint) => {
          const pid = new PidController({ kp: 0.5, ki: 0.1, kd: 0.05, outputMin: -1, outputMax: 1 });
          const sign = high ? 1 : -1;
          let now = 0;
          // Error = +push (or −push) until the output is pinned at the bound, then for long after.
          let last = pid.update({ setpoint: sign * pushMagnitude, measurement: 0, now });
          for (let guard = 0; last.output !== sign; guard++) {
            if (guard > 1_000) throw new Error('never reached the bound');
            now += 1000;
            last = pid.update({ setpoint: sign * pushMagnitude, measurement: 0, now });
          }
          for (let k = 0; k < saturatedSteps; k++) {
            now += 1000;
            last = pid.update({ setpoint: sign * pushMagnitude, measurement: 0, now });
          }
          expect(last.output).toBe(high ? 1 : -1);
          now += 1000;
          const flipped = viaSetpoint
            ? pid.update({ setpoint: -sign * flipMagnitude, measurement: 0, now })
            : pid.update({ setpoint: sign * pushMagnitude, measurement: sign * (pushMagnitude + flipMagnitude), now });
          expect(Math.sign(flipped.error)).toBe(-sign);
          if (high) expect(flipped.output).toBeLessThan(1);
          else expect(flipped.output).toBeGreaterThan(-1);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('reaches the bound under a small persistent error, then holds the integral there', () => {
    const pid = new PidController();
    let step = pid.update({ setpoint: 0.5, measurement: 0, now: 0 });
    for (let k = 1; k <= 100 && step.saturated === false; k++) step = pid.update({ setpoint: 0.5, measurement: 0, now: k * 1000 });
    expect(step.output).toBe(1);
    const held = pid.update({ setpoint: 0.5, measurement: 0, now: 1_000_000 });
    expect(held).toMatchObject({ output: 1, saturated: 'high', antiWindup: true });
    expect(held.i).toBeCloseTo(1 - 0.25, 12);
  });

  it('stops integrating while saturated (the integral is not a function of how long)', () => {
    const run = (steps: number): number => {
      const pid = new PidController();
      for (let k = 0; k <= steps; k++) pid.update({ setpoint: 10, measurement: 0, now: k * 1000 });
      return pid.integralTerm;
    };
    expect(run(1_000)).toBe(run(10));
  });
});
