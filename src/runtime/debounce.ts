/**
 * Coalesces bursts of changes: fires `quietMs` after the last change, but never later than
 * `maxMs` after the first one of the burst (Istio's PILOT_DEBOUNCE_AFTER / _MAX). `maxMs` of
 * Infinity means no bound: a burst fires only once it has been quiet. Every stage that coalesces
 * (the publisher, Kubernetes discovery, the config watcher) uses this one.
 */
export class Debouncer {
  private quietTimer: NodeJS.Timeout | undefined;
  private maxTimer: NodeJS.Timeout | undefined;
  private pending = false;

  constructor(
    private readonly quietMs: number,
    private readonly maxMs: number,
    private readonly fire: () => void,
  ) {}

  trigger(): void {
    if (this.quietMs === 0) {
      this.fire();
      return;
    }
    this.pending = true;
    if (this.quietTimer) clearTimeout(this.quietTimer);
    this.quietTimer = setTimeout(() => this.flush(), this.quietMs);
    if (Number.isFinite(this.maxMs)) this.maxTimer ??= setTimeout(() => this.flush(), Math.max(this.maxMs, this.quietMs));
  }

  /** Fires now if a change is pending. */
  flush(): void {
    const pending = this.pending;
    this.cancel();
    if (pending) this.fire();
  }

  /** Drops a pending change without firing. */
  cancel(): void {
    if (this.quietTimer) clearTimeout(this.quietTimer);
    if (this.maxTimer) clearTimeout(this.maxTimer);
    this.quietTimer = undefined;
    this.maxTimer = undefined;
    this.pending = false;
  }
}
