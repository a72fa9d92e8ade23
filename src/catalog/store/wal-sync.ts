/**
 * Durability of the SQLite store's small writes without the disk on the push path.
 *
 * With `synchronous = FULL` every COMMIT fsyncs the WAL on the event loop, and only then do the
 * change listeners run: the push of a one-endpoint change to the proxies waited for the disk.
 * That fsync is the whole tail of the single-proxy latency (bench/RESULTS.md, branch proxy3:
 * p50 0.9 ms, p90 27 ms, max 387 ms on a disk shared with other work; a bare fdatasync there:
 * p50 2–4, p99 77–130 ms).
 *
 * A write run through `durably` commits with `synchronous = NORMAL` instead: the transaction is
 * in the WAL (the OS's page cache) and committed: visible to every reader, and no later step can
 * roll it back. A process crash keeps it (the kernel has the pages); only a power loss or kernel
 * crash before the fsync can lose it. The listeners (catalog feed, publisher, push) run at once,
 * and the write's promise resolves only once the WAL is fsynced, off the event loop: the caller
 * answers 200 only then, exactly as before. What a proxy may see and the operator not yet be told
 * is a committed write whose fsync is still running; if the machine loses power in that window,
 * fulcrum restarts without it and the proxies are sent the state before it (they reconnect to
 * the restarted process), consistent with what the operator was told (no 200). If the fsync
 * itself fails, the write's caller gets an error (a 500) that says the change is applied and served
 * but not known durable.
 *
 * One fsync covers every write committed before it started, so writes arriving together share
 * fsyncs (group commit); a write committed while one runs waits for the next.
 */
import { closeSync, fdatasync, fstatSync, openSync, statSync } from 'node:fs';

/**
 * The WAL file held open for `durably`'s fsyncs: one trip through libuv's pool per fsync. Opening
 * and closing it around each took three trips, each completion waiting its turn
 * behind whatever the event loop had to do meanwhile (at 1,000 streams: their ACKs), so the 200
 * came long after the fsync. Reopened when the path names another file (or none) than the one
 * held, so an fsync never goes to a WAL SQLite has replaced.
 */
export class WalFile {
  private fd: number | undefined;

  constructor(private readonly path: string) {}

  readonly flush = async (): Promise<void> => {
    const fd = this.current();
    if (fd === undefined) return;
    await new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
  };

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private current(): number | undefined {
    const onDisk = statSync(this.path, { throwIfNoEntry: false });
    if (this.fd !== undefined && (!onDisk || fstatSync(this.fd).ino !== onDisk.ino)) this.close();
    if (this.fd === undefined && onDisk) this.fd = openSync(this.path, 'r');
    return this.fd;
  }
}

export class WalSync {
  /** The fsync running now; it may have started before the caller's commit. */
  private running: Promise<void> | undefined;
  /** The fsync that starts once `running` ends: covers every commit made meanwhile. */
  private next: Promise<void> | undefined;

  constructor(private readonly flush: () => Promise<void>) {}

  /** Settles (never rejects) once no fsync is running or due: what a close must wait for. */
  idle(): Promise<void> {
    const last = this.next ?? this.running;
    return last ? last.then(noop, noop) : Promise.resolve();
  }

  /** Resolves once everything committed before this call is on disk. */
  synced(): Promise<void> {
    if (!this.running) return this.start();
    const after = (): Promise<void> => {
      this.next = undefined;
      return this.start();
    };
    return (this.next ??= this.running.then(after, after));
  }

  private start(): Promise<void> {
    const run = this.flush().finally(() => {
      if (this.running === run) this.running = undefined;
    });
    this.running = run;
    return run;
  }
}

function noop(): void {}
