/**
 * New streams' first requests, run a slice of the event loop at a time. Answering a first
 * request (CDS for a new Envoy, then its EDS) is most of what a new stream costs; in a reconnect
 * storm thousands arrive together, and answering them all in the I/O phase that read them kept
 * the event loop from accepting: the kernel's accept queue (listenBacklog, at most somaxconn)
 * overflowed and proxies were reset before their first response. Queued here, they run for at
 * most `budgetMs` per loop turn, and each turn polls I/O again, accepting what is waiting.
 */
export class InitialSyncQueue {
  private tasks: (() => void)[] = [];
  private next = 0;
  private scheduled = false;

  constructor(
    private readonly budgetMs = 10,
    private readonly now: () => number = () => performance.now(),
    private readonly defer: (run: () => void) => void = (run) => void setImmediate(run),
  ) {}

  /** Tasks waiting to run. */
  get waiting(): number {
    return this.tasks.length - this.next;
  }

  push(task: () => void): void {
    this.tasks.push(task);
    if (this.scheduled) return;
    this.scheduled = true;
    this.defer(this.drain);
  }

  private readonly drain = (): void => {
    const end = this.now() + this.budgetMs;
    // At least one task per turn, however slow, so the queue always moves.
    do {
      const task = this.tasks[this.next];
      this.tasks[this.next++] = noop;
      task?.();
    } while (this.next < this.tasks.length && this.now() < end);
    if (this.next < this.tasks.length) {
      this.defer(this.drain);
      return;
    }
    this.tasks = [];
    this.next = 0;
    this.scheduled = false;
  };
}

const noop = (): void => undefined;
