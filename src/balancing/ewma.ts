/**
 * Time-aware EWMA latency estimator with an exploration bonus.
 *
 * The seed's EWMA applied a fixed decay per sample, so an endpoint reporting 1000 times a
 * second forgot its past 1000 times faster than one reporting once a second, and a sample
 * arriving after an hour of silence was still blended 30/70 with hour-old data. Here the
 * past loses weight with elapsed time instead:
 *
 *   mass  ← mass · (1 − decay)^(dt / referenceInterval)
 *   α     = 1 / (1 + mass)                      (share of the new sample)
 *   est   ← est + α · (sample − est);  mass ← mass + 1
 *
 * `mass` is the decayed count of samples behind the estimate. For samples arriving every
 * dt, α settles at exactly 1 − (1 − decay)^(dt/referenceInterval): `decay` at the reference
 * rate, near 1 after long silence. Carrying `mass` rather than applying that formula
 * directly fixes two of its edge cases: samples with dt = 0 (a batch stamped with one
 * time) are averaged instead of ignored (that formula gives α = 0), and the first samples
 * are not biased toward a made-up initial value.
 *
 * Exploration: `bonus = explorationScale / (n + 1)` where n counts every sample ever seen,
 * so a new endpoint looks fast until it has been measured, and the bonus fades as
 * evidence accumulates (1000 ms at n = 0, 10 ms at n = 99).
 *
 * Choice of output: `score()` (estimate − bonus, lower is better) serves pick-the-best
 * selectors; `weight()` serves the weight engine: 1 / max(estimate − bonus, weightFloorMs),
 * i.e. weight ∝ 1/estimate once the bonus is negligible, with the bonus acting as an
 * optimistic (lower-confidence-bound) latency while data is scarce. The floor bounds the
 * boost an unmeasured endpoint gets (1/floor); the engine's clamp and step limit bound it
 * further.
 */
export interface EwmaOptions {
  /** Share of a new sample when samples arrive once per reference interval. Default 0.3. */
  readonly decay?: number;
  /** The interval at which `decay` applies exactly. Default 1000 ms. */
  readonly referenceIntervalMs?: number;
  /** Numerator of the exploration bonus, in the samples' unit. Default 1000 (ms). */
  readonly explorationScale?: number;
  /** Smallest latency `weight()` will divide by. Default 1 (ms). */
  readonly weightFloorMs?: number;
}

export const EWMA_DEFAULTS = {
  decay: 0.3,
  referenceIntervalMs: 1000,
  explorationScale: 1000,
  weightFloorMs: 1,
} as const satisfies Required<EwmaOptions>;

/** What an EwmaLatency remembers (null: no sample yet). */
export interface EwmaMemory {
  readonly value: number | null;
  readonly mass: number;
  readonly count: number;
  readonly lastAt: number | null;
}

export class EwmaLatency {
  private readonly keep: number;
  private readonly referenceIntervalMs: number;
  private readonly explorationScale: number;
  private readonly weightFloorMs: number;
  private value: number | undefined;
  private mass = 0;
  private count = 0;
  private lastAt: number | undefined;

  constructor(options: EwmaOptions = {}) {
    const o = { ...EWMA_DEFAULTS, ...options };
    if (!(o.decay > 0 && o.decay <= 1)) throw new RangeError(`decay must be in (0, 1], got ${o.decay}`);
    if (!(o.referenceIntervalMs > 0)) throw new RangeError('referenceIntervalMs must be > 0');
    if (!(o.explorationScale >= 0)) throw new RangeError('explorationScale must be >= 0');
    if (!(o.weightFloorMs > 0)) throw new RangeError('weightFloorMs must be > 0');
    this.keep = 1 - o.decay;
    this.referenceIntervalMs = o.referenceIntervalMs;
    this.explorationScale = o.explorationScale;
    this.weightFloorMs = o.weightFloorMs;
  }

  /**
   * Folds in one sample taken at `now` (ms) and returns the share α it was given.
   * A timestamp earlier than the previous one counts as no elapsed time.
   */
  observe(sample: number, now: number): number {
    if (!Number.isFinite(sample) || sample < 0) throw new RangeError(`sample must be finite and >= 0, got ${sample}`);
    if (!Number.isFinite(now)) throw new RangeError(`now must be finite, got ${now}`);
    const dt = this.lastAt === undefined ? 0 : Math.max(0, now - this.lastAt);
    const remaining = this.mass * this.keep ** (dt / this.referenceIntervalMs);
    const alpha = 1 / (1 + remaining);
    this.value = this.value === undefined ? sample : this.value + alpha * (sample - this.value);
    this.mass = remaining + 1;
    this.count++;
    this.lastAt = this.lastAt === undefined ? now : Math.max(this.lastAt, now);
    return alpha;
  }

  /** Current estimate, undefined before the first sample. */
  get estimate(): number | undefined {
    return this.value;
  }

  /** Samples seen since construction or reset (n in the bonus). */
  get samples(): number {
    return this.count;
  }

  get lastSampleAt(): number | undefined {
    return this.lastAt;
  }

  /** Decayed sample count at `now`: how much recent evidence backs the estimate. */
  effectiveSamples(now: number): number {
    if (this.lastAt === undefined) return 0;
    return this.mass * this.keep ** (Math.max(0, now - this.lastAt) / this.referenceIntervalMs);
  }

  bonus(): number {
    return this.explorationScale / (this.count + 1);
  }

  /** estimate − bonus: lower is better; an unmeasured endpoint scores −explorationScale. */
  score(): number {
    return (this.value ?? 0) - this.bonus();
  }

  /** Relative weight ∝ 1 / max(score, weightFloorMs). Always finite and > 0. */
  weight(): number {
    return 1 / Math.max(this.score(), this.weightFloorMs);
  }

  /** Relative weight ∝ 1 / max(estimate, weightFloorMs), no bonus: what the samples alone say (0 before the first). */
  measuredWeight(): number {
    return this.value === undefined ? 0 : 1 / Math.max(this.value, this.weightFloorMs);
  }

  /** The estimator's memory, JSON-safe: what a successor needs to continue. */
  snapshot(): EwmaMemory {
    return { value: this.value ?? null, mass: this.mass, count: this.count, lastAt: this.lastAt ?? null };
  }

  /** Continues from a snapshot (another replica's); invalid fields leave the estimator empty. */
  restore(m: EwmaMemory): void {
    const valid = m.value !== null && Number.isFinite(m.value) && m.value >= 0 && Number.isFinite(m.mass) && m.mass >= 0;
    if (!valid || m.lastAt === null || !Number.isFinite(m.lastAt) || !Number.isInteger(m.count) || m.count < 0) {
      this.reset();
      return;
    }
    this.value = m.value ?? undefined;
    this.mass = m.mass;
    this.count = m.count;
    this.lastAt = m.lastAt;
  }

  reset(): void {
    this.value = undefined;
    this.mass = 0;
    this.count = 0;
    this.lastAt = undefined;
  }
}
