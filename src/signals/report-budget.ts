/**
 * How many report samples one peer may send: a token bucket per peer (its IP address, or IPv6
 * prefix: whatever `peerOf` makes of an address), refilled at `samplesPerSecond` up to
 * `burstSamples`. Shared by `POST /v1/reports` and gRPC ReportService, so a client cannot double
 * its share by using both. Pure: the caller's clock, no timers.
 *
 * Why: every sample is parsed and validated on the one event loop. One client sending full batches
 * of 10,000 samples on 64 connections held each xDS push 0.5 s at the median and 2.0-2.8 s at p99,
 * a new proxy's first answer up to 4.2 s, another agent's one-sample report up to 1.1 s, and took
 * fulcrum's RSS to 450 MiB (bench/report-flood.ts; 9-40 ms, 10 ms, 11 ms and ~155 MiB with this
 * budget). Per peer, never in total: a well-behaved reporter pays nothing for another's flood.
 */

export interface ReportBudgetOptions {
  readonly samplesPerSecond: number;
  /** The bucket's size: at least one full batch, or a full batch would never pass. */
  readonly burstSamples: number;
  /** The key a peer's address is counted under (peer-group.ts, bound by the composition root). */
  readonly peerOf: (address: string) => string;
  /** ms; default performance.now. */
  readonly now?: () => number;
}

/** Admitted (holding `reserved` samples until settled), or refused: try again in `retryAfterMs`. */
export type Admission = { readonly admitted: true; readonly reserved: number } | { readonly admitted: false; readonly retryAfterMs: number };

/**
 * What `POST /v1/reports` asks of the sender's budget: `reserve` before the body is read (from its
 * length, httpReservation), `settle` once its samples are counted.
 */
export interface ReportsGate {
  reserve(address: string, bodyBytes: number | undefined): Admission;
  settle(address: string, reserved: number, samples: number): void;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Buckets full again are dropped at most this often: a full bucket is the same as none. */
const SWEEP_EVERY_MS = 1_000;

export class ReportBudget {
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;
  private sweptAt = 0;

  constructor(private readonly options: ReportBudgetOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  /** Peers with a bucket that is not full (tests, metrics). */
  get peers(): number {
    return this.buckets.size;
  }

  /**
   * Takes `samples` from the address's peer if it holds them (a request of more than the burst
   * needs a full bucket). A peer in debt (settled for more than it reserved) waits it out.
   */
  take(address: string, samples: number): Admission {
    const now = this.now();
    this.sweep(now);
    const peer = this.options.peerOf(address);
    const bucket = this.refilled(peer, now);
    const need = Math.min(samples, this.options.burstSamples);
    if (bucket.tokens < need) return { admitted: false, retryAfterMs: Math.ceil(((need - bucket.tokens) * 1000) / this.options.samplesPerSecond) };
    bucket.tokens -= samples;
    return { admitted: true, reserved: samples };
  }

  /** Corrects a reservation made before the samples were counted: gives back, or charges, the difference. */
  settle(address: string, reserved: number, samples: number): void {
    if (reserved === samples) return;
    const peer = this.options.peerOf(address);
    const bucket = this.refilled(peer, this.now());
    bucket.tokens = Math.min(this.options.burstSamples, bucket.tokens + reserved - samples);
  }

  private refilled(peer: string, now: number): Bucket {
    const { burstSamples, samplesPerSecond } = this.options;
    let bucket = this.buckets.get(peer);
    if (!bucket) {
      bucket = { tokens: burstSamples, at: now };
      this.buckets.set(peer, bucket);
      return bucket;
    }
    bucket.tokens = Math.min(burstSamples, bucket.tokens + ((now - bucket.at) * samplesPerSecond) / 1000);
    bucket.at = now;
    return bucket;
  }

  /** Drops the buckets that have refilled: the map holds only peers that sent lately. */
  private sweep(now: number): void {
    if (now - this.sweptAt < SWEEP_EVERY_MS) return;
    this.sweptAt = now;
    const { burstSamples, samplesPerSecond } = this.options;
    for (const [peer, b] of this.buckets) {
      if (b.tokens + ((now - b.at) * samplesPerSecond) / 1000 >= burstSamples) this.buckets.delete(peer);
    }
  }
}

/**
 * The fewest bytes a sample takes in a JSON body (`{"cluster":"a","endpoint":"b:1","cpu":0},`
 * is 42): before an HTTP body is read, its length tells at most how many samples it can hold.
 */
export const MIN_JSON_SAMPLE_BYTES = 40;

/** Samples to reserve for an HTTP body of `bytes` (unknown: a full batch), at most `maxBatch`. */
export function httpReservation(bytes: number | undefined, maxBatch: number): number {
  if (bytes === undefined || !Number.isFinite(bytes)) return maxBatch;
  return Math.max(1, Math.min(maxBatch, Math.ceil(bytes / MIN_JSON_SAMPLE_BYTES)));
}
