/**
 * A process-wide table of values shared by key (the same names, subscriptions or keys that
 * thousands of streams hold alike), bounded by the characters of its keys rather than by count:
 * a single request may name megabytes (up to the xDS name limits), and entries outlive the stream
 * that made them, so a count bound alone would let one hostile stream pin gigabytes. Past the bound
 * the table starts over; values already handed out stay valid (they are immutable), they are only
 * no longer shared with newcomers.
 */
export class InternTable<V> {
  private readonly entries = new Map<string, V>();
  private chars = 0;

  constructor(private readonly maxChars = 4 << 20) {}

  /** The value under `key`, made by `make` (and kept) when there is none. */
  get(key: string, make: () => V): V {
    const known = this.entries.get(key);
    if (known !== undefined) return known;
    if (this.chars + key.length > this.maxChars) this.clear();
    const value = make();
    this.entries.set(key, value);
    this.chars += key.length;
    return value;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Characters of the keys held (what the bound applies to). */
  get retainedChars(): number {
    return this.chars;
  }

  private clear(): void {
    this.entries.clear();
    this.chars = 0;
  }
}
