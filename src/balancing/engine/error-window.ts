/**
 * Per-endpoint request and error counts, smoothed over time, from samples that carry rates
 * (rps and errors per second). Each sample is turned into counts over the time it covers (since
 * the previous sample, capped), and the counts decay with a half-life, so the error rate is
 * errors / requests over roughly the last `halfLifeMs` and a quiet endpoint's old errors fade.
 *
 * The latest sample's own rate is kept too: "every request failed in the last report" must act
 * within one signal interval, while the smoothed rate judges "worse than its peers".
 */
import { NEW_ENDPOINT, RowRuns } from './carried-rows.js';

export interface ErrorReading {
  /** Smoothed error rate 0..1, or NaN when no request was counted. */
  readonly rate: number;
  /** Smoothed request count behind `rate`. */
  readonly requests: number;
  /** The latest sample's error rate (NaN without requests) and request count. */
  readonly lastRate: number;
  readonly lastRequests: number;
}

/**
 * Readings of a cluster's endpoints by position, one vector per field of ErrorReading (what
 * readInto writes): the outlier detector reads them without an ErrorReading object per endpoint
 * per tick (at 500 clusters × 20 those objects, and the pointer chasing to read them back, were
 * a sixth of a tick whose reports carry request counts: bench/RESULTS.md, engine8).
 */
export interface ReadingVectors {
  readonly rate: number[];
  readonly requests: number[];
  readonly lastRate: number[];
  readonly lastRequests: number[];
}

/** Writes "no reading" (what an endpoint without request counts reads) at position i. */
function noReadingAt(v: ReadingVectors, i: number): void {
  v.rate[i] = Number.NaN;
  v.requests[i] = 0;
  v.lastRate[i] = Number.NaN;
  v.lastRequests[i] = 0;
}

/** A sample covers at most this long: after a gap, the first sample speaks for one interval only. */
const MAX_COVER_MS = 5_000;
const FIRST_COVER_MS = 1_000;

/*
 * One row of EW_ROW doubles per endpoint position in one Float64Array per cluster (the cluster's
 * `errors`), rather than an ErrorWindow object per endpoint: V8 keeps an object's double fields
 * as separate heap numbers, so reading a window was the object and five scattered numbers per
 * endpoint per tick, cold at 500 clusters × 20 (bench/RESULTS.md, engine8). A fresh row (zero
 * counts, no sample yet) reads as no reading, as an endpoint without a window did. Rows follow
 * their endpoint when the set changes (carryErrorRows).
 */
const EW_REQUESTS = 0;
const EW_ERRORS = 1;
/** `at` of the latest sample folded in; NaN: none yet. */
const EW_LAST_AT = 2;
/** The latest sample's error rate (NaN without requests) and request count. */
const EW_LAST_RATE = 3;
const EW_LAST_REQUESTS = 4;
/** Doubles per row. */
export const EW_ROW = 5;

/** Rows for n endpoints, all fresh. */
export function newErrorRows(n: number): Float64Array {
  const rows = new Float64Array(n * EW_ROW);
  for (let i = 0; i < n; i++) freshErrorRow(rows, i);
  return rows;
}

function freshErrorRow(rows: Float64Array, i: number): void {
  const o = i * EW_ROW;
  rows[o + EW_LAST_AT] = Number.NaN;
  rows[o + EW_LAST_RATE] = Number.NaN;
}

/**
 * The error rows of a cluster's new endpoint order: an endpoint whose state carries over (the
 * same object in `existing`'s order) keeps its row; the others (new, or rebuilt under another
 * error window) start fresh. `from`: each endpoint's position in `existing` (carried-rows.ts).
 */
export function carryErrorRows(
  order: readonly object[],
  existing: { readonly errors: Float64Array; readonly order: readonly object[] } | undefined,
  from: Int32Array,
): Float64Array {
  const rows = newErrorRows(order.length);
  if (existing === undefined) return rows;
  const runs = new RowRuns(existing.errors, rows, EW_ROW);
  for (let i = 0; i < order.length; i++) {
    const f = from[i] as number;
    if (f !== NEW_ENDPOINT && existing.order[f] === order[i]) runs.row(f, i);
  }
  runs.flush();
  return rows;
}

/** Folds one sample's rates (per second) into row i. Samples without rps carry no error information. */
export function observeErrors(rows: Float64Array, i: number, halfLifeMs: number, sample: { readonly at: number; readonly rps?: number; readonly errors?: number }): void {
  const { at, rps, errors: errorsPerS } = sample;
  if (rps === undefined) return;
  const o = i * EW_ROW;
  const lastAt = rows[o + EW_LAST_AT] as number;
  const errs = Math.min(errorsPerS ?? 0, rps > 0 ? rps : (errorsPerS ?? 0));
  const cover = lastAt !== lastAt ? FIRST_COVER_MS : Math.min(MAX_COVER_MS, Math.max(0, at - lastAt));
  // Decay to `at`.
  const keep = keepAt(lastAt, at, halfLifeMs);
  rows[o + EW_REQUESTS] = (rows[o + EW_REQUESTS] as number) * keep;
  rows[o + EW_ERRORS] = (rows[o + EW_ERRORS] as number) * keep;
  if (lastAt !== lastAt || at > lastAt) rows[o + EW_LAST_AT] = at;
  const reqs = Math.max(rps, errs) * (cover / 1000);
  const fails = errs * (cover / 1000);
  rows[o + EW_REQUESTS] = (rows[o + EW_REQUESTS] as number) + reqs;
  rows[o + EW_ERRORS] = (rows[o + EW_ERRORS] as number) + fails;
  rows[o + EW_LAST_REQUESTS] = reqs;
  rows[o + EW_LAST_RATE] = reqs > 0 ? fails / reqs : Number.NaN;
}

/** Row i's latest report failed at least `ratio` of at least `volume` requests (the all-failing rule's reading, tick/ejection.ts). */
export function lastReportFailing(rows: Float64Array, i: number, volume: number, ratio: number): boolean {
  const o = i * EW_ROW;
  return (rows[o + EW_LAST_REQUESTS] as number) >= volume && (rows[o + EW_LAST_RATE] as number) >= ratio;
}

/**
 * Row i's window, as of its latest sample, failed at least `ratio` of at least `volume` requests
 * (the failure-percentage rule's reading without its peers' test, tick/ejection.ts).
 */
export function windowFailing(rows: Float64Array, i: number, volume: number, ratio: number): boolean {
  const o = i * EW_ROW;
  const requests = rows[o + EW_REQUESTS] as number;
  return requests >= volume && (rows[o + EW_ERRORS] as number) >= ratio * requests;
}

/**
 * Writes row i's reading at `now` into position i of `v`; whether it counts any request
 * (smoothed, after decay, or in the latest sample): false for a reading of nothing.
 */
export function readErrorsInto(rows: Float64Array, i: number, halfLifeMs: number, now: number, v: ReadingVectors): boolean {
  const o = i * EW_ROW;
  const total = rows[o + EW_REQUESTS] as number;
  const lastRequests = rows[o + EW_LAST_REQUESTS] as number;
  if (total === 0 && lastRequests === 0) {
    noReadingAt(v, i);
    return false;
  }
  const keep = keepAt(rows[o + EW_LAST_AT] as number, now, halfLifeMs);
  const requests = total * keep;
  v.rate[i] = requests > 0 ? Math.min(1, ((rows[o + EW_ERRORS] as number) * keep) / requests) : Number.NaN;
  v.requests[i] = requests;
  v.lastRate[i] = rows[o + EW_LAST_RATE] as number;
  v.lastRequests[i] = lastRequests;
  return requests > 0 || lastRequests > 0;
}

/** Forgets row i's counts (an endpoint back from an ejection is judged on fresh traffic only); keeps when its last sample came. */
export function resetErrors(rows: Float64Array, i: number): void {
  const o = i * EW_ROW;
  rows[o + EW_REQUESTS] = rows[o + EW_ERRORS] = rows[o + EW_LAST_REQUESTS] = 0;
  rows[o + EW_LAST_RATE] = Number.NaN;
}

/**
 * The last keepAt computed: its lastAt, now, halfLifeMs and result. Endpoints reported by the
 * same flush share `lastAt`, so a tick mostly asks the same question endpoint after endpoint,
 * and the power (a libm call) was a tenth of reading a window (bench/RESULTS.md, engine8). A memo
 * of a pure function keyed by all its inputs: the same result to the bit.
 */
const LAST_KEEP = new Float64Array([Number.NaN, Number.NaN, Number.NaN, 1]);

/** The share of counts kept from `lastAt` (NaN: none yet) to `now`. */
function keepAt(lastAt: number, now: number, halfLifeMs: number): number {
  if (lastAt !== lastAt || now <= lastAt) return 1;
  if (LAST_KEEP[0] === lastAt && LAST_KEEP[1] === now && LAST_KEEP[2] === halfLifeMs) return LAST_KEEP[3] as number;
  const keep = 2 ** (-(now - lastAt) / halfLifeMs);
  LAST_KEEP[0] = lastAt;
  LAST_KEEP[1] = now;
  LAST_KEEP[2] = halfLifeMs;
  LAST_KEEP[3] = keep;
  return keep;
}
