/**
 * Resolves on the next turn of the event loop (after I/O callbacks queued meanwhile): what a long
 * piece of work awaits between two slices so that other requests, xDS ones too, run in between.
 * Through the global `setImmediate`, so tests that fake or spy on it see every turn taken.
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Runs `steps` (a pass that yields between pieces: src/balancing/steps.ts) with a turn of the
 * event loop between two pieces, and returns what it returns.
 */
export async function runInTurns<T>(steps: Generator<void, T, void>, turn: () => Promise<void> = nextTurn): Promise<T> {
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
    await turn();
  }
}
