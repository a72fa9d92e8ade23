/**
 * Keeps the audit log to its newest `keepLast` entries: every `everyMs` (and once at start), the
 * oldest beyond are deleted, `batch` at a time with a turn of the event loop between batches, so a
 * first prune of a long log does not hold requests. The log grew without bound before: ~60 MiB an
 * hour of SQLite file under a controller writing 20 times a second (bench/soak.ts), and on etcd
 * every replica holds it in memory.
 */
import type { Logger } from 'pino';
import type { Component } from '../runtime/lifecycle.js';
import { nextTurn } from '../runtime/next-turn.js';

export interface AuditPruner {
  /** Deletes all but the newest `keepLast` entries, at most `maxRows` of the oldest; how many it deleted. */
  pruneAudit(keepLast: number, maxRows: number): number | Promise<number>;
}

export interface AuditRetentionOptions {
  readonly store: AuditPruner;
  /** Entries kept; 0 keeps all (the component then does nothing). */
  readonly keepLast: number;
  readonly log: Logger;
  readonly everyMs?: number;
  readonly batch?: number;
  readonly turn?: () => Promise<void>;
}

const DEFAULT_EVERY_MS = 60_000;
/** Rows per delete: a few milliseconds of SQLite, a few etcd transactions. */
const DEFAULT_BATCH = 2_000;

export class AuditRetention implements Component {
  readonly name = 'audit-retention';
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private stopped = false;
  private failing = false;

  constructor(private readonly o: AuditRetentionOptions) {}

  start(): void {
    if (this.o.keepLast <= 0) return;
    this.stopped = false;
    void this.run();
    this.timer = setInterval(() => void this.run(), this.o.everyMs ?? DEFAULT_EVERY_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One pass (joined if one is running): the entries deleted. */
  run(): Promise<number> {
    this.running ??= this.prune().finally(() => (this.running = undefined));
    return this.running;
  }

  private async prune(): Promise<number> {
    const batch = this.o.batch ?? DEFAULT_BATCH;
    let deleted = 0;
    try {
      for (;;) {
        const n = await this.o.store.pruneAudit(this.o.keepLast, batch);
        deleted += n;
        if (n < batch || this.stopped) break;
        await (this.o.turn ?? nextTurn)();
      }
      if (this.failing) this.o.log.info('audit log pruned again');
      this.failing = false;
    } catch (err) {
      // Soft: the next pass retries (an unreachable etcd is reported by the store's health).
      if (!this.failing) this.o.log.warn({ err }, 'audit log not pruned');
      this.failing = true;
    }
    if (deleted > 0) this.o.log.debug({ deleted, keepLast: this.o.keepLast }, 'audit log pruned');
    return deleted;
  }
}
