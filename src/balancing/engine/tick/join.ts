/**
 * Stage 2, scale and joiners. Weights are relative, so their scale is arbitrary; the engine ties
 * it to the continuing endpoints (mean of weight / static weight) so floor, ceiling and decay stay
 * meaningful. The endpoints of a cluster's first tick (a new cluster, or one rebuilt after a
 * restart), endpoints back from UNHEALTHY and endpoints whose static weight changed start at their
 * fair share (static × scale); endpoints back from an ejection, or back from an outage their probes
 * found, start on probation at a quarter of it, and a newcomer (an endpoint added while the cluster
 * serves: held-weights.ts NEWCOMER) at the cluster's newcomerShare; both earn the rest through the
 * controller and the step limit: a backend just started (cold caches, a JIT still warming) is not
 * handed its whole share at once, which could knock it over (bench/scenarios scale-out-cold). Both
 * are marked as earning (held-weights.ts HW_EARN), so that a low-load hold, where the controller
 * rests, still raises them to their fair share (tick/pid.ts earnStep).
 */
import { isSet, UNSET, valueOr, type EndpointState } from '../state.js';
import { HW_EARN, HW_PUB, HW_ROW, HW_SERVED, HW_W, NEWCOMER } from '../held-weights.js';
import { PR_W, ROW, rejoinRow, setCell, type PidRows } from '../pid-rows.js';
import { voidDrain } from './backlog.js';
import type { SafetySettings } from '../types.js';
import { classify } from './freshness.js';
import { F_FRESH, mark, ruleBit, type Frame } from './frame.js';
import type { ScaleSums } from './health-gate.js';
import { inChunks } from '../../steps.js';

const SCALE_MIN = 1e-6;
const SCALE_MAX = 1e6;
const PROBATION_SHARE = 0.25;
const R_JOINED = ruleBit('joined');
const R_PROBATION = ruleBit('probation');

/**
 * Joins and scales, and in the same pass over the endpoint states classifies freshness (stage 4's
 * input) and snapshots the weights before this tick (the step limit's anchor, the internal ones):
 * at 100,000 endpoints the tick is bound by reading the states from memory, about 6 ms a pass.
 */
export function joinAndScale(f: Frame, eps: readonly EndpointState[], c: JoinOptions, sums: ScaleSums): void {
  const r = rangeOf(c, sums);
  f.failingFresh = f.failingUnsteered = f.earning = 0;
  joinRange(f, eps, r, 0, f.n);
}

/** A newcomer's share of its fair share: the cluster's newcomerShare while a fleet runs beside it (the cluster ticked and some endpoint serves on), else whole. */
const newcomerShareOf = (lastTickAt: number, sums: ScaleSums, safety: SafetySettings): number => (lastTickAt > -Infinity && sums.statics > 0 ? safety.newcomerShare : 1);

/** What the join stage reads of its cluster (ClusterState, read in place: no object of options per cluster per tick). */
export interface JoinOptions {
  readonly parts: { readonly static: number };
  readonly safety: SafetySettings;
  /** The cluster's PID rows (a joiner's controller starts over). */
  readonly pidRows: PidRows;
  /** The cluster's held weights (held-weights.ts). */
  readonly held: Float64Array;
  /** When the cluster last ticked (undefined: never): a probe comeback after it is this tick's. */
  readonly lastTickAt: number | undefined;
}

/** joinAndScale in steps of about `chunk` endpoints (a cluster's tick in steps: weight-engine.ts). */
export function* joinAndScaleSteps(f: Frame, eps: readonly EndpointState[], c: JoinOptions, sums: ScaleSums, chunk: number): Generator<void, void, void> {
  const r = rangeOf(c, sums);
  f.failingFresh = f.failingUnsteered = f.earning = 0;
  yield* inChunks(f.n, chunk, (from, to) => joinRange(f, eps, r, from, to));
}

/** What the pass reads, resolved once per cluster tick (every range of a tick in steps shares it). */
interface JoinRange {
  readonly adaptive: boolean;
  readonly safety: SafetySettings;
  readonly pidRows: PidRows;
  readonly held: Float64Array;
  /** When the cluster last ticked (-Infinity: never). */
  readonly lastTickAt: number;
  /** newcomerShareOf the cluster. */
  readonly newcomerShare: number;
  readonly scale: number;
}

/**
 * The pass's inputs, written out field by field: an object spread
 * took V8's generic clone path, and was a sixth of the join pass at 500 clusters × 20 (a CPU
 * profile's lines, with error terms in every sample).
 */
function rangeOf(c: JoinOptions, sums: ScaleSums): JoinRange {
  const scale = clusterScale(c.held, c.pidRows, sums);
  const lastTickAt = c.lastTickAt ?? -Infinity;
  return { adaptive: c.parts.static < 1, safety: c.safety, pidRows: c.pidRows, held: c.held, lastTickAt, newcomerShare: newcomerShareOf(lastTickAt, sums, c.safety), scale };
}

/** Endpoints from..to. */
function joinRange(f: Frame, eps: readonly EndpointState[], r: JoinRange, from: number, to: number): void {
  const held = r.held;
  // Frame.failingFresh, failingUnsteered and earning, in locals written back once (not a field update per endpoint).
  let fresh = 0;
  let unsteered = 0;
  let earning = 0;
  for (let i = from; i < to; i++) {
    const e = eps[i] as EndpointState;
    const o = i * HW_ROW;
    const fair = e.staticWeight * r.scale;
    f.fair[i] = fair;
    if (!f.serving[i]) {
      held[o + HW_W] = UNSET;
      setCell(r.pidRows.rows, i, PR_W, UNSET);
      held[o + HW_PUB] = fair;
      if (e.drain !== undefined) voidDrain(e.drain);
    } else if (f.failStatic || held[o + HW_SERVED] !== 1 || !isSet(held[o + HW_W] as number)) {
      const share = r.adaptive && !f.failStatic ? joiningShare(e, held[o + HW_SERVED] as number, r) : 1;
      const probation = share < 1;
      const w = fair * share;
      held[o + HW_W] = held[o + HW_PUB] = w;
      held[o + HW_EARN] = probation ? 1 : 0;
      setCell(r.pidRows.rows, i, PR_W, w);
      rejoinRow(r.pidRows, i);
      if (e.drain !== undefined) voidDrain(e.drain);
      if (!f.failStatic) mark(f, i, probation ? R_PROBATION : R_JOINED);
    }
    classify(f, e, i, r.safety);
    f.prevPub[i] = valueOr(held[o + HW_PUB] as number, 0);
    if (f.serving[i]) {
      f.prevW[i] = valueOr(held[o + HW_W] as number, 0);
      if ((f.errorRate[i] as number) > 0) {
        if (f.freshness[i] === F_FRESH) fresh++;
        else unsteered++;
      }
      // Same row as the weights just read: no cache line more.
      if (held[o + HW_EARN] === 1) earning++;
    }
  }
  f.failingFresh += fresh;
  f.failingUnsteered += unsteered;
  f.earning += earning;
}

/**
 * The share of its fair share an adaptive cluster's joiner starts at (`served`: its HW_SERVED). A
 * newcomer back from a probed outage before it ever served (a pod probed before its process was
 * up) is a newcomer still: the smaller share, or probation's quarter overrode a smaller newcomerShare.
 */
function joiningShare(e: EndpointState, served: number, r: JoinRange): number {
  const share = served === NEWCOMER ? r.newcomerShare : 1;
  if (e.ejection?.releasedNow === true || (e.tracker?.cameBackAt() ?? -Infinity) > r.lastTickAt) return Math.min(PROBATION_SHARE, share);
  return share;
}

/** The continuing endpoints' weight per unit of static weight (summed by the gate), rebased to 1 when out of range. */
function clusterScale(held: Float64Array, pid: PidRows, sums: ScaleSums): number {
  const scale = sums.statics > 0 ? sums.weights / sums.statics : 1;
  if (scale >= SCALE_MIN && scale <= SCALE_MAX) return scale;
  // Only ratios matter: bring the numbers back to static units (UNSET, NaN, stays UNSET).
  for (let o = 0; o < held.length; o += HW_ROW) {
    held[o + HW_W] = (held[o + HW_W] as number) / scale;
    held[o + HW_PUB] = (held[o + HW_PUB] as number) / scale;
  }
  for (let o = PR_W; o < pid.rows.length; o += ROW) pid.rows[o] = (pid.rows[o] as number) / scale;
  return 1;
}
