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
  const targets = scratch(SCRATCH_TARGETS, weights.length);
  const top = ratiosAndTop(weights, groupOf, groupCount, options, targets);
  return apportion(targets, new Array<number>(weights.length), { top, sizes: scratch(SCRATCH_SIZES, groupCount) }, { groupOf, groupCount });
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
  return unflatten(groups, fillTargets(flat, groupOf, groups.length, options, new Array<number>(flat.length).fill(0)));
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

/** Fills `targets` (at least n long) with max(w · s, 1) per weight; returns it. */
function fillTargets(weights: ArrayLike<number>, groupOf: ArrayLike<number>, groupCount: number, options: IntegerWeightOptions, targets: number[]): number[] {
  scaleTargets(targets, weights.length, ratiosAndTop(weights, groupOf, groupCount, options, targets));
  return targets;
}

/**
 * targets ← w / max (at least n long; see ratiosInto), and the group sizes into SCRATCH_SIZES;
 * returns what the largest ratio maps to (commonTop). The scaling itself is the caller's pass.
 */
function ratiosAndTop(weights: ArrayLike<number>, groupOf: ArrayLike<number>, groupCount: number, options: IntegerWeightOptions, targets: Float64Array | number[]): number {
  const { resolution = DEFAULT_WEIGHT_RESOLUTION, maxSum = MAX_LOCALITY_WEIGHT_SUM } = options;
  if (!Number.isInteger(resolution) || resolution < 1) throw new RangeError(`resolution must be an integer >= 1`);
  if (!Number.isInteger(maxSum) || maxSum < 1 || maxSum > MAX_LOCALITY_WEIGHT_SUM) {
    throw new RangeError(`maxSum must be an integer in [1, 2^32 - 1]`);
  }
  const sizes = zeroed(scratch(SCRATCH_SIZES, groupCount), groupCount);
  const sums = zeroed(scratch(SCRATCH_SUMS, groupCount), groupCount);
  ratiosInto(weights, groupOf, largest(weights), { targets, sizes, sums });
  return commonTop(sizes, sums, groupCount, resolution, maxSum);
}

// The passes below are functions of their own that end with their loop: see floorsInto.

/** The largest weight, checking each is finite and >= 0. */
function largest(weights: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i] as number;
    // Comparisons, not Number.isFinite(w): V8 boxed each w it passed to it (a heap number per
    // weight per publish, 1.6 MB at 100,000). NaN and ±Infinity fail one of the two.
    if (!(w >= 0 && w < Number.POSITIVE_INFINITY)) throw new RangeError(`weights must be finite and >= 0, got ${w}`);
    if (w > max) max = w;
  }
  return max;
}

/**
 * targets ← w / max in [0, 1] (dividing by max neither overflows for huge weights nor, unlike
 * resolution / max, for subnormal ones); per group, how many and their sum.
 */
function ratiosInto(weights: ArrayLike<number>, groupOf: ArrayLike<number>, max: number, into: { targets: Float64Array | number[]; sizes: Float64Array; sums: Float64Array }): void {
  const { targets, sizes, sums } = into;
  for (let i = 0; i < weights.length; i++) {
    const g = groupOf[i] as number;
    const r = max > 0 ? (weights[i] as number) / max : 0;
    targets[i] = r;
    sizes[g] = (sizes[g] as number) + 1;
    sums[g] = (sums[g] as number) + r;
  }
}

/** What the largest ratio maps to: `resolution`, lowered so that no group's targets sum past maxSum. */
function commonTop(sizes: Float64Array, sums: Float64Array, groupCount: number, resolution: number, maxSum: number): number {
  let top = resolution;
  for (let g = 0; g < groupCount; g++) {
    const size = sizes[g] as number;
    const sum = sums[g] as number;
    if (size > maxSum) throw new RangeError(`${size} weights cannot each be >= 1 within a sum of ${maxSum}`);
    // Σ max(r·top, 1) <= top·Σr + n, so this keeps the group's targets, and hence its rounded sum, within maxSum.
    if (sum > 0) top = Math.min(top, (maxSum - size) / sum);
  }
  return top;
}

function scaleTargets(targets: number[], n: number, top: number): void {
  for (let i = 0; i < n; i++) targets[i] = Math.max((targets[i] as number) * top, 1);
}

/**
 * Largest-remainder rounding per group. Equivalent to sorting each group by remainder (ties to
 * the earlier index) and giving one unit to the first `missing`, but without sorting by index: the
 * `missing`-th largest remainder is found by selection over the group's remainders laid out side
 * by side, then every larger remainder gets a unit and the equal ones get the rest in index order.
 * `ratios` (w / max) become the targets in place; `result` (n long) receives the integers.
 */
function apportion(
  ratios: Float64Array,
  result: number[],
  scale: { readonly top: number; readonly sizes: Float64Array },
  groups: { readonly groupOf: ArrayLike<number>; readonly groupCount: number },
): number[] {
  const { groupOf, groupCount } = groups;
  const g4 = groupCount * 4;
  // Per group: total of targets, sum of floors, then (thresholds) the threshold and the ties left.
  const perGroup = zeroed(scratch(SCRATCH_GROUPS, g4), g4);
  scaledFloorsInto(ratios, scale.top, groupOf, result, perGroup);
  if (thresholds(ratios, result, { groupOf, sizes: scale.sizes }, groupCount)) roundUp(ratios, groupOf, result, perGroup);
  return result;
}

// The passes below are functions of their own that end with their loop: V8 optimizes the loop of
// a function called once per tick (a 100,000-endpoint cluster) on the stack, and code after the
// loop that had not run yet then deoptimized it on every call (bench/RESULTS.md, pid5).

/**
 * targets ← max(ratio · top, 1) in place (scaleTargets' arithmetic, in this pass rather than one
 * of its own), result ← the floor of each target; per group, the sums of targets and of floors.
 */
function scaledFloorsInto(targets: Float64Array, top: number, groupOf: ArrayLike<number>, result: number[], perGroup: Float64Array): void {
  for (let i = 0; i < result.length; i++) {
    const t = Math.max((targets[i] as number) * top, 1);
    targets[i] = t;
    const g = (groupOf[i] as number) * 4;
    const f = Math.floor(t);
    result[i] = f;
    perGroup[g] = (perGroup[g] as number) + t;
    perGroup[g + 1] = (perGroup[g + 1] as number) + f;
  }
}

/** One unit to each remainder above its group's threshold, and to the first equal ones while ties last. */
function roundUp(targets: Float64Array, groupOf: ArrayLike<number>, result: number[], perGroup: Float64Array): void {
  for (let i = 0; i < result.length; i++) {
    const g = (groupOf[i] as number) * 4;
    const threshold = perGroup[g + 2] as number;
    const r = (targets[i] as number) - (result[i] as number);
    if (r > threshold) result[i] = (result[i] as number) + 1;
    else if (r === threshold && (perGroup[g + 3] as number) > 0) {
      perGroup[g + 3] = (perGroup[g + 3] as number) - 1;
      result[i] = (result[i] as number) + 1;
    }
  }
}

/**
 * Per group short of units (`missing` = round(total) − Σ floors > 0): the `missing`-th largest
 * remainder (slot 2 of the group's four in SCRATCH_GROUPS; +Infinity when nothing is missing) and
 * how many remainders equal to it still get a unit (slot 3). False when no group misses any.
 */
function thresholds(targets: Float64Array, floors: readonly number[], groups: { readonly groupOf: ArrayLike<number>; readonly sizes: Float64Array }, groupCount: number): boolean {
  const perGroup = scratch(SCRATCH_GROUPS, groupCount * 4);
  let any = false;
  for (let g = 0; g < groupCount; g++) {
    const missing = Math.round(perGroup[g * 4] as number) - (perGroup[g * 4 + 1] as number);
    perGroup[g * 4 + 2] = Number.POSITIVE_INFINITY;
    perGroup[g * 4 + 3] = missing;
    if (missing > 0) any = true;
  }
  if (!any) return false;
  const start = groupStarts(groups.sizes, groupCount);
  const rem = remaindersByGroup(targets, floors, groups.groupOf, start);
  for (let g = 0; g < groupCount; g++) {
    const missing = perGroup[g * 4 + 3] as number;
    if (!(missing > 0)) continue;
    const lo = start[g] as number;
    const hi = (start[g + 1] as number) - 1;
    const threshold = kthLargestIn(rem, lo, hi, missing);
    perGroup[g * 4 + 2] = threshold;
    perGroup[g * 4 + 3] = missing - countAbove(rem, lo, hi, threshold);
  }
  return true;
}

/**
 * Where each group's slice starts when the entries are laid out group by group (start[groupCount]
 * = n), from the group sizes ratiosInto counted: a pass over the groups, not over the weights.
 */
function groupStarts(sizes: Float64Array, groupCount: number): Float64Array {
  const start = scratch(SCRATCH_STARTS, groupCount + 1);
  start[0] = 0;
  for (let g = 0; g < groupCount; g++) start[g + 1] = (start[g] as number) + (sizes[g] as number);
  return start;
}

/** Each group's remainders side by side (a counting sort by group), for selection within a group. */
function remaindersByGroup(targets: Float64Array, floors: readonly number[], groupOf: ArrayLike<number>, start: Float64Array): Float64Array {
  const rem = scratch(SCRATCH_REMAINDERS, floors.length);
  const fill = scratch(SCRATCH_SUMS, start.length);
  for (let g = 0; g < start.length; g++) fill[g] = start[g] as number;
  for (let i = 0; i < floors.length; i++) {
    const g = groupOf[i] as number;
    const at = fill[g] as number;
    rem[at] = (targets[i] as number) - (floors[i] as number);
    fill[g] = at + 1;
  }
  return rem;
}

function countAbove(xs: Float64Array, lo: number, hi: number, threshold: number): number {
  let above = 0;
  for (let j = lo; j <= hi; j++) if ((xs[j] as number) > threshold) above++;
  return above;
}

/**
 * Scratch vectors reused by every conversion (grown on demand, never shrunk): the weight engine
 * converts every cluster on every publish, and a 100,000-endpoint cluster's conversion allocated
 * six vectors of n per call (~5 MB per tick, bench/RESULTS.md "pid5"). Safe because a conversion
 * never calls back into itself.
 */
const SCRATCH_TARGETS = 0;
const SCRATCH_REMAINDERS = 1;
const SCRATCH_SIZES = 2;
const SCRATCH_SUMS = 3;
const SCRATCH_GROUPS = 4;
const SCRATCH_STARTS = 5;
const scratches: Float64Array[] = [0, 1, 2, 3, 4, 5].map(() => new Float64Array(16));

/**
 * xs[0..n) ← 0; returns xs. A loop, not TypedArray.prototype.fill: fill is a C++ builtin, ~0.2 µs
 * a call whatever the length, and a conversion made four per publish over a few groups (a cluster
 * of 20 endpoints publishes in a few µs: bench/RESULTS.md, pid7).
 */
function zeroed(xs: Float64Array, n: number): Float64Array {
  for (let i = 0; i < n; i++) xs[i] = 0;
  return xs;
}

function scratch(which: number, n: number): Float64Array {
  const have = scratches[which] as Float64Array;
  if (have.length >= n) return have;
  const grown = new Float64Array(Math.max(n, 2 * have.length));
  scratches[which] = grown;
  return grown;
}

/** The k-th largest value (1 ≤ k ≤ xs.length) by quickselect; reorders xs. */
export function kthLargest(xs: number[], k: number): number {
  return kthLargestIn(xs, 0, xs.length - 1, k);
}

/**
 * Up to this many values, the k-th largest is read off an insertion sort: a locality of a few
 * endpoints (every cluster's conversion, every publish) costs a few compares, where quickselect's
 * partitions and median-of-three cost more than the sort (bench/RESULTS.md, engine9).
 */
const SORT_SELECT_MAX = 16;

/** The k-th largest of xs[lo..hi] (1 ≤ k ≤ hi − lo + 1); reorders that range. */
function kthLargestIn(xs: number[] | Float64Array, from: number, to: number, k: number): number {
  if (to - from < SORT_SELECT_MAX) return kthBySorting(xs, from, to, k);
  return quickselect(xs, from, to, k);
}

/** kthLargestIn by sorting xs[from..to] in descending order (insertion). */
function kthBySorting(xs: number[] | Float64Array, from: number, to: number, k: number): number {
  for (let i = from + 1; i <= to; i++) {
    const x = xs[i] as number;
    let j = i - 1;
    while (j >= from && (xs[j] as number) < x) {
      xs[j + 1] = xs[j] as number;
      j--;
    }
    xs[j + 1] = x;
  }
  return xs[from + k - 1] as number;
}

/** kthLargestIn by quickselect. */
function quickselect(xs: number[] | Float64Array, from: number, to: number, k: number): number {
  let lo = from;
  let hi = to;
  const want = from + k - 1; // position in descending order
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
