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
 * Every rule needs the endpoint's peers to be doing clearly better (their median error rate below
 * half the threshold): when the whole cluster fails, the fault is not the endpoint's, and ejecting
 * would only concentrate the load. At most maxEjectedRatio of the cluster is ejected at once (at
 * least one endpoint when it has two or more), worst first, and never the last serving endpoint.
 *
 * Back-off: an ejection lasts baseEjectionMs × 2^level (capped). The level rises only when an
 * endpoint relapses after it came back (served enough clean traffic after its release): an
 * endpoint that never recovered is retried at the same pace, a flapping one less and less often.
 * It returns to zero after maxEjectionMs without an ejection.
 */
import { NO_READING, type ErrorReading } from '../error-window.js';
import type { EndpointState, EjectionState } from '../state.js';
import { isOperatorDisabled } from '../stages.js';
import type { EjectionSettings } from '../types.js';
import type { Frame } from './frame.js';
import { inChunks } from '../../steps.js';

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
): EjectionVerdict[] {
  const rates: number[] = [];
  for (const r of readings) if (r !== undefined && isJudged(r, s)) rates.push(r.rate);
  const verdicts: EjectionVerdict[] = [];
  const sigma = stdev(rates);
  // Sorted once: each endpoint's peers' median is read off it without the endpoint's own rate
  // (a sort per endpoint was half of a 500 × 20 tick whose reports carry request counts).
  const sorted = rates.slice().sort((a, b) => a - b);
  // Leaving one endpoint out moves the median of many by next to nothing: exact below 64 judged
  // endpoints, the median of all above.
  const overall = rates.length >= 64 ? medianWithout(sorted, undefined) : undefined;
  for (let i = 0; i < readings.length; i++) {
    const r = readings[i];
    if (r === undefined || (r.requests === 0 && r.lastRequests === 0)) continue;
    const peers = overall ?? medianWithout(sorted, isJudged(r, s) ? r.rate : undefined);
    const v = ruleFor(r, peers, sigma, rates.length, s);
    if (v !== undefined) verdicts.push({ index: i, ...v });
  }
  const cap = total >= 2 ? Math.max(1, Math.floor(s.maxEjectedRatio * total)) : 0;
  const serving = readings.filter((r) => r !== undefined).length;
  const room = Math.max(0, Math.min(cap - alreadyEjected, serving - 1));
  return verdicts.sort((a, b) => b.severity - a.severity).slice(0, room);
}

function ruleFor(
  r: ErrorReading,
  peers: number,
  sigma: number,
  judgedCount: number,
  s: EjectionSettings,
): { reason: string; severity: number } | undefined {
  const lastVolume = Math.max(1, s.minRequests / 4);
  if (r.lastRequests >= lastVolume && r.lastRate >= s.allFailingRatio && peersFine(peers, s.allFailingRatio)) {
    return { reason: `all-failing: ${pct(r.lastRate)} of ${Math.round(r.lastRequests)} requests failed in the latest report`, severity: 1 + r.lastRate };
  }
  if (r.requests < s.minRequests || Number.isNaN(r.rate)) return undefined;
  if (r.rate >= s.failureRatio && peersFine(peers, s.failureRatio)) {
    return { reason: `failure-percentage: error rate ${pct(r.rate)} ≥ ${pct(s.failureRatio)} (peers' median ${pct(peers)})`, severity: r.rate };
  }
  if (judgedCount >= 3 && !Number.isNaN(peers)) {
    const gap = Math.max(s.successRateStdevFactor * sigma, s.minGap);
    if (1 - r.rate < 1 - peers - gap) {
      return { reason: `success-rate: ${pct(1 - r.rate)} vs peers' median ${pct(1 - peers)} (allowed gap ${pct(gap)})`, severity: r.rate };
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
  // Without `rate`, the values after its place shift down by one (which of equal values goes is all one).
  const k = rate === undefined ? sorted.length : lowerBound(sorted, rate);
  const m = rate === undefined ? sorted.length : sorted.length - 1;
  if (m === 0) return Number.NaN;
  const mid = m >> 1;
  const hi = sorted[mid < k ? mid : mid + 1] as number;
  if (m % 2 === 1) return hi;
  const lo = sorted[mid - 1 < k ? mid - 1 : mid] as number;
  return (lo + hi) / 2;
}

/** The first index of `sorted` whose value is not below `x`. */
function lowerBound(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as number) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Judged by the rate rules: enough requests and a rate. */
const isJudged = (r: ErrorReading, s: EjectionSettings): boolean => r.requests >= s.minRequests && !Number.isNaN(r.rate);

/** The peers are doing clearly better than `threshold` (or there are none to compare with). */
const peersFine = (peers: number, threshold: number): boolean => Number.isNaN(peers) || peers < threshold / 2;

function stdev(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length);
}

/** Whether the operator and the probes let the endpoint serve (the outlier detector judges only those). */
function inRotation(e: EndpointState, now: number): boolean {
  // Nobody probed it (no tracker yet): AVAILABLE.
  return !isOperatorDisabled(e.operatorHealth) && (e.tracker === undefined || e.tracker.state(now) === 'AVAILABLE');
}

/**
 * Stage 0 (and the tick's snapshot of each endpoint's sample and probe latency): releases ejections whose back-off is over, judges the endpoints in rotation and
 * ejects the outliers. Updates each endpoint's EjectionState; the health gate reads it.
 */
export function runEjection(f: Frame, eps: readonly EndpointState[], s: EjectionSettings): void {
  const t: Readings = { readings: undefined, ejected: 0 };
  readRange(f, eps, s, { from: 0, to: f.n }, t);
  judge(f, eps, s, t);
}

/** runEjection in steps of about `chunk` endpoints (a cluster's tick in steps: weight-engine.ts). */
export function* runEjectionSteps(f: Frame, eps: readonly EndpointState[], s: EjectionSettings, chunk: number): Generator<void, void, void> {
  const t: Readings = { readings: undefined, ejected: 0 };
  yield* inChunks(f.n, chunk, (from, to) => readRange(f, eps, s, { from, to }, t));
  judge(f, eps, s, t);
}

/** Ejects the outliers among the readings. */
function judge(f: Frame, eps: readonly EndpointState[], s: EjectionSettings, t: Readings): void {
  if (!s.enabled || t.readings === undefined) return;
  for (const v of judgeOutliers(t.readings, f.n, t.ejected, s)) eject(eps[v.index] as EndpointState, v.reason, f.now, s);
  for (let i = 0; i < f.n; i++) if ((f.errorRate[i] as number) > 1) f.errorRate[i] = 1;
}

interface Readings {
  /** Allocated only for clusters with error data (most ticks of most clusters have none). */
  readings: (ErrorReading | undefined)[] | undefined;
  ejected: number;
}

/** Endpoints from..to: inputs snapshot, releases, and the error readings of those in rotation (into `t`). */
function readRange(f: Frame, eps: readonly EndpointState[], s: EjectionSettings, r: { from: number; to: number }, t: Readings): void {
  // Locals in the loop, written back once (not a field update per endpoint).
  let readings = t.readings;
  let ejected = t.ejected;
  for (let i = r.from; i < r.to; i++) {
    const e = eps[i] as EndpointState;
    // What the explanations show of the inputs, taken here: one pass over the states, not two.
    f.samples[i] = e.sample;
    f.probeLatency[i] = e.lastProbe?.latencyMs;
    const j = e.ejection;
    if (j !== undefined) release(j, e, f.now, s);
    const reading = e.errors === undefined ? NO_READING : e.errors.reading(f.now);
    f.errorRate[i] = reading.rate;
    if (j?.until !== undefined) ejected++;
    else if (reading.requests > 0 || reading.lastRequests > 0) {
      if (!inRotation(e, f.now)) continue;
      if (j !== undefined) noteRecovery(j, reading, s);
      readings ??= new Array<undefined>(f.n).fill(undefined);
      readings[i] = reading;
    }
  }
  t.readings = readings;
  t.ejected = ejected;
}

function release(j: EjectionState, e: EndpointState, now: number, s: EjectionSettings): void {
  j.releasedNow = false;
  if (j.until !== undefined && now >= j.until) {
    j.until = undefined;
    j.onProbation = true;
    j.releasedNow = true;
    j.releasedAt = now;
    e.errors?.reset();
  }
  if (j.until === undefined && j.level > 0 && j.releasedAt !== undefined && now - j.releasedAt >= s.maxEjectionMs) j.level = 0;
}

/** An endpoint on probation that served enough clean traffic has come back. */
function noteRecovery(j: EjectionState, r: ErrorReading, s: EjectionSettings): void {
  if (j.onProbation && r.requests >= s.minRequests && r.rate < s.failureRatio / 2) j.onProbation = false;
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
