/**
 * Stages 4–6 per endpoint: the freshness override, the step limit (within ×/÷ maxStepRatio per
 * tick of what was published; a controller acting once per k-tick report may move k ticks' worth)
 * and floor/ceiling ([minWeightRatio, maxWeightRatio] × fair share). The
 * floor wins over the step limit: every endpoint keeps enough traffic to keep reporting.
 */
import type { SafetySettings } from '../types.js';
import { applyFreshness, errorBoundOf } from './freshness.js';
import { mark, ruleBit, type Frame } from './frame.js';

const R_STEP = ruleBit('step-limit');
const R_FLOOR = ruleBit('floor');
const R_CEILING = ruleBit('ceiling');

/** What the clamps read of their cluster (ClusterState, read in place: no object of options per cluster per tick). */
export interface ClampOptions {
  /** The policy's parts: an adaptive one (static below 1), not failing static, has freshness apply; every policy but pure EWMA (which explores them) decays endpoints that never had data. */
  readonly parts: { readonly static: number; readonly ewma: number };
  /** The cluster's errorPenalty: errors bound endpoints without fresh steering data too (freshness.ts). */
  readonly errorPenalty: number;
}

export function clampAll(f: Frame, s: SafetySettings, o: ClampOptions): void {
  const adaptive = o.parts.static < 1 && !f.failStatic;
  const decayWhenNone = o.parts.ewma !== 1;
  const errors = adaptive ? errorBoundOf(f, o.errorPenalty) : undefined;
  for (let i = 0; i < f.n; i++) {
    if (!f.serving[i]) continue;
    let w = f.raw[i] as number;
    if (adaptive) w = applyFreshness(f, i, w, s, decayWhenNone, errors);
    // stepLimit and clampToBounds (stages.ts) written out: no result object per endpoint per tick.
    if (!f.failStatic) {
      // Almost always one tick's worth: no pow per endpoint then (x ** 1 is x exactly).
      const ticks = f.stepTicks[i] as number;
      const ratio = ticks === 1 ? s.maxStepRatio : s.maxStepRatio ** ticks;
      const anchor = f.prevPub[i] as number;
      const hi = anchor * ratio;
      const lo = anchor / ratio;
      if (w > hi || w < lo) {
        w = w > hi ? hi : lo;
        mark(f, i, R_STEP);
      }
    }
    const fair = f.fair[i] as number;
    const floor = fair * s.minWeightRatio;
    const ceiling = fair * s.maxWeightRatio;
    if (w < floor) {
      w = floor;
      mark(f, i, R_FLOOR);
    } else if (w > ceiling) {
      w = ceiling;
      mark(f, i, R_CEILING);
    }
    f.cand[i] = w;
  }
}
