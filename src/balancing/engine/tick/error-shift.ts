/**
 * How far errors may move load: only as far as the endpoint's peers can carry it.
 *
 * An endpoint's errors take traffic off it twice: its error penalty (the PID's measurement) lowers
 * its weight, and the fleet outlier detector ejects it. Both move its
 * load onto its peers, and neither asked whether they could take it. A 2× backend failing half
 * its calls fast is 40% of a four-backend fleet's capacity: at 70% load, moving its load left the
 * other three at ~117% (bench/proxyless --scenario fast-fail: p99 2.5–3.6 s, where gRPC's own
 * least request kept 0.25–0.32 s). With retries a fast failure costs one quick retry; an
 * overloaded peer costs every request it queues.
 *
 * So, where the peers report their utilization (ORCA cpu), and counting on the routes' retries
 * (fulcrum's default) to carry a failed request to a peer:
 * - the PID's error penalty counts whole while the peers' mean utilization is at most `freeBelow`,
 *   not at all from `fullAt`, linearly between: the endpoint's load moves onto its peers until
 *   they near capacity, and the controller then balances on utilization alone;
 * - an error-rule ejection happens only if the peers' spare capacity up to `fullAt` carries what
 *   the endpoint still served well (its successes; its failures are retried or lost on the peers
 *   already). An endpoint that serves little well (all-failing, hung, or whose successes at its
 *   capacity share would be at most `minorGoodput` of its peers' load) is ejected whatever their
 *   load: keeping it adds next to no capacity, and costs every request it fails;
 * - an endpoint failing clearly (tick/pid.ts holdFailing) never gains a share from its peers'
 *   load, so once they are busy it keeps the share it had.
 * Without utilization reports the peers' capacity is unknown and errors move load as before
 * (Envoy's outlier detection does the same): a missing signal never keeps a failing endpoint in.
 * The EWMA policy knows latency, not capacity: its success factor is left whole (with a smaller
 * one, the low latency of fast failures would win the endpoint traffic).
 */
import type { FieldTimes } from '../state.js';
import type { ReadingClock } from './frame.js';
import type { Sample } from '../types.js';

export const ERROR_SHIFT = {
  /** Peers' mean utilization up to which an endpoint's error penalty counts whole. */
  freeBelow: 0.75,
  /** And from which it counts no more; an ejection must leave the peers at most this busy. */
  fullAt: 0.9,
  /** An endpoint whose successes at its capacity share would be at most this share of its peers' load is ejected however busy they are. */
  minorGoodput: 0.1,
  /** Below this utilization a capacity estimate (rps ÷ utilization) is noise: the peer is read as having room. */
  minUtilization: 0.02,
} as const;

/** Utilization totals over the endpoints that report it: each one's peers' mean is read off them in O(1). */
export interface UtilizationTotals {
  sum: number;
  count: number;
}

export const newTotals = (): UtilizationTotals => ({ sum: 0, count: 0 });

/** A sample's utilization, NaN without one. */
export const utilizationOf = (s: Sample | undefined): number => (s?.cpu !== undefined && Number.isFinite(s.cpu) ? s.cpu : Number.NaN);

/**
 * What an endpoint says of its capacity: its merged sample and when each field was taken (an
 * EndpointState is one). The sample's `at` is its newest field's: load reports that go on say
 * nothing of a cpu whose reports stopped, so each field is dated on its own.
 */
export interface CapacityReading {
  readonly sample: Sample | undefined;
  readonly fieldAt: FieldTimes | undefined;
}

/** When a field of the reading was taken: its own time where kept, else the sample's. */
const takenAt = (r: CapacityReading, field: 'cpu' | 'traffic'): number => (r.fieldAt !== undefined ? r.fieldAt[field] : (r.sample?.at ?? Number.NaN));

/** A reading older than the cluster's window (tick/freshness.ts readingWindowMs) says nothing of an endpoint's capacity now. */
const isFresh = (at: number, t: ReadingClock): boolean => t.now - at <= t.freshMs;

/** The reading's utilization while it is fresh, NaN without one or once it is older than the window. */
export const freshUtilizationOf = (r: CapacityReading, t: ReadingClock): number => (isFresh(takenAt(r, 'cpu'), t) ? utilizationOf(r.sample) : Number.NaN);

export function addUtilization(t: UtilizationTotals, u: number): void {
  if (Number.isNaN(u)) return;
  t.sum += u;
  t.count++;
}

/**
 * The share (0..1) of the error penalty the endpoints a failing one's load moves onto allow, from
 * their mean utilization in `t`: whole up to freeBelow, none from fullAt. 1 when none reports one.
 */
export function errorShiftAllowance(t: UtilizationTotals): number {
  if (t.count <= 0) return 1;
  const mean = t.sum / t.count;
  const { freeBelow, fullAt } = ERROR_SHIFT;
  return Math.min(1, Math.max(0, (fullAt - mean) / (fullAt - freeBelow)));
}

/**
 * The ejection side: a ledger of the carriers' (endpoints in rotation, not ejected) capacity,
 * estimated as rps ÷ utilization, and load (rps). `known` is false when some carrier's capacity
 * cannot be estimated (no fresh utilization or rate, or nearly idle): then it does not limit.
 */
export interface CapacityLedger {
  capacity: number;
  load: number;
  known: boolean;
}

export function newLedger(): CapacityLedger {
  return { capacity: 0, load: 0, known: true };
}

/** Counts one carrier in. */
export function addCarrier(l: CapacityLedger, r: CapacityReading, t: ReadingClock): void {
  const c = carrierOf(r, t);
  if (c === undefined) {
    l.known = false;
    return;
  }
  l.capacity += c.capacity;
  l.load += c.load;
}

/** Its capacity and load, from a utilization and a request rate both fresh; undefined if it cannot be estimated. */
function carrierOf(r: CapacityReading, t: ReadingClock): { capacity: number; load: number } | undefined {
  const s = r.sample;
  if (s === undefined || !isFresh(takenAt(r, 'traffic'), t)) return undefined;
  const u = freshUtilizationOf(r, t);
  const rps = s.rps ?? Number.NaN;
  if (!(u >= ERROR_SHIFT.minUtilization) || !(rps > 0)) return undefined;
  return { capacity: rps / u, load: rps };
}

/**
 * Whether the carriers other than this one (itself a carrier, counted in `l`) can take what it
 * serves well and stay at most `fullAt` busy. If so, it leaves the ledger (its successes move onto
 * the others) and true is returned; if not, the ledger is unchanged.
 */
export function peersCarry(l: CapacityLedger, r: CapacityReading, t: ReadingClock): boolean {
  const own = carrierOf(r, t);
  const s = r.sample;
  const goodput = s === undefined ? 0 : Math.max(0, (s.rps ?? 0) - (s.errors ?? 0));
  if (!l.known || own === undefined || goodput === 0) return leave(l, own, goodput);
  const capacity = l.capacity - own.capacity;
  const others = l.load - own.load;
  if (sparesLittle(l, own, { goodput, rps: s?.rps ?? 0, capacity, others })) return leave(l, own, goodput);
  if (others + goodput > ERROR_SHIFT.fullAt * capacity) return false;
  return leave(l, own, goodput);
}

/**
 * Whether what it would serve well at its share of the capacity is little next to what the others
 * carry: keeping it then spares them little, and costs every request it fails (a retry, or an
 * error without one). Judged at that share, not at the one it has: its error penalty may already
 * have pushed it low, and that must not make it look minor (it would be ejected for the penalty's
 * doing). Its capacity is what it serves well per unit of utilization (its ledger capacity counts
 * its failures as requests served at no cost).
 */
function sparesLittle(l: CapacityLedger, own: { capacity: number; load: number }, x: { goodput: number; rps: number; capacity: number; others: number }): boolean {
  const success = x.rps > 0 ? x.goodput / x.rps : 0;
  const served = own.capacity * success;
  const share = served / (served + x.capacity);
  return l.load * share * success <= ERROR_SHIFT.minorGoodput * x.others;
}

function leave(l: CapacityLedger, own: { capacity: number; load: number } | undefined, goodput: number): true {
  if (own !== undefined) {
    l.capacity -= own.capacity;
    l.load += goodput - own.load;
  }
  return true;
}
