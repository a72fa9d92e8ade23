/**
 * Stage 3b, EWMA latency weights: weight ∝ static weight / max(estimate − bonus, 1 ms) (ewma.ts),
 * times successRate^(4 × errorPenalty), so a backend that answers errors fast does not look like
 * the fastest one. An endpoint with no latency sample yet is weighted optimistically, as the best
 * measured endpoint, so it keeps being explored without the bonus alone (1/1 ms) sending it 20×
 * the traffic; and the bonus never makes any endpoint better than the best measured latency (its
 * estimate, no bonus): one with fewer samples than its peers (new, or back from an ejection) had
 * its bonus near its latency, so a weight at the 1 ms floor, 6–20× theirs (0.25 → 0.84 of the
 * traffic at equal latency). The steered endpoints are renormalized to their previous sum.
 */
import type { ClusterState, EndpointState } from '../state.js';
import { classifyFreshness } from '../stages.js';
import { filled, mark, ruleBit, takeEwmaFrame, type EwmaFrame, type Frame } from './frame.js';

const R_EXPLORATION = ruleBit('exploration');
const R_ERROR = ruleBit('error-penalty');

/** Fills `x` (zeros) over the serving endpoints (prevW for the ones it does not steer); returns it. */
export function runEwma(c: ClusterState, f: Frame, x: number[]): number[] {
  const ex = takeEwmaFrame(f);
  const { steered, maxMeasured } = pickSteered(c, f, x, ex);
  if (steered.length === 0) return x;
  let prevSum = 0;
  let newSum = 0;
  const targets = filled(steered.length);
  steered.forEach((i, j) => {
    const e = c.order[i] as EndpointState;
    let r = ex.weight[i] as number;
    if (e.ewma.samples === 0) {
      r = maxMeasured > 0 ? Math.min(r, maxMeasured) : 1;
      mark(f, i, R_EXPLORATION);
    } else if (maxMeasured > 0 && r > maxMeasured) r = maxMeasured;
    const t = e.staticWeight * r * successFactor(c, f, i);
    targets[j] = t;
    newSum += t;
    prevSum += f.prevW[i] as number;
  });
  const m = newSum > 0 ? prevSum / newSum : 1;
  steered.forEach((i, j) => (x[i] = (targets[j] as number) * m));
  return x;
}

function pickSteered(c: ClusterState, f: Frame, x: number[], ex: EwmaFrame): { steered: number[]; maxMeasured: number } {
  const steered: number[] = [];
  let maxMeasured = 0;
  for (let i = 0; i < f.n; i++) {
    if (!f.serving[i]) continue;
    x[i] = f.prevW[i] as number;
    const ewma = (c.order[i] as EndpointState).ewma;
    const weight = ewma.weight();
    ex.estimate[i] = ewma.estimate ?? Number.NaN;
    ex.bonus[i] = ewma.bonus();
    ex.samples[i] = ewma.samples;
    ex.weight[i] = weight;
    if (ewma.samples === 0) {
      steered.push(i);
      continue;
    }
    const latencyAge = Math.max(0, f.now - (ewma.lastSampleAt ?? f.now));
    if (classifyFreshness(latencyAge, c.safety) !== 'fresh') continue;
    steered.push(i);
    const measured = ewma.measuredWeight();
    if (measured > maxMeasured) maxMeasured = measured;
  }
  return { steered, maxMeasured };
}

/**
 * successRate^(4 × penalty): 1 without errors, 0.66 at 10%, 0.06 at 50% with the default penalty.
 * Strong on purpose: fast errors also lower an endpoint's mean latency, which EWMA rewards.
 */
function successFactor(c: ClusterState, f: Frame, i: number): number {
  const r = f.errorRate[i] as number;
  if (Number.isNaN(r) || r <= 0 || c.errorPenalty <= 0) return 1;
  const factor = Math.max(1e-3, 1 - r) ** (4 * c.errorPenalty);
  if (factor < 0.98) mark(f, i, R_ERROR);
  return factor;
}
