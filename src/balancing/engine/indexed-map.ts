/**
 * Read-only maps over a fixed order of keys (a cluster's endpoints; the xDS resources of a type):
 * keys are an array, lookups go through a shared key → position index, and values come from
 * position.
 * A tick publishes its weights, health and explanations this way instead of building a Map of
 * 10,000 (or 100,000) entries per cluster per tick: one array per tick, and the key index is
 * shared by every tick until the cluster's endpoints change (setCluster makes a new one).
 */
export abstract class IndexedMap<V> implements ReadonlyMap<string, V> {
  constructor(
    /** The keys in order (never mutated: a cluster's endpoints until setCluster replaces them; a type's resource names). */
    readonly keyList: readonly string[],
    /** Key → position (shared with the cluster's state, or along a chain of withValues; never mutated). */
    readonly index: ReadonlyMap<string, number>,
  ) {}

  /** The value of the endpoint at position i. */
  protected abstract valueAt(i: number): V;

  get size(): number {
    return this.keyList.length;
  }

  has(key: string): boolean {
    return this.index.has(key);
  }

  get(key: string): V | undefined {
    const i = this.index.get(key);
    return i === undefined ? undefined : this.valueAt(i);
  }

  forEach(callback: (value: V, key: string, map: ReadonlyMap<string, V>) => void, thisArg?: unknown): void {
    for (let i = 0; i < this.keyList.length; i++) callback.call(thisArg, this.valueAt(i), this.keyList[i] as string, this);
  }

  *entries(): MapIterator<[string, V]> {
    for (let i = 0; i < this.keyList.length; i++) yield [this.keyList[i] as string, this.valueAt(i)];
  }

  *keys(): MapIterator<string> {
    yield* this.keyList;
  }

  *values(): MapIterator<V> {
    for (let i = 0; i < this.keyList.length; i++) yield this.valueAt(i);
  }

  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }
}

/** An IndexedMap whose values are an array aligned with the keys (e.g. a tick's integer weights). */
export class ArrayMap<V> extends IndexedMap<V> {
  constructor(
    keyList: readonly string[],
    index: ReadonlyMap<string, number>,
    /** Values in cluster order (never mutated after construction). */
    readonly valueList: readonly V[],
  ) {
    super(keyList, index);
  }

  protected valueAt(i: number): V {
    return this.valueList[i] as V;
  }
}

/**
 * `base` with the values of some of its keys replaced, as an ArrayMap sharing `base`'s key list
 * and index when it is one (one array of values copied), else over a key index built once here.
 * For a map that changes a few values at a time and is never mutated (the xDS resource maps: one
 * endpoint write replaces one of 1,000 assignments), a copied Map of 1,000 entries was ~100 KB of
 * garbage per write. `changes` must name keys `base` has (RangeError otherwise).
 */
export function withValues<V>(base: ReadonlyMap<string, V>, changes: Iterable<readonly [string, V]>): ArrayMap<V> {
  const positional = base instanceof ArrayMap ? (base as ArrayMap<V>) : undefined;
  const keyList = positional?.keyList ?? [...base.keys()];
  const index = positional?.index ?? new Map(keyList.map((k, i) => [k, i]));
  const values = positional ? positional.valueList.slice() : [...base.values()];
  for (const [key, value] of changes) {
    const i = index.get(key);
    if (i === undefined) throw new RangeError(`withValues: ${key} is not a key of the base map`);
    values[i] = value;
  }
  return new ArrayMap(keyList, index, values);
}

/** Same entries; positional when both are ArrayMaps over the same keys (no lookup per key). */
export function sameEntries<V>(a: ReadonlyMap<string, V>, b: ReadonlyMap<string, V> | undefined): boolean {
  if (b === undefined || a.size !== b.size) return false;
  if (a === b) return true;
  if (a instanceof ArrayMap && b instanceof ArrayMap && a.keyList === b.keyList) {
    const x = a.valueList as readonly V[];
    const y = b.valueList as readonly V[];
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
