/**
 * One list/watch informer: a cache of one kind's objects, kept current by a list and then a watch
 * from the list's resourceVersion.
 * - the watch asks for bookmarks and a jittered server-side timeout; a client-side watchdog aborts
 *   a watch silent for longer than that (half-open connections);
 * - a watch that ends is resumed from the last resourceVersion (events and bookmarks advance it);
 * - 410 Gone (as the answer, or as an ERROR event) relists: objects missing from the new list are
 *   dropped from the cache;
 * - any other failure (refused, 5xx, 429, a broken or silent connection, a list that hangs past
 *   `listTimeoutMs`) stops the loop and is reported to `onError`; the owner restarts it with
 *   backoff (`start()` again), resuming from the resourceVersion it had.
 * After `stop()` nothing is reported and any request in flight is aborted.
 */
import { isDeepStrictEqual } from 'node:util';
import { KubeApiError, type KubeClient, type KubeObject, type WatchEvent } from './api-client.js';

export interface InformerOptions {
  readonly client: KubeClient;
  readonly kind: string;
  /** The collection's path, e.g. /api/v1/services or /api/v1/namespaces/NS/services. */
  readonly path: string;
  readonly labelSelector?: string;
  readonly listTimeoutMs: number;
  /** Server-side watch timeout in seconds (jittered +0..10% per watch). */
  readonly watchTimeoutSeconds: number;
  /** The watchdog aborts a watch silent for its timeout plus this (default 30 s). */
  readonly watchdogGraceMs?: number;
  /** A list was applied to the cache (`items`: how many objects it had). */
  readonly onList: (items: number) => void;
  /** The cache changed through a watch event. */
  readonly onChange: () => void;
  readonly onError: (err: unknown) => void;
  /** About to list or watch (for debug logs). */
  readonly onConnect?: (resourceVersion: string) => void;
  /** What of an object is cached (default withoutBookkeeping): a kind read for a few fields keeps only those. */
  readonly cached?: (o: KubeObject) => KubeObject;
}

/** A watch that ended this soon without an event is a failure (backoff), not a loop at full speed. */
const MIN_QUIET_WATCH_MS = 1_000;

const keyOf = (o: KubeObject): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * The object as cached: without `metadata.managedFields` and kubectl's last-applied annotation,
 * the API server's bookkeeping that nothing here reads and that is often larger than the object
 * (a copy of every field per manager; the whole object again).
 */
export function withoutBookkeeping<T extends KubeObject>(o: T): T {
  const meta = o.metadata as (Record<string, unknown> & { annotations?: Record<string, string> | null }) | null | undefined;
  if (!meta || (meta.managedFields === undefined && meta.annotations?.[LAST_APPLIED] === undefined)) return o;
  const { managedFields: _managed, ...kept } = meta;
  if (kept.annotations?.[LAST_APPLIED] !== undefined) {
    const { [LAST_APPLIED]: _applied, ...annotations } = kept.annotations;
    kept.annotations = annotations;
  }
  return { ...o, metadata: kept };
}

export class Informer {
  private objects = new Map<string, KubeObject>();
  private resourceVersion = '';
  private running = false;
  private stopped = false;
  private current: AbortController | undefined;

  private readonly cached: (o: KubeObject) => KubeObject;

  constructor(private readonly options: InformerOptions) {
    this.cached = options.cached ?? withoutBookkeeping;
  }

  list(): KubeObject[] {
    return [...this.objects.values()];
  }

  latestResourceVersion(): string {
    return this.resourceVersion;
  }

  /** Run the list/watch loop until it fails (reported to onError) or `stop()`. */
  start(): void {
    if (this.stopped || this.running) return;
    this.running = true;
    void this.loop().then(
      () => (this.running = false),
      (err: unknown) => {
        this.running = false;
        if (!this.stopped) this.options.onError(err);
      },
    );
  }

  stop(): void {
    this.stopped = true;
    this.current?.abort(new Error('stopped'));
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.options.onConnect?.(this.resourceVersion);
      if (this.resourceVersion === '') await this.relist();
      if (this.stopped) return;
      const gone = await this.watchOnce();
      if (gone) this.resourceVersion = '';
    }
  }

  private async relist(): Promise<void> {
    const { client, path, labelSelector, listTimeoutMs, kind } = this.options;
    const controller = this.controller();
    const timer = setTimeout(() => controller.abort(new Error(`list ${kind} timed out after ${listTimeoutMs} ms`)), listTimeoutMs);
    try {
      const result = await client.list(path, { labelSelector }, controller.signal);
      if (this.stopped) return;
      this.objects = new Map(result.items.map((o) => [keyOf(o), this.cached(o)]));
      this.resourceVersion = result.resourceVersion;
      this.options.onList(result.items.length);
    } finally {
      clearTimeout(timer);
    }
  }

  /** One watch from the current resourceVersion; true when it ended with 410 Gone (relist). */
  private async watchOnce(): Promise<boolean> {
    const { client, path, labelSelector } = this.options;
    const timeoutSeconds = Math.round(this.options.watchTimeoutSeconds * (1 + Math.random() * 0.1));
    const controller = this.controller();
    let watchdog: NodeJS.Timeout | undefined;
    const silentMs = timeoutSeconds * 1000 + (this.options.watchdogGraceMs ?? 30_000);
    const arm = (): void => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => controller.abort(new Error(`watch ${this.options.kind}: silent for ${silentMs} ms`)), silentMs);
      watchdog.unref();
    };
    let gone = false;
    let events = 0;
    const started = Date.now();
    arm();
    const query = { labelSelector, resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds };
    try {
      await client.watch(path, query, (event) => {
        if (this.stopped) return;
        arm();
        events++;
        if (!this.apply(event)) return;
        gone = true;
        controller.abort(new Error('410 Gone'));
      }, controller.signal);
    } catch (err) {
      if (gone || (err instanceof KubeApiError && err.statusCode === 410)) return true;
      throw err;
    } finally {
      clearTimeout(watchdog);
    }
    if (!gone && events === 0 && Date.now() - started < MIN_QUIET_WATCH_MS && !this.stopped) {
      throw new Error(`watch ${this.options.kind}: ended at once without an event`);
    }
    return gone;
  }

  /** Apply one event to the cache; true for 410 Gone. */
  private apply(event: WatchEvent): boolean {
    const { type, object } = event;
    if (type === 'ERROR') {
      if (object.code === 410) return true;
      throw new KubeApiError(`watch ${this.options.kind}: ${object.message ?? 'error event'}`, object.code ?? 0);
    }
    let changed = type !== 'BOOKMARK';
    if (type === 'ADDED' || type === 'MODIFIED') changed = this.put(object);
    else if (type === 'DELETED') this.objects.delete(keyOf(object));
    const rv = object.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    if (changed) this.options.onChange();
    return false;
  }

  /**
   * Caches `object` as `cached` keeps it; false when that is what was cached already: a Node's
   * status update every few minutes (thousands of Nodes: many a second) changes nothing read.
   */
  private put(object: KubeObject): boolean {
    const key = keyOf(object);
    const next = this.cached(object);
    const before = this.objects.get(key);
    this.objects.set(key, next);
    return this.options.cached === undefined || before === undefined || !isDeepStrictEqual(before, next);
  }

  private controller(): AbortController {
    this.current = new AbortController();
    return this.current;
  }
}
