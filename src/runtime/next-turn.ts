/**
 * Resolves on the next turn of the event loop (after I/O callbacks queued meanwhile): what a long
 * piece of work awaits between two slices so that other requests, xDS ones too, run in between.
 * Through the global `setImmediate`, so tests that fake or spy on it see every turn taken.
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
