/**
 * PID controller with anti-windup, derivative on measurement and a clamped output.
 *
 *   error = setpoint − measurement
 *   P = kp · error
 *   I = previous I + ki · error · dt            (kept in output units)
 *   D = −kd · d(measurement)/dt
 *   output = clamp(P + I + D, outputMin, outputMax)
 *
 * Why these choices:
 * - Anti-windup by clamping the integration: error that pushes toward a bound is
 *   integrated only until P + I + D reaches that bound, never past it, and I itself never
 *   leaves [outputMin, outputMax]. The seed's integral grew without bound during
 *   saturation, so after a long overload the output stayed pinned long after the error
 *   changed sign; here the first update with the opposite error leaves saturation.
 * - Derivative on the measurement rather than the error: the setpoint moves whenever the
 *   cluster mean does (Robinhood's equalize mode) or an operator edits a target, and
 *   differentiating the error would turn each such step into an output kick.
 * - I is stored already multiplied by ki, so changing gains (`setGains`) does not make the
 *   output jump.
 * - dt comes from the caller's timestamps. The first update has no dt, and an update with
 *   dt <= 0 (same or backwards timestamp) has no meaningful one: both apply P, keep I and
 *   the last D, and leave the previous sample as the reference for the next derivative.
 */
export interface PidGains {
  readonly kp: number;
  readonly ki: number;
  readonly kd: number;
}

export interface PidOptions extends Partial<PidGains> {
  /** Default −1. */
  readonly outputMin?: number;
  /** Default 1. */
  readonly outputMax?: number;
  /** Length of one time unit for ki and kd. Default 1000 ms, i.e. gains are per second. */
  readonly timeUnitMs?: number;
}

export const PID_DEFAULTS = {
  kp: 0.5,
  ki: 0.1,
  kd: 0.05,
  outputMin: -1,
  outputMax: 1,
  timeUnitMs: 1000,
} as const satisfies Required<PidOptions>;

export interface PidInput {
  readonly setpoint: number;
  readonly measurement: number;
  /** Timestamp of the measurement, ms. */
  readonly now: number;
}

/** Everything that produced an output, for the weight engine's explanations. */
export interface PidStep {
  readonly output: number;
  readonly error: number;
  readonly p: number;
  readonly i: number;
  readonly d: number;
  /** P + I + D before clamping. */
  readonly unclamped: number;
  /** Elapsed time used for I and D, in time units; 0 on the first or a repeated timestamp. */
  readonly dt: number;
  /** Whether the output sits on a bound. */
  readonly saturated: 'high' | 'low' | false;
  /** True when anti-windup limited this step's integration (dt = 0 means none was due). */
  readonly antiWindup: boolean;
}

export type MutablePidStep = { -readonly [K in keyof PidStep]: PidStep[K] };

/** A step to fill (numbers zero, so its fields start as doubles). */
export function blankPidStep(): MutablePidStep {
  return { output: 0, error: 0, p: 0, i: 0, d: 0, unclamped: 0, dt: 0, saturated: false, antiWindup: false };
}

/** What a PidController remembers between updates (null: nothing yet). */
export interface PidMemory {
  readonly integral: number;
  readonly lastD: number;
  readonly lastMeasurement: number | null;
  readonly lastAt: number | null;
}

export class PidController {
  private gains: PidGains;
  private readonly outputMin: number;
  private readonly outputMax: number;
  private readonly timeUnitMs: number;
  private integral: number;
  private lastD = 0;
  // NaN, not undefined, for "none yet": fields that only hold numbers are updated in place, where
  // a field that held undefined boxes every number written to it (the engine updates 10,000+ per tick).
  private lastMeasurement = Number.NaN;
  private lastAt = Number.NaN;

  constructor(options: PidOptions = {}) {
    const o = { ...PID_DEFAULTS, ...options };
    if (!(o.outputMin < o.outputMax)) throw new RangeError('outputMin must be < outputMax');
    if (!(o.timeUnitMs > 0)) throw new RangeError('timeUnitMs must be > 0');
    this.gains = checkGains(o);
    this.outputMin = o.outputMin;
    this.outputMax = o.outputMax;
    this.timeUnitMs = o.timeUnitMs;
    this.integral = this.initialIntegral();
  }

  update({ setpoint, measurement, now }: PidInput): PidStep {
    return this.updateInto(setpoint, measurement, now, blankPidStep());
  }

  /**
   * `update` writing into `out` (returned): the weight engine keeps one step per endpoint and
   * reuses it, rather than allocating 10,000 step objects per tick that all outlive it.
   */
  updateInto(setpoint: number, measurement: number, now: number, out: MutablePidStep): MutablePidStep {
    if (!Number.isFinite(setpoint) || !Number.isFinite(measurement) || !Number.isFinite(now)) {
      throw new RangeError(`PID inputs must be finite (setpoint ${setpoint}, measurement ${measurement}, now ${now})`);
    }
    const { kp, ki, kd } = this.gains;
    const error = setpoint - measurement;
    const p = kp * error;
    const dt =
      Number.isNaN(this.lastAt) || Number.isNaN(this.lastMeasurement)
        ? 0
        : Math.max(0, (now - this.lastAt) / this.timeUnitMs);

    let d = this.lastD;
    let antiWindup = false;
    if (dt > 0) {
      d = (kd * (this.lastMeasurement - measurement)) / dt;
      const full = this.integral + ki * error * dt;
      let next = full;
      // Integrate toward a bound only as far as the level that puts the output on it.
      // Refusing the whole step instead would leave the output short of the bound forever.
      if (error > 0 && p + next + d > this.outputMax) next = Math.max(this.integral, this.outputMax - p - d);
      if (error < 0 && p + next + d < this.outputMin) next = Math.min(this.integral, this.outputMin - p - d);
      next = this.clamp(next);
      antiWindup = next !== full;
      this.integral = next;
    }
    if (Number.isNaN(this.lastAt) || dt > 0) {
      this.lastAt = now;
      this.lastMeasurement = measurement;
      this.lastD = d;
    }

    const i = this.integral;
    const unclamped = p + i + d;
    // When anti-windup parks the output on a bound, P + I + D lands there only up to
    // rounding; snap values within a few ulps so `saturated` reports what happened.
    const slack = 1e-12 * (this.outputMax - this.outputMin);
    const saturated = unclamped >= this.outputMax - slack ? 'high' : unclamped <= this.outputMin + slack ? 'low' : false;
    out.output = saturated === 'high' ? this.outputMax : saturated === 'low' ? this.outputMin : unclamped;
    out.error = error;
    out.p = p;
    out.i = i;
    out.d = d;
    out.unclamped = unclamped;
    out.dt = dt;
    out.saturated = saturated;
    out.antiWindup = antiWindup;
    return out;
  }

  get integralTerm(): number {
    return this.integral;
  }

  getGains(): PidGains {
    return this.gains;
  }

  setGains(gains: Partial<PidGains>): void {
    this.gains = checkGains({ ...this.gains, ...gains });
  }

  /** The controller's memory (not its gains), JSON-safe: what a successor needs to continue. */
  snapshot(): PidMemory {
    return { integral: this.integral, lastD: this.lastD, lastMeasurement: orNull(this.lastMeasurement), lastAt: orNull(this.lastAt) };
  }

  /** Continues from a snapshot (another replica's); values outside the output range are clamped. */
  restore(m: PidMemory): void {
    const finite = (v: number | null): number | undefined => (v !== null && Number.isFinite(v) ? v : undefined);
    this.integral = this.clamp(finite(m.integral) ?? this.initialIntegral());
    this.lastD = finite(m.lastD) ?? 0;
    this.lastMeasurement = finite(m.lastMeasurement) ?? Number.NaN;
    this.lastAt = Number.isNaN(this.lastMeasurement) ? Number.NaN : (finite(m.lastAt) ?? Number.NaN);
  }

  /** Forgets all history (soft state: the weight engine rebuilds it after a restart). */
  reset(): void {
    this.integral = this.initialIntegral();
    this.lastD = 0;
    this.lastMeasurement = Number.NaN;
    this.lastAt = Number.NaN;
  }

  // Zero, or the nearest bound when the output range excludes zero (e.g. [0.5, 2]),
  // so the integral never starts outside the range it is kept in.
  private initialIntegral(): number {
    return this.clamp(0);
  }

  private clamp(x: number): number {
    return Math.min(this.outputMax, Math.max(this.outputMin, x));
  }
}

const orNull = (x: number): number | null => (Number.isNaN(x) ? null : x);

function checkGains({ kp, ki, kd }: PidGains): PidGains {
  for (const [name, value] of [['kp', kp], ['ki', ki], ['kd', kd]] as const) {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be finite and >= 0, got ${value}`);
  }
  return { kp, ki, kd };
}
