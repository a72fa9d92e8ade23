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

/** The weight endpoint i takes this tick given its freshness (w: the controller's target). */
export function applyFreshness(f: Frame, i: number, w: number, s: SafetySettings, decayWhenNone: boolean): number {
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
