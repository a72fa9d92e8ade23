/**
 * Stages 4–6 per endpoint: the freshness override, the step limit (within ×/÷ maxStepRatio per
 * tick of what was published; a controller acting once per k-tick report may move k ticks' worth)
 * and floor/ceiling ([minWeightRatio, maxWeightRatio] × fair share). The
 * floor wins over the step limit: every endpoint keeps enough traffic to keep reporting.
 */
import { clampToBounds, stepLimit } from '../stages.js';
import type { SafetySettings } from '../types.js';
import { applyFreshness } from './freshness.js';
import { at, mark, ruleBit, type Frame } from './frame.js';

const R_STEP = ruleBit('step-limit');
const R_FLOOR = ruleBit('floor');
const R_CEILING = ruleBit('ceiling');

export interface ClampOptions {
  /** Adaptive policy and not failing static: freshness applies. */
  readonly adaptive: boolean;
  /** Decay endpoints that never had data (every policy but pure EWMA, which explores them). */
  readonly decayWhenNone: boolean;
}

export function clampAll(f: Frame, s: SafetySettings, o: ClampOptions): void {
  for (let i = 0; i < f.n; i++) {
    if (!f.serving[i]) continue;
    let w = at(f.raw, i);
    if (o.adaptive) w = applyFreshness(f, i, w, s, o.decayWhenNone);
    if (!f.failStatic) {
      const limited = stepLimit(w, at(f.prevPub, i), s.maxStepRatio ** at(f.stepTicks, i));
      if (limited.fired) mark(f, i, R_STEP);
      w = limited.value;
    }
    const bounded = clampToBounds(w, at(f.fair, i), s.minWeightRatio, s.maxWeightRatio);
    if (bounded.rule === 'floor') mark(f, i, R_FLOOR);
    else if (bounded.rule === 'ceiling') mark(f, i, R_CEILING);
    f.cand[i] = bounded.value;
  }
}
