/**
 * One cluster's tick in steps (WeightEngine.startClusterTick), so that a caller which must not hold
 * its event loop for a whole 100,000-endpoint cluster can yield between steps. Pure: no I/O, no
 * clock; the caller decides when the next step runs.
 *
 * While a cluster's tick is in flight its state is half-way through the tick, so whatever would
 * change it (samples, probes, a new endpoint set, seeding) is deferred here and applied, in call
 * order, the moment the tick completes: the tick's result is exactly that of an unsplit tick at the
 * same `now` with the same inputs, and the deferred calls count as having arrived just after it.
 */
import type { ClusterTick } from './types.js';

export class ClusterTickRun {
  private outcome: ClusterTick | undefined;
  private done = false;
  private readonly deferred: (() => void)[] = [];

  /**
   * `limit`: deferred calls beyond it finish the tick at once (a run its driver abandoned, e.g. a
   * stopped loop, must not collect observations without bound).
   */
  constructor(
    readonly cluster: string,
    private readonly steps: Iterator<void, ClusterTick | undefined, void>,
    private readonly limit: number,
    private readonly landed: (run: ClusterTickRun) => void,
  ) {}

  /** Runs the next step; true once the tick is complete (its result is then in `result`). */
  step(): boolean {
    if (this.done) return true;
    const next = this.steps.next();
    if (next.done !== true) return false;
    this.outcome = next.value;
    this.done = true;
    this.landed(this);
    for (const op of this.deferred.splice(0)) op();
    return true;
  }

  /** Runs every remaining step now. */
  finish(): void {
    while (!this.step());
  }

  /** The cluster's tick once complete; undefined before, or when the cluster was unknown. */
  get result(): ClusterTick | undefined {
    return this.outcome;
  }

  get complete(): boolean {
    return this.done;
  }

  /** Defers a change to the cluster until the tick completes. */
  defer(op: () => void): void {
    this.deferred.push(op);
    if (this.deferred.length > this.limit) this.finish();
  }
}
