import { nextTurn } from './next-turn.js';

/**
 * A slice of the event loop for long work. A request that arrives meanwhile can wait behind more
 * than one slice (read in one turn, answered in a later one). With 10 ms slices an xDS Fetch sent
 * during a 20k-endpoint PUT took 18 ms at the median; with 4 ms, 10 ms, for 1–7 % more time
 * spent on the write itself (bench/RESULTS.md "engine18").
 */
export const SLICE_MS = 4;

/**
 * Long work's pacing: it calls `turn()` between small pieces, and yields to the event loop once
 * `sliceMs` has passed since the last turn, so other requests (xDS ones too) wait at most about a
 * slice behind it while it takes few turns when there is little to do.
 */
export class Slicer {
  private since = performance.now();
  constructor(private readonly sliceMs = SLICE_MS) {}

  /** `turn` as a function of its own (for code that takes a turn function). */
  readonly turns = (): Promise<void> => this.turn();

  async turn(): Promise<void> {
    if (performance.now() - this.since < this.sliceMs) return;
    await this.step();
  }

  /** Yields now: between the steps of a big write's end, each tens of milliseconds at 20k endpoints. */
  async step(): Promise<void> {
    await nextTurn();
    this.since = performance.now();
  }
}
