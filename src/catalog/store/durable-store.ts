import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Component } from '../../runtime/lifecycle.js';
import type { CatalogStore, StoreHealth } from './catalog-store.js';
import { DEFAULT_STORE_CONFIG, type StoreConfig } from './store-config.js';
import { openStore, type StoreOptions } from './store.js';
import { WriteLane } from './write-lane.js';
import type { WatchState } from './etcd-store.js';

export interface DurableStoreOptions extends StoreOptions {
  /** Which store to open (the config file's `store:`); default SQLite in the data directory. */
  readonly config?: StoreConfig;
  /** etcd only: writes refused / resumed. */
  readonly onHealth?: (health: StoreHealth) => void;
  /** etcd only: the store's watch lost, rewound (etcd restored) or back. */
  readonly onWatch?: (state: WatchState, reason?: string) => void;
}

/**
 * The store as a component: starting opens the configured kind. SQLite lives in the data
 * directory or, when none is given (tests, embedding), in a temporary one that stopping removes;
 * etcd needs no local state (a replica on an empty disk rebuilds everything from etcd).
 */
export class DurableStore implements Component {
  readonly name = 'store';
  private opened: { store: CatalogStore; dir: string; temporary: boolean } | undefined;

  constructor(
    private readonly dataDir: string | undefined,
    private readonly log: { warn(obj: object, msg: string): void },
    private readonly options: DurableStoreOptions = {},
  ) {}

  get store(): CatalogStore {
    return this.open().store;
  }

  get dir(): string {
    return this.open().dir;
  }

  async start(): Promise<void> {
    const { config = DEFAULT_STORE_CONFIG, onHealth, onWatch, ...options } = this.options;
    if (config.kind === 'etcd') {
      // Loaded only for etcd: etcd3 brings its own gRPC copy and parses its .proto at import.
      const { openEtcdStore } = await import('./etcd-store.js');
      const store = await openEtcdStore(config.etcd, { ...options, ...(onHealth ? { onHealth } : {}), ...(onWatch ? { onWatch } : {}) });
      this.opened = { store, dir: this.dataDir ?? '', temporary: false };
      return;
    }
    const temporary = this.dataDir === undefined;
    const dir = this.dataDir ?? (await mkdtemp(join(tmpdir(), 'fulcrum-data-')));
    if (temporary) this.log.warn({ dir }, 'no data directory given: state is kept in a temporary directory and lost at stop');
    try {
      this.opened = { store: new WriteLane(openStore(dir, options)), dir, temporary };
    } catch (err) {
      if (temporary) await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  async stop(): Promise<void> {
    const opened = this.opened;
    if (!opened) return;
    await opened.store.close();
    if (opened.temporary) await rm(opened.dir, { recursive: true, force: true });
  }

  private open(): { store: CatalogStore; dir: string } {
    if (!this.opened) throw new Error('the store is not open: start it first');
    return this.opened;
  }
}
