/**
 * The step pattern of a cluster's tick in steps (weight-engine.ts): a per-endpoint pass over
 * `[0, n)` run in ranges of `chunk`, yielding between ranges (not before the first), so each stage's
 * `…Steps` twin differs from its whole form only in calling this.
 */
export function* inChunks(n: number, chunk: number, each: (from: number, to: number) => void): Generator<void, void, void> {
  for (let from = 0; from < n; from += chunk) {
    if (from > 0) yield;
    each(from, Math.min(n, from + chunk));
  }
}
