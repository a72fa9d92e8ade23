/**
 * New streams' first answers, held until what fulcrum serves is complete. A State-of-the-World
 * CDS or LDS answer is the whole set: one sent before Kubernetes discovery's first view is
 * published would lack every discovered cluster (they are rebuilt from the API server, not
 * stored), and each proxy that (re)connected then, after a restart of fulcrum during an API
 * server outage for instance, would delete them. A proxy left unanswered keeps what it has.
 * Once `until` settles the held tasks go to the initial-sync queue, in arrival order.
 */
export class HeldAnswers {
  /** Tasks waiting for `until`; undefined once released (or when nothing is awaited). */
  private held: (() => void)[] | undefined;

  constructor(
    private readonly queue: { push(task: () => void): void },
    until: Promise<void> | undefined,
  ) {
    if (until === undefined) return;
    this.held = [];
    const release = (): void => this.release();
    void until.then(release, release);
  }

  push(task: () => void): void {
    if (this.held) this.held.push(task);
    else this.queue.push(task);
  }

  private release(): void {
    const tasks = this.held ?? [];
    this.held = undefined;
    for (const task of tasks) this.queue.push(task);
  }
}
