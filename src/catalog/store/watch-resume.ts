import type { IKeyValue, IWatchResponse, Watcher } from 'etcd3';

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
 *
 * A (re)created watch whose answer says etcd stands below a revision already delivered is
 * reported (`behind`): etcd restored from an older snapshot without `--bump-revision`, or a member
 * lagging behind the one that served the events. From a revision in etcd's future, it would hold
 * back every event until its revision got there. The reader checks with a linearizable read and,
 * if etcd really went back, lists again (history-rewound.ts).
 */
export class WatchResume {
  /** The first revision not yet delivered (undefined: watching from the present, nothing delivered yet). */
  private next: bigint | undefined;

  constructor(
    private readonly w: Watcher,
    from: bigint | undefined,
    behind?: (delivered: bigint) => void,
  ) {
    this.next = from;
    const hold = (): void => {
      if (this.next !== undefined) w.request.start_revision = this.next.toString();
    };
    hold();
    w.on('put', (kv) => this.delivered(kv));
    w.on('delete', (kv) => this.delivered(kv));
    w.on('connected', (res: IWatchResponse) => {
      if (behind !== undefined && this.next !== undefined && BigInt(res.header.revision) + 1n < this.next) behind(this.next - 1n);
      hold();
    });
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
