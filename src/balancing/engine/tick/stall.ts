/**
 * The fleet outlier detector's stall rule: a hung backend (a black hole: it takes connections
 * and requests and never answers) sends no error and no ORCA report; its requests end only when
 * the route timeout fires (Envoy then answers 504 and counts an error), so the error rules see it
 * seconds later, while weighted balancing keeps sending it its full share. Envoy's load reports
 * show it sooner: its requests in progress pile up while it answers none
 * (`total_successful_requests` = 0), although it was issued requests, while the cluster's other
 * endpoints answer theirs.
 *
 * Why successes, not completions (successes + errors): once the route timeout fires, every report
 * carries its timeouts as errors, and with a report interval near the timeout (Envoy's default
 * 2 s, a 3 s timeout) a report with no completion at all comes in only some phases, or never.
 * An endpoint that answers every request with an error is the all-failing rule's anyway.
 *
 * The rule judges an endpoint stalled when its latest load-report sample (fresh) shows:
 *
 * - requests issued (rps > 0), none answered successfully (or almost none: at most
 *   `STALL.answeredShare` of what it was sent), and more in progress than in the sample before
 *   (there must be one: a first report proves no growth), at least `minStalled`;
 * - for at least `STALL.latencyFactor` times its peers' latency and `STALL.minStallMs`: its stall
 *   lasted at least inflight / rps (what it holds at the rate it was sent work), and its peers'
 *   latency is their in-progress count over their completions per second (Little's law), both
 *   as seen by the proxies that call the endpoint (a proxy that calls only this endpoint, say
 *   with long-lived streams, vouches for no peer), over the peers that answered some;
 * - and most of its active peers (fresh samples) answering requests.
 *
 * Why these guards. Long-lived requests (gRPC streams, websockets): every endpoint completes few,
 * its peers' latency is long, the stall never outlasts it many times. Low traffic: a handful in
 * progress is below `minStalled`. Every endpoint stalling: no peer answers, so it is the fleet,
 * not one backend (fail static). A merely slow endpoint answers more than a stray few. An endpoint
 * whose traffic other replicas' proxies carry too: its sample has no counts (they are not all here).
 * What it cannot tell apart: an endpoint whose latency jumps to many times its peers' is silent
 * for that long too, and is taken out like a hung one (it is one, for that long).
 *
 * Why almost none, not none: the report whose interval began just before the hang carries the one
 * or two answers that came back before it, and waiting for the next report (a real Envoy, its
 * default 2 s interval) let the hung endpoint collect 2 s more of its share, every one of them a
 * failure at the route timeout (bench/scenarios `hang`: one answer, 0.5 a second against 17.5
 * sent, held the verdict back a whole report).
 *
 * A stalled endpoint is taken out like an all-failing one: the same back-off, probation,
 * maxEjectedRatio (counting this tick's other ejections) and never the last serving endpoint.
 */
import type { EndpointState } from '../state.js';
import type { EjectionSettings, Sample } from '../types.js';
import type { ReadingClock } from './frame.js';
import { worstFirst } from './verdict-order.js';
import { peersTimeS } from './flow.js';

export const STALL = {
  /** The stall must have lasted this many times the peers' latency. */
  latencyFactor: 5,
  /** And at least this long (ms): one report interval's silence is no verdict at sub-second scale. */
  minStallMs: 1_000,
  /**
   * Silent: it answered at most this share of the requests it was sent over the report. A backend
   * 10× slower answers a tenth and is no stall (the latency terms and the backlog drain are its rules).
   */
  answeredShare: 0.05,
} as const;

/** One endpoint's flow: its latest load-report sample with success counts, and the in-progress count before it. */
export interface StallReading {
  readonly sample: Sample;
  /** NaN: no sample before it. */
  readonly prevInflight: number;
}

export interface StallVerdict {
  readonly index: number;
  readonly reason: string;
  /** How many times its peers' latency the stall lasted. */
  readonly severity: number;
}

/** In-progress requests an endpoint must hold, stalled, before it is judged (the all-failing rule's volume). */
export const minStalled = (s: EjectionSettings): number => Math.max(1, s.minRequests / 4);

/** Whether the reading shows the endpoint stalled on its own (before its peers are counted). */
export function stalledAlone(r: StallReading, s: EjectionSettings): boolean {
  return mayStall(r.sample, r.prevInflight) && (r.sample.inflight as number) >= minStalled(s);
}

/**
 * stalledAlone less its settings' volume test and the reading's age: whether a flow sample (and
 * the in-progress count before it) could show a stall at all. The engine counts the endpoints
 * whose flow can, as it takes their samples, so a tick of a cluster with none reads no flow.
 */
export function mayStall(x: Sample | undefined, prevInflight: number): boolean {
  return x !== undefined && x.rps !== undefined && x.rps > 0 && silent(x) && x.inflight !== undefined && x.inflight > prevInflight;
}

/** It answered none, or at most STALL.answeredShare of what it was sent (a sample without success counts says nothing: not silent). */
export const silent = (x: Sample): boolean => x.successes !== undefined && x.successes <= STALL.answeredShare * (x.rps ?? 0);

/** Whether a peer's reading counts: active (sent work, holding some or answering). */
const active = (x: Sample): boolean => (x.rps ?? 0) > 0 || (x.inflight ?? 0) > 0 || (x.successes ?? 0) > 0;

/**
 * Pure judgement over the readings of the endpoints in rotation and not ejected (undefined: no
 * fresh reading, or not judged): which are stalled. `room`: how many more may be ejected; `keys` (by
 * position): equally stalled ones take it in key order (verdict-order.ts).
 */
export function judgeStalls(readings: readonly (StallReading | undefined)[], s: EjectionSettings, room: number, keys?: readonly string[]): readonly StallVerdict[] {
  if (room <= 0) return [];
  let activeCount = 0;
  let answering = 0;
  for (const r of readings) {
    if (r === undefined || !active(r.sample)) continue;
    activeCount++;
    if (!silent(r.sample)) answering++;
  }
  const verdicts: StallVerdict[] = [];
  readings.forEach((r, index) => {
    if (r === undefined || !stalledAlone(r, s)) return;
    // Its own reading is active and not answering: its peers are the others.
    if (!(2 * answering > activeCount - 1)) return;
    const v = stallOf(r.sample);
    if (v !== undefined) verdicts.push({ index, ...v });
  });
  return verdicts.sort(worstFirst(keys)).slice(0, room);
}

/** The stall's length against its peers' latency, when long enough for a verdict. */
function stallOf(x: Sample): { reason: string; severity: number } | undefined {
  const inflight = x.inflight ?? 0;
  const stallS = inflight / (x.rps ?? 0);
  const peerLatencyS = peersTimeS(x);
  if (peerLatencyS !== peerLatencyS) return undefined;
  if (!(stallS * 1000 >= STALL.minStallMs && stallS >= STALL.latencyFactor * peerLatencyS)) return undefined;
  const severity = peerLatencyS > 0 ? stallS / peerLatencyS : Number.POSITIVE_INFINITY;
  return {
    reason: `stalled: ${Math.round(inflight)} requests in progress and ${(x.successes ?? 0) > 0 ? 'almost none' : 'none'} answered for ≥ ${stallS.toFixed(1)} s, while its peers answer theirs in ~${(peerLatencyS * 1000).toFixed(0)} ms`,
    severity,
  };
}

/** The endpoint's fresh reading, if it has one: a reading older than the cluster's window (tick/freshness.ts readingWindowMs) is neither judged nor counted as a peer's. */
export function stallReading(e: EndpointState, t: ReadingClock): StallReading | undefined {
  const x = e.flow;
  if (x === undefined || t.now - x.at > t.freshMs) return undefined;
  return { sample: x, prevInflight: e.flowPrevInflight };
}
