/**
 * One log line per key and window: the first event of a window is logged, with how many like it
 * were left out in the window before; the rest are only counted. For events a client can repeat
 * at will (a retrying client, an agent reporting every second, an attacker), so that they cannot
 * turn every request into a log line. Their metrics count every one.
 */
export class WindowedLog {
  private readonly windows = new Map<string, { start: number; suppressed: number }>();

  constructor(
    private readonly log: (fields: Record<string, unknown>, message: string) => void,
    private readonly message: string,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** An event of kind `key` (a small, bounded set: each key keeps one entry) with what to log of it. */
  event(key: string, fields: Record<string, unknown>): void {
    const at = this.now();
    const w = this.windows.get(key);
    if (w && at - w.start < this.windowMs) {
      w.suppressed++;
      return;
    }
    this.windows.set(key, { start: at, suppressed: 0 });
    this.log({ ...fields, ...(w?.suppressed ? { suppressedBefore: w.suppressed } : {}) }, this.message);
  }
}
