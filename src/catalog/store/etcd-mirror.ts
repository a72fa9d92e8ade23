/**
 * An in-memory copy of everything under the store's etcd prefix, kept by one watch: reads are
 * served from it synchronously, and it keeps the last good state while etcd is unreachable (fail
 * static). It starts with a full list at revision R and watches from R + 1; if etcd compacted the
 * revisions the watch needed (a long outage), it lists again and reports what changed.
 */
import type { Etcd3, Namespace, Watcher } from 'etcd3';
import { historyRewound } from './history-rewound.js';
import { parseKey, SECTIONS, type Entry, type Section } from './etcd-layout.js';
import type { MirrorView } from './etcd-plans.js';
import { WatchResume } from './watch-resume.js';
import { reopenWhenStuck } from './watch-reopen.js';
import { needsMark, provenRevision } from './watch-revision.js';

interface KeyValue {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly mod_revision: string;
  readonly create_revision: string;
}

/** What one watch response (or a re-list) changed. */
export interface MirrorBatch {
  readonly revision: number;
  readonly puts: readonly { readonly section: Section; readonly name: string; readonly entry: Entry<unknown> }[];
  readonly deletes: readonly { readonly section: Section; readonly name: string }[];
  /** A re-list after the watch lost its place: puts and deletes are the differences found. */
  readonly resync: boolean;
  /**
   * The re-list followed a rewind of etcd's history (a restore): revisions are reused, so a
   * mod_revision no longer names one value; every entry is among the puts.
   */
  readonly rewound?: boolean;
}

export interface MirrorOptions {
  readonly onBatch: (batch: MirrorBatch) => void;
  /** The watch broke or was resumed (for health and logs); `rewound`: it broke because etcd's history went back. */
  readonly onWatchState?: (connected: boolean, reason?: string, rewound?: boolean) => void;
}

type Waiter = { readonly revision: number; readonly resolve: () => void };

/**
 * How long waiters wait on the watch alone before the mirror writes a mark: well past the time
 * etcd takes to send a committed write's events, so a write waiting on its own revision never
 * costs a second write.
 */
const MARK_AFTER_MS = 250;
/** The key a mark puts: under the prefix, so the watch sees it, and in no section, so no reader keeps it. */
const MARK_KEY = 'watch-mark';

export class EtcdMirror implements MirrorView {
  private readonly sections = new Map<Section, Map<string, Entry<unknown>>>(SECTIONS.map((s) => [s, new Map()]));
  private rev = 0;
  private watcher: Watcher | undefined;
  private waiters: Waiter[] = [];
  private stopped = false;
  /** The revision of the last mark written: once the watch delivers it, every earlier revision is applied. */
  private marked = 0;
  private markTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ns: Namespace & Pick<Etcd3, 'watch'>,
    private readonly options: MirrorOptions,
  ) {}

  /** The highest etcd revision the mirror reflects. */
  get revision(): number {
    return this.rev;
  }

  async start(): Promise<void> {
    await this.relist(false);
    await this.watch();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.markTimer);
    const w = this.watcher;
    this.watcher = undefined;
    await w?.cancel().catch(() => undefined);
  }

  get<T>(section: Section, name: string): Entry<T> | undefined {
    return this.sections.get(section)?.get(name) as Entry<T> | undefined;
  }

  list<T>(section: Section): [string, Entry<T>][] {
    const m = this.sections.get(section) as Map<string, Entry<T>>;
    return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  size(section: Section): number {
    return this.sections.get(section)?.size ?? 0;
  }

  /**
   * Resolves once the mirror reflects `revision`; false after `timeoutMs`. Also a revision with no
   * event under the prefix (another prefix's write, or a transaction that changed nothing): a mark
   * written after it proves the watch has passed it once the mark's event arrives.
   */
  waitFor(revision: number, timeoutMs: number): Promise<boolean> {
    if (this.rev >= revision) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter: Waiter = { revision, resolve: () => (clearTimeout(timer), resolve(true)) };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      this.waiters.push(waiter);
      this.scheduleMark();
    });
  }

  private scheduleMark(): void {
    if (this.markTimer !== undefined || this.stopped) return;
    this.markTimer = setTimeout(() => void this.mark(), MARK_AFTER_MS);
    this.markTimer.unref();
  }

  /**
   * A put under the prefix, after every revision waited on: the watch delivers events in revision
   * order, so applying the mark's event proves the mirror has applied all before it. etcd's own
   * proof, a progress notification on request, is answered on behalf of the whole stream (watch
   * ID -1), which the etcd3 client cannot route to a watcher.
   */
  private async mark(): Promise<void> {
    try {
      if (this.stopped || !needsMark(this.waiters.map((w) => w.revision), this.rev, this.marked)) return;
      const res = await this.ns.put(MARK_KEY).value('').exec();
      this.marked = Math.max(this.marked, Number(res.header.revision));
    } catch {
      // etcd unreachable: the waiters time out, as they would without a mark.
    } finally {
      this.markTimer = undefined;
    }
    if (needsMark(this.waiters.map((w) => w.revision), this.rev, this.marked)) this.scheduleMark();
  }

  private async watch(): Promise<void> {
    const watcher = await this.ns.watch().prefix('').startRevision(String(this.rev + 1)).create();
    if (this.stopped) {
      await watcher.cancel();
      return;
    }
    this.watcher = watcher;
    // From the revision after the last event applied, not the header's: a stream that broke while
    // etcd replayed a gap (its own, or since the listing) lost the rest of it, writes included.
    new WatchResume(watcher, BigInt(this.rev + 1), (seen) => void this.rewound(watcher, seen));
    watcher.on('data', (res) => this.applyEvents(res.events as { type: string; kv: KeyValue }[], Number(res.header.revision)));
    reopenWhenStuck(watcher);
    watcher.on('disconnected', (err) => this.options.onWatchState?.(false, err.message));
    watcher.on('connected', () => this.options.onWatchState?.(true));
    // Cancelled by etcd (e.g. the revision to resume from was compacted): list again, watch again.
    watcher.on('error', (err) => {
      this.options.onWatchState?.(false, err.message);
      this.watcher = undefined;
      void this.recover(false);
    });
  }

  /**
   * etcd answered the resumed watch from below a revision the mirror applied: if its history
   * really went back (a restore), the mirror's revisions and entries are of a history that is
   * gone, and the watch would wait in etcd's future. Start over from a listing.
   */
  private async rewound(watcher: Watcher, seen: bigint): Promise<void> {
    if (!(await historyRewound(this.ns, MARK_KEY, seen, () => this.watcher === watcher && !this.stopped))) return;
    if (this.watcher !== watcher || this.stopped) return;
    this.options.onWatchState?.(false, `etcd's history ends below revision ${seen}, which this replica applied (restored from an older snapshot?): listing again`, true);
    this.watcher = undefined;
    await watcher.cancel().catch(() => undefined);
    void this.recover(true);
  }

  /** Lists and watches again; `rewound`: etcd's history went back, the listing's revision replaces the mirror's. */
  private async recover(rewound: boolean): Promise<void> {
    for (let delay = 200; !this.stopped; delay = Math.min(delay * 2, 5_000)) {
      try {
        await this.relist(true, rewound);
        await this.watch();
        this.options.onWatchState?.(true);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, delay).unref());
      }
    }
  }

  private applyEvents(events: readonly { type: string; kv: KeyValue }[], headerRevision: number): void {
    const puts: MirrorBatch['puts'][number][] = [];
    const deletes: MirrorBatch['deletes'][number][] = [];
    for (const ev of events) {
      const at = parseKey(ev.kv.key.toString('utf8'));
      if (!at) continue;
      const section = this.sections.get(at.section) as Map<string, Entry<unknown>>;
      if (ev.type === 'Delete') {
        section.delete(at.name);
        deletes.push(at);
      } else {
        const entry = decode(ev.kv);
        if (!entry) continue;
        section.set(at.name, entry);
        puts.push({ ...at, entry });
      }
    }
    // Not the header's revision: during a replay it runs ahead of the events (watch-revision.ts).
    this.advance(provenRevision(events.map((e) => Number(e.kv.mod_revision)), headerRevision), { puts, deletes, resync: false });
  }

  /** Replaces the whole copy with a fresh list; with `report`, emits the differences. */
  private async relist(report: boolean, rewound = false): Promise<void> {
    const res = await this.ns.getAll().prefix('').exec();
    const fresh = new Map<Section, Map<string, Entry<unknown>>>(SECTIONS.map((s) => [s, new Map()]));
    for (const kv of res.kvs as unknown as KeyValue[]) {
      const at = parseKey(kv.key.toString('utf8'));
      const entry = at && decode(kv);
      if (at && entry) fresh.get(at.section)?.set(at.name, entry);
    }
    const puts: MirrorBatch['puts'][number][] = [];
    const deletes: MirrorBatch['deletes'][number][] = [];
    for (const section of SECTIONS) {
      const before = this.sections.get(section) as Map<string, Entry<unknown>>;
      const after = fresh.get(section) as Map<string, Entry<unknown>>;
      // After a rewind an equal mod_revision may hold another value: every entry is reported.
      for (const [name, entry] of after) if (rewound || before.get(name)?.mod !== entry.mod) puts.push({ section, name, entry });
      for (const name of before.keys()) if (!after.has(name)) deletes.push({ section, name });
      this.sections.set(section, after);
    }
    const revision = Number(res.header.revision);
    if (rewound) [this.rev, this.marked] = [revision, 0];
    if (report) this.advance(revision, { puts, deletes, resync: true, ...(rewound ? { rewound } : {}) });
    else this.rev = Math.max(this.rev, revision);
  }

  private advance(revision: number, batch: Omit<MirrorBatch, 'revision'>): void {
    this.rev = Math.max(this.rev, revision);
    if (batch.puts.length + batch.deletes.length > 0) this.options.onBatch({ revision: this.rev, ...batch });
    const ready = this.waiters.filter((w) => w.revision <= this.rev);
    this.waiters = this.waiters.filter((w) => w.revision > this.rev);
    for (const w of ready) w.resolve();
  }
}

/** A value that is not fulcrum's JSON is ignored (and left alone): the prefix is ours, but be robust. */
function decode(kv: KeyValue): Entry<unknown> | undefined {
  try {
    return { value: JSON.parse(kv.value.toString('utf8')) as unknown, mod: Number(kv.mod_revision), create: Number(kv.create_revision) };
  } catch {
    return undefined;
  }
}
