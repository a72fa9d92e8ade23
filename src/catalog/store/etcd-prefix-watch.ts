import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { historyRewound } from './history-rewound.js';
import { WatchResume } from './watch-resume.js';
import { reopenWhenStuck } from './watch-reopen.js';

/**
 * Follows every key under an etcd prefix: lists it, then watches from the next revision. A
 * watch that loses its connection is resumed by the etcd3 client, from the revision after the
 * last response it received; if etcd compacted that revision in the meantime it cancels the
 * watch, and the client then only emits 'error': nothing more would ever arrive. So a cancelled
 * watch lists the prefix afresh (the gap may have hidden puts and deletes) and watches again, with
 * a back-off while etcd cannot answer. Compaction is routine (`--auto-compaction-retention`,
 * `store.etcd.compactEveryMs`), and a replica cut off from etcd for longer than the retained
 * history would otherwise never learn of another replica again.
 *
 * The watch resumes from the revision after the last event it delivered, not from where etcd
 * was when it answered (watch-resume.ts).
 */
export interface PrefixWatchOptions {
  readonly client: Etcd3;
  readonly prefix: string;
  /**
   * The keys under the prefix as they stand, at start and after every lost watch: the reader
   * replaces what it knew (a key it knew and `kvs` lacks was deleted meanwhile). Omitted: the
   * watch starts from the present, for soft state whose past does not matter.
   */
  readonly listed?: (kvs: readonly IKeyValue[], revision: number) => void;
  readonly put: (kv: IKeyValue) => void;
  readonly deleted?: (kv: IKeyValue) => void;
  readonly log: Logger;
  /** Names the watch in logs, e.g. "ha: member watch". */
  readonly what: string;
  /** First delay between attempts to list and watch again (doubled up to 5 s); 200 ms by default. */
  readonly retryMs?: number;
}

const MAX_RETRY_MS = 5_000;

export class PrefixWatch {
  private watcher: Watcher | undefined;
  private resume: WatchResume | undefined;
  private stopped = false;
  private recovering: Promise<void> | undefined;

  constructor(private readonly o: PrefixWatchOptions) {}

  /** Lists and watches; rejects when etcd cannot answer (the caller's start fails, as before). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.open();
  }

  /**
   * Lists and watches without ever failing: retries with the back-off until etcd answers (for a
   * reader that serves while etcd is away).
   */
  startRetrying(): void {
    this.stopped = false;
    this.retryOpen('started');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const w = this.watcher;
    this.watcher = undefined;
    await w?.cancel().catch(() => undefined);
  }

  /** Resolves once a recovery in progress, if any, has ended (tests). */
  async settled(): Promise<void> {
    await this.recovering;
  }

  private async open(): Promise<void> {
    const { client, prefix, listed } = this.o;
    let next: string | undefined;
    if (listed !== undefined) {
      const res = await client.getAll().prefix(prefix).exec();
      if (this.stopped) return;
      listed(res.kvs, Number(res.header.revision));
      next = (BigInt(res.header.revision) + 1n).toString();
    }
    const builder = client.watch().prefix(prefix);
    const w = await (next === undefined ? builder : builder.startRevision(next)).create();
    if (this.stopped) {
      await w.cancel().catch(() => undefined);
      return;
    }
    this.watcher = w;
    reopenWhenStuck(w);
    this.resume = new WatchResume(w, next === undefined ? undefined : BigInt(next), (seen) => void this.rewound(w, seen));
    w.on('put', (kv) => this.o.put(kv));
    w.on('delete', (kv) => this.o.deleted?.(kv));
    // The etcd3 client emits 'error' on a watcher only when etcd cancelled it: it is dead.
    w.on('error', (err) => {
      if (this.watcher !== w) return;
      this.watcher = undefined;
      this.o.log.warn({ err: err.message }, `${this.o.what} cancelled by etcd (history compacted?): listing again`);
      this.retryOpen('resumed');
    });
  }

  /** etcd's history went back below what the watch delivered (a restore): it would wait in etcd's future; list and watch again. */
  private async rewound(w: Watcher, seen: bigint): Promise<void> {
    if (!(await historyRewound(this.o.client, this.o.prefix, seen, () => this.watcher === w && !this.stopped))) return;
    if (this.watcher !== w || this.stopped) return;
    this.watcher = undefined;
    this.o.log.warn({ seen: seen.toString() }, `${this.o.what}: etcd's history ends below a revision it delivered (restored from an older snapshot?): listing again`);
    await w.cancel().catch(() => undefined);
    this.retryOpen('resumed');
  }

  /** Lists and watches again until it succeeds or the watch stops, once at a time; logs `done` when it does. */
  private retryOpen(done: string): void {
    this.recovering ??= this.retry(done).finally(() => {
      this.recovering = undefined;
    });
  }

  /** The revision the client would resume the watch from after a broken stream (undefined: not watching, or from the present). */
  resumesFrom(): string | undefined {
    return this.watcher === undefined ? undefined : this.resume?.resumesFrom();
  }

  private async retry(done: string): Promise<void> {
    for (let delay = this.o.retryMs ?? 200; !this.stopped; delay = Math.min(delay * 2, MAX_RETRY_MS)) {
      try {
        await this.open();
        if (!this.stopped) this.o.log.info(`${this.o.what} ${done}`);
        return;
      } catch (err) {
        this.o.log.warn({ err: (err as Error).message }, `${this.o.what}: cannot list and watch yet`);
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    }
  }
}
