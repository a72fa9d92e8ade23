/**
 * Time source for the parts of the balancing room that depend on time.
 *
 * The algorithms themselves never read a clock: they take `now` (milliseconds) as an
 * argument so that tests, simulations and replays drive time explicitly. This interface
 * is what callers hold when they need to produce those `now` values; the composition root
 * injects a real one (e.g. `{ now: () => performance.now() }`), tests a manual one.
 *
 * Timestamps should come from a monotonic source: the estimators treat a timestamp
 * that goes backwards as "no time elapsed" rather than failing, but wall-clock jumps
 * still distort their notion of elapsed time.
 */
export interface Clock {
  now(): number;
}

/** A clock that only moves when told to: for tests and deterministic simulations. */
export class ManualClock implements Clock {
  constructor(private current = 0) {}

  now(): number {
    return this.current;
  }

  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`cannot advance a clock by ${ms} ms`);
    this.current += ms;
  }

  set(ms: number): void {
    this.current = ms;
  }
}
