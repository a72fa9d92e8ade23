/**
 * One cluster's tick as parallel typed arrays (index = the endpoint's position in the cluster).
 * Each stage fills the arrays it owns; the explanations read them afterwards, so the frame is
 * also the tick's record. Typed arrays keep a 10,000-endpoint tick free of per-endpoint objects.
 */
import type { HealthState } from '../../health.js';
import { SAFETY_RULES, type Freshness, type PolicyKind, type PublishedHealth, type Sample, type SafetyRule } from '../types.js';

export const FRESHNESS_CODES = ['fresh', 'stale', 'expired', 'none'] as const satisfies readonly Freshness[];
export const F_FRESH = 0;
export const F_STALE = 1;
export const F_EXPIRED = 2;
export const F_NONE = 3;

export const HEALTH_CODES = ['AVAILABLE', 'UNAVAILABLE', 'RECOVERING', 'OPERATOR_DISABLED'] as const satisfies readonly (
  | HealthState
  | 'OPERATOR_DISABLED'
)[];
export const H_DISABLED = 3;

export function ruleBit(rule: SafetyRule): number {
  return 1 << SAFETY_RULES.indexOf(rule);
}

/** Reads a typed-array slot (always in range in the stages; `?? 0` satisfies the index check). */
export const at = (a: ArrayLike<number>, i: number): number => a[i] ?? 0;

export interface PidFrame {
  /** NaN: no PID step yet. */
  readonly setpoint: Float64Array;
  readonly measurement: Float64Array;
  readonly error: Float64Array;
  readonly p: Float64Array;
  readonly i: Float64Array;
  readonly d: Float64Array;
  readonly output: Float64Array;
  readonly multiplier: Float64Array;
  readonly updated: Uint8Array;
}

export interface EwmaFrame {
  /** NaN: no estimate. */
  readonly estimate: Float64Array;
  readonly bonus: Float64Array;
  readonly samples: Float64Array;
  readonly weight: Float64Array;
}

export interface Frame {
  readonly n: number;
  readonly now: number;
  /** Time since the cluster's previous tick (tickMs on the first). */
  readonly dt: number;
  readonly policy: PolicyKind;
  readonly keys: readonly string[];
  readonly statics: Float64Array;
  readonly healthCode: Uint8Array;
  /** 1: in rotation this tick. */
  readonly serving: Uint8Array;
  readonly rules: Uint32Array;
  readonly freshness: Uint8Array;
  /** Age of the steering data, ms; NaN: none. */
  readonly age: Float64Array;
  /** Static weight × cluster scale: the decay target and the unit of floor and ceiling. */
  readonly fair: Float64Array;
  /** Internal weight before this tick (serving endpoints). */
  readonly prevW: Float64Array;
  /** Published weight before this tick. */
  readonly prevPub: Float64Array;
  /** The controller's target. */
  readonly raw: Float64Array;
  /** After freshness, step limit, floor and ceiling. */
  readonly cand: Float64Array;
  /** Published after this tick. */
  readonly pub: Float64Array;
  /** Smoothed error rate; NaN: unknown. */
  readonly errorRate: Float64Array;
  /**
   * Ticks' worth of movement the step limit allows this tick (1 normally): a controller that acts
   * once per report, with reports every k ticks, may move k ticks' worth at once (see clamps.ts).
   */
  readonly stepTicks: Float64Array;
  /** NaN: not steered by the PID. */
  util: Float64Array | undefined;
  pid: PidFrame | undefined;
  ewma: EwmaFrame | undefined;
  readonly samples: readonly (Sample | undefined)[];
  readonly probeLatency: readonly (number | undefined)[];
  /** Per endpoint: the ejection in force (reason, until, count), if any. */
  readonly ejections: ({ reason: string; until: number; count: number } | undefined)[];
  failStatic: boolean;
  weights: ReadonlyMap<string, number>;
  health: ReadonlyMap<string, PublishedHealth>;
}

export function newFrame(init: {
  n: number;
  now: number;
  dt: number;
  policy: PolicyKind;
  keys: readonly string[];
  statics: Float64Array;
  samples: readonly (Sample | undefined)[];
  probeLatency: readonly (number | undefined)[];
}): Frame {
  const { n } = init;
  return {
    ...init,
    healthCode: new Uint8Array(n),
    serving: new Uint8Array(n),
    rules: new Uint32Array(n),
    freshness: new Uint8Array(n),
    age: new Float64Array(n),
    fair: new Float64Array(n),
    prevW: new Float64Array(n),
    prevPub: new Float64Array(n),
    raw: new Float64Array(n),
    cand: new Float64Array(n),
    pub: new Float64Array(n),
    errorRate: new Float64Array(n).fill(Number.NaN),
    stepTicks: new Float64Array(n).fill(1),
    util: undefined,
    pid: undefined,
    ewma: undefined,
    ejections: new Array<undefined>(n).fill(undefined),
    failStatic: false,
    weights: new Map(),
    health: new Map(),
  };
}

export function newPidFrame(n: number): PidFrame {
  return {
    setpoint: new Float64Array(n).fill(Number.NaN),
    measurement: new Float64Array(n),
    error: new Float64Array(n),
    p: new Float64Array(n),
    i: new Float64Array(n),
    d: new Float64Array(n),
    output: new Float64Array(n),
    multiplier: new Float64Array(n),
    updated: new Uint8Array(n),
  };
}

export function newEwmaFrame(n: number): EwmaFrame {
  return {
    estimate: new Float64Array(n).fill(Number.NaN),
    bonus: new Float64Array(n),
    samples: new Float64Array(n),
    weight: new Float64Array(n),
  };
}

/** Marks a rule on endpoint i. */
export function mark(f: Frame, i: number, bit: number): void {
  f.rules[i] = at(f.rules, i) | bit;
}
