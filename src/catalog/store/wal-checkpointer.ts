/**
 * The WAL checkpoint, run on a worker thread (SQLite store).
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold (1,000 pages by
 * default), on whichever connection commits: it copies the WAL's pages into the database file and
 * fsyncs both, with the event loop held. With one-endpoint writes that is every ~100 writes, and
 * on a busy disk one such fsync took 139 ms (strace of the single-proxy bench: the push of that
 * write waited for it); after a 20k-endpoint cluster write it was ~85 ms of copying at load 10.
 * So the store's own connection checkpoints by itself only as a backstop (LOOP_CHECKPOINT_PAGES,
 * if the worker falls behind or fails), the sliced writer's never: a worker thread with its own
 * connection runs a PASSIVE checkpoint (it neither blocks nor waits for readers and writers)
 * after every sliced write and every CHECKPOINT_EVERY_COMMITS commits. While one runs, the
 * store's connection does not checkpoint at all (else the first write queued behind a big one
 * would do the whole copy).
 *
 * The checkpoint is not needed for durability: a commit is durable once the WAL is fsynced.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

/**
 * The store's connection checkpoints in a COMMIT only once the WAL holds this many pages (~40 MB):
 * a backstop; the worker's checkpoints normally keep it far below.
 */
export const LOOP_CHECKPOINT_PAGES = 10_000;

/**
 * Commits on the store's connection between two checkpoints on the worker (~10 pages each for one
 * endpoint: ~8 MB of WAL). Not fewer: the first commit after a complete checkpoint restarts the
 * WAL and fsyncs its header on the event loop (SQLite does so whatever the synchronous setting),
 * which on a saturated disk held one write's push 60-80 ms; once per 200 writes keeps that out of
 * the 99th percentile.
 */
export const CHECKPOINT_EVERY_COMMITS = 200;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { timeout: 0 });
parentPort.on('message', () => {
  let error;
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (err) { error = String(err && err.message ? err.message : err); }
  parentPort.postMessage({ error });
});
`;

/** A worker idle this long is ended: a thread with its own SQLite connection holds ~10 MiB of RSS. */
export const WORKER_IDLE_MS = 10_000;

export class WalCheckpointer {
  private worker: Worker | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private idle: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly file: string,
    /** The store's own connection: no automatic checkpoint on it while one is pending here. */
    private readonly main: Database.Database,
    private readonly onError: (message: string) => void,
    private readonly idleMs = WORKER_IDLE_MS,
  ) {}

  /** Whether the worker thread is running (it is started by a checkpoint and ended when idle). */
  get started(): boolean {
    return this.worker !== undefined;
  }

  /** Checkpoints on the worker; settles when done (never rejects: a failure is reported and SQLite's own checkpoints resume). */
  checkpoint(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.setAuto(0);
    clearTimeout(this.idle);
    this.running = this.runOnce().finally(() => {
      this.running = undefined;
      if (this.closed) return;
      if (this.again) {
        this.again = false;
        void this.checkpoint();
        return;
      }
      this.setAuto(LOOP_CHECKPOINT_PAGES);
      // At rest the process holds no idle thread; a burst of writes starts one again.
      this.idle = setTimeout(() => void this.end(), this.idleMs);
      this.idle.unref();
    });
    return this.running;
  }

  /**
   * Ends the worker once a running checkpoint is done, never during it: terminating a thread inside
   * a better-sqlite3 call that then throws (the store's files closed or removed under it) aborts the
   * whole process (V8's fatal "ToLocalChecked Empty MaybeLocal": the error cannot be made in a
   * terminating thread; seen in CI). A checkpoint's last step is a message, so it ends on its own.
   */
  close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.idle);
    return (this.running ?? Promise.resolve()).then(() => this.end());
  }

  /** Ends an idle worker (the next checkpoint starts another, unless closed). */
  private end(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    return worker ? worker.terminate().then(() => undefined) : Promise.resolve();
  }

  private runOnce(): Promise<void> {
    const worker = this.start();
    return new Promise<void>((resolve) => {
      const done = (message: { error?: string } | Error): void => {
        worker.off('message', done);
        worker.off('error', done);
        const error = message instanceof Error ? message.message : message.error;
        if (error !== undefined) this.onError(error);
        if (message instanceof Error) this.worker = undefined;
        resolve();
      };
      worker.on('message', done);
      worker.on('error', done);
      worker.postMessage('checkpoint');
    });
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file: this.file, driver } });
    // The process may exit while a checkpoint runs: SQLite finishes it on the next open.
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private setAuto(pages: number): void {
    if (this.main.open) this.main.pragma(`wal_autocheckpoint = ${pages}`);
  }
}
