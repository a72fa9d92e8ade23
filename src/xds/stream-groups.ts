import { formGroupKey, type ClientForm } from './client-form.js';
import { DEFAULT_GROUP } from './resource-set.js';

/** What the server needs of a stream to wake it when its snapshot changed. */
export interface CacheWatcher {
  onCacheChange(): void;
}

/** The streams of one node.cluster served one form. */
interface Entry<S> {
  readonly nodeCluster: string;
  readonly form: ClientForm;
  readonly streams: Set<S>;
}

/**
 * Streams indexed by their proxy's node.cluster and client form, so a cache change wakes only the
 * streams whose snapshot changed. A stream sees its node.cluster's group if the cache has one, else
 * the default group, in its form when the cache has it (XdsCache.snapshotFor); a group that appears
 * or disappears is reported as changed under its own key, which reaches the streams that move into
 * or out of it.
 */
export class StreamGroups<S extends CacheWatcher> {
  private readonly byKey = new Map<string, Entry<S>>();
  private readonly keyOf = new Map<S, string>();

  /** Indexes a stream once its first request named the proxy; later calls are no-ops. */
  add(stream: S, nodeCluster: string, form: ClientForm = 'envoy'): void {
    if (this.keyOf.has(stream)) return;
    const key = formGroupKey(nodeCluster, form);
    this.keyOf.set(stream, key);
    let entry = this.byKey.get(key);
    if (!entry) {
      entry = { nodeCluster, form, streams: new Set() };
      this.byKey.set(key, entry);
    }
    entry.streams.add(stream);
  }

  has(stream: S): boolean {
    return this.keyOf.has(stream);
  }

  delete(stream: S): void {
    const key = this.keyOf.get(stream);
    if (key === undefined) return;
    this.keyOf.delete(stream);
    const entry = this.byKey.get(key);
    entry?.streams.delete(stream);
    if (entry?.streams.size === 0) this.byKey.delete(key);
  }

  /** The streams whose snapshot is among `changed`; `hasOwnGroup` says which node clusters have a group. */
  affected(changed: ReadonlySet<string>, hasOwnGroup: (nodeCluster: string) => boolean): S[] {
    const out: S[] = [];
    for (const { nodeCluster, form, streams } of this.byKey.values()) {
      const group = hasOwnGroup(nodeCluster) ? nodeCluster : DEFAULT_GROUP;
      const hit = changed.has(nodeCluster) || changed.has(group) || (form !== 'envoy' && (changed.has(formGroupKey(nodeCluster, form)) || changed.has(formGroupKey(group, form))));
      if (hit) out.push(...streams);
    }
    return out;
  }
}
