/**
 * Work in steps: a generator that yields between pieces of a pass, so its driver (a cluster's tick
 * in steps; the catalog feed handing the weights and the signals a big change) can give the event
 * loop a turn between them. Pure: no timers here; the driver decides when the next step runs.
 */

/**
 * A per-item pass over `[0, n)` run in ranges of `chunk`, yielding between ranges (not before the
 * first), so a pass's stepped form differs from its whole form only in calling this.
 */
export function* inChunks(n: number, chunk: number, each: (from: number, to: number) => void): Generator<void, void, void> {
  for (let from = 0; from < n; from += chunk) {
    if (from > 0) yield;
    each(from, Math.min(n, from + chunk));
  }
}

/** Runs `steps` to their end at once and returns what they return (a stepped pass in one go). */
export function runToEnd<T>(steps: Generator<void, T, void>): T {
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
  }
}
