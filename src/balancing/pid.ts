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

/** A controller's fixed parameters: gains and output range (many controllers may share one). */
export interface PidParams extends PidGains {
  readonly outputMin: number;
  readonly outputMax: number;
  readonly timeUnitMs: number;
}

/** Validated parameters from options (defaults filled in). */
export function pidParams(options: PidOptions = {}): PidParams {
  const o = { ...PID_DEFAULTS, ...options };
  if (!(o.outputMin < o.outputMax)) throw new RangeError('outputMin must be < outputMax');
  if (!(o.timeUnitMs > 0)) throw new RangeError('timeUnitMs must be > 0');
  return { ...checkGains(o), outputMin: o.outputMin, outputMax: o.outputMax, timeUnitMs: o.timeUnitMs };
}

/**
 * A controller's memory as four slots of a Float64Array from `o` on (NaN for "none yet"): the
 * weight engine keeps every endpoint's memory of a cluster in one array (tick/pid-rows.ts) rather
 * than a PidController object per endpoint, whose double fields V8 keeps as separate heap numbers
 * scattered over the heap (a 10,000-endpoint tick was memory-bound on them). PidController is the
 * same code over its own four slots.
 */
export const PID_MEMORY_SLOTS = 4;
const M_INTEGRAL = 0;
const M_LAST_D = 1;
const M_LAST_MEASUREMENT = 2;
const M_LAST_AT = 3;

/** Forgets all history: the memory of a new controller. */
export function resetPidMemory(mem: Float64Array, o: number, prm: PidParams): void {
  mem[o + M_INTEGRAL] = initialIntegral(prm);
  mem[o + M_LAST_D] = 0;
  mem[o + M_LAST_MEASUREMENT] = Number.NaN;
  mem[o + M_LAST_AT] = Number.NaN;
}

/** The memory, JSON-safe (null: nothing yet). */
export function pidMemorySnapshot(mem: Float64Array, o: number): PidMemory {
  return {
    integral: mem[o + M_INTEGRAL] as number,
    lastD: mem[o + M_LAST_D] as number,
    lastMeasurement: orNull(mem[o + M_LAST_MEASUREMENT] as number),
    lastAt: orNull(mem[o + M_LAST_AT] as number),
  };
}

/** Continues from a snapshot (another replica's); values outside the output range are clamped. */
export function restorePidMemory(mem: Float64Array, o: number, prm: PidParams, m: PidMemory): void {
  const finite = (v: number | null): number | undefined => (v !== null && Number.isFinite(v) ? v : undefined);
  mem[o + M_INTEGRAL] = clampTo(prm, finite(m.integral) ?? initialIntegral(prm));
  mem[o + M_LAST_D] = finite(m.lastD) ?? 0;
  const lastMeasurement = finite(m.lastMeasurement) ?? Number.NaN;
  mem[o + M_LAST_MEASUREMENT] = lastMeasurement;
  mem[o + M_LAST_AT] = Number.isNaN(lastMeasurement) ? Number.NaN : (finite(m.lastAt) ?? Number.NaN);
}

/** An update's inputs: setpoint, measurement and now (ms), in slots 0, 1, 2 (updatePidMemoryFrom). */
export const PID_INPUT_SLOTS = 3;
const IN_SETPOINT = 0;
const IN_MEASUREMENT = 1;
const IN_NOW = 2;
const INPUTS = new Float64Array(PID_INPUT_SLOTS);

/** An update's outputs (updatePidMemoryFrom): output, P, I, D, then what only PidStep reports. */
export const PID_OUTPUT_SLOTS = 9;
export const OUT_OUTPUT = 0;
export const OUT_P = 1;
export const OUT_I = 2;
export const OUT_D = 3;
const OUT_ERROR = 4;
const OUT_UNCLAMPED = 5;
const OUT_DT = 6;
/** 1: on the upper bound, −1: on the lower, 0: neither. */
const OUT_SATURATED = 7;
/** 1 when anti-windup limited the step. */
const OUT_ANTI_WINDUP = 8;
const OUTPUTS = new Float64Array(PID_OUTPUT_SLOTS);

/** One update of the controller whose memory is at `o` in `mem`, written into `out` (returned). */
export function updatePidMemory(
  mem: Float64Array,
  o: number,
  prm: PidParams,
  setpoint: number,
  measurement: number,
  now: number,
  out: MutablePidStep,
): MutablePidStep {
  INPUTS[IN_SETPOINT] = setpoint;
  INPUTS[IN_MEASUREMENT] = measurement;
  INPUTS[IN_NOW] = now;
  updatePidMemoryFrom(mem, o, prm, INPUTS, OUTPUTS);
  out.output = OUTPUTS[OUT_OUTPUT] as number;
  out.error = OUTPUTS[OUT_ERROR] as number;
  out.p = OUTPUTS[OUT_P] as number;
  out.i = OUTPUTS[OUT_I] as number;
  out.d = OUTPUTS[OUT_D] as number;
  out.unclamped = OUTPUTS[OUT_UNCLAMPED] as number;
  out.dt = OUTPUTS[OUT_DT] as number;
  const saturated = OUTPUTS[OUT_SATURATED] as number;
  out.saturated = saturated > 0 ? 'high' : saturated < 0 ? 'low' : false;
  out.antiWindup = OUTPUTS[OUT_ANTI_WINDUP] === 1;
  return out;
}

/**
 * updatePidMemory with its inputs in `input` (PID_INPUT_SLOTS doubles) and its outputs written
 * into `out` (PID_OUTPUT_SLOTS doubles). Why arrays: V8 boxes a double passed to a call it does
 * not inline (this one is too big to inline); the weight engine reads the outputs from a
 * Float64Array rather than a step object's double fields.
 */
export function updatePidMemoryFrom(mem: Float64Array, o: number, prm: PidParams, input: Float64Array, out: Float64Array): void {
  const setpoint = input[IN_SETPOINT] as number;
  const measurement = input[IN_MEASUREMENT] as number;
  const now = input[IN_NOW] as number;
  if (!Number.isFinite(setpoint) || !Number.isFinite(measurement) || !Number.isFinite(now)) {
    throw new RangeError(`PID inputs must be finite (setpoint ${setpoint}, measurement ${measurement}, now ${now})`);
  }
  const { kp, ki, kd, outputMin, outputMax } = prm;
  const lastAt = mem[o + M_LAST_AT] as number;
  const lastMeasurement = mem[o + M_LAST_MEASUREMENT] as number;
  let integral = mem[o + M_INTEGRAL] as number;
  const error = setpoint - measurement;
  const p = kp * error;
  const dt = Number.isNaN(lastAt) || Number.isNaN(lastMeasurement) ? 0 : Math.max(0, (now - lastAt) / prm.timeUnitMs);

  let d = mem[o + M_LAST_D] as number;
  let antiWindup = false;
  if (dt > 0) {
    d = (kd * (lastMeasurement - measurement)) / dt;
    const full = integral + ki * error * dt;
    let next = full;
    // Integrate toward a bound only as far as the level that puts the output on it.
    // Refusing the whole step instead would leave the output short of the bound forever.
    if (error > 0 && p + next + d > outputMax) next = Math.max(integral, outputMax - p - d);
    if (error < 0 && p + next + d < outputMin) next = Math.min(integral, outputMin - p - d);
    next = clampTo(prm, next);
    antiWindup = next !== full;
    integral = next;
    mem[o + M_INTEGRAL] = next;
  }
  if (Number.isNaN(lastAt) || dt > 0) {
    mem[o + M_LAST_AT] = now;
    mem[o + M_LAST_MEASUREMENT] = measurement;
    mem[o + M_LAST_D] = d;
  }
  // In one function, not a helper taking the terms as an object: this runs per endpoint per tick.
  const unclamped = p + integral + d;
  // When anti-windup parks the output on a bound, P + I + D lands there only up to
  // rounding; snap values within a few ulps so `saturated` reports what happened.
  const slack = 1e-12 * (outputMax - outputMin);
  const saturated = unclamped >= outputMax - slack ? 1 : unclamped <= outputMin + slack ? -1 : 0;
  out[OUT_OUTPUT] = saturated === 1 ? outputMax : saturated === -1 ? outputMin : unclamped;
  out[OUT_ERROR] = error;
  out[OUT_P] = p;
  out[OUT_I] = integral;
  out[OUT_D] = d;
  out[OUT_UNCLAMPED] = unclamped;
  out[OUT_DT] = dt;
  out[OUT_SATURATED] = saturated;
  out[OUT_ANTI_WINDUP] = antiWindup ? 1 : 0;
}

// Zero, or the nearest bound when the output range excludes zero (e.g. [0.5, 2]),
// so the integral never starts outside the range it is kept in.
const initialIntegral = (prm: PidParams): number => clampTo(prm, 0);

const clampTo = (prm: PidParams, x: number): number => Math.min(prm.outputMax, Math.max(prm.outputMin, x));

export class PidController {
  private params: PidParams;
  private readonly mem = new Float64Array(PID_MEMORY_SLOTS);

  constructor(options: PidOptions = {}) {
    this.params = pidParams(options);
    resetPidMemory(this.mem, 0, this.params);
  }

  update({ setpoint, measurement, now }: PidInput): PidStep {
    return this.updateInto(setpoint, measurement, now, blankPidStep());
  }

  /** `update` writing into `out` (returned), for callers that reuse one step object. */
  updateInto(setpoint: number, measurement: number, now: number, out: MutablePidStep): MutablePidStep {
    return updatePidMemory(this.mem, 0, this.params, setpoint, measurement, now, out);
  }

  get integralTerm(): number {
    return this.mem[M_INTEGRAL] as number;
  }

  getGains(): PidGains {
    const { kp, ki, kd } = this.params;
    return { kp, ki, kd };
  }

  setGains(gains: Partial<PidGains>): void {
    this.params = { ...this.params, ...checkGains({ ...this.getGains(), ...gains }) };
  }

  /** The controller's memory (not its gains), JSON-safe: what a successor needs to continue. */
  snapshot(): PidMemory {
    return pidMemorySnapshot(this.mem, 0);
  }

  /** Continues from a snapshot (another replica's); values outside the output range are clamped. */
  restore(m: PidMemory): void {
    restorePidMemory(this.mem, 0, this.params, m);
  }

  /** Forgets all history (soft state: the weight engine rebuilds it after a restart). */
  reset(): void {
    resetPidMemory(this.mem, 0, this.params);
  }
}

const orNull = (x: number): number | null => (Number.isNaN(x) ? null : x);

function checkGains({ kp, ki, kd }: PidGains): PidGains {
  for (const [name, value] of [['kp', kp], ['ki', ki], ['kd', kd]] as const) {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be finite and >= 0, got ${value}`);
  }
  return { kp, ki, kd };
}
