/**
 * Freshness: how old each endpoint's steering data is (classify), and what that does to its
 * weight (override, after the controller): stale data holds the weight; expired data (or none,
 * under a policy that needs data) decays it toward the fair share with a half-life. Seeded weights
 * (restored after a restart) count as data from the first tick after seeding, so they are held,
 * not decayed, while the reports resume.
 */
import type { EndpointState } from '../state.js';
import { decayToward } from '../stages.js';
import type { SafetySettings } from '../types.js';
import { F_EXPIRED, F_FRESH, F_NONE, F_STALE, mark, ruleBit, type Frame } from './frame.js';

const R_STALE = ruleBit('stale-hold');
const R_DECAY = ruleBit('decay');
const R_ERROR = ruleBit('error-penalty');

/**
 * What an endpoint's errors allow when its steering data is not fresh: the controllers fold errors
 * in only for endpoints they steer, and a backend failing fast often stops sending what they steer
 * on (a 5xx carries no ORCA cpu; its agent may be the thing that died) while its load reports go
 * on counting its failures. Holding or decaying it toward its fair share would then raise the
 * weight of a failing endpoint (a review measured 2.5 % → 30 % of the traffic).
 */
export interface ErrorBound {
  /** The mean error rate of the serving endpoints whose rate is known: errors above it count. */
  readonly mean: number;
  /** The cluster's errorPenalty. */
  readonly penalty: number;
}

/**
 * How old a reading the capacity rule (tick/error-shift.ts: utilization and request rate) and the
 * stall rule (tick/stall.ts: the latest load report) still read: the cluster's staleAfterMs, the
 * age up to which its steering data is fresh, so they trust a reading exactly as long as the
 * controller they temper does. An operator sets it from the report cadence (15 s for reports
 * every 10 s): a fixed window shorter than the cadence found every reading stale half the time
 * (capacity unknown, errors moving load onto busy peers, stalls unjudged), a longer one kept
 * readings the operator calls old. Not below one tick (tickMs), though: a reading is first read at
 * the tick after it arrives, up to a tick later, and a shorter window would let a report go unread
 * by every tick for the phase alone. No ceiling: any cap would be the fixed window's fault again
 * for a slower cadence, and the controller holds weights on data as old.
 */
export function readingWindowMs(s: SafetySettings): number {
  return Math.max(s.staleAfterMs, s.tickMs);
}

/** One endpoint's freshness (called from the join pass, tick/join.ts: one pass over the states, not two). */
export function classify(f: Frame, e: EndpointState, i: number, s: SafetySettings): void {
  if (e.seeded && e.steerAt === undefined && e.seededAt === undefined) e.seededAt = f.now;
  const ref = e.steerAt ?? (e.seeded ? e.seededAt : undefined);
  if (ref === undefined) {
    f.age[i] = Number.NaN;
    f.freshness[i] = F_NONE;
    return;
  }
  const age = f.now > ref ? f.now - ref : 0;
  f.age[i] = age;
  f.freshness[i] = age <= s.staleAfterMs ? F_FRESH : age <= s.decayAfterMs ? F_STALE : F_EXPIRED;
}

/**
 * The error bound of this tick, or undefined when no serving endpoint without fresh steering data
 * fails at all (the usual case: the join pass counted them, no pass here).
 */
export function errorBoundOf(f: Frame, penalty: number): ErrorBound | undefined {
  // Whatever the penalty: at 0 the bound is the fair share, so a failing endpoint still never rises.
  if (f.failingUnsteered === 0) return undefined;
  let sum = 0;
  let known = 0;
  for (let i = 0; i < f.n; i++) {
    const r = f.errorRate[i] as number;
    if (f.serving[i] && !Number.isNaN(r)) {
      sum += r;
      known++;
    }
  }
  return { mean: sum / known, penalty };
}

/**
 * The weight endpoint i takes this tick given its freshness (w: the controller's target). Without
 * fresh steering data and failing more than the cluster's mean, it never rises, and falls toward
 * fair × (1 − excess)^(4 × penalty) (the EWMA's success factor; the step limit paces the fall).
 */
export function applyFreshness(f: Frame, i: number, w: number, s: SafetySettings, decayWhenNone: boolean, errors: ErrorBound | undefined): number {
  const unbounded = byFreshness(f, i, w, s, decayWhenNone);
  if (errors === undefined || f.freshness[i] === F_FRESH) return unbounded;
  const excess = (f.errorRate[i] as number) - errors.mean;
  if (!(excess > ERROR_EXCESS_TOLERANCE)) return unbounded;
  mark(f, i, R_ERROR);
  const bound = (f.fair[i] as number) * Math.max(1e-3, 1 - excess) ** (4 * errors.penalty);
  return Math.min(unbounded, f.prevW[i] as number, bound);
}

/**
 * Errors up to this far above the cluster's mean rate (a fraction of requests) are taken for
 * noise: below it an endpoint without fresh steering data holds and decays as any other.
 */
const ERROR_EXCESS_TOLERANCE = 0.01;

function byFreshness(f: Frame, i: number, w: number, s: SafetySettings, decayWhenNone: boolean): number {
  const fr = f.freshness[i];
  if (fr === F_STALE) {
    mark(f, i, R_STALE);
    return f.prevW[i] as number;
  }
  if (fr === F_EXPIRED || (fr === F_NONE && decayWhenNone)) {
    const before = f.prevW[i] as number;
    const fair = f.fair[i] as number;
    if (Math.abs(before / fair - 1) > 1e-9) mark(f, i, R_DECAY);
    return decayToward(before, fair, f.dt, s.decayHalfLifeMs);
  }
  return w;
}
