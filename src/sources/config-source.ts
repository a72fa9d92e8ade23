import type { MaybePromise, SeedResult } from '../catalog/store/index.js';
import type { Catalog } from '../catalog/types.js';
import type { Component } from '../runtime/lifecycle.js';
import type { LoadedConfig } from './config-file.js';
import { changedKeys, changeSummary, diffCatalogs } from './config-diff.js';
import { ConfigWatcher, type ConfigRead } from './config-watcher.js';

export interface ConfigSourceOptions {
  /** Where the file's clusters, listeners and node groups go (the store's `file` rows). */
  readonly store: { seedFromConfig(catalog: Catalog, opts: { readonly actor: string }): MaybePromise<SeedResult> };
  readonly log: {
    info(obj: object, msg: string): void;
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
  };
  /** Each reload's outcome (metrics). */
  readonly onReload?: (outcome: 'ok' | 'rejected') => void;
  /** Quiet time before an edited file is read (default the watcher's). */
  readonly settleMs?: number;
  /** The read the process started with (its `server:` and `kubernetes:` sections are the ones running); absent: the first read at start. */
  readonly started?: ConfigRead;
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
  /** The catalog last applied, to say what a reload changed. */
  private applied: Catalog | undefined;

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
    this.applied = current.catalog;
    if (current !== this.running) this.warnRestartNeeded(current);
    await this.seed(current.catalog);
  }

  stop(): void {
    this.watcher.stop();
  }

  private reloaded(config: LoadedConfig): void {
    const { catalog } = config;
    this.options.onReload?.('ok');
    const changes = this.applied ? changeSummary(diffCatalogs(this.applied, catalog)) : {};
    this.applied = catalog;
    const counts = { clusters: catalog.clusters.length, listeners: catalog.listeners.length };
    const msg = Object.keys(changes).length > 0 ? 'config reloaded' : 'config reloaded; no cluster, listener or node group changed';
    this.options.log.info({ file: this.path, ...counts, changes }, msg);
    this.warnRestartNeeded(config);
    this.seeding = this.seeding.then(() =>
      this.seed(catalog).catch((err: unknown) =>
        this.options.log.error({ file: this.path, err }, 'config reload could not be stored; will apply at the next edit or restart'),
      ),
    );
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

  private async seed(catalog: Catalog): Promise<void> {
    const result = await this.options.store.seedFromConfig(catalog, { actor: 'config-file' });
    for (const c of result.conflicts) {
      this.options.log.warn({ kind: c.kind, name: c.name, owner: c.owner }, 'config file defines a name another source owns; keeping that source\'s version');
    }
  }
}
