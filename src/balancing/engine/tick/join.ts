/**
 * Stage 2, scale and joiners. Weights are relative, so their scale is arbitrary; the engine ties
 * it to the continuing endpoints (mean of weight / static weight) so floor, ceiling and decay stay
 * meaningful. New endpoints, endpoints back from UNHEALTHY and endpoints whose static weight
 * changed start at their fair share (static × scale); endpoints back from an ejection start on
 * probation at a quarter of it and earn the rest through the controller and the step limit.
 */
import { isSet, UNSET, valueOr, type EndpointState } from '../state.js';
import { PR_W, ROW, rejoinRow, setCell, type PidRows } from '../pid-rows.js';
import type { SafetySettings } from '../types.js';
import { classify } from './freshness.js';
import { mark, ruleBit, type Frame } from './frame.js';
import type { ScaleSums } from './health-gate.js';
import { inChunks } from './chunks.js';

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
export function joinAndScale(f: Frame, eps: readonly EndpointState[], o: JoinOptions): void {
  joinRange(f, eps, { adaptive: o.adaptive, safety: o.safety, pidRows: o.pidRows, scale: clusterScale(eps, o.pidRows, o.sums), from: 0, to: f.n });
}

interface JoinOptions {
  readonly adaptive: boolean;
  readonly safety: SafetySettings;
  readonly sums: ScaleSums;
  /** The cluster's PID rows (a joiner's controller starts over). */
  readonly pidRows: PidRows;
}

/** joinAndScale in steps of about `chunk` endpoints (a cluster's tick in steps: weight-engine.ts). */
export function* joinAndScaleSteps(f: Frame, eps: readonly EndpointState[], o: JoinOptions, chunk: number): Generator<void, void, void> {
  const scale = clusterScale(eps, o.pidRows, o.sums);
  yield* inChunks(f.n, chunk, (from, to) => joinRange(f, eps, { adaptive: o.adaptive, safety: o.safety, pidRows: o.pidRows, scale, from, to }));
}

interface JoinRange {
  readonly adaptive: boolean;
  readonly safety: SafetySettings;
  readonly pidRows: PidRows;
  readonly scale: number;
  readonly from: number;
  readonly to: number;
}

function joinRange(f: Frame, eps: readonly EndpointState[], r: JoinRange): void {
  for (let i = r.from; i < r.to; i++) {
    const e = eps[i] as EndpointState;
    const fair = e.staticWeight * r.scale;
    f.fair[i] = fair;
    if (!f.serving[i]) {
      e.w = UNSET;
      setCell(r.pidRows.rows, i, PR_W, UNSET);
      e.pub = fair;
    } else if (f.failStatic || !e.wasServing || !isSet(e.w)) {
      const probation = r.adaptive && e.ejection.releasedNow && !f.failStatic;
      e.w = e.pub = probation ? fair * PROBATION_SHARE : fair;
      setCell(r.pidRows.rows, i, PR_W, e.w);
      rejoinRow(r.pidRows, i);
      if (!f.failStatic) mark(f, i, probation ? R_PROBATION : R_JOINED);
    }
    classify(f, e, i, r.safety);
    f.prevPub[i] = valueOr(e.pub, 0);
    if (f.serving[i]) f.prevW[i] = valueOr(e.w, 0);
  }
}

/** The continuing endpoints' weight per unit of static weight (summed by the gate), rebased to 1 when out of range. */
function clusterScale(eps: readonly EndpointState[], pid: PidRows, sums: ScaleSums): number {
  const scale = sums.statics > 0 ? sums.weights / sums.statics : 1;
  if (scale >= SCALE_MIN && scale <= SCALE_MAX) return scale;
  // Only ratios matter: bring the numbers back to static units.
  for (const e of eps) {
    // UNSET (NaN) stays UNSET.
    e.w /= scale;
    e.pub /= scale;
  }
  for (let o = PR_W; o < pid.rows.length; o += ROW) pid.rows[o] = (pid.rows[o] as number) / scale;
  return 1;
}
