/**
 * One cluster's tick as parallel arrays of numbers (index = the endpoint's position in the cluster).
 * Each stage fills the arrays it owns; the explanations read them afterwards, so the frame is
 * also the tick's record. Parallel arrays keep a 10,000-endpoint tick free of per-endpoint objects.
 */
import type { HealthState } from '../../health.js';
import type { ReadingVectors } from '../error-window.js';
import { SAFETY_RULES, type Explanation, type Freshness, type PolicyKind, type PublishedHealth, type Sample, type SafetyRule } from '../types.js';

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

/*
 * Frame vectors are read as `v[i] as number` at each use, not through a shared helper: a slot is
 * in range, and a cast (unlike `v[i] ?? 0`) tests nothing. A helper such as `at(a, i)` has one
 * element-load feedback slot for all its callers, so it saw Float64Arrays, double arrays and Smi
 * arrays alike; inlined with that polymorphic feedback, V8 merged the loads as tagged values and
 * boxed every double it read into a new heap number: ~5 per steered endpoint per tick, 9 MB of
 * the 13 MB a 1×100,000 PID tick allocated (bench/RESULTS.md, pid6).
 */

// The PID's record of a tick's steps, one stride of STEP_SLOTS doubles per endpoint position in
// PidFrame.steps. One contiguous array, not a vector per field: at 500 clusters × 20 endpoints a
// cluster's frame is cold when its tick starts (two ticks old), and nine short vectors were nine
// separate streams of cache misses where one stride is one (bench/RESULTS.md, pid7).

/** The step's setpoint; NaN: no PID step for this endpoint in this tick (the rest of its stride is unset). */
export const S_SETPOINT = 0;
export const S_MEASUREMENT = 1;
export const S_P = 2;
export const S_I = 3;
export const S_D = 4;
export const S_OUTPUT = 5;
export const S_MULTIPLIER = 6;
/** 1 when the controller ran in this tick (else NaN). */
export const S_UPDATED = 7;
export const STEP_SLOTS = 8;

export interface PidFrame {
  /** STEP_SLOTS per endpoint (S_* above); all NaN until the PID stage writes them. */
  readonly steps: Float64Array;
}

/**
 * Vectors a cluster's tick writes and reads only while it runs (no explanation reads them), one
 * set per engine shared by all its clusters' ticks, at least as long as the largest cluster. An
 * engine runs one cluster's tick at a time (a tick in steps is completed before another starts),
 * so they are never shared by two ticks in flight. Shared rather than per frame: at 500 clusters ×
 * 20 endpoints a cluster's frame is two ticks old, out of cache, when its tick starts, while these
 * stay hot from the previous cluster's tick (bench/RESULTS.md, pid7).
 */
export interface TickScratch {
  /** Internal weight before this tick (serving endpoints). */
  prevW: number[];
  /** The step limit's ticks' worth of movement (tick/clamps.ts); reset to 1 per tick. */
  stepTicks: number[];
  /** The PID stage's steered positions, their readings and measurements. */
  steerIdx: number[];
  steerBase: number[];
  steerM: number[];
  /** The PID stage's error terms of the steered endpoints (cpu metric), when any applies. */
  steerErr: number[];
  /** The outlier detector's readings of the endpoints (tick/ejection.ts). */
  readings: JudgedReadings;
}

/** The error readings a tick's outlier detector judges, by endpoint position (the readings only where `present` is set). */
export interface JudgedReadings extends ReadingVectors {
  /** 1: judged this tick (in rotation, not ejected, with requests counted); else 0. */
  readonly present: number[];
  /** Work space for the judged rates in ascending order (the first `count` slots). */
  readonly sorted: number[];
}

export function newJudgedReadings(n: number): JudgedReadings {
  return { rate: packed(n, Number.NaN), requests: packed(n), lastRate: packed(n, Number.NaN), lastRequests: packed(n), present: packed(n), sorted: packed(n) };
}

export function newTickScratch(): TickScratch {
  return { prevW: [], stepTicks: [], steerIdx: [], steerBase: [], steerM: [], steerErr: [], readings: newJudgedReadings(0) };
}

/** The scratch, each vector at least n long (grown as a new packed vector). */
function fitScratch(s: TickScratch, n: number): TickScratch {
  if (s.prevW.length < n) {
    s.prevW = packed(n);
    s.stepTicks = packed(n, 1);
    s.steerIdx = packed(n);
    s.steerBase = packed(n);
    s.steerM = packed(n);
    s.steerErr = packed(n);
    s.readings = newJudgedReadings(n);
  }
  return s;
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
  /** How old a capacity or stall reading may be and still count (tick/freshness.ts readingWindowMs). */
  readonly freshMs: number;
  readonly policy: PolicyKind;
  readonly keys: readonly string[];
  readonly statics: readonly number[];
  readonly healthCode: number[];
  /** 1: in rotation this tick. */
  readonly serving: number[];
  /**
   * How many endpoints serve where they did not last tick or the reverse, per the held weights'
   * HW_SERVED (NaN: unknown); set by the health gate. Equals the count of differences from the last
   * tick's serving vector unless the cluster is dirty (setCluster, seedWeights and imports write
   * HW_SERVED): tick/publish.ts decide.
   */
  servingMoved: number;
  /** How many endpoints are declared out (the gate's H_DISABLED); set by the health gate. */
  declaredOut: number;
  /**
   * Serving endpoints with a positive error rate, with fresh steering data and without; counted by
   * the join pass (tick/join.ts), which has all three in hand, so the PID (whether error terms
   * apply) and the clamps (whether the error bound does) need no pass of their own to ask.
   */
  failingFresh: number;
  failingUnsteered: number;
  /**
   * Serving endpoints earning their share back from a newcomer's or probation's start
   * (held-weights.ts HW_EARN), counted by the join pass: the PID reads the marks only when some are.
   */
  earning: number;
  readonly rules: number[];
  readonly freshness: number[];
  /** Age of the steering data, ms; NaN: none. */
  readonly age: number[];
  /** Static weight × cluster scale: the decay target and the unit of floor and ceiling. */
  readonly fair: number[];
  /** Internal weight before this tick (serving endpoints): the engine's scratch, valid during the tick only. */
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
  /** The engine's tick scratch (prevW and stepTicks are two of its vectors). */
  readonly scratch: TickScratch;
  /** NaN: not steered by the PID. */
  util: number[] | undefined;
  pid: PidFrame | undefined;
  ewma: EwmaFrame | undefined;
  /** Each endpoint's merged sample and last probe latency at this tick (filled by the engine). */
  readonly samples: (Sample | undefined)[];
  readonly probeLatency: (number | undefined)[];
  /**
   * Bumped each time the frame is recycled for a later tick of its cluster (the engine keeps two
   * frames per cluster and alternates): explanations refuse to read a frame that moved on.
   */
  readonly generation: number;
  /**
   * The PID, EWMA and utilization vectors of the frame's previous use, kept for reuse: fields of
   * the frame rather than an object of their own (one cold object fewer per cluster tick).
   */
  sparePid: PidFrame | undefined;
  spareEwma: EwmaFrame | undefined;
  spareUtil: number[] | undefined;
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

/**
 * A filled array without holes (pushed, not preallocated: `filled`'s stays holey), for the tick
 * scratch. A NaN test of an element read from a holey array of doubles boxed it into a new heap
 * number (V8 reads a hole as undefined there): one per judged endpoint in the outlier detector's
 * pass and one per steered endpoint in the PID's error settling, ~40 B per endpoint per tick at 1 ×
 * 10,000 (an allocation profile). Not for the frame's own vectors, a set per cluster: pushed there
 * (each array's elements then apart from it), 500 clusters of 20 ticked 3 % faster but 2,000 of 5
 * 1–3 % slower (bench/engine-ab.ts, CPU, load 12–15): no clear gain.
 */
function packed(n: number, value = 0): number[] {
  const a: number[] = [];
  for (let i = 0; i < n; i++) a.push(value);
  return a;
}

/** Placeholder until the tick publishes (no two Maps per cluster per tick for nothing). */
const NONE: ReadonlyMap<string, never> = new Map<string, never>();

/** What a tick knows before its stages run. */
export type FrameInit = Pick<Frame, 'n' | 'now' | 'dt' | 'freshMs' | 'policy' | 'keys' | 'statics'> & { readonly scratch?: TickScratch };

/** When a tick reads an endpoint's readings, and how old they may be (a Frame is one: nothing allocated to pass it). */
export type ReadingClock = Pick<Frame, 'now' | 'freshMs'>;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * A new frame for a tick. A cluster's steady ticks reuse its frame from two ticks ago instead
 * (recycleFrame): that keeps them free of per-cluster vector allocations, ~30 vectors per cluster
 * per tick, 2 MB at 10,000 endpoints and 24 MB at 100,000, which the young generation otherwise
 * copied once and the old generation collected.
 */
export function newFrame(init: FrameInit): Frame {
  const { n } = init;
  const scratch = fitScratch(init.scratch ?? newTickScratch(), n);
  fillTo(scratch.stepTicks, 1, n);
  // Every property written here in one literal (no spread), so all frames share one shape.
  return {
    n,
    now: init.now,
    dt: init.dt,
    freshMs: init.freshMs,
    policy: init.policy,
    keys: init.keys,
    statics: init.statics,
    samples: new Array<undefined>(n).fill(undefined),
    probeLatency: new Array<undefined>(n).fill(undefined),
    age: filled(n),
    fair: filled(n),
    prevW: scratch.prevW,
    prevPub: filled(n),
    raw: filled(n),
    cand: filled(n),
    pub: filled(n),
    errorRate: filled(n, Number.NaN),
    stepTicks: scratch.stepTicks,
    scratch,
    rules: filled(n),
    healthCode: filled(n),
    serving: filled(n),
    servingMoved: Number.NaN,
    declaredOut: 0,
    failingFresh: 0,
    failingUnsteered: 0,
    earning: 0,
    freshness: filled(n),
    util: undefined,
    pid: undefined,
    ewma: undefined,
    ejections: undefined,
    failStatic: false,
    weights: NONE,
    health: NONE,
    generation: 0,
    sparePid: undefined,
    spareEwma: undefined,
    spareUtil: undefined,
  };
}

/** The endpoints' keys and static weights, from the cluster (a ClusterState is one: nothing allocated to pass them). */
export type FrameSource = Pick<Frame, 'keys' | 'statics'>;

/**
 * `frame` (the cluster's frame from two ticks ago, of the cluster's size) reset in place for a tick at
 * `now`, taking only scalars: no FrameInit object per cluster per tick.
 */
export function recycleFrame(frame: Frame, now: number, dt: number, freshMs: number, policy: PolicyKind, src: FrameSource, scratch?: TickScratch): Frame {
  const f = frame as Mutable<Frame>;
  f.now = now;
  f.dt = dt;
  f.freshMs = freshMs;
  f.policy = policy;
  f.keys = src.keys;
  f.statics = src.statics;
  // Only stepTicks: the stages write every other slot before anything reads it (ejection: samples,
  // probeLatency, errorRate; the gate: serving, rules, healthCode; the join pass: fair, age,
  // freshness, prevPub; publish: pub) or read it only where they wrote it (prevW, raw, cand: serving
  // endpoints). Resetting 17 vectors was a fifth of a static tick at 100,000 endpoints (profile).
  const fitted = fitScratch(scratch ?? f.scratch, f.n);
  f.scratch = fitted;
  f.prevW = fitted.prevW;
  f.stepTicks = fitted.stepTicks;
  fillTo(f.stepTicks, 1, f.n);
  f.sparePid = f.pid ?? f.sparePid;
  f.spareEwma = f.ewma ?? f.spareEwma;
  f.spareUtil = f.util ?? f.spareUtil;
  f.util = f.pid = f.ewma = f.ejections = undefined;
  f.failStatic = false;
  f.weights = NONE;
  f.health = NONE;
  f.generation++;
  return f;
}

/** The frame's utilization vector (all NaN), reusing its spare. */
export function takeUtil(f: Frame): number[] {
  const spare = f.spareUtil;
  f.spareUtil = undefined;
  f.util = spare === undefined ? filled(f.n, Number.NaN) : fillTo(spare, Number.NaN, f.n);
  return f.util;
}

/** The frame's PID vectors (reset), reusing its spare. */
export function takePidFrame(f: Frame): PidFrame {
  const spare = f.sparePid;
  f.sparePid = undefined;
  if (spare === undefined) f.pid = newPidFrame(f.n);
  else {
    unsetSteps(spare.steps, f.n);
    f.pid = spare;
  }
  return f.pid;
}

/** The frame's EWMA vectors (reset), reusing its spare. */
export function takeEwmaFrame(f: Frame): EwmaFrame {
  const spare = f.spareEwma;
  f.spareEwma = undefined;
  if (spare === undefined) f.ewma = newEwmaFrame(f.n);
  else {
    fillTo(spare.estimate, Number.NaN, f.n);
    fillTo(spare.bonus, 0, f.n);
    fillTo(spare.samples, 0, f.n);
    fillTo(spare.weight, 0, f.n);
    f.ewma = spare;
  }
  return f.ewma;
}

/*
 * Resets by loops in functions of their own, not Array.prototype.fill: fill is a C++ builtin,
 * ~0.2 µs a call whatever the length, and a 20-endpoint cluster's tick made three (~4% of it,
 * bench/RESULTS.md, pid7). Each function ends with its loop, so the on-stack optimization of a
 * 100,000-long loop is not deoptimized by code after it (tick/pid.ts sumOf).
 */

/** a[0..n) ← value; returns a. */
export function fillTo(a: number[], value: number, n: number): number[] {
  for (let i = 0; i < n; i++) a[i] = value;
  return a;
}

/** Unsets the steps of n endpoints: only what tells a stride apart (explanations read the rest only where setpoint is set, and the PID stage writes all of it wherever it sets that). */
function unsetSteps(steps: Float64Array, n: number): void {
  for (let o = 0; o < n * STEP_SLOTS; o += STEP_SLOTS) {
    steps[o + S_SETPOINT] = Number.NaN;
    steps[o + S_UPDATED] = Number.NaN;
  }
}

/** Endpoint i's PID step as its explanation shows it; undefined when the PID did not step it this tick. */
export function pidStepAt(pf: PidFrame, i: number): Explanation['pid'] {
  const steps = pf.steps;
  const o = i * STEP_SLOTS;
  const setpoint = steps[o + S_SETPOINT] as number;
  if (Number.isNaN(setpoint)) return undefined;
  const measurement = steps[o + S_MEASUREMENT] as number;
  return {
    setpoint,
    measurement,
    // Bit for bit the step's error (pid.ts computes it so): not kept in the frame.
    error: setpoint - measurement,
    p: steps[o + S_P] as number,
    i: steps[o + S_I] as number,
    d: steps[o + S_D] as number,
    output: steps[o + S_OUTPUT] as number,
    multiplier: steps[o + S_MULTIPLIER] as number,
    updated: steps[o + S_UPDATED] === 1,
  };
}

export function newPidFrame(n: number): PidFrame {
  return { steps: new Float64Array(n * STEP_SLOTS).fill(Number.NaN) };
}

export function newEwmaFrame(n: number): EwmaFrame {
  return { estimate: filled(n, Number.NaN), bonus: filled(n), samples: filled(n), weight: filled(n) };
}

/** Marks a rule on endpoint i. */
export function mark(f: Frame, i: number, bit: number): void {
  f.rules[i] = (f.rules[i] as number) | bit;
}
