/**
 * nginx's smooth weighted round robin (SWRR).
 *
 * Every pick adds each item's weight to its `current` score, chooses the largest score
 * and subtracts the total weight from it. Over any cycle of `total` picks (integer weights,
 * starting from a fresh or reset state) each item is chosen exactly `weight` times, and the
 * choices are spread out: {a:5, b:1, c:1} yields a a b a c a a rather than a a a a a b c.
 * Precisely: from a fresh state, after any k picks item i has been chosen at most
 * ceil(k · w_i / W) times (the proof is next to its property test).
 *
 * Why weight updates keep the scores: resetting them on every update (the weight engine
 * updates weights every tick) would restart each cycle at the heaviest item and bias
 * traffic toward it. Keeping them is safe because the choice is an argmax, invariant under
 * adding a constant to every score, and the scores stay bounded. They do carry each item's
 * credit or debt from before the update into the shares after it: over N picks item i is
 * chosen (N·w_i + s_i(start) − s_i(end)) / W times, so until that is spent a share can be off by
 * up to the old scores over the new total (the convergence property test waits it out).
 * Items set to weight 0 are skipped and their score is cleared, so they come back
 * without accumulated credit or debt.
 */
export interface WeightedEntry<K> {
  readonly key: K;
  readonly weight: number;
}

export class SmoothWeightedRoundRobin<K = string> {
  private readonly keys: K[] = [];
  private readonly weights: number[] = [];
  private readonly current: number[] = [];
  private readonly slot = new Map<K, number>();
  private total = 0;

  constructor(entries: Iterable<WeightedEntry<K>> = []) {
    for (const { key, weight } of entries) this.setWeightUnsummed(key, weight);
    this.recomputeTotal();
  }

  get size(): number {
    return this.keys.length;
  }

  get totalWeight(): number {
    return this.total;
  }

  /** The next key, or undefined when every weight is zero (or there are no keys). */
  next(): K | undefined {
    const { weights, current } = this;
    let best = -1;
    let bestScore = -Infinity;
    for (let i = 0; i < weights.length; i++) {
      const w = weights[i] as number;
      if (w === 0) continue;
      const score = (current[i] as number) + w;
      current[i] = score;
      // Strict comparison: ties go to the earliest item, as in nginx, so runs are reproducible.
      if (score > bestScore) {
        bestScore = score;
        best = i;
      }
    }
    if (best < 0) return undefined;
    current[best] = bestScore - this.total;
    return this.keys[best];
  }

  weightOf(key: K): number | undefined {
    const i = this.slot.get(key);
    return i === undefined ? undefined : this.weights[i];
  }

  /** Adds the key or changes its weight. Weights must be finite and >= 0. */
  setWeight(key: K, weight: number): void {
    this.setWeightUnsummed(key, weight);
    this.recomputeTotal();
  }

  /** Applies many weight changes at once (what a weight-engine tick does). */
  setWeights(entries: Iterable<WeightedEntry<K>>): void {
    for (const { key, weight } of entries) this.setWeightUnsummed(key, weight);
    this.recomputeTotal();
  }

  remove(key: K): boolean {
    const i = this.slot.get(key);
    if (i === undefined) return false;
    this.keys.splice(i, 1);
    this.weights.splice(i, 1);
    this.current.splice(i, 1);
    this.slot.delete(key);
    for (let j = i; j < this.keys.length; j++) this.slot.set(this.keys[j] as K, j);
    this.recomputeTotal();
    return true;
  }

  /** Clears the scores, so the next `total` picks form one exact cycle. */
  reset(): void {
    this.current.fill(0);
  }

  private setWeightUnsummed(key: K, weight: number): void {
    if (!Number.isFinite(weight) || weight < 0) {
      throw new RangeError(`weight must be a finite number >= 0, got ${weight}`);
    }
    const i = this.slot.get(key);
    if (i === undefined) {
      this.slot.set(key, this.keys.length);
      this.keys.push(key);
      this.weights.push(weight);
      this.current.push(0);
      return;
    }
    this.weights[i] = weight;
    if (weight === 0) this.current[i] = 0;
  }

  // Summed afresh rather than adjusted incrementally so fractional weights cannot drift.
  private recomputeTotal(): void {
    let total = 0;
    for (const w of this.weights) total += w;
    this.total = total;
  }
}
