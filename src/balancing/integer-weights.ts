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
  const { flat, groupOf } = flatten(groups);
  return unflatten(groups, toIntegerWeightsByGroup(flat, groupOf, groups.length, options));
}

/**
 * The same conversion over one flat vector: `groupOf[i]` is weight i's group (0 ≤ g < groupCount),
 * and a group's members keep their order. What the weight engine calls every publish: no nested
 * arrays and no object per weight, so 100,000 weights convert in a few milliseconds.
 */
export function toIntegerWeightsByGroup(
  weights: ArrayLike<number>,
  groupOf: ArrayLike<number>,
  groupCount: number,
  options: IntegerWeightOptions = {},
): number[] {
  return apportion(flatTargets(weights, groupOf, groupCount, options), groupOf, groupCount);
}

/**
 * The real-valued targets the integers approximate, max(w · s, 1) per weight (exposed so
 * callers can explain a published weight: each integer is within 1 of its target).
 */
export function integerWeightTargets(
  groups: readonly (readonly number[])[],
  options: IntegerWeightOptions = {},
): number[][] {
  const { flat, groupOf } = flatten(groups);
  return unflatten(groups, flatTargets(flat, groupOf, groups.length, options));
}

function flatten(groups: readonly (readonly number[])[]): { flat: number[]; groupOf: number[] } {
  const flat: number[] = [];
  const groupOf: number[] = [];
  groups.forEach((group, g) => {
    for (const w of group) {
      flat.push(w);
      groupOf.push(g);
    }
  });
  return { flat, groupOf };
}

function unflatten(groups: readonly (readonly number[])[], flat: readonly number[]): number[][] {
  let k = 0;
  return groups.map((group) => group.map(() => flat[k++] as number));
}

function flatTargets(weights: ArrayLike<number>, groupOf: ArrayLike<number>, groupCount: number, options: IntegerWeightOptions): number[] {
  const { resolution = DEFAULT_WEIGHT_RESOLUTION, maxSum = MAX_LOCALITY_WEIGHT_SUM } = options;
  if (!Number.isInteger(resolution) || resolution < 1) throw new RangeError(`resolution must be an integer >= 1`);
  if (!Number.isInteger(maxSum) || maxSum < 1 || maxSum > MAX_LOCALITY_WEIGHT_SUM) {
    throw new RangeError(`maxSum must be an integer in [1, 2^32 - 1]`);
  }
  const n = weights.length;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const w = weights[i] as number;
    if (!Number.isFinite(w) || w < 0) throw new RangeError(`weights must be finite and >= 0, got ${w}`);
    if (w > max) max = w;
  }
  const sizes = new Array<number>(groupCount).fill(0);
  const sums = new Array<number>(groupCount).fill(0);
  // Work with w / max in [0, 1]: dividing by max neither overflows for huge weights nor,
  // unlike resolution / max, for subnormal ones.
  const targets = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const g = groupOf[i] as number;
    const r = max > 0 ? (weights[i] as number) / max : 0;
    targets[i] = r;
    sizes[g] = (sizes[g] as number) + 1;
    sums[g] = (sums[g] as number) + r;
  }
  let top = resolution;
  for (let g = 0; g < groupCount; g++) {
    const size = sizes[g] as number;
    const sum = sums[g] as number;
    if (size > maxSum) throw new RangeError(`${size} weights cannot each be >= 1 within a sum of ${maxSum}`);
    // Σ max(r·top, 1) <= top·Σr + n, so this keeps the group's targets, and hence its rounded sum, within maxSum.
    if (sum > 0) top = Math.min(top, (maxSum - size) / sum);
  }
  for (let i = 0; i < n; i++) targets[i] = Math.max((targets[i] as number) * top, 1);
  return targets;
}

/**
 * Largest-remainder rounding per group. Equivalent to sorting each group by remainder (ties to
 * the earlier index) and giving one unit to the first `missing`, but without the sort: the
 * `missing`-th largest remainder is found by selection (linear), then every larger remainder gets
 * a unit and the equal ones get the rest in index order.
 */
function apportion(targets: readonly number[], groupOf: ArrayLike<number>, groupCount: number): number[] {
  const n = targets.length;
  const result = new Array<number>(n);
  const totals = new Array<number>(groupCount).fill(0);
  const floors = new Array<number>(groupCount).fill(0);
  for (let i = 0; i < n; i++) {
    const t = targets[i] as number;
    const g = groupOf[i] as number;
    const f = Math.floor(t);
    result[i] = f;
    totals[g] = (totals[g] as number) + t;
    floors[g] = (floors[g] as number) + f;
  }
  const members = membersByGroup(groupOf, groupCount);
  for (let g = 0; g < groupCount; g++) {
    const missing = Math.round(totals[g] as number) - (floors[g] as number);
    if (missing > 0) roundUpLargest(targets, result, members[g] as number[], missing);
  }
  return result;
}

/** Each group's member positions, in order. */
function membersByGroup(groupOf: ArrayLike<number>, groupCount: number): number[][] {
  const members = Array.from({ length: groupCount }, () => [] as number[]);
  for (let i = 0; i < groupOf.length; i++) members[groupOf[i] as number]?.push(i);
  return members;
}

/** Adds one unit to the `k` members with the largest remainders (ties: earlier index). */
function roundUpLargest(targets: readonly number[], result: number[], members: readonly number[], k: number): void {
  const rem = members.map((i) => (targets[i] as number) - (result[i] as number));
  const threshold = kthLargest(rem.slice(), k);
  let ties = k;
  for (const r of rem) if (r > threshold) ties--;
  members.forEach((i, j) => {
    const r = rem[j] as number;
    if (r > threshold || (r === threshold && ties-- > 0)) result[i] = (result[i] as number) + 1;
  });
}

/** The k-th largest value (1 ≤ k ≤ xs.length) by quickselect; reorders xs. */
export function kthLargest(xs: number[], k: number): number {
  let lo = 0;
  let hi = xs.length - 1;
  const want = k - 1; // position in descending order
  while (lo < hi) {
    const pivot = medianOfThree(xs[lo] as number, xs[(lo + hi) >> 1] as number, xs[hi] as number);
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((xs[i] as number) > pivot) i++;
      while ((xs[j] as number) < pivot) j--;
      if (i <= j) {
        const t = xs[i] as number;
        xs[i++] = xs[j] as number;
        xs[j--] = t;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return xs[want] as number;
  }
  return xs[want] as number;
}

function medianOfThree(a: number, b: number, c: number): number {
  return Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
}
