/**
 * The WAL checkpoint after a big sliced write, run on a worker thread (SQLite store).
 *
 * A 20k-endpoint cluster write leaves ~20 MB in the WAL (the audit record alone is ~9 MB).
 * SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, on whichever
 * connection commits: it copies those pages into the database file and fsyncs it, with the event
 * loop held (~85 ms at load 10 in the profile of the admin-100k bench). Here the writer connection
 * does not checkpoint on its own; a worker thread with its own connection runs a PASSIVE
 * checkpoint (it neither blocks nor waits for readers and writers). While it is pending, the
 * store's own connection does not checkpoint either (else the first write queued behind the big
 * one would do the whole copy); afterwards it does again as usual, and finds the work done.
 *
 * The checkpoint is not needed for durability: a commit is durable once the WAL is fsynced.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

/** SQLite's default automatic checkpoint threshold (pages), restored afterwards. */
export const AUTO_CHECKPOINT_PAGES = 1000;

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

export class WalCheckpointer {
  private worker: Worker | undefined;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly file: string,
    /** The store's own connection: no automatic checkpoint on it while one is pending here. */
    private readonly main: Database.Database,
    private readonly onError: (message: string) => void,
  ) {}

  /** Checkpoints on the worker; settles when done (never rejects: a failure is reported and SQLite's own checkpoints resume). */
  checkpoint(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.setAuto(0);
    this.running = this.runOnce().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        void this.checkpoint();
      } else this.setAuto(AUTO_CHECKPOINT_PAGES);
    });
    return this.running;
  }

  close(): Promise<void> {
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
