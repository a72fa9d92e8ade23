/**
 * Per-endpoint health state machine with progressive backoff.
 *
 *   AVAILABLE ──failureThreshold consecutive failures──► UNAVAILABLE (until retryAt)
 *   UNAVAILABLE ──time reaches retryAt──► RECOVERING (probed, still not serving)
 *   RECOVERING ──successThreshold consecutive successes──► AVAILABLE
 *   RECOVERING ──probationFailureThreshold consecutive failures──► UNAVAILABLE (relapse)
 *
 * Each trip to UNAVAILABLE waits baseBackoff · multiplier^level (capped at maxBackoff). The
 * level rises only on a relapse: an endpoint that came back and falls over again before it has
 * stayed AVAILABLE for `stableAfterMs`. An endpoint that fails its probation never came back,
 * so it is retried at the same pace (a dead backend that revives gets traffic back within one
 * back-off of seconds, not after an ever longer wait); a flapping one is retried less and less
 * often. The level returns to zero once the endpoint has stayed AVAILABLE for `stableAfterMs`.
 *
 * Results observed while UNAVAILABLE (before retryAt) are ignored: the endpoint is not
 * being probed then, and a stray passive signal must not shortcut the backoff.
 *
 * Time is only ever passed in, and UNAVAILABLE → RECOVERING happens by reading the state at
 * a later `now`, so the machine needs no timers.
 */
export type HealthState = 'AVAILABLE' | 'UNAVAILABLE' | 'RECOVERING';

export interface HealthOptions {
  /** Consecutive failures that take an AVAILABLE endpoint out. Default 3. */
  readonly failureThreshold?: number;
  /** Consecutive successes that bring a RECOVERING endpoint back. Default 3. */
  readonly successThreshold?: number;
  /** Consecutive failures that send a RECOVERING endpoint back out. Default 1. */
  readonly probationFailureThreshold?: number;
  /** First backoff. Default 5 s. */
  readonly baseBackoffMs?: number;
  /** Backoff cap. Default 5 minutes. */
  readonly maxBackoffMs?: number;
  /** Growth per relapse. Default 2. */
  readonly backoffMultiplier?: number;
  /**
   * Healthy time after which the backoff starts again from the base. Default 5 minutes: as
   * long as the longest backoff, so an endpoint flapping at the cap does not earn a reset.
   */
  readonly stableAfterMs?: number;
}

export const HEALTH_DEFAULTS = {
  failureThreshold: 3,
  successThreshold: 3,
  probationFailureThreshold: 1,
  baseBackoffMs: 5_000,
  maxBackoffMs: 5 * 60_000,
  backoffMultiplier: 2,
  stableAfterMs: 5 * 60_000,
} as const satisfies Required<HealthOptions>;

export interface HealthTransition {
  readonly from: HealthState;
  readonly to: HealthState;
  /** True when the result arrived during the backoff and was not counted. */
  readonly ignored: boolean;
}

export interface HealthSnapshot {
  readonly state: HealthState;
  readonly consecutiveFailures: number;
  readonly consecutiveSuccesses: number;
  /** When an UNAVAILABLE endpoint becomes eligible for probing again. */
  readonly retryAt: number | undefined;
  /** The backoff of the most recent outage, if any. */
  readonly lastBackoffMs: number | undefined;
  /** Exponent of the backoff: doublings earned by relapses since the last reset. */
  readonly backoffLevel: number;
}

export class HealthTracker {
  private readonly o: Required<HealthOptions>;
  private phase: 'AVAILABLE' | 'DOWN' = 'AVAILABLE';
  private failures = 0;
  private successes = 0;
  private level = 0;
  private retryAtMs: number | undefined;
  private lastBackoff: number | undefined;
  private availableSince: number | undefined;
  /** Whether the endpoint has been out before (a fall from AVAILABLE is then a relapse). */
  private everDown = false;

  constructor(options: HealthOptions = {}) {
    const o = { ...HEALTH_DEFAULTS, ...options };
    for (const name of ['failureThreshold', 'successThreshold', 'probationFailureThreshold'] as const) {
      if (!Number.isInteger(o[name]) || o[name] < 1) throw new RangeError(`${name} must be an integer >= 1`);
    }
    if (!(o.baseBackoffMs >= 0)) throw new RangeError('baseBackoffMs must be >= 0');
    if (!(o.maxBackoffMs >= o.baseBackoffMs)) throw new RangeError('maxBackoffMs must be >= baseBackoffMs');
    if (!(o.backoffMultiplier >= 1)) throw new RangeError('backoffMultiplier must be >= 1');
    if (!(o.stableAfterMs >= 0)) throw new RangeError('stableAfterMs must be >= 0');
    this.o = o;
  }

  state(now: number): HealthState {
    if (this.phase === 'AVAILABLE') return 'AVAILABLE';
    return now >= (this.retryAtMs as number) ? 'RECOVERING' : 'UNAVAILABLE';
  }

  /** When the endpoint last came back from an outage, while it stays back (undefined: never down, or down now). */
  cameBackAt(): number | undefined {
    return this.phase === 'AVAILABLE' ? this.availableSince : undefined;
  }

  /**
   * Whether it holds a back-off a fresh tracker would not: the endpoint is down (UNAVAILABLE or
   * RECOVERING), or came back less than stableAfterMs ago, so a fall now would be a relapse.
   */
  holdsBackoff(now: number): boolean {
    return this.phase === 'DOWN' || (this.everDown && !this.stableAt(now));
  }

  /** Whether traffic should go to the endpoint. */
  isServing(now: number): boolean {
    return this.state(now) === 'AVAILABLE';
  }

  /** Whether a probe is due or useful: always, except during a backoff. */
  shouldProbe(now: number): boolean {
    return this.state(now) !== 'UNAVAILABLE';
  }

  /** Records one probe (or request) result observed at `now`. */
  observe(ok: boolean, now: number): HealthTransition {
    const from = this.state(now);
    if (from === 'UNAVAILABLE') return { from, to: from, ignored: true };
    if (from === 'AVAILABLE') {
      if (ok) this.failures = 0;
      else if (++this.failures >= this.o.failureThreshold) this.goDown(now, true);
    } else if (ok) {
      this.failures = 0;
      if (++this.successes >= this.o.successThreshold) this.comeBack(now);
    } else {
      this.successes = 0;
      if (++this.failures >= this.o.probationFailureThreshold) this.goDown(now, false);
    }
    return { from, to: this.state(now), ignored: false };
  }

  /** The backoff an outage starting at `now` would get (a fall from AVAILABLE: `relapse`). */
  nextBackoffMs(now: number, relapse = true): number {
    const { baseBackoffMs, backoffMultiplier, maxBackoffMs } = this.o;
    return Math.min(maxBackoffMs, baseBackoffMs * backoffMultiplier ** this.nextLevel(now, relapse));
  }

  snapshot(now: number): HealthSnapshot {
    return {
      state: this.state(now),
      consecutiveFailures: this.failures,
      consecutiveSuccesses: this.successes,
      retryAt: this.phase === 'DOWN' ? this.retryAtMs : undefined,
      lastBackoffMs: this.lastBackoff,
      backoffLevel: this.levelAt(now),
    };
  }

  private levelAt(now: number): number {
    return this.stableAt(now) ? 0 : this.level;
  }

  /** AVAILABLE for stableAfterMs since it came back: its past outages are forgiven. */
  private stableAt(now: number): boolean {
    return this.phase === 'AVAILABLE' && this.availableSince !== undefined && now - this.availableSince >= this.o.stableAfterMs;
  }

  /** The level an outage starting now gets: one more than before for a relapse after a comeback. */
  private nextLevel(now: number, relapse: boolean): number {
    const level = this.levelAt(now);
    if (!relapse || !this.everDown || this.stableAt(now)) return level;
    // Grow only while the backoff still can, so the exponent cannot run off to Infinity
    // (and 0 · Infinity cannot turn a zero base backoff into NaN).
    const { baseBackoffMs, backoffMultiplier, maxBackoffMs } = this.o;
    const grows = baseBackoffMs > 0 && baseBackoffMs * backoffMultiplier ** level < maxBackoffMs && backoffMultiplier > 1;
    return level + (grows ? 1 : 0);
  }

  private goDown(now: number, fromAvailable: boolean): void {
    this.level = this.nextLevel(now, fromAvailable);
    const backoff = Math.min(this.o.maxBackoffMs, this.o.baseBackoffMs * this.o.backoffMultiplier ** this.level);
    this.everDown = true;
    this.phase = 'DOWN';
    this.retryAtMs = now + backoff;
    this.lastBackoff = backoff;
    this.failures = 0;
    this.successes = 0;
  }

  private comeBack(now: number): void {
    this.phase = 'AVAILABLE';
    this.availableSince = now;
    this.retryAtMs = undefined;
    this.failures = 0;
    this.successes = 0;
  }
}
