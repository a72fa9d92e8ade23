import type { MaybePromise, SeedResult } from '../catalog/store/index.js';
import type { Catalog } from '../catalog/types.js';
import type { Component } from '../runtime/lifecycle.js';
import { ConfigWatcher } from './config-watcher.js';

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

  constructor(
    private readonly path: string,
    private readonly options: ConfigSourceOptions,
  ) {
    this.watcher = new ConfigWatcher(path, { onConfig: (c) => this.reloaded(c.catalog), onInvalid: (err) => this.rejected(err) }, options.settleMs);
  }

  /** The watcher re-reads the file, so an edit made since the first read is not lost. */
  async start(): Promise<void> {
    await this.seed((await this.watcher.start()).catalog);
  }

  stop(): void {
    this.watcher.stop();
  }

  private reloaded(catalog: Catalog): void {
    this.options.onReload?.('ok');
    this.options.log.info({ file: this.path, clusters: catalog.clusters.length, listeners: catalog.listeners.length }, 'config reloaded');
    this.seeding = this.seeding.then(() =>
      this.seed(catalog).catch((err: unknown) =>
        this.options.log.error({ file: this.path, err }, 'config reload could not be stored; will apply at the next edit or restart'),
      ),
    );
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
