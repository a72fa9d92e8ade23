/**
 * Writes to one resource from one replica, run one after another. Two writes to the same
 * cluster planned from the same mirror would only lose races to each other (each commit compares
 * the cluster's key), and a burst of them lost eight in a row, answered 503 with etcd healthy
 * (a review's finding). In a lane each write plans once the one before has committed and the
 * mirror shows it. Different resources still write side by side.
 */
export class WriteLanes {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `task` after every task queued before it in `lane` settled; its result, or its error. */
  run<T>(lane: string, task: () => Promise<T>): Promise<T> {
    const before = this.tails.get(lane);
    const mine = before === undefined ? task() : before.then(task, task);
    const tail = mine.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(lane, tail);
    void tail.then(() => {
      if (this.tails.get(lane) === tail) this.tails.delete(lane);
    });
    return mine;
  }

  /** Lanes with a task queued or running. */
  get size(): number {
    return this.tails.size;
  }
}
