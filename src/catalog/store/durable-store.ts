import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Component } from '../../runtime/lifecycle.js';
import { openStore, type Store, type StoreOptions } from './store.js';

/**
 * The store as a component: starting opens it in its data directory, or, when none is given
 * (tests, embedding), in a temporary one that stopping removes.
 */
export class DurableStore implements Component {
  readonly name = 'store';
  private opened: { store: Store; dir: string; temporary: boolean } | undefined;

  constructor(
    private readonly dataDir: string | undefined,
    private readonly log: { warn(obj: object, msg: string): void },
    private readonly options: StoreOptions = {},
  ) {}

  get store(): Store {
    return this.open().store;
  }

  get dir(): string {
    return this.open().dir;
  }

  async start(): Promise<void> {
    const temporary = this.dataDir === undefined;
    const dir = this.dataDir ?? (await mkdtemp(join(tmpdir(), 'fulcrum-data-')));
    if (temporary) this.log.warn({ dir }, 'no data directory given: state is kept in a temporary directory and lost at stop');
    try {
      this.opened = { store: openStore(dir, this.options), dir, temporary };
    } catch (err) {
      if (temporary) await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  async stop(): Promise<void> {
    const opened = this.opened;
    if (!opened) return;
    opened.store.close();
    if (opened.temporary) await rm(opened.dir, { recursive: true, force: true });
  }

  private open(): { store: Store; dir: string } {
    if (!this.opened) throw new Error('the store is not open: start it first');
    return this.opened;
  }
}
