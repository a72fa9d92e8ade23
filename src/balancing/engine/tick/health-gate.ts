/**
 * Stage 1, the health gate: operator state, then each endpoint's HealthTracker (active probes),
 * then the fleet outlier detector's ejections. Missing data is not ill health: an endpoint nobody
 * probed is AVAILABLE. If nothing eligible would serve, fail static: every eligible endpoint is
 * published HEALTHY at its static weight, because an empty cluster is worse than any weight.
 */
import { isSet, type EndpointState } from '../state.js';
import { HW_ROW, HW_SERVED, HW_W } from '../held-weights.js';
import { isOperatorDisabled } from '../stages.js';
import { H_DISABLED, HEALTH_CODES, mark, ruleBit, type Frame } from './frame.js';
import { inChunks } from '../../steps.js';

const R_OPERATOR = ruleBit('operator-unhealthy');
const R_PROBE = ruleBit('probe-unhealthy');
const R_EJECTED = ruleBit('ejected');
const R_FAIL_STATIC = ruleBit('fail-static');

/**
 * The continuing endpoints' internal weights and static weights, summed for the cluster scale
 * (tick/join.ts) in the gate's pass over the states rather than a pass of its own.
 */
export interface ScaleSums {
  readonly weights: number;
  readonly statics: number;
}

/**
 * Returns the continuing endpoints' sums: the tally itself (one object per cluster tick, not one
 * for the tally, one for the states and one for the sums).
 */
export function gateHealth(f: Frame, eps: readonly EndpointState[], held: Float64Array): ScaleSums {
  const t = newTally();
  gateRange(f, eps, held, 0, f.n, t);
  return failStaticOrNot(f, eps, held, t);
}

/** gateHealth in steps of about `chunk` endpoints (a cluster's tick in steps: weight-engine.ts). */
export function* gateHealthSteps(f: Frame, eps: readonly EndpointState[], held: Float64Array, chunk: number): Generator<void, ScaleSums, void> {
  const t = newTally();
  yield* inChunks(f.n, chunk, (from, to) => gateRange(f, eps, held, from, to, t));
  return failStaticOrNot(f, eps, held, t);
}

const newTally = (): GateTally => ({ eligible: 0, serving: 0, moved: 0, weights: 0, statics: 0 });

/** What a continuing endpoint adds to the scale sums: its internal weight if it served last tick (else NaN). */
function continuing(held: Float64Array, i: number): number {
  const o = i * HW_ROW;
  return held[o + HW_SERVED] === 1 ? (held[o + HW_W] as number) : Number.NaN;
}

interface GateTally extends ScaleSums {
  eligible: number;
  serving: number;
  /** Endpoints whose serving differs from what they did last tick (held-weights.ts HW_SERVED). */
  moved: number;
  weights: number;
  statics: number;
}

/** Endpoints from..to through the gate, counted into `t`; `held`: their held weights (held-weights.ts), by position. */
function gateRange(f: Frame, eps: readonly EndpointState[], held: Float64Array, from: number, to: number, t: GateTally): void {
  // Tallies in locals, written back once (not a field update per endpoint in the hot loop).
  let { eligible, serving, moved, weights, statics } = t;
  for (let i = from; i < to; i++) {
    // Those whose serving changed since last tick: each that served then counts here, and the
    // serving branch below takes it back (or counts a newcomer). Publish uses the count instead of
    // comparing with the last tick's serving vector, cold by then (tick/publish.ts decide).
    if (held[i * HW_ROW + HW_SERVED] === 1) moved++;
    const e = eps[i] as EndpointState;
    // The first stage to mark rules, so it starts each endpoint's (the frame is recycled unreset).
    f.rules[i] = 0;
    f.serving[i] = 0;
    if (isOperatorDisabled(e.operatorHealth)) {
      f.healthCode[i] = H_DISABLED;
      mark(f, i, R_OPERATOR);
      continue;
    }
    eligible++;
    // Nobody probed it (no tracker yet): AVAILABLE.
    const st = e.tracker === undefined ? 'AVAILABLE' : e.tracker.state(f.now);
    // The common case without a search (HEALTH_CODES[0] is AVAILABLE).
    f.healthCode[i] = st === 'AVAILABLE' ? 0 : HEALTH_CODES.indexOf(st);
    const j = e.ejection;
    if (st !== 'AVAILABLE') mark(f, i, R_PROBE);
    else if (j?.until !== undefined) {
      mark(f, i, R_EJECTED);
      f.ejections ??= new Array<undefined>(f.n).fill(undefined);
      f.ejections[i] = { reason: j.reason, until: j.until, count: j.count };
    } else {
      f.serving[i] = 1;
      serving++;
      moved += held[i * HW_ROW + HW_SERVED] === 1 ? -1 : 1;
      const w = continuing(held, i);
      if (isSet(w)) {
        weights += w;
        statics += e.staticWeight;
      }
    }
  }
  t.eligible = eligible;
  t.serving = serving;
  t.moved = moved;
  t.weights = weights;
  t.statics = statics;
}

/** Nothing eligible serving: fail static (every eligible endpoint serves). Returns `t`, its sums final. */
function failStaticOrNot(f: Frame, eps: readonly EndpointState[], held: Float64Array, t: GateTally): ScaleSums {
  const { eligible, serving } = t;
  f.failStatic = eligible > 0 && serving === 0;
  // Failing static changes who serves below: unknown (publish compares).
  f.servingMoved = f.failStatic ? Number.NaN : t.moved;
  f.declaredOut = f.n - eligible;
  if (!f.failStatic) return t;
  let { weights, statics } = t;
  for (let i = 0; i < f.n; i++) {
    if (f.healthCode[i] === H_DISABLED) continue;
    f.serving[i] = 1;
    f.rules[i] = R_FAIL_STATIC;
    const w = continuing(held, i);
    if (isSet(w)) {
      weights += w;
      statics += (eps[i] as EndpointState).staticWeight;
    }
  }
  t.weights = weights;
  t.statics = statics;
  return t;
}
