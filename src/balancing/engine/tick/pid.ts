/**
 * Stage 3a, the PID controller (Robinhood style). Per endpoint with fresh data, a measurement
 *
 *     m = utilization (by metric) + latency excess + error term
 *
 * (the error term: its failures counted as busy, whatever errorPenalty, plus ERROR_SCALE ×
 * errorPenalty × error rate, so that a clearly failing endpoint reads as overloaded) smoothed over
 * samples, is driven toward the setpoint (the cluster mean, or a fixed target) by
 * w ← w · exp(k · output); the steered endpoints are then renormalized to their previous sum, so
 * steering moves traffic among them without changing the share of those it did not steer. The
 * error term (errorTerm: its failures counted as busy as its answers, plus the penalty) is why a
 * backend that fails fast (and so looks idle) loses traffic instead of gaining it, as far as its
 * peers can carry its load (tick/error-shift.ts); the latency excess is why a backend slowed by a
 * dependency loses traffic although its CPU is fine. Weights rest inside a deadband around the
 * setpoint and while the whole cluster is nearly idle, so sampling noise does not become a push
 * every tick; an endpoint that started below its fair share as a newcomer or on probation, and
 * that the controller has not yet judged, is the one that still moves while the cluster is idle
 * (earnStep).
 */
import { isSet, valueOr, type ClusterState, type EndpointState } from '../state.js';
import { utilizations } from '../stages.js';
import type { Sample, UtilizationMetric } from '../types.js';
import {
  F_FRESH,
  mark,
  ruleBit,
  S_D,
  S_I,
  S_MEASUREMENT,
  S_MULTIPLIER,
  S_OUTPUT,
  S_P,
  S_SETPOINT,
  S_UPDATED,
  STEP_SLOTS,
  takePidFrame,
  takeUtil,
  type Frame,
  type PidFrame,
} from './frame.js';
import { inChunks } from '../../steps.js';
import { HW_EARN, HW_ROW } from '../held-weights.js';
import { silent, stallReading } from './stall.js';
import { drainOrRestore, markDrained } from './backlog.js';
import { finishedOf } from './flow.js';
import { addUtilization, errorShiftAllowance, freshUtilizationOf, newTotals, type UtilizationTotals } from './error-shift.js';
import { OUT_D, OUT_I, OUT_OUTPUT, OUT_P, PID_INPUT_SLOTS, PID_OUTPUT_SLOTS, resetPidMemory, updatePidMemoryFrom } from '../../pid.js';
import {
  LATEST_AT,
  LATEST_CPU,
  LATEST_ERROR_RATE,
  LATEST_SLOTS,
  PR_D,
  PR_PENDING,
  PR_I,
  PR_LAST_CONTROL_AT,
  PR_MEASUREMENT,
  PR_MEMORY,
  PR_MULTIPLIER,
  PR_NOISE,
  PR_OUTPUT,
  PR_P,
  PR_SETPOINT,
  PR_SMOOTHED,
  PR_W,
  ROW,
  cell,
} from '../pid-rows.js';

const R_AWAITING = ruleBit('awaiting-sample');
const R_ERROR = ruleBit('error-penalty');
const R_LATENCY = ruleBit('latency-penalty');
const R_DEADBAND = ruleBit('deadband');
const R_LOW_LOAD = ruleBit('low-load-hold');
const R_PROBATION = ruleBit('probation');
const R_PEERS_BUSY = ruleBit('peers-near-capacity');

/**
 * The step limit is a rate (maxStepRatio per tick). With Envoy reporting every 2 s and a 1 s tick
 * the controller acts every other tick, so it may move two ticks' worth at once, up to this many.
 */
const MAX_STEP_TICKS = 4;
/**
 * The deadband widens to this many times an endpoint's measured noise (the mean absolute gap
 * between a new measurement and the smoothed one): a reading within the noise of the setpoint is
 * no reason to move, however noisy the backend's reports. Clean signals keep the configured band,
 * and so does a failing endpoint (FAILING_RATE): its swings are its errors coming and going, neither
 * rested on nor learned as noise (an endpoint back from an ejection rested on what they taught).
 */
const NOISE_BAND = 1.5;
const NOISE_SHARE = 0.1;
/**
 * Below its setpoint, an endpoint rests on its noise band only while the band is within this share
 * of the setpoint: one this far below its peers' load is starved, however noisy its reports. The
 * measured noise also counts the gaps of real steps, and a backend slowed by a dependency and then
 * recovered had a band past a 40% error: it rested at a ninth of its peer's weight
 * (bench/scenarios/run.ts --scenario recovery). Above its setpoint the band stays whole: after a
 * capacity cut it is what stops the descent short of an overshoot (headline).
 */
const MAX_STARVING_BAND = 0.25;
/**
 * Latency up to this much above the cluster median is normal spread, not a slow backend: at equal
 * utilization a 3-worker backend queues ~25% longer than a 6-worker one (M/M/c at 70%), and that
 * difference must not fight the CPU balance.
 */
const LATENCY_TOLERANCE = 0.5;
/**
 * How much latency may count as load. Near saturation a backend's latency climbs steeply with its
 * load (an M/M/1 queue at 85% busy: 1% more load, ~6% more latency) and lags it while its queue
 * drains, so an unbounded excess gave the latency path ~15× the loop gain of the cpu path: the
 * controller pushed a queueing backend to its step limit, overshot, pushed back, and the weights
 * of equal backends swung 6–18× at 85% load (scale-out and hetero-step with a real Envoy,
 * latency-stability.test.ts). So the excess of a backend as busy as its peers counts as at most
 * MAX_LATENCY_EXCESS of their mean utilization; one slower than its peers while less busy than
 * them is slow for a reason its load does not explain (a slow dependency), and for each unit of
 * utilization it is below their mean its excess may count LATENCY_BELOW_PEERS more: it is pushed
 * down about as fast as without a bound (failure-modes.test.ts "latency steers pid").
 */
const MAX_LATENCY_EXCESS = 0.25;
const LATENCY_BELOW_PEERS = 2;
/** From this cpu on a backend is saturated: its cpu no longer says how far past its capacity it is (offeredLoad). */
const SATURATED_CPU = 0.95;
/** A saturated endpoint's load reads at most this many times its cpu. */
const MAX_OVERLOAD = 4;
/**
 * Utilization units per unit of error rate (× errorPenalty × the cluster's allowance): 10% errors
 * count as 0.4 of extra load, 50% as 2, so an endpoint failing clearly more than its peers is
 * driven to the floor rather than to a slightly lower share. Uniform errors shift every measurement
 * alike and cancel: the allowance is one per tick (settle), never one per endpoint, which made
 * equal rates give unequal penalties and, every endpoint failing 90% of calls that cost CPU, raised
 * the mean setpoint's loop gain into oscillation (max/avg 1.04 → 1.51 in the fleet model).
 */
const ERROR_SCALE = 4;
/** An endpoint failing at least this share of its requests never gains a share from its peers' load (holdFailing); sporadic errors do not hold. */
const FAILING_RATE = 0.05;
/** An endpoint failing more than this share is counted as if it served this share (errorTerm): a bound, not a division by zero. */
const MIN_SUCCESS_RATE = 0.1;
/** Penalties below this (in utilization units) do not count as "something to correct" at low load. */
const PENALTY_EPSILON = 0.02;
/**
 * An earning endpoint (held-weights.ts HW_EARN) within this share of its fair share has earned it:
 * each raise to its fair share is renormalized a little below it, so it only nears it.
 */
const EARNED_SHARE = 0.99;

/** No latency or error term for anyone (read through `termAt`, so it reads as zeros). */
const NO_TERMS: number[] = [];

/** A term's value: NO_TERMS reads as zeros. */
const termAt = (terms: number[], j: number): number => (terms === NO_TERMS ? 0 : terms[j] as number);
const NO_LATENCIES: ReadonlyMap<number, number> = new Map<number, number>();

interface Steered {
  /** How many endpoints are steered: the vectors below are read up to k (they may be longer). */
  readonly k: number;
  /** Endpoint positions. */
  readonly idx: number[];
  /** Utilization by metric, per steered endpoint. */
  readonly base: number[];
  /** Latency excess and error penalty, per steered endpoint (utilization units). */
  readonly latency: number[];
  readonly errors: number[];
  /** How many of them fail (holdFailing), counted by errorTerm; 0 without error terms. */
  readonly failing: number;
  /** The smoothed measurements are already in the tick scratch's steerM (steeredOnCpu measures as it goes). */
  readonly measured: boolean;
}

/**
 * Runs the PID part; updates pidW of the steered endpoints, fills the frame, returns the setpoint.
 * `x` receives every serving endpoint's pidW after the update (the PID's weight vector).
 * In steps of about `chunk` endpoints (it yields between them; a sliced tick frees the event loop
 * there): each per-endpoint pass resumes by index range with its running sums carried in order,
 * so the result is the same whatever the chunk.
 */
export function* runPid(c: ClusterState, f: Frame, x: number[], chunk: number): Generator<void, number | undefined, void> {
  const begun = beginSteering(c, f, x);
  const on = begun.on;
  if (on !== undefined) yield* inChunks(f.n, chunk, (from, to) => steerRange(c, f, x, on, from, to));
  if (on?.inputs !== undefined) {
    const inputs = settled(c, f, on.inputs, on.k);
    yield* inChunks(on.k, chunk, (from, to) => errorRange(c, f, inputs, from, to));
  }
  const aim = aimAt(c, f, begun);
  if (aim === undefined) return undefined;
  const { k } = aim.st;
  yield* inChunks(k, chunk, (from, to) => controlRange(c, f, aim, from, to));
  const m = aim.next > 0 ? aim.prev / aim.next : 1;
  for (let from = 0; from < k; from += chunk) {
    if (k > chunk) yield;
    normalizeRange(c, { idx: aim.st.idx, targets: f.scratch.steerM, x, m }, from, Math.min(k, from + chunk));
  }
  return aim.setpoint;
}

/** runPid in one piece (a whole tick: no generator per cluster, which cost ~10% of a tick of 500 × 20). */
export function runPidWhole(c: ClusterState, f: Frame, x: number[]): number | undefined {
  const begun = beginSteering(c, f, x);
  const on = begun.on;
  if (on !== undefined) steerRange(c, f, x, on, 0, f.n);
  if (on?.inputs !== undefined) errorRange(c, f, settled(c, f, on.inputs, on.k), 0, on.k);
  const aim = aimAt(c, f, begun);
  if (aim === undefined) return undefined;
  controlRange(c, f, aim, 0, aim.st.k);
  normalizeRange(c, { idx: aim.st.idx, targets: f.scratch.steerM, x, m: aim.next > 0 ? aim.prev / aim.next : 1 }, 0, aim.st.k);
  return aim.setpoint;
}

interface Begun {
  readonly pf: PidFrame;
  /** The cpu metric's steering, by ranges (steerRange); else `st` is already complete. */
  readonly on: CpuSteering | undefined;
  readonly st: Steered | undefined;
}

function beginSteering(c: ClusterState, f: Frame, x: number[]): Begun {
  takeUtil(f);
  const pf = takePidFrame(f);
  return c.pidConfig.metric === 'cpu' ? { pf, on: steerOnCpu(c, f), st: undefined } : { pf, on: undefined, st: steered(c, f, x) };
}

/** What the control passes need: the steered endpoints, setpoint, low-load hold, and the running sums. */
interface Aim {
  readonly pf: PidFrame;
  readonly st: Steered;
  readonly setpoint: number;
  readonly hold: boolean;
  prev: number;
  next: number;
  /** The PID vector's weight per unit of the internal weights' (earnStep's fair share in its scale); NaN until an earning endpoint asks. */
  pidScale: number;
  /** The steered endpoints' measurements before any term, summed (their load: a drain's peers'); NaN until a drain asks. */
  baseSum: number;
}

/** Measures the steered endpoints and sets the setpoint; undefined when none is steered. */
function aimAt(c: ClusterState, f: Frame, b: Begun): Aim | undefined {
  const { pf, on } = b;
  const st: Steered =
    on !== undefined ? { k: on.k, idx: f.scratch.steerIdx, base: f.scratch.steerBase, latency: NO_TERMS, errors: on.errors, failing: on.inputs?.failing ?? 0, measured: true } : (b.st as Steered);
  const k = st.k;
  if (k === 0) return undefined;
  const sm = measure(c, f, st, f.scratch.steerM);
  // holdFailing changes nothing when none fails or all do (no pass over them for it then).
  if (st.errors !== NO_TERMS && st.failing > 0 && st.failing < k) holdFailing(f, c.pidRows.latest, st, sm);
  let setpoint: number;
  if (c.pidConfig.setpoint === 'mean') setpoint = sumOf(sm, k) / k;
  else setpoint = c.pidConfig.setpoint;
  return { pf, st, setpoint, hold: lowLoad(c, st), prev: 0, next: 0, pidScale: Number.NaN, baseSum: Number.NaN };
}

/**
 * Errors never raise a share: an endpoint failing at least FAILING_RATE of its requests is
 * measured at least as busy as the mean of its peers that fail less. Its peers are busier with its
 * retried failures, and once their load took its error penalty away (tick/error-shift.ts), the
 * mean setpoint sent it more traffic for being less busy than they are. Its own measurement is
 * floored for this tick only (its smoothed one is kept). When every endpoint fails (none to
 * compare with), errors cancel.
 */
function holdFailing(f: Frame, latest: Float64Array, st: Steered, sm: number[]): void {
  let sum = 0;
  let count = 0;
  for (let j = 0; j < st.k; j++) {
    if (!failing(f, latest, st.idx[j] as number)) {
      sum += sm[j] as number;
      count++;
    }
  }
  if (count === 0 || count === st.k) return;
  const peers = sum / count;
  for (let j = 0; j < st.k; j++) if (failing(f, latest, st.idx[j] as number) && (sm[j] as number) < peers) sm[j] = peers;
}

/** Its windowed or its latest sample's error rate (pid-rows.ts LATEST_ERROR_RATE) is at least FAILING_RATE. */
const failing = (f: Frame, latest: Float64Array, i: number): boolean =>
  (f.errorRate[i] as number) >= FAILING_RATE || (latest[LATEST_SLOTS * i + LATEST_ERROR_RATE] as number) >= FAILING_RATE;

/**
 * xs[0] + … + xs[k − 1], in order. A function of its own that returns right after its loop: V8
 * optimizes the loop of a function called once per tick by on-stack replacement, compiled while
 * the code after the loop has never run; that code then deoptimized on every tick (aimAt, at
 * 1×100,000), leaving the loop to the interpreter on the next.
 */
function sumOf(xs: number[], k: number): number {
  let total = 0;
  for (let j = 0; j < k; j++) total += xs[j] as number;
  return total;
}

/** Steered endpoints from..to: pidW ← target × m (the steered sum kept), into `x` too. */
function normalizeRange(c: ClusterState, n: { idx: number[]; targets: number[]; x: number[]; m: number }, from: number, to: number): void {
  const rows = c.pidRows.rows;
  for (let j = from; j < to; j++) {
    const i = n.idx[j] as number;
    const w = (n.targets[j] as number) * n.m;
    rows[i * ROW + PR_W] = w;
    n.x[i] = w;
  }
}

function controlRange(c: ClusterState, f: Frame, aim: Aim, from: number, to: number): void {
  const { pf, st } = aim;
  const sm = f.scratch.steerM;
  const rows = c.pidRows.rows;
  // Sums in locals, written back once: not a field update per endpoint in the hot loop.
  let prevSum = aim.prev;
  let newSum = aim.next;
  for (let j = from; j < to; j++) {
    const i = st.idx[j] as number;
    prevSum += valueOr(rows[i * ROW + PR_W] as number, 0);
    control(c, f, aim, j);
    newSum += sm[j] as number;
    explain(pf, rows, i);
  }
  aim.prev = prevSum;
  aim.next = newSum;
}

/** The endpoints the PID steers this tick (serving, fresh, with the metric) and their terms; x ← pidW of every serving one. */
function steered(c: ClusterState, f: Frame, x: number[]): Steered {
  const cand: number[] = [];
  for (let i = 0; i < f.n; i++) {
    if (!f.serving[i]) continue;
    const e = c.order[i] as EndpointState;
    x[i] = valueOr(cell(c.pidRows.rows, i, PR_W), 0);
    if (f.freshness[i] === F_FRESH && e.sample !== undefined) cand.push(i);
  }
  const metric = c.pidConfig.metric;
  const lat = relativeLatencies(c, f, cand);
  const base = baseUtilization(c, metric, cand, lat, f.now);
  const idx: number[] = [];
  const b: number[] = [];
  for (let j = 0; j < cand.length; j++) {
    const u = base[j];
    if (u === undefined) continue;
    idx.push(cand[j] as number);
    b.push(u);
  }
  const ref = Math.max(0.05, b.length > 0 ? b.reduce((x, y) => x + y, 0) / b.length : 0.5);
  const excess = metric === 'cpu-latency' && b.length > 0 && idx.some((i) => c.order[i]?.sample?.cpu !== undefined);
  const latency = excess && lat.size > 0 ? idx.map((i, j) => latencyExcess(lat.get(i) ?? 1, ref, b[j] as number)) : NO_TERMS;
  // Not gated on errorPenalty: counting failures as busy corrects the measurement (errorTerm).
  const anyErrors = idx.some((i) => (f.errorRate[i] as number) > 0);
  const at = anyErrors ? errorTerms(c, f, idx, b) : undefined;
  return { k: idx.length, idx, base: b, latency, errors: at?.errors ?? NO_TERMS, failing: at?.failing ?? 0, measured: false };
}

/** The steered endpoints' error terms (errorTerm, into the result's `errors`); `base`: their measurements before any term. */
function errorTerms(c: ClusterState, f: Frame, idx: readonly number[], base: readonly number[]): ErrorInputs {
  // Fresh cpu only: this path's freshness is its metric's, and a cpu whose reports stopped is not.
  // As the cpu path reads it: what a saturated one was sent past its capacity counts (offeredLoad).
  const own = idx.map((i) => offeredLoad(c.order[i] as EndpointState, freshUtilizationOf(c.order[i] as EndpointState, f), f.now, c.safety.staleAfterMs));
  const at = errorInputs(own, base, new Array<number>(idx.length));
  settle(c, f, idx, idx.length, at);
  for (let j = 0; j < idx.length; j++) errorTerm(c, f, idx[j] as number, at, j);
  return at;
}

/** What errorTerm reads and writes, by steered position: numbers in arrays, not arguments or a return value (V8 boxes a double passed across a call it does not inline). */
interface ErrorInputs {
  /** Each one's utilization (NaN: none): settle's means of the non-failing and of all endpoints. */
  readonly own: readonly number[];
  /** Each one's measurement before any term. */
  readonly base: readonly number[];
  /** Its error term, written here. */
  readonly errors: number[];
  /** How many of them fail (holdFailing's test), counted by settle. */
  failing: number;
  /** The share of the penalty the cluster's non-failing endpoints' utilization allows, set by settle. */
  allowance: number;
}

function errorInputs(own: readonly number[], base: readonly number[], errors: number[]): ErrorInputs {
  return { own, base, errors, failing: 0, allowance: 1 };
}

/**
 * In one pass over the k steered endpoints in idx: how many fail (at.failing), and the share of the
 * error penalty this tick allows (at.allowance), one for every endpoint: from the mean utilization
 * of those not failing (those a failing one's load moves onto; all of them when every one fails).
 * One value, so equal error rates get equal penalties.
 */
function settle(c: ClusterState, f: Frame, idx: ArrayLike<number>, k: number, at: ErrorInputs): void {
  const latest = c.pidRows.latest;
  const clean: UtilizationTotals = newTotals();
  const all: UtilizationTotals = newTotals();
  let failingCount = 0;
  for (let j = 0; j < k; j++) {
    const u = at.own[j] as number;
    addUtilization(all, u);
    if (failing(f, latest, idx[j] as number)) failingCount++;
    else addUtilization(clean, u);
  }
  at.failing = failingCount;
  at.allowance = errorShiftAllowance(clean.count > 0 ? clean : all);
}

/**
 * Steered endpoint j's (position i) error term, into at.errors[j], in two parts:
 * - its failed requests counted as busy as its served ones (base × r / (1 − r)): fast failures
 *   cost next to nothing, so without this an endpoint failing half its requests fast read half
 *   as busy, and gained traffic as soon as anything else stopped holding it back;
 * - ERROR_SCALE × errorPenalty × r, times the share the non-failing endpoints' utilization
 *   allows (settle, tick/error-shift.ts): what drives it below its capacity share, only while
 *   its peers can carry the load.
 * Marks the rule when the share bites. The first part is on whatever errorPenalty: it is not a
 * penalty but what the endpoint's cpu leaves out, and at errorPenalty 0 its absence sent an
 * endpoint failing half its calls fast twice its share (0.25 → 0.49 in the fleet model).
 */
function errorTerm(c: ClusterState, f: Frame, i: number, at: ErrorInputs, j: number): void {
  const rate = f.errorRate[i] as number;
  // The error rate of its latest sample (NaN without counts): what its utilization in the same
  // sample was measured under. The windowed rate lags it: when a backend starts failing fast, its
  // utilization drops at once while the window still remembers its clean traffic.
  const now = c.pidRows.latest[LATEST_SLOTS * i + LATEST_ERROR_RATE] as number;
  if (!(rate > 0) && !(now > 0)) {
    at.errors[j] = 0;
    return;
  }
  const penalized = rate > 0 && c.errorPenalty > 0;
  if (penalized && at.allowance < 1) mark(f, i, R_PEERS_BUSY);
  const served = Math.max(MIN_SUCCESS_RATE, 1 - (now >= 0 ? now : rate));
  at.errors[j] = ((at.base[j] as number) * (1 - served)) / served + (penalized ? ERROR_SCALE * c.errorPenalty * rate * at.allowance : 0);
}

/**
 * `steered` for the common metric, cpu as reported, without per-tick vectors: positions and
 * readings go into the engine's tick scratch (tick/frame.ts; at 100,000 endpoints the general path built
 * five vectors of up to n entries per tick), by index range (steerRange), `k` counting them.
 */
interface CpuSteering {
  /** Whether any error term applies, from the frame alone, so the one pass can measure too. */
  readonly errors: number[];
  /**
   * When one does, errorTerm's inputs: the steered endpoints' cpu, for each one's peers'
   * (tick/error-shift.ts), summed by steerRange as it steers them. On cpu an endpoint's
   * utilization is its measurement: `own` is `base`. One object per tick of a cluster with errors
   * (most clusters' ticks have none: no object).
   */
  readonly inputs: ErrorInputs | undefined;
  k: number;
}

function steerOnCpu(c: ClusterState, f: Frame): CpuSteering {
  // The engine's scratch (hot, and no vector per cluster per tick); read up to k, each entry written first.
  // Whether any error term applies: the join pass counted the serving endpoints failing (tick/join.ts).
  if (f.failingFresh === 0) return { errors: NO_TERMS, inputs: undefined, k: 0 };
  const { steerBase: base, steerErr: errors } = f.scratch;
  return { errors, inputs: errorInputs(base, base, errors), k: 0 };
}

/**
 * Serving endpoints from..to: x ← their pidW; the fresh ones with a cpu are steered. Without error
 * terms each is measured here; with them, errorRange measures them once every one is counted
 * and settled (an endpoint's term reads the cluster's allowance: the cpu totals once took a
 * pass of their own over every endpoint, this was the same loop).
 */
function steerRange(c: ClusterState, f: Frame, x: number[], on: CpuSteering, from: number, to: number): void {
  const { steerIdx: idx, steerBase: base, steerM: sm } = f.scratch;
  const { rows, latest } = c.pidRows;
  const terms: Terms = { base, latency: NO_TERMS, errors: NO_TERMS };
  const withErrors = on.inputs !== undefined;
  let k = on.k;
  for (let i = from; i < to; i++) {
    if (!f.serving[i]) continue;
    x[i] = valueOr(rows[i * ROW + PR_W] as number, 0);
    if (f.freshness[i] !== F_FRESH) continue;
    // The tick's sample's cpu (pid-rows.ts): no EndpointState or sample object read here.
    const cpu = latest[LATEST_SLOTS * i + LATEST_CPU] as number;
    if (cpu !== cpu) continue;
    idx[k] = i;
    // No EndpointState read unless saturated (offeredLoad).
    base[k] = cpu >= SATURATED_CPU ? offeredLoad(c.order[i] as EndpointState, cpu, f.now, c.safety.staleAfterMs) : cpu;
    if (!withErrors) measureOne(c, f, i, terms, k, sm);
    k++;
  }
  on.k = k;
}

/** The inputs once steerRange has listed every steered endpoint: settled (settle). */
function settled(c: ClusterState, f: Frame, inputs: ErrorInputs, k: number): ErrorInputs {
  settle(c, f, f.scratch.steerIdx, k, inputs);
  return inputs;
}

/** Steered endpoints from..to of the cpu metric with error terms (steerRange counted them): their terms, then their measurements. */
function errorRange(c: ClusterState, f: Frame, inputs: ErrorInputs, from: number, to: number): void {
  const { steerIdx: idx, steerBase: base, steerM: sm } = f.scratch;
  const terms: Terms = { base, latency: NO_TERMS, errors: inputs.errors };
  for (let j = from; j < to; j++) {
    const i = idx[j] as number;
    errorTerm(c, f, i, inputs, j);
    measureOne(c, f, i, terms, j, sm);
  }
}

/**
 * Below this an estimate is read as this (ms): no request completes in under a microsecond, and a
 * median of denormal estimates (a report of 5e-324 ms, smoothed) made ratios of Infinity, which
 * the PID refuses, and the tick threw.
 */
const LATENCY_FLOOR_MS = 1e-3;
/** Ratios above this read as this: reported latencies have no upper bound, a ratio must stay finite. */
const MAX_RELATIVE_LATENCY = 1_000;

/** An endpoint's latency term in utilization units: `ref` (the mean utilization) × its excess over the tolerated spread, bounded by how busy it is (`own`) against `ref`. */
function latencyExcess(relative: number, ref: number, own: number): number {
  const bound = ref * MAX_LATENCY_EXCESS + LATENCY_BELOW_PEERS * Math.max(0, ref - own);
  return Math.min(bound, ref * Math.max(0, relative - 1 - LATENCY_TOLERANCE));
}

/** Per endpoint with a fresh latency estimate: its latency ÷ the median of those (needs two), at most MAX_RELATIVE_LATENCY. */
function relativeLatencies(c: ClusterState, f: Frame, cand: readonly number[]): ReadonlyMap<number, number> {
  const metric = c.pidConfig.metric;
  if (metric !== 'latency' && metric !== 'cpu-latency') return NO_LATENCIES;
  const out = new Map<number, number>();
  const ls: number[] = [];
  const who: number[] = [];
  for (const i of cand) {
    const l = (c.order[i] as EndpointState).latency;
    const last = l.lastSampleAt;
    if (l.estimate === undefined || last === undefined || f.now - last > c.safety.staleAfterMs) continue;
    ls.push(Math.max(l.estimate, LATENCY_FLOOR_MS));
    who.push(i);
  }
  if (ls.length < 2) return out;
  const med = median(ls);
  who.forEach((i, j) => out.set(i, Math.min((ls[j] as number) / med, MAX_RELATIVE_LATENCY)));
  return out;
}

/**
 * Utilization by metric. cpu-latency without a single CPU report in the cluster falls back to
 * latency alone, so a latency-sensitive cluster whose backends report only latency is steered.
 */
function baseUtilization(c: ClusterState, metric: UtilizationMetric, cand: readonly number[], lat: ReadonlyMap<number, number>, now: number): (number | undefined)[] {
  const noCpu = metric === 'cpu-latency' && cand.every((i) => c.order[i]?.sample?.cpu === undefined);
  if (metric === 'latency' || noCpu) return cand.map((i) => (lat.has(i) ? 0.5 * (lat.get(i) ?? 1) : undefined));
  if (metric === 'cpu-latency' || metric === 'cpu') return cand.map((i) => cpuLoad(c.order[i] as EndpointState, now, c.safety.staleAfterMs));
  return utilizations(
    metric,
    cand.map((i) => {
      const e = c.order[i] as EndpointState;
      return { sample: e.sample as Sample, staticWeight: e.staticWeight, capacity: e.capacity };
    }),
  );
}

/**
 * A saturated endpoint's load (metrics cpu and cpu-latency): its cpu × the requests it was sent over those it
 * finished, answered or failed (its latest load report, if fresh), from 1 to MAX_OVERLOAD. A
 * backend past its capacity reads cpu 1 however far past it is, and under cpu-latency its latency
 * used to say how far, without bound (MAX_LATENCY_EXCESS): after a 2× backend lost half its
 * workers at 70% load (headline, a real Envoy), the bounded excess alone let its queue grow for
 * seconds (p99 1.2 → 4.3 s). Sent over finished grows linearly with the excess load, as cpu below
 * saturation does, so it moves the weight as fast as the overload is deep without the relay a
 * queue's steep latency made. Without load reports with success counts: its cpu.
 */
function offeredLoad(e: EndpointState, cpu: number, now: number, staleAfterMs: number): number {
  const x = e.flow;
  if (!(cpu >= SATURATED_CPU) || x === undefined || now - x.at > staleAfterMs) return cpu;
  const sent = x.rps ?? 0;
  const finished = finishedOf(x);
  if (!(sent > 0)) return cpu;
  return cpu * Math.min(MAX_OVERLOAD, Math.max(1, sent / Math.max(finished, sent / MAX_OVERLOAD)));
}

/** Its cpu as reported, or what it was sent past it when saturated (offeredLoad); undefined without a cpu. */
function cpuLoad(e: EndpointState, now: number, staleAfterMs: number): number | undefined {
  const cpu = e.sample?.cpu;
  return cpu === undefined ? undefined : offeredLoad(e, cpu, now, staleAfterMs);
}

/** Folds each new sample's measurement into the smoothed one; returns the smoothed measurements (in `out`). */
function measure(c: ClusterState, f: Frame, st: Steered, out: number[]): number[] {
  if (st.measured) return out;
  for (let j = 0; j < st.k; j++) {
    measureOne(c, f, st.idx[j] as number, st, j, out);
  }
  return out;
}

/** A steered endpoint's measurement terms, by steered position (NO_TERMS: zeros). */
interface Terms {
  readonly base: number[];
  readonly latency: number[];
  readonly errors: number[];
}

/**
 * Steered endpoint j (position i): its measurement (the sum of its terms), folded into its
 * smoothed one when its sample is new; the smoothed one into out[j]. Numbers in and out through
 * arrays, not arguments and a return value: V8 boxes a double passed across a call it does not
 * inline (a heap number per endpoint per tick).
 */
function measureOne(c: ClusterState, f: Frame, i: number, t: Terms, j: number, out: number[]): void {
  const base = t.base[j] as number;
  const latency = termAt(t.latency, j);
  const errors = termAt(t.errors, j);
  const m = base + latency + errors;
  if (latency > 0) mark(f, i, R_LATENCY);
  if (errors > PENALTY_EPSILON) mark(f, i, R_ERROR);
  const rows = c.pidRows.rows;
  const o = i * ROW;
  if ((rows[o + PR_PENDING] as number) === 1) {
    const smoothed = rows[o + PR_SMOOTHED] as number;
    if (isSet(smoothed) && !failing(f, c.pidRows.latest, i)) rows[o + PR_NOISE] = (rows[o + PR_NOISE] as number) + NOISE_SHARE * (Math.abs(m - smoothed) - (rows[o + PR_NOISE] as number));
    rows[o + PR_SMOOTHED] = isSet(smoothed) ? smoothed + c.safety.smoothing * (m - smoothed) : m;
  }
  (f.util as number[])[i] = base;
  out[j] = valueOr(rows[o + PR_SMOOTHED] as number, m);
}

/** Every steered endpoint nearly idle and nothing to correct: nothing to balance. */
function lowLoad(c: ClusterState, st: Steered): boolean {
  for (let j = 0; j < st.k; j++) {
    if ((st.base[j] as number) >= c.safety.lowLoadHold) return false;
    if (termAt(st.latency, j) + termAt(st.errors, j) > PENALTY_EPSILON) return false;
  }
  return true;
}

/**
 * The step every update writes before its numbers go into the endpoint's row (pid-rows.ts keeps
 * what explanations need): one array for all, hot in cache, not an object's double fields.
 */
const STEP = new Float64Array(PID_OUTPUT_SLOTS);
/** The update's inputs (pid.ts updatePidMemoryFrom): in an array, so no double is boxed to pass them. */
const INPUT = new Float64Array(PID_INPUT_SLOTS);

/**
 * Steered endpoint j's control: its smoothed measurement (steerM[j]) becomes its target weight,
 * pidW × the multiplier (1 when it waits for a sample, rests or holds). Reads and writes its
 * numbers through the frame and the row, not arguments or a return value: V8 does not inline
 * this call, and would box each double passed across it (heap numbers per endpoint per tick).
 */
function control(c: ClusterState, f: Frame, aim: Aim, j: number): void {
  const { rows, params } = c.pidRows;
  const sm = f.scratch.steerM;
  const i = aim.st.idx[j] as number;
  const o = i * ROW;
  const pidW = valueOr(rows[o + PR_W] as number, 0);
  if ((rows[o + PR_PENDING] as number) !== 1) {
    mark(f, i, R_AWAITING);
    if (c.draining > 0) markDrained(c, f, i);
    sm[j] = pidW;
    return;
  }
  const measurement = sm[j] as number;
  const setpoint = aim.setpoint;
  // The tick's sample's time (pid-rows.ts), not read from the sample object.
  const now = c.pidRows.latest[LATEST_SLOTS * i + LATEST_AT] as number;
  rows[o + PR_PENDING] = 0;
  const lastControlAt = rows[o + PR_LAST_CONTROL_AT] as number;
  // A gap longer than staleAfterMs means the controller's history no longer describes the endpoint.
  if (isSet(lastControlAt) && now - lastControlAt > c.safety.staleAfterMs) resetPidMemory(rows, o + PR_MEMORY, params);
  else if (isSet(lastControlAt)) f.stepTicks[i] = Math.min(MAX_STEP_TICKS, Math.max(1, (now - lastControlAt) / c.safety.tickMs));
  INPUT[0] = setpoint;
  INPUT[1] = measurement;
  INPUT[2] = now;
  updatePidMemoryFrom(rows, o + PR_MEMORY, params, INPUT, STEP);
  const output = STEP[OUT_OUTPUT] as number;
  (f.pid as PidFrame).steps[i * STEP_SLOTS + S_UPDATED] = 1;
  const scale = Math.max(setpoint, 0.05);
  // Resting on errors that come and go, above a fixed setpoint its peers are all pushed down from, raised its share.
  const noiseBand = failing(f, c.pidRows.latest, i) ? 0 : NOISE_BAND * (rows[o + PR_NOISE] as number);
  const band = setpoint > measurement ? Math.min(noiseBand, MAX_STARVING_BAND * scale) : noiseBand;
  const rests = Math.abs(setpoint - measurement) <= Math.max(c.safety.deadband * scale, band);
  let multiplier = 1;
  if (aim.hold) {
    multiplier = f.earning > 0 ? earnStep(c, f, aim, i, pidW) : 1;
    mark(f, i, multiplier > 1 ? R_PROBATION : R_LOW_LOAD);
  } else if (rests) mark(f, i, R_DEADBAND);
  else multiplier = Math.exp(c.pidConfig.k * output);
  // A backlog's drain, or the way back from one (tick/backlog.ts): only where one is under way.
  if (c.draining > 0 && !aim.hold) multiplier = drainOrRestore(c, f, i, { multiplier, since: lastControlAt, peers: () => peersLoad(aim, j) });
  // Acting on it, the controller rested or lowered an earning endpoint: where it belongs is learned now.
  if (!aim.hold && multiplier <= 1 && f.earning > 0) c.held[i * HW_ROW + HW_EARN] = 0;
  rows[o + PR_LAST_CONTROL_AT] = now;
  rows[o + PR_SETPOINT] = setpoint;
  rows[o + PR_MEASUREMENT] = measurement;
  rows[o + PR_P] = STEP[OUT_P] as number;
  rows[o + PR_I] = STEP[OUT_I] as number;
  rows[o + PR_D] = STEP[OUT_D] as number;
  rows[o + PR_OUTPUT] = output;
  rows[o + PR_MULTIPLIER] = multiplier;
  sm[j] = pidW * multiplier;
}

/**
 * The load of the steered endpoints but the j-th (where a drain moves its load): their measurements
 * before any term, utilization under cpu and cpu-latency (latency: half their relative latency).
 */
function peersLoad(aim: Aim, j: number): UtilizationTotals {
  const { k, base } = aim.st;
  if (!isSet(aim.baseSum)) aim.baseSum = sumOf(base as number[], k);
  return { sum: aim.baseSum - (base[j] as number), count: k - 1 };
}

/**
 * An earning endpoint's (held-weights.ts HW_EARN) multiplier under a low-load hold: a step limit's
 * worth toward its fair share, as the controller would take it (maxStepRatio per tick of the
 * report's interval), never past it; 1 for any other endpoint. While every endpoint is nearly idle
 * the controller rests, and a newcomer or an endpoint back on probation kept its start for as long
 * as the load stayed low (a review measured 90% of its fair share after 62 s at load 0.10; in the
 * fleet model at 0.05 and 0.10, not in 70 ticks: now in 6–7), to meet the next rise in load idle
 * while its peers took its share. Only what its start took from it: an endpoint the controller has
 * judged keeps what it learned (the mark is cleared then), and one failing (FAILING_RATE) or
 * stalled (stalled) is never raised. Clears the mark once the share is earned.
 */
function earnStep(c: ClusterState, f: Frame, aim: Aim, i: number, pidW: number): number {
  const h = i * HW_ROW + HW_EARN;
  if (c.held[h] !== 1 || failing(f, c.pidRows.latest, i) || stalled(c.order[i] as EndpointState, f)) return 1;
  if (Number.isNaN(aim.pidScale)) aim.pidScale = pidScaleOf(c, f, aim.st);
  const fair = (f.fair[i] as number) * aim.pidScale;
  if (!(pidW < fair * EARNED_SHARE)) {
    c.held[h] = 0;
    return 1;
  }
  return Math.min(c.safety.maxStepRatio ** (f.stepTicks[i] as number), fair / pidW);
}

/**
 * Its latest load report, fresh, shows requests issued and (almost) none answered: stalled, or on its way
 * to the stall rule's verdict (tick/stall.ts, which needs a report before to prove growth and a
 * volume of requests held). Not a reason to take it out, but none to raise it either.
 */
function stalled(e: EndpointState, f: Frame): boolean {
  const x = stallReading(e, f)?.sample;
  return x !== undefined && (x.rps ?? 0) > 0 && silent(x);
}

/**
 * The PID vector's scale against the internal weights' (fair shares are in the latter's), over the
 * steered endpoints: 1 for a pure PID policy, whose vector is the weights; a blend's vector is
 * its own (weight-engine.ts boundPidVector).
 */
function pidScaleOf(c: ClusterState, f: Frame, st: Steered): number {
  if (c.parts.pid === 1) return 1;
  let pid = 0;
  let w = 0;
  for (let j = 0; j < st.k; j++) {
    const i = st.idx[j] as number;
    pid += valueOr(c.pidRows.rows[i * ROW + PR_W] as number, 0);
    w += f.prevW[i] as number;
  }
  return pid > 0 && w > 0 ? pid / w : 1;
}

/** The endpoint's last step into the frame (the explanations' record of this tick), if it has one. */
function explain(pf: PidFrame, rows: Float64Array, i: number): void {
  const o = i * ROW;
  const setpoint = rows[o + PR_SETPOINT] as number;
  if (!isSet(setpoint)) return;
  const steps = pf.steps;
  const s = i * STEP_SLOTS;
  steps[s + S_SETPOINT] = setpoint;
  steps[s + S_MEASUREMENT] = rows[o + PR_MEASUREMENT] as number;
  steps[s + S_P] = rows[o + PR_P] as number;
  steps[s + S_I] = rows[o + PR_I] as number;
  steps[s + S_D] = rows[o + PR_D] as number;
  steps[s + S_OUTPUT] = rows[o + PR_OUTPUT] as number;
  steps[s + S_MULTIPLIER] = rows[o + PR_MULTIPLIER] as number;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
