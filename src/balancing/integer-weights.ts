/**
 * Real-valued weights → the integers Envoy accepts in EDS `load_balancing_weight`.
 *
 * Envoy requires every endpoint weight to be >= 1 and the weights of one locality to sum
 * to at most 2^32 − 1. Within those limits we keep the ratios:
 *
 * 1. One scale s for all groups, so that the largest weight maps to `resolution`
 *    (default 1000, i.e. ratios kept to about 0.1% of the largest weight), lowered if a
 *    group's sum would otherwise exceed `maxSum`. The scale is shared because Envoy
 *    compares host weights across localities whenever locality weighting is off; scaling
 *    each locality separately would silently change the cross-locality ratios.
 * 2. Targets t = max(w · s, 1): weights too small to be represented are raised to the
 *    floor Envoy demands (0 becomes 1 too, so nothing is starved of the traffic it needs
 *    to keep reporting).
 * 3. Largest-remainder rounding per group: floor every target, then give the units that
 *    round(Σt) still needs to the largest fractional parts (ties to the earlier index).
 *    Every result is within 1 of its target and each group's sum is Σt rounded, so the
 *    shares are as close to the targets' shares as integers allow.
 */
export interface IntegerWeightOptions {
  /** Integer the largest weight maps to when no sum limit binds. Default 1000. */
  readonly resolution?: number;
  /** Largest allowed sum per group. Default 2^32 − 1 (Envoy's per-locality limit). */
  readonly maxSum?: number;
}

export const MAX_LOCALITY_WEIGHT_SUM = 2 ** 32 - 1;
export const DEFAULT_WEIGHT_RESOLUTION = 1000;

/** Converts one group (one locality) of weights. */
export function toIntegerWeights(weights: readonly number[], options: IntegerWeightOptions = {}): number[] {
  return toIntegerWeightGroups([weights], options)[0] as number[];
}

/** Converts several groups (the localities of one priority) with one shared scale. */
export function toIntegerWeightGroups(
  groups: readonly (readonly number[])[],
  options: IntegerWeightOptions = {},
): number[][] {
  return integerWeightTargets(groups, options).map(apportion);
}

/**
 * The real-valued targets the integers approximate, max(w · s, 1) per weight (exposed so
 * callers can explain a published weight: each integer is within 1 of its target).
 */
export function integerWeightTargets(
  groups: readonly (readonly number[])[],
  options: IntegerWeightOptions = {},
): number[][] {
  const { resolution = DEFAULT_WEIGHT_RESOLUTION, maxSum = MAX_LOCALITY_WEIGHT_SUM } = options;
  if (!Number.isInteger(resolution) || resolution < 1) throw new RangeError(`resolution must be an integer >= 1`);
  if (!Number.isInteger(maxSum) || maxSum < 1 || maxSum > MAX_LOCALITY_WEIGHT_SUM) {
    throw new RangeError(`maxSum must be an integer in [1, 2^32 - 1]`);
  }
  let max = 0;
  for (const group of groups) {
    for (const w of group) {
      if (!Number.isFinite(w) || w < 0) throw new RangeError(`weights must be finite and >= 0, got ${w}`);
      if (w > max) max = w;
    }
  }
  // Work with w / max in [0, 1]: dividing by max neither overflows for huge weights nor,
  // unlike resolution / max, for subnormal ones.
  const relative = groups.map((group) => group.map((w) => (max > 0 ? w / max : 0)));
  let top = resolution;
  relative.forEach((group) => {
    if (group.length > maxSum) throw new RangeError(`${group.length} weights cannot each be >= 1 within a sum of ${maxSum}`);
    const sum = group.reduce((a, b) => a + b, 0);
    // Σ max(r·top, 1) <= top·Σr + n, so this keeps the group's targets, and hence its rounded sum, within maxSum.
    if (sum > 0) top = Math.min(top, (maxSum - group.length) / sum);
  });
  return relative.map((group) => group.map((r) => Math.max(r * top, 1)));
}

function apportion(targets: readonly number[]): number[] {
  const result = targets.map(Math.floor);
  let total = 0;
  let floors = 0;
  for (let i = 0; i < targets.length; i++) {
    total += targets[i] as number;
    floors += result[i] as number;
  }
  const missing = Math.round(total) - floors;
  if (missing <= 0) return result;
  const byRemainder = targets
    .map((t, i) => ({ i, remainder: t - Math.floor(t) }))
    .sort((a, b) => b.remainder - a.remainder || a.i - b.i);
  for (let k = 0; k < missing; k++) {
    const { i } = byRemainder[k] as { i: number };
    result[i] = (result[i] as number) + 1;
  }
  return result;
}
