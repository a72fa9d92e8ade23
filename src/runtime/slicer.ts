import { nextTurn } from './next-turn.js';

/**
 * Long work's pacing: it calls `turn()` between small pieces, and yields to the event loop once
 * `sliceMs` has passed since the last turn, so other requests (xDS ones too) wait at most about a
 * slice behind it while it takes few turns when there is little to do.
 */
export class Slicer {
  private since = performance.now();
  constructor(private readonly sliceMs: number) {}

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
