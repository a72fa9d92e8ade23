import type { Change, ListenerSuccessor, MaybePromise, ResourceKind, SeedConflict, SeedOptions, SeedResult, StoreChange, Successor } from '../catalog/store/index.js';
import type { Catalog } from '../catalog/types.js';
import type { Component } from '../runtime/lifecycle.js';
import type { LoadedConfig } from './config-file.js';
import { Slicer } from '../runtime/slicer.js';
import { appliedCatalog, changedKeys, changeSummary, compareCatalogs, type AppliedCatalog } from './config-diff.js';
import { ConfigWatcher, type ConfigRead } from './config-watcher.js';

/**
 * A reload's outcome: `ok` once the store took it, `store_failed` when the store refused it (once
 * per edit, however often it is retried; `ok` follows if a retry stores it), `rejected` when the
 * file is invalid.
 */
export type ReloadOutcome = 'ok' | 'store_failed' | 'rejected';

/** Whom the audit log names for what the file writes. */
const FILE_ACTOR = 'config-file';

export interface ConfigSourceOptions {
  /** Where the file's clusters, listeners and node groups go (the store's `file` rows). */
  readonly store: {
    seedFromConfig(catalog: Catalog, opts: SeedOptions): MaybePromise<SeedResult>;
    /** Committed changes: a deleted name the file defines but another source owned goes to the file. */
    onChange?(listener: (change: StoreChange) => void): () => void;
  };
  readonly log: {
    info(obj: object, msg: string): void;
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
  };
  /** Each reload's outcome (metrics). */
  readonly onReload?: (outcome: ReloadOutcome) => void;
  /** Quiet time before an edited file is read (default the watcher's). */
  readonly settleMs?: number;
  /** Delay before seeding an edit again that the store refused (default 1 s, doubling up to 30 s). */
  readonly retryMs?: { readonly initial: number; readonly max: number };
  /** The read the process started with (its `server:` and `kubernetes:` sections are the ones running); absent: the first read at start. */
  readonly started?: ConfigRead;
}

/**
 * Whether a committed change frees what a seed conflict was refused: the name, deleted by its
 * owner; or, for a file listener refused a socket (SeedConflict.boundBy), the listener binding it,
 * deleted or changed (it may have moved to another port).
 */
function frees(x: Change, c: SeedConflict): boolean {
  if (c.boundBy !== undefined) return x.kind === 'listener' && x.name === c.boundBy && x.action !== 'create';
  return x.action === 'delete' && x.kind === c.kind && x.name === c.name;
}

/**
 * The config file as a source of desired state: starting reads it (failing on an invalid file)
 * and seeds the store; every valid edit seeds it again, an invalid one is logged and ignored.
 */
export class ConfigSource implements Component {
  readonly name = 'config-file';
  private readonly watcher: ConfigWatcher;
  /** Reloads seed one after another, in file order, even when the store answers asynchronously. */
  private seeding: Promise<void> = Promise.resolve();
  /** The config read at start: its `server:` and `kubernetes:` sections are the ones running. */
  private running: LoadedConfig | undefined;
  /** The catalog last applied, to say what a reload changed (and keep what it did not change: config-diff.ts). */
  private applied: AppliedCatalog | undefined;
  private stopped = false;
  /** Valid edits so far: a seed being retried gives way to a newer edit (which seeds the whole file). */
  private edits = 0;
  /** Ends the wait before a retry at once (a newer edit, or stop). */
  private wake: (() => void) | undefined;
  /** The catalog last seeded, and the names in it another source owned then. */
  private seeded: { readonly catalog: Catalog; readonly conflicts: readonly SeedConflict[] } | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly path: string,
    private readonly options: ConfigSourceOptions,
  ) {
    this.watcher = new ConfigWatcher(path, { onConfig: (c) => this.reloaded(c), onInvalid: (err) => this.rejected(err) }, options.settleMs);
  }

  /**
   * The watcher re-reads the file, so an edit made since the process's read is not lost (its
   * catalog is seeded; its `server:` or `kubernetes:` changes are warned about, as at a reload).
   */
  async start(): Promise<void> {
    const started = this.options.started;
    const current = await this.watcher.start(started);
    this.running = started?.config ?? current;
    if (current !== this.running) this.warnRestartNeeded(current);
    // Before anything is served (the source starts first): the store may write it in one go.
    const first = this.seed(current.catalog, true);
    // An edit made meanwhile is applied after this.
    this.seeding = first.then(() => this.keepApplied(current.catalog)).catch(() => undefined);
    this.unsubscribe = this.options.store.onChange?.((change) => this.changed(change));
    try {
      await first;
    } catch (err) {
      // A component whose start fails is not stopped by the lifecycle: the watch would keep the process alive.
      this.stop();
      throw err;
    }
  }

  /** The objects just seeded, kept as applied (a reload hands over those it did not change): their texts made in slices, after the start. */
  private async keepApplied(catalog: Catalog): Promise<void> {
    this.applied = await appliedCatalog(catalog, new Slicer().turns);
  }

  stop(): void {
    this.stopped = true;
    this.watcher.stop();
    this.wake?.();
    this.unsubscribe?.();
  }

  /**
   * A name the file defines was deleted by the source that owned it: the file's definition is
   * seeded now (README: "delete it through the API to hand the name to the file"), not at the
   * next edit or restart.
   */
  private changed(change: StoreChange): void {
    const seeded = this.seeded;
    if (!seeded || this.stopped) return;
    const freed = seeded.conflicts.filter((c) => change.changes.some((x) => frees(x, c)));
    if (freed.length === 0) return;
    this.options.log.info({ file: this.path, names: freed.map((c) => `${c.kind} ${c.name}`) }, "config file takes over names their owner deleted");
    // What is seeded last when its turn comes: an edit queued before it must not be undone.
    this.seeding = this.seeding.then(() => (this.seeded ? this.seedUntilStored(this.seeded.catalog, this.edits) : undefined)).catch(() => undefined);
  }

  /**
   * The file's definition of this cluster while another source (the API) owns the name: the
   * owner's delete writes it in the same transaction (DeleteClusterOptions.successor), so no
   * state without the cluster is ever committed, and the file's own routes to it do not dangle.
   * (changed() seeds the file again after, which finds it written and refreshes the conflicts.)
   */
  takeoverOf(name: string): Successor | undefined {
    const cluster = this.ownedElsewhere('cluster', name)?.clusters.find((c) => c.name === name);
    return cluster && { cluster, actor: FILE_ACTOR };
  }

  /** The file's definition of this listener while another source owns the name: as takeoverOf, for DeleteListenerOptions.successor. */
  listenerTakeoverOf(name: string): ListenerSuccessor | undefined {
    const listener = this.ownedElsewhere('listener', name)?.listeners.find((l) => l.name === name);
    return listener && { listener, actor: FILE_ACTOR };
  }

  /** The catalog last seeded, if it defines `name` while another source owned the name then (not a socket's conflict: SeedConflict.boundBy). */
  private ownedElsewhere(kind: ResourceKind, name: string): Catalog | undefined {
    const seeded = this.seeded;
    return seeded?.conflicts.some((c) => c.kind === kind && c.name === name && c.boundBy === undefined) ? seeded.catalog : undefined;
  }

  private reloaded(config: LoadedConfig): void {
    const edit = ++this.edits;
    this.wake?.();
    this.seeding = this.seeding.then(() =>
      this.apply(config, edit).catch((err: unknown) =>
        this.options.log.error({ file: this.path, err }, 'config reload could not be stored; will apply at the next edit or restart'),
      ),
    );
  }

  /**
   * A valid edit: compared with the catalog applied before (for the log line), then seeded, each
   * in turns of its own: at 20k endpoints the parse's copy, the validation, the comparison and the
   * seed held every request (xDS ones too) ~140 ms as one task.
   */
  private async apply(config: LoadedConfig, edit: number): Promise<void> {
    const next = config.catalog;
    const slicer = new Slicer();
    await slicer.step();
    if (this.stopped) return;
    const { changes: compared, applied } = await compareCatalogs(this.applied, next, slicer.turns);
    this.applied = applied;
    const changes = changeSummary(compared);
    const counts = { clusters: next.clusters.length, listeners: next.listeners.length };
    const msg = Object.keys(changes).length > 0 ? 'config reloaded' : 'config reloaded; no cluster, listener or node group changed';
    this.options.log.info({ file: this.path, ...counts, changes }, msg);
    this.warnRestartNeeded(config);
    await slicer.step();
    await this.seedUntilStored(applied.catalog, edit, true);
  }

  /**
   * Seeds an edit, again with backoff while the store refuses it (etcd without quorum answers
   * 503 for a while): the file is edited once, and an edit seeded only at the next edit or
   * restart was an edit lost meanwhile. Until it is stored, a newer edit takes its place, or stop.
   * `reload`: the seed is an edit's, counted (onReload) when stored and at its first refusal only.
   */
  private async seedUntilStored(catalog: Catalog, edit: number, reload = false): Promise<void> {
    const { initial, max } = this.options.retryMs ?? { initial: 1_000, max: 30_000 };
    let refused = false;
    for (let delay = initial; !this.stopped && edit === this.edits; delay = Math.min(max, delay * 2)) {
      try {
        await this.seed(catalog);
        if (reload) this.options.onReload?.('ok');
        return;
      } catch (err) {
        if (reload && !refused) this.options.onReload?.('store_failed');
        refused = true;
        if (this.stopped || edit !== this.edits) return;
        this.options.log.warn({ file: this.path, err, retryInMs: delay }, 'config reload could not be stored yet; retrying');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
      }
    }
  }

  /**
   * The `server:` section (ports, addresses, TLS, engine) and `kubernetes:` are read once at start.
   * The warning repeats on every reload until a restart applies them, as the file stays edited.
   */
  private warnRestartNeeded(next: LoadedConfig): void {
    const running = this.running;
    if (!running) return;
    const server = changedKeys(running.server, next.server).map((k) => `server.${k}`);
    const kubernetes = JSON.stringify(running.kubernetes) !== JSON.stringify(next.kubernetes) ? ['kubernetes'] : [];
    const keys = [...server, ...kubernetes];
    if (keys.length > 0) this.options.log.warn({ file: this.path, keys }, 'config edits that take effect only after a restart; still running with the settings read at start');
  }

  private rejected(err: Error): void {
    this.options.onReload?.('rejected');
    this.options.log.error({ file: this.path, error: err.message }, 'config edit rejected; serving the last good config');
  }

  private async seed(catalog: Catalog, atStart = false): Promise<void> {
    const result = await this.options.store.seedFromConfig(catalog, { actor: FILE_ACTOR, atStart });
    this.seeded = { catalog, conflicts: result.conflicts };
    for (const c of result.conflicts) {
      if (c.boundBy !== undefined) this.options.log.warn({ kind: c.kind, name: c.name, owner: c.owner, boundBy: c.boundBy }, 'config file listener binds the socket of a listener another source owns (Envoy would refuse both); not applied');
      else this.options.log.warn({ kind: c.kind, name: c.name, owner: c.owner }, 'config file defines a name another source owns; keeping that source\'s version');
    }
  }
}
