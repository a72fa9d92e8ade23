import type { IKeyValue, Watcher } from 'etcd3';

/**
 * Keeps an etcd watch resuming from the revision after the last event it delivered.
 *
 * The etcd3 client takes the revision to resume from out of each create response's header, and
 * each response's, which is etcd's current revision, not the one asked for. etcd sends a watch
 * that starts in the past its create response first and replays the events after it (up to
 * 100 ms later, 1,000 revisions at a time): when the stream broke again meanwhile, the events
 * not replayed yet (those between a listing and the watch's creation, or a resumed gap) were
 * skipped without an error. Registered after the client's own listeners, these put it back at
 * every (re)connection and response; events are counted as the client emits them, before that.
 */
export class WatchResume {
  /** The first revision not yet delivered (undefined: watching from the present, nothing delivered yet). */
  private next: bigint | undefined;

  constructor(
    private readonly w: Watcher,
    from: bigint | undefined,
  ) {
    this.next = from;
    const hold = (): void => {
      if (this.next !== undefined) w.request.start_revision = this.next.toString();
    };
    hold();
    w.on('put', (kv) => this.delivered(kv));
    w.on('delete', (kv) => this.delivered(kv));
    w.on('connected', hold);
    w.on('data', hold);
  }

  /** The revision the client would resume from after a broken stream. */
  resumesFrom(): string | undefined {
    const from = this.w.request.start_revision;
    return from === undefined ? undefined : String(from);
  }

  private delivered(kv: IKeyValue): void {
    const after = BigInt(kv.mod_revision) + 1n;
    if (this.next === undefined || after > this.next) this.next = after;
  }
}
