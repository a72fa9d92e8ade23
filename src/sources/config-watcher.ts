import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { Debouncer } from '../runtime/debounce.js';
import { parseConfig, type LoadedConfig } from './config-file.js';

export interface ConfigWatcherEvents {
  onConfig(config: LoadedConfig): void;
  /** The edit was rejected; the last good config stays in force. */
  onInvalid(error: Error): void;
}

/**
 * Watches a config file and hands every valid edit to `onConfig`.
 * Editors save by rename as often as by write, so the directory is watched, not the inode,
 * and bursts of events are coalesced before the file is read.
 */
export class ConfigWatcher {
  private watcher: FSWatcher | undefined;
  private lastText: string | undefined;
  private readonly path: string;
  private readonly settled: Debouncer;

  constructor(
    path: string,
    private readonly events: ConfigWatcherEvents,
    settleMs = 50,
  ) {
    this.path = resolve(path);
    // No upper bound: the file is read once the editor has been quiet, never mid-save.
    this.settled = new Debouncer(settleMs, Infinity, () => void this.reload());
  }

  /** Reads the file once (throwing if it is invalid), then watches it. */
  async start(): Promise<LoadedConfig> {
    const text = await readFile(this.path, 'utf8');
    const config = parseConfig(text, this.path);
    this.lastText = text;
    const name = basename(this.path);
    this.watcher = watch(dirname(this.path), (_event, file) => {
      if (file === null || file === name) this.settled.trigger();
    });
    this.watcher.on('error', (err) => this.events.onInvalid(err));
    return config;
  }

  stop(): void {
    this.watcher?.close();
    this.settled.cancel();
  }

  private async reload(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      // Mid-rename the file can be briefly absent; the next event brings it back.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.events.onInvalid(err as Error);
      return;
    }
    if (text === this.lastText) return;
    try {
      const config = parseConfig(text, this.path);
      this.lastText = text;
      this.events.onConfig(config);
    } catch (err) {
      this.lastText = text;
      this.events.onInvalid(err as Error);
    }
  }
}
