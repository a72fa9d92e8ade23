/**
 * The fleet outlier detector (runs before the health gate). It sees every proxy's reports of an
 * endpoint, so it judges the endpoint on the fleet's traffic, not one sidecar's share:
 *
 * - all-failing: the latest report shows (nearly) every request failing, with some volume: out
 *   within one signal interval, not through stale-hold and slow decay;
 * - failure-percentage: the smoothed error rate is at least failureRatio;
 * - success-rate (Envoy's rule): success rate below the median − max(stdevFactor × σ, minGap),
 *   with at least three endpoints carrying enough requests.
 *
 * - stalled (tick/stall.ts): requests issued and in progress piling up, none answered, for many
 *   times the latency of its peers, which answer theirs (a hung backend, at or before its timeouts).
 *
 * Every rule needs the endpoint's peers to be doing clearly better (their median error rate below
 * half the threshold): when the whole cluster fails, the fault is not the endpoint's, and ejecting
 * would only concentrate the load. And an error rule ejects only if the peers can carry what the
 * endpoint still serves well, where they report their utilization (tick/error-shift.ts). At most
 * maxEjectedRatio of the cluster is ejected at once (at least one endpoint when it has two or
 * more), worst first, and never the last serving endpoint.
 *
 * Back-off: an ejection lasts baseEjectionMs × 2^level (capped). The level rises only when an
 * endpoint relapses after it came back (served enough clean traffic after its release): an
 * endpoint that never recovered is retried at the same pace, a flapping one less and less often.
 * It returns to zero after maxEjectionMs without an ejection.
 */
import { readErrorsInto, resetErrors, type ErrorReading } from '../error-window.js';
import type { EndpointState, EjectionState } from '../state.js';
import { isOperatorDisabled } from '../stages.js';
import type { EjectionSettings } from '../types.js';
import { newJudgedReadings, type Frame, type JudgedReadings } from './frame.js';
import { inChunks } from '../../steps.js';
import { judgeStalls, silent, stallReading, stalledAlone, type StallReading } from './stall.js';
import { addCarrier, newLedger, peersCarry, type CapacityLedger } from './error-shift.js';
import { worstFirst } from './verdict-order.js';

export interface EjectionVerdict {
  readonly index: number;
  readonly reason: string;
  /** How bad: the rule's error rate (worst first when the cap bites). */
  readonly severity: number;
}

/** Pure judgement: which of the `readings` (endpoints in rotation) to eject, given how many already are. */
export function judgeOutliers(
  readings: readonly (ErrorReading | undefined)[],
  total: number,
  alreadyEjected: number,
  s: EjectionSettings,
): readonly EjectionVerdict[] {
  const v = newJudgedReadings(readings.length);
  readings.forEach((r, i) => {
    if (r === undefined) return;
    v.present[i] = 1;
    v.rate[i] = r.rate;
    v.requests[i] = r.requests;
    v.lastRate[i] = r.lastRate;
    v.lastRequests[i] = r.lastRequests;
  });
  return judgeReadings(v, readings.length, { total, alreadyEjected }, s);
}

/** No verdict: shared, so a cluster with nothing to eject allocates nothing for its judgement. */
const NO_VERDICTS: readonly EjectionVerdict[] = Object.freeze([]);

/**
 * judgeOutliers over the readings of positions 0..n as vectors (those with `present` set are the
 * endpoints in rotation), the engine's form: no object per endpoint, and no allocation at all
 * unless some endpoint is ejected. Writes `v.sorted`. `cluster.keys` (by position): equally bad
 * endpoints take the room in key order (verdict-order.ts).
 */
export function judgeReadings(
  v: JudgedReadings,
  n: number,
  cluster: { readonly total: number; readonly alreadyEjected: number; readonly keys?: readonly string[] },
  s: EjectionSettings,
): readonly EjectionVerdict[] {
  const judged = collectJudged(v, n, s);
  if (!anyMayTrip(judged, s)) return NO_VERDICTS;
  // σ over the rates in position order, before they are sorted: the same sums as before, to the bit.
  const sigma = stdev(v.sorted, judged);
  // Sorted once: each endpoint's peers' median is read off it without the endpoint's own rate
  // (a sort per endpoint was half of a 500 × 20 tick whose reports carry request counts).
  sortFirst(v.sorted, judged);
  // Leaving one endpoint out moves the median of many by next to nothing: exact below 64 judged
  // endpoints, the median of all above.
  const overall = judged >= 64 ? medianOfFirst(v.sorted, judged, undefined) : undefined;
  let verdicts: EjectionVerdict[] | undefined;
  let serving = 0;
  for (let i = 0; i < n; i++) {
    if (!v.present[i]) continue;
    serving++;
    if (v.requests[i] === 0 && v.lastRequests[i] === 0) continue;
    const peers = overall ?? medianOfFirst(v.sorted, judged, isJudged(v, i, s) ? (v.rate[i] as number) : undefined);
    const rule = ruleFor(v, i, { peers, sigma, judgedCount: judged }, s);
    if (rule !== undefined) (verdicts ??= []).push({ index: i, ...rule });
  }
  if (verdicts === undefined) return NO_VERDICTS;
  return verdicts.sort(worstFirst(cluster.keys)).slice(0, ejectionRoom(cluster.total, cluster.alreadyEjected, serving, s));
}

/**
 * What one pass over the readings learns for anyMayTrip: whether some reading trips a rule on its
 * own, and the judged rates' range. Module state, as error-window.ts's memo: the pass reports four
 * numbers without an object per judgement (one engine judges one cluster at a time).
 */
const PASS = new Float64Array(3);
const P_TRIPS = 0;
const P_LO = 1;
const P_HI = 2;

/**
 * The judged rates, in position order, into the first slots of `v.sorted`; how many. In the same
 * pass, PASS: whether a reading trips all-failing or failure-percentage without their peers'
 * test, and the lowest and highest judged rate (a pass of its own each once, at 1 × 10,000 with
 * request counts ~3 % of a tick).
 */
function collectJudged(v: JudgedReadings, n: number, s: EjectionSettings): number {
  const lastVolume = Math.max(1, s.minRequests / 4);
  let judged = 0;
  let trips = 0;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    if (!v.present[i]) continue;
    if ((v.lastRequests[i] as number) >= lastVolume && (v.lastRate[i] as number) >= s.allFailingRatio) trips = 1;
    if (!isJudged(v, i, s)) continue;
    const rate = v.rate[i] as number;
    v.sorted[judged++] = rate;
    if (rate >= s.failureRatio) trips = 1;
    if (rate < lo) lo = rate;
    if (rate > hi) hi = rate;
  }
  PASS[P_TRIPS] = trips;
  PASS[P_LO] = lo;
  PASS[P_HI] = hi;
  return judged;
}

/**
 * Whether some reading could trip a rule, on bounds alone (a healthy cluster's tick then skips σ,
 * the sort and the medians; its verdicts are none either way), from collectJudged's pass.
 * Necessary conditions of ruleFor's: all-failing and failure-percentage without their peers'
 * test; success-rate from the judged rates' range: an endpoint's peers' median is at least the
 * lowest judged rate `lo`, and the gap at least minGap, so it needs 1 − rate < (1 − lo) − minGap,
 * rounding being monotone.
 */
function anyMayTrip(judged: number, s: EjectionSettings): boolean {
  if (PASS[P_TRIPS] === 1) return true;
  if (judged < 3) return false;
  return 1 - (PASS[P_HI] as number) < 1 - (PASS[P_LO] as number) - s.minGap;
}

/** What ruleFor compares an endpoint's reading with: its peers' median rate, σ of the judged rates, how many are judged. */
interface Peers {
  readonly peers: number;
  readonly sigma: number;
  readonly judgedCount: number;
}

function ruleFor(v: JudgedReadings, i: number, p: Peers, s: EjectionSettings): { reason: string; severity: number } | undefined {
  const { peers, sigma } = p;
  const lastRequests = v.lastRequests[i] as number;
  const lastRate = v.lastRate[i] as number;
  const lastVolume = Math.max(1, s.minRequests / 4);
  if (lastRequests >= lastVolume && lastRate >= s.allFailingRatio && peersFine(peers, s.allFailingRatio)) {
    return { reason: `all-failing: ${pct(lastRate)} of ${Math.round(lastRequests)} requests failed in the latest report`, severity: 1 + lastRate };
  }
  const rate = v.rate[i] as number;
  if ((v.requests[i] as number) < s.minRequests || Number.isNaN(rate)) return undefined;
  if (rate >= s.failureRatio && peersFine(peers, s.failureRatio)) {
    return { reason: `failure-percentage: error rate ${pct(rate)} ≥ ${pct(s.failureRatio)} (peers' median ${pct(peers)})`, severity: rate };
  }
  if (p.judgedCount >= 3 && !Number.isNaN(peers)) {
    const gap = Math.max(s.successRateStdevFactor * sigma, s.minGap);
    if (1 - rate < 1 - peers - gap) {
      return { reason: `success-rate: ${pct(1 - rate)} vs peers' median ${pct(1 - peers)} (allowed gap ${pct(gap)})`, severity: rate };
    }
  }
  return undefined;
}

const pct = (x: number): string => (Number.isNaN(x) ? 'n/a' : `${(x * 100).toFixed(1)}%`);

/**
 * The median of `sorted` (the judged endpoints' rates, ascending) without one value equal to
 * `rate` (an endpoint's own; all of them when undefined). NaN when none is left. The same values
 * as sorting the others, so the same median to the bit.
 */
export function medianWithout(sorted: readonly number[], rate: number | undefined): number {
  return medianOfFirst(sorted, sorted.length, rate);
}

/** medianWithout over the first `len` values of `sorted`. */
function medianOfFirst(sorted: readonly number[], len: number, rate: number | undefined): number {
  // Without `rate`, the values after its place shift down by one (which of equal values goes is all one).
  const k = rate === undefined ? len : lowerBound(sorted, len, rate);
  const m = rate === undefined ? len : len - 1;
  if (m === 0) return Number.NaN;
  const mid = m >> 1;
  const hi = sorted[mid < k ? mid : mid + 1] as number;
  if (m % 2 === 1) return hi;
  const lo = sorted[mid - 1 < k ? mid - 1 : mid] as number;
  return (lo + hi) / 2;
}

/** The first index of `sorted` (its first `len` values) whose value is not below `x`. */
function lowerBound(sorted: readonly number[], len: number, x: number): number {
  let lo = 0;
  let hi = len;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as number) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Above this many judged rates the sort is Array.prototype.sort's (insertion sort is quadratic). */
const INSERTION_SORT_MAX = 32;

/**
 * Sorts the first `len` values of `xs` ascending (no NaN among them). Stable, as
 * Array.prototype.sort with `a - b` is, so the same order of the same values to the bit; by
 * insertion for a cluster's handful (the builtin with a comparator cost more than the judging).
 */
function sortFirst(xs: number[], len: number): void {
  if (len > INSERTION_SORT_MAX) {
    const sorted = xs.slice(0, len).sort((a, b) => a - b);
    for (let i = 0; i < len; i++) xs[i] = sorted[i] as number;
    return;
  }
  for (let i = 1; i < len; i++) {
    const x = xs[i] as number;
    let j = i - 1;
    while (j >= 0 && (xs[j] as number) > x) {
      xs[j + 1] = xs[j] as number;
      j--;
    }
    xs[j + 1] = x;
  }
}

/** Judged by the rate rules: enough requests and a rate. */
const isJudged = (v: JudgedReadings, i: number, s: EjectionSettings): boolean => (v.requests[i] as number) >= s.minRequests && !Number.isNaN(v.rate[i] as number);

/** The peers are doing clearly better than `threshold` (or there are none to compare with). */
const peersFine = (peers: number, threshold: number): boolean => Number.isNaN(peers) || peers < threshold / 2;

/** Population σ of the first `len` values of `xs`, summed in order (as reduce did). */
function stdev(xs: readonly number[], len: number): number {
  if (len < 2) return 0;
  let sum = 0;
  for (let i = 0; i < len; i++) sum += xs[i] as number;
  const mean = sum / len;
  let squares = 0;
  for (let i = 0; i < len; i++) squares += ((xs[i] as number) - mean) ** 2;
  return Math.sqrt(squares / len);
}

/**
 * How many more of a cluster's `total` endpoints may be ejected: never more than maxEjectedRatio of
 * them (at least one of two or more) counting the `ejected` already out, and never the last of the
 * `serving` ones that could serve. Every rule that ejects (error rules, the stall rule, a departed
 * key's resumed ejection: departed.ts) takes its room from here.
 */
export function ejectionRoom(total: number, ejected: number, serving: number, s: EjectionSettings): number {
  const cap = total >= 2 ? Math.max(1, Math.floor(s.maxEjectedRatio * total)) : 0;
  return Math.max(0, Math.min(cap - ejected, serving - 1));
}

/** Whether the operator and the probes let the endpoint serve (the outlier detector judges only those). */
export function inRotation(e: EndpointState, now: number): boolean {
  // Nobody probed it (no tracker yet): AVAILABLE.
  return !isOperatorDisabled(e.operatorHealth) && (e.tracker === undefined || e.tracker.state(now) === 'AVAILABLE');
}

/**
 * Stage 0 (and the tick's snapshot of each endpoint's sample and probe latency): releases ejections whose back-off is over, judges the endpoints in rotation and
 * ejects the outliers. Updates each endpoint's EjectionState; the health gate reads it.
 */
export function runEjection(f: Frame, eps: readonly EndpointState[], s: EjectionSettings, c: ClusterSignals): void {
  const t: Readings = { judged: 0, ejected: 0, stalled: 0, errors: errorRowsOf(c), mayStall: c.stallCandidates > 0 };
  readRange(f, eps, s, 0, f.n, t);
  judge(f, eps, s, t);
}

/** runEjection in steps of about `chunk` endpoints (a cluster's tick in steps: weight-engine.ts). */
export function* runEjectionSteps(f: Frame, eps: readonly EndpointState[], s: EjectionSettings, c: ClusterSignals, chunk: number): Generator<void, void, void> {
  const t: Readings = { judged: 0, ejected: 0, stalled: 0, errors: errorRowsOf(c), mayStall: c.stallCandidates > 0 };
  yield* inChunks(f.n, chunk, (from, to) => readRange(f, eps, s, from, to, t));
  judge(f, eps, s, t);
}

/** Ejects the outliers among the readings (the tick scratch's, which readRange wrote). */
function judge(f: Frame, eps: readonly EndpointState[], s: EjectionSettings, t: Readings): void {
  if (!s.enabled) return;
  let ejected = t.ejected;
  // Most ticks of most clusters have no error data: nothing to judge.
  if (t.judged > 0) {
    const verdicts = judgeReadings(f.scratch.readings, f.n, { total: f.n, alreadyEjected: t.ejected, keys: f.keys }, s);
    // Indexed, not for-of: most ticks judge NO_VERDICTS, a frozen array, which for-of walked through
    // the generic iterator protocol (an iterator and a result object per cluster per tick).
    const ledger = verdicts.length > 0 ? carriersOf(f, eps) : undefined;
    for (let k = 0; k < verdicts.length; k++) {
      const v = verdicts[k] as EjectionVerdict;
      const e = eps[v.index] as EndpointState;
      // Only as far as its peers can carry what it still serves well (tick/error-shift.ts).
      if (!peersCarry(ledger as CapacityLedger, e, f)) continue;
      eject(e, v.reason, f.now, s);
      ejected++;
    }
  }
  // Only when some endpoint looks stalled on its own (most ticks: none).
  if (t.stalled > 0) judgeStalled(f, eps, s, ejected);
}

/** The stall rule (tick/stall.ts) over the endpoints in rotation and not ejected, after the error rules' ejections. */
function judgeStalled(f: Frame, eps: readonly EndpointState[], s: EjectionSettings, ejected: number): void {
  const readings: (StallReading | undefined)[] = new Array<undefined>(f.n).fill(undefined);
  let serving = 0;
  for (let i = 0; i < f.n; i++) {
    const e = eps[i] as EndpointState;
    if (e.ejection?.until !== undefined || !inRotation(e, f.now)) continue;
    serving++;
    readings[i] = stallReading(e, f);
  }
  for (const v of judgeStalls(readings, s, ejectionRoom(f.n, ejected, serving, s), f.keys)) eject(eps[v.index] as EndpointState, v.reason, f.now, s);
}

/** The capacity and load of the endpoints that carry the cluster's traffic now: in rotation and not ejected. */
function carriersOf(f: Frame, eps: readonly EndpointState[]): CapacityLedger {
  const ledger = newLedger();
  for (let i = 0; i < f.n; i++) {
    const e = eps[i] as EndpointState;
    if (e.ejection?.until === undefined && inRotation(e, f.now)) addCarrier(ledger, e, f);
  }
  return ledger;
}

/**
 * What the outlier detector reads of a cluster (its ClusterState, read in place: no object per
 * cluster per tick): its error rows, read once some count was seen (while all are fresh, nothing
 * to read), and how many endpoints' flows could show a stall (none: no flow is read).
 */
export interface ClusterSignals {
  readonly errors: Float64Array;
  readonly errorsSeen: boolean;
  readonly stallCandidates: number;
}

const errorRowsOf = (c: ClusterSignals): Float64Array | undefined => (c.errorsSeen ? c.errors : undefined);

interface Readings {
  /** How many endpoints have a reading to judge. */
  judged: number;
  ejected: number;
  /** How many endpoints look stalled on their own (tick/stall.ts): the stall rule runs only then. */
  stalled: number;
  /** The cluster's error rows (error-window.ts); undefined while all are fresh (nothing to read). */
  readonly errors: Float64Array | undefined;
  /** Some endpoint's flow could show a stall: else no flow is read. */
  readonly mayStall: boolean;
}

/**
 * Endpoints from..to: inputs snapshot, releases, and the error readings (into the frame's
 * errorRate and the tick scratch's readings, `present` set for those in rotation).
 */
function readRange(f: Frame, eps: readonly EndpointState[], s: EjectionSettings, from: number, to: number, t: Readings): void {
  const v = f.scratch.readings;
  // Locals in the loop, written back once (not a field update per endpoint).
  let judged = t.judged;
  let ejected = t.ejected;
  for (let i = from; i < to; i++) {
    const e = eps[i] as EndpointState;
    if (t.mayStall && e.flow !== undefined && silent(e.flow)) {
      const sr = stallReading(e, f);
      if (sr !== undefined && stalledAlone(sr, s)) t.stalled++;
    }
    // What the explanations show of the inputs, taken here: one pass over the states, not two.
    f.samples[i] = e.sample;
    f.probeLatency[i] = e.lastProbe?.latencyMs;
    const j = e.ejection;
    if (j !== undefined) release(j, f.now, s, { errors: t.errors, i });
    // Without a count the rate is NaN, and the judgement reads the other vectors only where present.
    const counted = t.errors !== undefined && readErrorsInto(t.errors, i, s.errorWindowMs, f.now, v);
    f.errorRate[i] = counted ? (v.rate[i] as number) : Number.NaN;
    v.present[i] = 0;
    if (j?.until !== undefined) ejected++;
    else if (counted) {
      if (!inRotation(e, f.now)) continue;
      if (j !== undefined) noteRecovery(j, v, i, s);
      v.present[i] = 1;
      judged++;
    }
  }
  t.judged = judged;
  t.ejected = ejected;
}

/** `at`: the endpoint's error rows and position (its counts are reset at release). */
function release(j: EjectionState, now: number, s: EjectionSettings, at: { readonly errors: Float64Array | undefined; readonly i: number }): void {
  j.releasedNow = false;
  if (j.until !== undefined && now >= j.until) {
    j.until = undefined;
    j.onProbation = true;
    j.releasedNow = true;
    j.releasedAt = now;
    if (at.errors !== undefined) resetErrors(at.errors, at.i);
  }
  if (j.until === undefined && j.level > 0 && j.releasedAt !== undefined && now - j.releasedAt >= s.maxEjectionMs) j.level = 0;
}

/** An endpoint on probation that served enough clean traffic has come back. */
function noteRecovery(j: EjectionState, v: JudgedReadings, i: number, s: EjectionSettings): void {
  if (j.onProbation && (v.requests[i] as number) >= s.minRequests && (v.rate[i] as number) < s.failureRatio / 2) j.onProbation = false;
}

function eject(e: EndpointState, reason: string, now: number, s: EjectionSettings): void {
  e.ejection ??= { until: undefined, reason: '', level: 0, count: 0, onProbation: false, releasedNow: false, releasedAt: undefined };
  const j = e.ejection;
  const relapse = j.count > 0 && !j.onProbation;
  if (relapse) j.level++;
  const ms = Math.min(s.maxEjectionMs, s.baseEjectionMs * 2 ** j.level);
  j.until = now + ms;
  j.reason = reason;
  j.count++;
}
