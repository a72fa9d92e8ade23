/**
 * Pure figures of one row of a scenario, from what the rig recorded: every request's outcome,
 * the backends' measured busy time at the edges of the steady window, and the published weights.
 */
import type { Outcome } from '../../examples/backends/poisson-load.js';

/** One request, as the load generator saw it; times in seconds since the load started. */
export interface Sample {
  readonly sentS: number;
  readonly ms: number;
  readonly outcome: Outcome;
  /** Index of the backend that answered (its `x-backend`), if any. */
  readonly backend?: number;
}

export interface RowFigures {
  /** max/avg of the backends' measured utilization over the steady window. */
  readonly maxAvg: number;
  readonly meanUtil: number;
  readonly p50: number;
  readonly p99: number;
  /** p99 counting failures at their time to failure (timeouts at the timeout). */
  readonly p99All: number;
  readonly errorRate: number;
  readonly requests: number;
  /** Seconds from the event until the allocation stays within 10% of the ideal; undefined: never; null: not measured. */
  readonly convergenceS: number | undefined | null;
  /** Largest swing of the event's target past its ideal share, relative to it; null: not measured. */
  readonly overshoot: number | null;
  /** Changes of the published weight vector per minute; null: not an adaptive row. */
  readonly weightChangesPerMin: number | null;
  /** p99 event-loop delay of the process running generator, backends and fulcrum, ms (a starved machine shows here). */
  readonly loopLagP99Ms: number;
}

export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}

export const mean = (xs: readonly number[]): number => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

/** Per-backend utilization from busy/capacity worker-ms readings at the window's start and end. */
export function windowUtilization(start: readonly { busyMs: number; capacityMs: number }[], end: readonly { busyMs: number; capacityMs: number }[]): number[] {
  return end.map((e, i) => {
    const s = start[i] ?? { busyMs: 0, capacityMs: 0 };
    const cap = e.capacityMs - s.capacityMs;
    return cap > 0 ? (e.busyMs - s.busyMs) / cap : 0;
  });
}

export function latencyFigures(samples: readonly Sample[], fromS: number): Pick<RowFigures, 'p50' | 'p99' | 'p99All' | 'errorRate' | 'requests'> {
  const measured = samples.filter((s) => s.sentS >= fromS);
  const ok = measured.filter((s) => s.outcome === 'ok').map((s) => s.ms);
  return {
    p50: quantile(ok, 0.5),
    p99: quantile(ok, 0.99),
    p99All: quantile(
      measured.map((s) => s.ms),
      0.99,
    ),
    errorRate: measured.length === 0 ? Number.NaN : (measured.length - ok.length) / measured.length,
    requests: measured.length,
  };
}

/** Share of the requests each backend answered, per window of `windowS` ending at each step. */
export function shareTimeline(samples: readonly Sample[], backends: number, fromS: number, toS: number, windowS: number, stepS: number): { t: number; shares: number[] }[] {
  const out: { t: number; shares: number[] }[] = [];
  const sorted = samples.filter((s) => s.backend !== undefined).sort((a, b) => a.sentS - b.sentS);
  for (let t = fromS + windowS; t <= toS + 1e-9; t += stepS) {
    const counts = new Array<number>(backends).fill(0);
    let n = 0;
    for (const s of sorted) {
      if (s.sentS < t - windowS) continue;
      if (s.sentS >= t) break;
      counts[s.backend as number] = (counts[s.backend as number] ?? 0) + 1;
      n++;
    }
    if (n > 0) out.push({ t, shares: counts.map((c) => c / n) });
  }
  return out;
}

/** Fraction of the traffic sent elsewhere than the ideal allocation (total variation distance). */
export function misallocation(shares: readonly number[], ideal: readonly number[]): number {
  return shares.reduce((acc, s, i) => acc + Math.abs(s - (ideal[i] ?? 0)), 0) / 2;
}

/** Seconds after `eventS` from which every window stays within `tolerance` of the ideal; undefined if never. */
export function convergence(timeline: readonly { t: number; shares: number[] }[], ideal: readonly number[], eventS: number, tolerance = 0.1): number | undefined {
  const after = timeline.filter((p) => p.t > eventS);
  let from: number | undefined;
  for (const p of after) {
    if (misallocation(p.shares, ideal) <= tolerance) from ??= p.t;
    else from = undefined;
  }
  return from === undefined ? undefined : Math.max(0, from - eventS);
}

/**
 * How far the target's share swings past its new ideal once it has first reached it, relative to
 * the ideal (0.56 = 56% past). 0 if it never crosses.
 */
export function overshoot(timeline: readonly { t: number; shares: number[] }[], target: number, ideal: number, eventS: number): number {
  const after = timeline.filter((p) => p.t > eventS).map((p) => p.shares[target] ?? 0);
  const first = after[0];
  if (first === undefined || ideal <= 0) return 0;
  const sign = Math.sign(first - ideal);
  const crossed = after.findIndex((s) => Math.sign(s - ideal) !== sign);
  if (crossed < 0) return 0;
  return Math.max(0, ...after.slice(crossed).map((s) => (sign * (ideal - s)) / ideal));
}

/** Changes of a weight vector between consecutive readings, per minute of readings. */
export function changesPerMinute(vectors: readonly { t: number; weights: string }[]): number {
  if (vectors.length < 2) return 0;
  let changes = 0;
  for (let i = 1; i < vectors.length; i++) if ((vectors[i] as { weights: string }).weights !== (vectors[i - 1] as { weights: string }).weights) changes++;
  const spanS = (vectors[vectors.length - 1] as { t: number }).t - (vectors[0] as { t: number }).t;
  return spanS > 0 ? (changes * 60) / spanS : 0;
}
