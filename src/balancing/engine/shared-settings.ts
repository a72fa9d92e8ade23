/**
 * One settings object for all the clusters whose settings are equal. A cluster's tick starts by
 * reading its settings (safety, ejection, the policy's parts, the PID's configuration); with an
 * object of each per cluster, at 500 clusters × 20 endpoints every one was a cache miss per
 * cluster per tick (a CPU profile's lines put the first read of the safety object alone at 2 % of
 * the tick), where one object shared by the clusters stays in cache. Fleets have few distinct
 * settings; the engine holds at most MAX_SHARED and then starts over (a caller cycling settings
 * must not grow it forever).
 */
const MAX_SHARED = 64;

/** Settings are plain data: numbers (with Infinity and -0 told apart from null and 0), strings, booleans. */
function keyOf(kind: string, value: object): string {
  return `${kind} ${JSON.stringify(value, (_, v: unknown) => (typeof v === 'number' && (!Number.isFinite(v) || Object.is(v, -0)) ? `n:${String(Object.is(v, -0) ? '-0' : v)}` : v))}`;
}

export class SharedSettings {
  private readonly byKey = new Map<string, object>();

  /** `value`, or the object already shared for an equal value of the same kind. Never mutate what it returns. */
  share<T extends object>(kind: string, value: T): T {
    const key = keyOf(kind, value);
    const held = this.byKey.get(key);
    if (held !== undefined) return held as T;
    if (this.byKey.size >= MAX_SHARED) this.byKey.clear();
    this.byKey.set(key, value);
    return value;
  }
}
