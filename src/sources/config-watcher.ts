import { watch, type FSWatcher } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, resolve, sep } from 'node:path';
import { Debouncer } from '../runtime/debounce.js';
import { ConfigError, holdsNoDocument, parseConfigOffThread, type LoadedConfig } from './config-file.js';

/** A read of the file already parsed (the process's start reads it before anything runs). */
export interface ConfigRead {
  readonly text: string;
  readonly config: LoadedConfig;
}

/** Text to a validated config, throwing ConfigError (parseConfigOffThread; tests give their own); `signal` aborts at stop. */
export type ConfigParser = (text: string, path: string, signal: AbortSignal) => Promise<LoadedConfig>;

const offThread: ConfigParser = (text, path, signal) => parseConfigOffThread(text, path, undefined, signal);

export interface ConfigWatcherEvents {
  onConfig(config: LoadedConfig): void;
  /** The edit was rejected; the last good config stays in force. */
  onInvalid(error: Error): void;
}

/**
 * Watches a config file and hands every valid edit to `onConfig`.
 * Editors save by rename as often as by write, so the directory is watched, not the inode,
 * and bursts of events are coalesced before the file is read. One reload runs at a time (a large
 * file's parse takes a while on its worker thread): an edit during one is read after it, so
 * edits are applied in the order they were made and the last one wins.
 */
export class ConfigWatcher {
  private watcher: FSWatcher | undefined;
  private lastText: string | undefined;
  private readonly path: string;
  private readonly settled: Debouncer;
  /** The reload in flight, and whether the file was touched again meanwhile. */
  private reloading: Promise<void> | undefined;
  private again = false;
  private readonly stopping = new AbortController();

  constructor(
    path: string,
    private readonly events: ConfigWatcherEvents,
    settleMs = 50,
    private readonly parse: ConfigParser = offThread,
  ) {
    this.path = resolve(path);
    // No upper bound: the file is read once the editor has been quiet, never mid-save.
    this.settled = new Debouncer(settleMs, Infinity, () => this.touched());
  }

  /**
   * Reads the file once (throwing if it is invalid), then watches it. `known`: a read already
   * parsed, reused while the file still holds its text: a 100,000-endpoint file takes seconds
   * and hundreds of MB of garbage to parse, and the process's start would otherwise pay twice.
   */
  async start(known?: ConfigRead): Promise<LoadedConfig> {
    const text = await readFile(this.path, 'utf8');
    const config = known?.text === text ? known.config : await this.parse(text, this.path, this.stopping.signal);
    this.lastText = text;
    const names = await watchedNames(this.path);
    this.watcher = watch(dirname(this.path), (_event, file) => {
      if (file === null || names.has(file)) this.settled.trigger();
    });
    this.watcher.on('error', (err) => this.events.onInvalid(err));
    // An edit saved while the file was read and parsed (seconds for a large one) came before the
    // watch and sent it no event: looked for once now, or it would wait for the next edit.
    const now = await readFile(this.path, 'utf8').catch(() => text);
    if (now !== text) this.settled.trigger();
    return config;
  }

  stop(): void {
    this.stopping.abort(new Error('config watcher stopped'));
    this.watcher?.close();
    this.settled.cancel();
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  /** The file settled after an edit: reload it, or once more after the reload in flight. */
  private touched(): void {
    if (this.reloading) {
      this.again = true;
      return;
    }
    // A throw from onConfig (never expected) is reported as the edit's failure, and nothing is left unhandled.
    this.reloading = this.reload()
      .catch((err: unknown) => this.events.onInvalid(err as Error))
      .catch(() => undefined)
      .finally(() => {
        this.reloading = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.touched();
        }
      });
  }

  private async reload(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      // Deleted: nothing to apply, and no reason to drop what is served (fail static); a save that
      // deletes then writes brings the next event. Said, so a file removed by mistake is noticed.
      const gone = (err as NodeJS.ErrnoException).code === 'ENOENT';
      if (!this.stopped) this.events.onInvalid(gone ? new Error(`${this.path}: the file is gone; the last good config keeps being served`) : (err as Error));
      return;
    }
    if (text === this.lastText) return;
    // A write in place truncates first: caught empty, or holding only its opening comments (a large
    // file lands in chunks), the file would parse as an empty catalog and delete every cluster it
    // defines until the rest lands. An empty catalog is said in the file.
    if (holdsNoDocument(text)) {
      if (!this.stopped) this.events.onInvalid(new Error(`${this.path}: the file is empty (being written?); the last good config keeps being served (write "clusters: []" to remove every cluster)`));
      return;
    }
    let config: LoadedConfig;
    try {
      config = await this.parse(text, this.path, this.stopping.signal);
    } catch (err) {
      // Only the document's own problems settle this text; a parse that failed for another reason
      // (its worker out of memory, stopped) is tried again at the next event.
      if (err instanceof ConfigError) this.lastText = text;
      if (!this.stopped) this.events.onInvalid(err as Error);
      return;
    }
    this.lastText = text;
    if (!this.stopped) this.events.onConfig(config);
  }
}

/**
 * The names in the file's directory whose change can change what the file reads: its own, and
 * for a relative symlink the first step of its target. A mounted ConfigMap is
 * `fulcrum.yaml → ..data/fulcrum.yaml`, and the kubelet applies an edit by swapping the `..data`
 * symlink: the file's own name sees no event then.
 */
async function watchedNames(path: string): Promise<ReadonlySet<string>> {
  const names = new Set([basename(path)]);
  const target = await readlink(path).catch(() => undefined);
  const first = target !== undefined && !isAbsolute(target) ? target.split(sep)[0] : undefined;
  if (first) names.add(first);
  return names;
}
