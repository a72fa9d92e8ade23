/**
 * A backlog drain: an endpoint whose load report shows its queue growing far past what its peers'
 * time in the system explains is cut to what drains that backlog within about one report, past
 * the step limit (only as deep as its peers can carry), and held there for at least STANDS_MS; on
 * its next load report without one it goes back to the weight the controller had given it.
 *
 * Why: the step limit paces a controller reading noisy averages (cpu and latency over a window).
 * A backend that lost half its workers at 70% load (headline, a real Envoy) queued for seconds
 * while its weight came down at the step limit: ~80 requests in flight 3 s after the cut, p99 2.6–3.2 s.
 * A backlog is no average: the report counts the requests in progress now, the requests it was
 * sent and finished, and the same of its peers (Little's law gives their time in the system), so
 * what drains it is known from that one report. The controller's own weight is kept aside: the
 * drain's measurements (little cpu, the backlog's latency) say nothing of where it belongs, and
 * climbing back from the drain at the step limit starved it for tens of seconds (the queueing model).
 *
 * Read only where an endpoint has a drain pending or under way (ClusterState.draining counts
 * them): most ticks of most clusters read nothing here.
 */
import type { ClusterState, EndpointState } from '../state.js';
import type { Sample } from '../types.js';
import { mark, ruleBit, type Frame } from './frame.js';
import { errorShiftAllowance, type UtilizationTotals } from './error-shift.js';
import { finishedOf, peersTimeS } from './flow.js';

const R_DRAIN = ruleBit('backlog-drain');

/** Its queue grows: it was sent at least this many times what it finished over the report. */
const GROWTH = 1.2;
/** A backlog: in progress beyond (1 + this) times what its throughput holds at its peers' time in the system. */
const TOLERANCE = 3;
/** A backlog is drained within this long (ms): about one load report. */
const DRAIN_MS = 2_000;
/** A drain still sends it at least this share of what it was sent: it keeps reporting. */
const MIN_SHARE = 0.2;
/**
 * A drain under way stands this long (ms) whatever reports say meanwhile. Several proxies report
 * one after another, each folded into a new sample of the fleet's sums (signals/lrs-aggregator.ts),
 * and most of those sums still predate the drain: read as new, they drained it again on top of
 * itself, and the next one cleared it half a second in (4 Envoys: drained and back several times
 * a report). Under DRAIN_MS, so a single proxy's next report, 2 s on, is read.
 */
const STANDS_MS = 1_500;

/** An endpoint's drain: NaN fields when not set. */
export interface BacklogDrain {
  /** The share of what it was sent that drains its backlog (from its latest report), until the controller reads it. */
  share: number;
  /** `at` of the report that share came from (or, once cleared, of the report that cleared it). */
  at: number;
  /**
   * While it is drained: the factor from its PID weight back to the controller's own (NaN: no
   * drain under way). A factor, not a weight: the PID's vector is renormalized every run.
   */
  back: number;
  /** A load report newer than the drain's shows no backlog: it goes back on the controller's next run. */
  cleared: boolean;
}

/** A drain is under way: the endpoint's weight is the drain's, with a factor back to the controller's. */
export const underWay = (d: BacklogDrain | undefined): d is BacklogDrain => d !== undefined && d.back === d.back;

/** A drain's share waits for the controller to read it. */
export const sharePending = (d: BacklogDrain | undefined): boolean => d !== undefined && d.share === d.share;

/**
 * The share of what it was sent that drains the backlog a load report shows (NaN: none). Every
 * count is the report's: rps sent, successes and errors finished per second, inflight now, and
 * the same proxies' in-progress and completions on its peers.
 */
export function drainShare(x: Sample): number {
  const sent = x.rps ?? 0;
  const finished = finishedOf(x);
  const peersS = peersTimeS(x);
  if (!(finished > 0 && peersS === peersS && sent >= GROWTH * finished)) return Number.NaN;
  // What its throughput would hold in progress at its peers' time in the system.
  const normal = finished * peersS;
  const backlog = (x.inflight ?? 0) - normal;
  if (!(backlog > TOLERANCE * normal)) return Number.NaN;
  return Math.max(MIN_SHARE, (finished - (backlog * 1000) / DRAIN_MS) / sent);
}

/**
 * Whether load report `x` follows one that still counts as a reading (within `windowMs`, the
 * freshness window) and saw traffic. Only such a report may start a drain: the first report of an
 * endpoint back from a death or new to its proxies covers a window it served only the end of, so
 * its completions a second (spread over the whole window) understate its throughput and the few
 * calls it holds read as a backlog. A revived grpc-go backend was drained for 3 s so, with 2–4
 * calls in flight (bench/proxyless --scenario death, bench/RESULTS.md "zone48").
 */
export function followsReport(prev: Sample | undefined, x: Sample, windowMs: number): boolean {
  return prev !== undefined && x.at - prev.at <= windowMs && (prev.rps ?? 0) > 0;
}

/**
 * Notes a load report's backlog on its endpoint (`follows`: followsReport); returns the change in
 * the cluster's count of endpoints with a drain.
 */
export function noteBacklog(e: EndpointState, x: Sample, follows: boolean): number {
  const had = e.drain !== undefined;
  const d = e.drain;
  if (underWay(d) && x.at - d.at < STANDS_MS) return 0;
  const share = drainShare(x);
  // Neither a backlog nor its absence: the drain stays as it was (a drain under way still goes back on a report without one).
  if (share === share && !follows) return 0;
  if (share === share) e.drain = { share, at: x.at, back: d?.back ?? Number.NaN, cleared: false };
  // No backlog: a drain under way goes back on the controller's next run; one only pending is void.
  else if (underWay(d)) {
    d.share = Number.NaN;
    d.at = x.at;
    d.cleared = true;
  } else e.drain = undefined;
  return (e.drain !== undefined ? 1 : 0) - (had ? 1 : 0);
}

/** What the controller gives endpoint i this run: the multiplier it chose, when it last ran (NaN: never), and its peers' load. */
export interface ControlStep {
  readonly multiplier: number;
  readonly since: number;
  /** The load of the endpoints a drain moves its traffic onto (read only for a drain). */
  readonly peers: () => UtilizationTotals;
}

/**
 * The controller's multiplier for endpoint i, with its drain: cut to the drain's share when that
 * is lower; held while drained (the controller runs on other samples too, such as an agent's
 * latency, and what it reads then is the drain's, not the endpoint's); and on the first run after
 * a load report without a backlog, back to the controller's weight, with its step of this run.
 * Either way the step limit (clamps.ts) lets it go as far (stepTicks). A drain's report is read
 * once, and only when newer than the controller's last run and fresh.
 */
export function drainOrRestore(c: ClusterState, f: Frame, i: number, o: ControlStep): number {
  const e = c.order[i] as EndpointState;
  const d = e.drain;
  if (d === undefined) return o.multiplier;
  const share = d.share;
  d.share = Number.NaN;
  const pending = share === share && !(d.at <= o.since) && f.now - d.at <= c.safety.staleAfterMs;
  // Only as deep as its peers can carry (as errors move load: error-shift.ts): none from 90% on.
  if (pending) return drain(c, f, i, d, { ...o, share: 1 - (1 - share) * errorShiftAllowance(o.peers()) });
  if (!underWay(d) || f.now - d.at > c.safety.staleAfterMs) {
    // A report of a backlog the controller saw too late (stale) or already, or a drain whose reports
    // stopped (freshness.ts holds and decays it then) or voided: nothing to go back from.
    e.drain = undefined;
    c.draining--;
    return o.multiplier;
  }
  if (!d.cleared) {
    mark(f, i, R_DRAIN);
    return 1;
  }
  return restore(c, f, i, e, o);
}

function drain(c: ClusterState, f: Frame, i: number, d: BacklogDrain, o: ControlStep & { readonly share: number }): number {
  const under = underWay(d);
  // Drained already, the controller reads the drain's measurements: the drain goes on from where it is.
  const step = under ? 1 : o.multiplier;
  if (!(o.share < step)) return step;
  d.back = (under ? d.back : o.multiplier) / o.share;
  allowStep(c, f, i, o.share);
  return o.share;
}

/** Back to the controller's weight before the drain, with this run's step on it: as if the drain had not been. */
function restore(c: ClusterState, f: Frame, i: number, e: EndpointState, o: ControlStep): number {
  const back = (e.drain as BacklogDrain).back * o.multiplier;
  e.drain = undefined;
  c.draining--;
  allowStep(c, f, i, back);
  return back;
}

/**
 * Forgets a drain of an endpoint out of rotation or starting over (tick/join.ts): the factor back
 * was of a PID weight that is no more. The controller's next run, or its next load report, removes
 * it (and counts it off ClusterState.draining).
 */
export function voidDrain(d: BacklogDrain): void {
  d.share = Number.NaN;
  d.back = Number.NaN;
}

/** Marks endpoint i's weight as a drain's while one is under way (explanations), between the controller's runs. */
export function markDrained(c: ClusterState, f: Frame, i: number): void {
  const d = (c.order[i] as EndpointState).drain;
  if (underWay(d)) mark(f, i, R_DRAIN);
}

/** The step limit lets endpoint i move by `ratio` (either way) this tick. */
function allowStep(c: ClusterState, f: Frame, i: number, ratio: number): void {
  const ticks = Math.abs(Math.log(ratio)) / Math.log(c.safety.maxStepRatio);
  f.stepTicks[i] = Math.max(f.stepTicks[i] as number, ticks);
  mark(f, i, R_DRAIN);
}
