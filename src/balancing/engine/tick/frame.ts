/**
 * One cluster's tick as parallel arrays of numbers (index = the endpoint's position in the cluster).
 * Each stage fills the arrays it owns; the explanations read them afterwards, so the frame is
 * also the tick's record. Parallel arrays keep a 10,000-endpoint tick free of per-endpoint objects.
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
  readonly setpoint: number[];
  readonly measurement: number[];
  readonly error: number[];
  readonly p: number[];
  readonly i: number[];
  readonly d: number[];
  readonly output: number[];
  readonly multiplier: number[];
  readonly updated: number[];
}

export interface EwmaFrame {
  /** NaN: no estimate. */
  readonly estimate: number[];
  readonly bonus: number[];
  readonly samples: number[];
  readonly weight: number[];
}

export interface Frame {
  readonly n: number;
  readonly now: number;
  /** Time since the cluster's previous tick (tickMs on the first). */
  readonly dt: number;
  readonly policy: PolicyKind;
  readonly keys: readonly string[];
  readonly statics: readonly number[];
  readonly healthCode: number[];
  /** 1: in rotation this tick. */
  readonly serving: number[];
  readonly rules: number[];
  readonly freshness: number[];
  /** Age of the steering data, ms; NaN: none. */
  readonly age: number[];
  /** Static weight × cluster scale: the decay target and the unit of floor and ceiling. */
  readonly fair: number[];
  /** Internal weight before this tick (serving endpoints). */
  readonly prevW: number[];
  /** Published weight before this tick. */
  readonly prevPub: number[];
  /** The controller's target. */
  readonly raw: number[];
  /** After freshness, step limit, floor and ceiling. */
  readonly cand: number[];
  /** Published after this tick. */
  readonly pub: number[];
  /** Smoothed error rate; NaN: unknown. */
  readonly errorRate: number[];
  /**
   * Ticks' worth of movement the step limit allows this tick (1 normally): a controller that acts
   * once per report, with reports every k ticks, may move k ticks' worth at once (see clamps.ts).
   */
  readonly stepTicks: number[];
  /** NaN: not steered by the PID. */
  util: number[] | undefined;
  pid: PidFrame | undefined;
  ewma: EwmaFrame | undefined;
  readonly samples: readonly (Sample | undefined)[];
  readonly probeLatency: readonly (number | undefined)[];
  /** Per endpoint: the ejection in force (reason, until, count); allocated at the first one. */
  ejections: ({ reason: string; until: number; count: number } | undefined)[] | undefined;
  failStatic: boolean;
  weights: ReadonlyMap<string, number>;
  health: ReadonlyMap<string, PublishedHealth>;
}

/**
 * A filled array. Plain arrays, not typed arrays: measured on 500 clusters × 20 endpoints, a tick
 * allocating its per-cluster vectors as typed arrays (separate backing stores, or views carved out
 * of one ArrayBuffer) spent most of its time creating them and collecting their external memory
 * (~24 ms/tick vs ~4 ms); plain arrays of doubles are cheap young-generation objects.
 */
export function filled(n: number, value = 0): number[] {
  return new Array<number>(n).fill(value);
}

/** Placeholder until the tick publishes (no two Maps per cluster per tick for nothing). */
const NONE: ReadonlyMap<string, never> = new Map<string, never>();

/** What a tick knows before its stages run. */
export type FrameInit = Pick<Frame, 'n' | 'now' | 'dt' | 'policy' | 'keys' | 'statics' | 'samples' | 'probeLatency'>;

export function newFrame(init: FrameInit): Frame {
  const { n } = init;
  // Every property written here in one literal (no spread), so all frames share one shape.
  return {
    n,
    now: init.now,
    dt: init.dt,
    policy: init.policy,
    keys: init.keys,
    statics: init.statics,
    samples: init.samples,
    probeLatency: init.probeLatency,
    age: filled(n),
    fair: filled(n),
    prevW: filled(n),
    prevPub: filled(n),
    raw: filled(n),
    cand: filled(n),
    pub: filled(n),
    errorRate: filled(n, Number.NaN),
    stepTicks: filled(n, 1),
    rules: filled(n),
    healthCode: filled(n),
    serving: filled(n),
    freshness: filled(n),
    util: undefined,
    pid: undefined,
    ewma: undefined,
    ejections: undefined,
    failStatic: false,
    weights: NONE,
    health: NONE,
  };
}

export function newPidFrame(n: number): PidFrame {
  return {
    setpoint: filled(n, Number.NaN),
    measurement: filled(n),
    error: filled(n),
    p: filled(n),
    i: filled(n),
    d: filled(n),
    output: filled(n),
    multiplier: filled(n),
    updated: filled(n),
  };
}

export function newEwmaFrame(n: number): EwmaFrame {
  return { estimate: filled(n, Number.NaN), bonus: filled(n), samples: filled(n), weight: filled(n) };
}

/** Marks a rule on endpoint i. */
export function mark(f: Frame, i: number, bit: number): void {
  f.rules[i] = at(f.rules, i) | bit;
}
