/**
 * One knob for how patient tests are: FULCRUM_TEST_TIME_FACTOR (default 1) multiplies every
 * deadline — `waitFor` timeouts, Envoy start-up, vitest's test and hook timeouts, and the
 * literal per-test timeouts written as `scaled(90_000)`. A loaded 2-core CI machine (.ci/run
 * sets 3) runs several times slower than a quiet laptop; a deadline is a bound on "something is
 * broken", so it stretches with the machine while the conditions the tests wait for do not.
 * Never scale a measurement (a rate, a window, a latency the product promises).
 */
export function timeFactor(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.FULCRUM_TEST_TIME_FACTOR;
  if (text === undefined || text.trim() === '') return 1;
  const factor = Number(text);
  if (!Number.isFinite(factor) || factor < 1) {
    throw new Error(`FULCRUM_TEST_TIME_FACTOR must be a number >= 1 (a slower machine gets more time), got "${text}"`);
  }
  return factor;
}

export const TIME_FACTOR = timeFactor();

/** `ms` stretched by FULCRUM_TEST_TIME_FACTOR: for deadlines, never for measurements. */
export function scaled(ms: number): number {
  return Math.round(ms * TIME_FACTOR);
}
