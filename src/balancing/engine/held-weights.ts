/**
 * What a cluster's endpoints carry from one tick to the next about their weight: the internal
 * weight w (static units × scale; UNSET while not serving), the weight published (the step
 * limit's anchor), whether the endpoint served last tick and whether it is earning its share back
 * from a newcomer's or probation's start. One row of HW_ROW doubles per endpoint position in one
 * Float64Array per cluster, rather than fields of each
 * EndpointState: the join, the health gate and publish read or write them for every endpoint every
 * tick, and publish then touched each endpoint's state object (three cache lines) only for these
 * (bench/RESULTS.md, pid5). Rows follow their endpoint when the set changes (carryHeldWeights).
 */
import type { EndpointState } from './state.js';
import { NEW_ENDPOINT } from './carried-rows.js';

/** Internal weight; UNSET (NaN) while not serving. */
export const HW_W = 0;
/** Weight published; UNSET before the first. */
export const HW_PUB = 1;
/**
 * 1 when the endpoint served last tick (under the static weight it has now); 0 when it did not;
 * −s when it served under static weight s and was written another since: it rejoins at its new fair
 * share unless a write gives it s back before the next tick. Readers test === 1, so −s reads as 0.
 * Kept in the flag, not a column a tick writes: the tick's cost stays one store per endpoint.
 * NEWCOMER (also read as not served) until a newcomer first serves.
 */
export const HW_SERVED = 2;
/**
 * HW_SERVED of an endpoint added to a cluster that had ticked, until it first serves: a pod added
 * to a running fleet (often listed not ready, then ready), as cold as a restarted one, which joins
 * at the cluster's newcomerShare (tick/join.ts). The endpoints of a new cluster, or of one rebuilt
 * after a restart (seeded or imported: served), are not newcomers: no fleet runs beside them.
 */
export const NEWCOMER = 2;
/**
 * 1 while the endpoint earns back the share it started below (a newcomer's newcomerShare, or
 * probation's quarter: tick/join.ts) and the controller has not yet judged where it belongs; else 0.
 * Set by the join, cleared when it reaches its fair share or when the controller, acting on it
 * outside a low-load hold, does not raise it (it rests or lowers it: its level is learned, not its
 * start). A low-load hold raises a marked endpoint toward its fair share (tick/pid.ts earnStep),
 * where it would otherwise keep its start for as long as the load stays low.
 */
export const HW_EARN = 3;
/** Doubles per row (four: a row never straddles a cache line). */
export const HW_ROW = 4;

/**
 * The held weights of a cluster's new endpoint order. An endpoint that stays (by key) keeps its
 * weights, and counts as having served only if its static weight is the one it served under at the
 * last tick (a changed one rejoins at its new fair share); new endpoints start with none, as
 * NEWCOMERs if the cluster had ticked. `from`: each endpoint's position in `existing` (carried-rows.ts).
 */
export function carryHeldWeights(
  order: readonly EndpointState[],
  existing: { readonly held: Float64Array; readonly statics: readonly number[]; readonly lastTickAt?: number | undefined } | undefined,
  from: Int32Array,
): Float64Array {
  const held = new Float64Array(order.length * HW_ROW);
  for (let i = 0; i < order.length; i++) {
    const f = from[i] as number;
    const o = i * HW_ROW;
    if (existing === undefined || f === NEW_ENDPOINT) {
      held[o + HW_W] = held[o + HW_PUB] = Number.NaN;
      if (existing?.lastTickAt !== undefined) held[o + HW_SERVED] = NEWCOMER;
      continue;
    }
    const p = f * HW_ROW;
    held[o + HW_W] = existing.held[p + HW_W] as number;
    held[o + HW_PUB] = existing.held[p + HW_PUB] as number;
    held[o + HW_SERVED] = servedUnder(existing.held[p + HW_SERVED] as number, existing.statics[f] as number, (order[i] as EndpointState).staticWeight);
    held[o + HW_EARN] = existing.held[p + HW_EARN] as number;
  }
  return held;
}

/**
 * Endpoint i's row restored to weight `w`, published `pub`, as having served (seeded weights, an
 * imported cluster state): a weight given, not a start to earn from, unless `earning` (an imported
 * endpoint its last owner had marked earning: the same backend, still below the share it earns).
 */
export function restoreHeldRow(held: Float64Array, i: number, w: number, pub: number, earning = false): void {
  const o = i * HW_ROW;
  held[o + HW_W] = w;
  held[o + HW_PUB] = pub;
  held[o + HW_SERVED] = 1;
  held[o + HW_EARN] = earning ? 1 : 0;
}

/**
 * HW_SERVED after a write that takes the static weight from `before` to `now`. Judged against the
 * weight of the last tick, not of the write before: a weight written changed and back before a tick
 * used to count as changed, and the endpoint rejoined at its fair share, its controller's weight
 * lost (a half-capacity endpoint went from 20% of the traffic to a third: static-weight-writes.test.ts).
 */
function servedUnder(served: number, before: number, now: number): number {
  // A newcomer re-weighted before it served is a newcomer still.
  if (served === NEWCOMER) return NEWCOMER;
  if (served === 1) return before === now ? 1 : -before;
  if (served < 0) return -served === now ? 1 : served;
  return 0;
}

/**
 * The held weights of a cluster whose endpoints keep their positions, in place: as
 * carryHeldWeights gives them (an endpoint whose static weight changed counts as not having
 * served), without a new array. `statics`: the static weights the rows were held under.
 */
export function keepHeldWeights(held: Float64Array, statics: readonly number[], order: readonly EndpointState[]): Float64Array {
  for (let i = 0; i < order.length; i++) {
    const o = i * HW_ROW + HW_SERVED;
    held[o] = servedUnder(held[o] as number, statics[i] as number, (order[i] as EndpointState).staticWeight);
  }
  return held;
}

/**
 * Clears every NEWCOMER mark (to 0: not served last tick): for a cluster this engine continues from
 * another's state. A mark says the endpoint was added after this engine's last tick of the cluster,
 * not that nobody served it: a replica that owned the cluster before had marked every endpoint added
 * since, and gave one the last owner had served (drained at the hand-over, so not in its export) a
 * newcomer's share, where a replica that never ticked the cluster, or the last owner, gave it its whole.
 */
export function forgetNewcomers(held: Float64Array): void {
  for (let o = HW_SERVED; o < held.length; o += HW_ROW) if (held[o] === NEWCOMER) held[o] = 0;
}
