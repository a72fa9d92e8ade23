/**
 * Pure figures for the headline demo: imbalance (max/avg, p95/avg), latency percentiles and
 * convergence time, computed from the timeline the scenario records.
 */

/** One observation of the fleet, every `sampleMs`. */
export interface Tick {
  /** Seconds since the load started. */
  readonly t: number;
  /** Per backend: busy time of its workers in the last 1 s (the backends' own measure, ground truth). */
  readonly util: readonly number[];
  /** Per backend: the weight Envoy uses now (admin /clusters); NaN when unknown. */
  readonly envoyWeight: readonly number[];
  /** Per backend: requests served since the previous tick, per second. */
  readonly rps: readonly number[];
}

export interface LatencyRecord {
  /** Seconds since the load started (when the response arrived). */
  readonly t: number;
  readonly backend: number;
  readonly ms: number;
  readonly ok: boolean;
}

export const mean = (xs: readonly number[]): number => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

/** Quantile with linear interpolation between closest ranks (type 7, as numpy's default). */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = s[lo] as number;
  const b = s[hi] as number;
  return a + (b - a) * (pos - lo);
}

/** max/avg of one utilization vector (1 = perfectly even). */
export const maxOverAvg = (u: readonly number[]): number => Math.max(...u) / mean(u);
/** p95/avg of one utilization vector; p95 interpolated across the backends (with 6, between the 5th and 6th). */
export const p95OverAvg = (u: readonly number[]): number => quantile(u, 0.95) / mean(u);

export interface Imbalance {
  /** Mean over the window of the per-tick max/avg (includes second-to-second noise). */
  readonly maxAvgTick: number;
  readonly p95AvgTick: number;
  /** Per backend mean utilization over the window, then max/avg (Robinhood-style, time-averaged). */
  readonly maxAvgMean: number;
  readonly p95AvgMean: number;
  /** Mean utilization per backend over the window. */
  readonly perBackend: readonly number[];
}

export function imbalance(ticks: readonly Tick[], from: number, to: number): Imbalance {
  const w = ticks.filter((k) => k.t >= from && k.t < to && mean(k.util) > 0);
  const n = w[0]?.util.length ?? 0;
  const perBackend = Array.from({ length: n }, (_, i) => mean(w.map((k) => k.util[i] as number)));
  return {
    maxAvgTick: mean(w.map((k) => maxOverAvg(k.util))),
    p95AvgTick: mean(w.map((k) => p95OverAvg(k.util))),
    maxAvgMean: maxOverAvg(perBackend),
    p95AvgMean: p95OverAvg(perBackend),
    perBackend,
  };
}

export interface LatencySummary {
  readonly count: number;
  readonly errors: number;
  readonly p50: number;
  readonly p99: number;
  /** Completed requests per second over the window. */
  readonly achievedRps: number;
}

export function latencySummary(records: readonly LatencyRecord[], from: number, to: number): LatencySummary {
  const w = records.filter((r) => r.t >= from && r.t < to);
  const ok = w.filter((r) => r.ok).map((r) => r.ms);
  return { count: w.length, errors: w.length - ok.length, p50: quantile(ok, 0.5), p99: quantile(ok, 0.99), achievedRps: w.length / (to - from) };
}

/**
 * Seconds from `from` until max/avg stays ≤ `threshold` for `holdS` consecutive seconds (the
 * time of the first tick of that run, minus `from`); undefined if it never does before `to`.
 * Per-tick max/avg is smoothed over `smoothS` seconds (a moving mean) to tame counting noise.
 */
export function convergence(
  ticks: readonly Tick[],
  from: number,
  to: number,
  threshold: number,
  holdS = 3,
  smoothS = 1,
): number | undefined {
  const w = ticks.filter((k) => k.t >= from && k.t <= to && mean(k.util) > 0);
  const smoothed = w.map((k) => {
    const near = w.filter((o) => o.t <= k.t && o.t > k.t - smoothS);
    return { t: k.t, v: mean(near.map((o) => maxOverAvg(o.util))) };
  });
  for (let i = 0; i < smoothed.length; i++) {
    const start = (smoothed[i] as { t: number }).t;
    if (start + holdS > to) break;
    let ok = true;
    for (let j = i; j < smoothed.length && (smoothed[j] as { t: number }).t < start + holdS; j++) {
      if ((smoothed[j] as { v: number }).v > threshold) {
        ok = false;
        break;
      }
    }
    if (ok) return start - from;
  }
  return undefined;
}

/** Number of distinct Envoy weight vectors seen (1 = weights never changed). */
export function weightChanges(ticks: readonly Tick[]): number {
  let last = '';
  let changes = 0;
  for (const k of ticks) {
    if (k.envoyWeight.some((w) => !Number.isFinite(w))) continue;
    const key = k.envoyWeight.join(',');
    if (key !== last) {
      changes++;
      last = key;
    }
  }
  return changes;
}
