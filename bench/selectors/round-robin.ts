/**
 * Plain round robin: hands out items in a fixed cyclic order, ignoring weights.
 *
 * Replacing the item list keeps the cursor position (modulo the new length) rather than
 * restarting at zero, so frequent membership updates do not keep favouring the first items.
 */
export class RoundRobin<T> {
  private items: readonly T[];
  private cursor = 0;

  constructor(items: Iterable<T> = []) {
    this.items = [...items];
  }

  get size(): number {
    return this.items.length;
  }

  /** The next item, or undefined when there is nothing to choose from. */
  next(): T | undefined {
    const n = this.items.length;
    if (n === 0) return undefined;
    const item = this.items[this.cursor % n];
    this.cursor = (this.cursor + 1) % n;
    return item;
  }

  setItems(items: Iterable<T>): void {
    this.items = [...items];
    this.cursor = this.items.length === 0 ? 0 : this.cursor % this.items.length;
  }
}
