/**
 * New streams' first answers, held until what fulcrum serves is complete. A State-of-the-World
 * CDS or LDS answer is the whole set: one sent before Kubernetes discovery's first view is
 * published would lack every discovered cluster (they are rebuilt from the API server, not
 * stored), and each proxy that (re)connected then, after a restart of fulcrum during an API
 * server outage for instance, would delete them. A proxy left unanswered keeps what it has.
 * Once `until` settles the held tasks go to the initial-sync queue, in arrival order.
 */
export class HeldAnswers {
  /** Tasks waiting for `until`, in arrival order; undefined once released (or when nothing is awaited). */
  private held: Set<() => void> | undefined;

  constructor(
    private readonly queue: { push(task: () => void): void },
    until: Promise<void> | undefined,
  ) {
    if (until === undefined) return;
    this.held = new Set();
    const release = (): void => this.release();
    void until.then(release, release);
  }

  /**
   * Queues `task`, or holds it. Returns what drops a held task: a stream that closes while held
   * calls it, or a long wait (an API server outage) with proxies reconnecting would keep every
   * closed stream, and its proxy's Node, until the release.
   */
  push(task: () => void): () => void {
    const held = this.held;
    if (!held) {
      this.queue.push(task);
      return noop;
    }
    held.add(task);
    return () => held.delete(task);
  }

  /** Tasks held now. */
  get size(): number {
    return this.held?.size ?? 0;
  }

  private release(): void {
    const tasks = this.held ?? new Set();
    this.held = undefined;
    for (const task of tasks) this.queue.push(task);
  }
}

const noop = (): void => undefined;
