/** What the queue needs of a stream: wake it to push what its subscriptions now resolve to. */
export interface Wakeable {
  onCacheChange(): void;
}

/**
 * The streams a cache change wakes, a slice at a time. Waking 10,000 streams in one macrotask
 * left every written response in node's HTTP/2 sessions until the whole loop ended (the sessions
 * flush from immediates after it), so the load client (the proxies) sat idle for the loop's
 * ~200 ms and then received all 10,000 at once. Woken a slice per turn of the event loop, each
 * slice's sessions flush before the next slice is written, and the proxies read the first
 * streams' responses while the server writes the last ones (figures in bench/RESULTS.md, fan6).
 *
 * It also bounds how long a change holds the event loop: one slice (~20 ms at 1,000 streams),
 * not the whole fleet (~200 ms at 10,000), so the admin write that made the change, and anything
 * else waiting, is answered after the first slice. The first slice runs at once, inside the
 * change (one proxy, or a small fleet, sees no hop). A stream still waiting when another change arrives keeps its place: it reads the newest snapshot
 * when woken, so it gets every change, once; a stream woken already is queued again.
 *
 * Between slices the event loop reads what proxies sent: the ACKs of the first slices. Handling
 * them there would delay the last streams' writes by the first streams' ACKs, so the server
 * hands requests that arrive while streams wait to `afterPush`: they are handled, in arrival
 * order, right after the last slice (grpc-js still reads and decodes them as they come).
 */
export class FanOutQueue<S extends Wakeable> {
  /** Insertion-ordered: a Set keeps its order when earlier entries are deleted. */
  private readonly waiting = new Set<S>();
  private scheduled = false;
  /** Work held back until the waiting streams are woken (`afterPush`). */
  private later: (() => void)[] = [];

  constructor(
    /** Streams woken per turn (the first slice at once, inside the change). */
    private readonly sliceSize: number,
    /** Whether a stream is still served (a closed one is skipped). */
    private readonly isOpen: (stream: S) => boolean,
    /** A stream whose wake-up threw: the rest of the slice still runs. */
    private readonly onError: (stream: S, err: unknown) => void,
    private readonly defer: (run: () => void) => void = (run) => void setImmediate(run),
  ) {}

  /** Streams waiting for a later slice. */
  get size(): number {
    return this.waiting.size;
  }

  wake(streams: Iterable<S>): void {
    for (const s of streams) this.waiting.add(s);
    if (!this.scheduled) this.drain();
  }

  /** Runs `task` now, or after the last waiting stream was woken when some are waiting. */
  afterPush(task: () => void): void {
    if (this.waiting.size === 0) task();
    else this.later.push(task);
  }

  /** Forgets every waiting stream (the server stops). */
  clear(): void {
    this.waiting.clear();
    this.later = [];
  }

  private readonly drain = (): void => {
    // Held while the slice runs too, so a change made inside a wake-up only queues.
    this.scheduled = true;
    let n = 0;
    for (const s of this.waiting) {
      if (n++ >= this.sliceSize) break;
      this.waiting.delete(s);
      if (!this.isOpen(s)) continue;
      try {
        s.onCacheChange();
      } catch (err) {
        this.onError(s, err);
      }
    }
    if (this.waiting.size > 0) {
      this.defer(this.drain);
      return;
    }
    this.scheduled = false;
    const tasks = this.later;
    this.later = [];
    for (const task of tasks) task();
  };
}
