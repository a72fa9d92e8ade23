/**
 * Per-endpoint request and error counts, smoothed over time, from samples that carry rates
 * (rps and errors per second). Each sample is turned into counts over the time it covers (since
 * the previous sample, capped), and the counts decay with a half-life, so the error rate is
 * errors / requests over roughly the last `halfLifeMs` and a quiet endpoint's old errors fade.
 *
 * The latest sample's own rate is kept too: "every request failed in the last report" must act
 * within one signal interval, while the smoothed rate judges "worse than its peers".
 */
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
export function noReadingAt(v: ReadingVectors, i: number): void {
  v.rate[i] = Number.NaN;
  v.requests[i] = 0;
  v.lastRate[i] = Number.NaN;
  v.lastRequests[i] = 0;
}

/** A sample covers at most this long: after a gap, the first sample speaks for one interval only. */
const MAX_COVER_MS = 5_000;
const FIRST_COVER_MS = 1_000;

export class ErrorWindow {
  private requests = 0;
  private errors = 0;
  private lastAt: number | undefined;
  private lastRate = Number.NaN;
  private lastRequests = 0;

  constructor(private readonly halfLifeMs: number) {}

  /** Folds one sample's rates (per second) in. Samples without rps carry no error information. */
  observe(at: number, rps: number | undefined, errorsPerS: number | undefined): void {
    if (rps === undefined) return;
    const errs = Math.min(errorsPerS ?? 0, rps > 0 ? rps : (errorsPerS ?? 0));
    const cover = this.lastAt === undefined ? FIRST_COVER_MS : Math.min(MAX_COVER_MS, Math.max(0, at - this.lastAt));
    this.decayTo(at);
    const reqs = Math.max(rps, errs) * (cover / 1000);
    const fails = errs * (cover / 1000);
    this.requests += reqs;
    this.errors += fails;
    this.lastRequests = reqs;
    this.lastRate = reqs > 0 ? fails / reqs : Number.NaN;
  }

  /**
   * Writes the reading at `now` into position i of `v`; whether it counts any request (smoothed,
   * after decay, or in the latest sample): false for a reading of nothing.
   */
  readInto(now: number, v: ReadingVectors, i: number): boolean {
    if (this.requests === 0 && this.lastRequests === 0) {
      noReadingAt(v, i);
      return false;
    }
    const keep = this.keep(now);
    const requests = this.requests * keep;
    v.rate[i] = requests > 0 ? Math.min(1, (this.errors * keep) / requests) : Number.NaN;
    v.requests[i] = requests;
    v.lastRate[i] = this.lastRate;
    v.lastRequests[i] = this.lastRequests;
    return requests > 0 || this.lastRequests > 0;
  }

  /** Forgets everything (an endpoint back from an ejection is judged on fresh traffic only). */
  reset(): void {
    this.requests = this.errors = this.lastRequests = 0;
    this.lastRate = Number.NaN;
  }

  private keep(now: number): number {
    if (this.lastAt === undefined || now <= this.lastAt) return 1;
    return 2 ** (-(now - this.lastAt) / this.halfLifeMs);
  }

  private decayTo(at: number): void {
    const keep = this.keep(at);
    this.requests *= keep;
    this.errors *= keep;
    if (this.lastAt === undefined || at > this.lastAt) this.lastAt = at;
  }
}
