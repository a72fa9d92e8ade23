/**
 * Least connections with O(log n) acquire and release.
 *
 * Endpoints sit in a binary min-heap keyed by (active connections, last pick, insertion
 * order), and each entry remembers its heap index. A release is therefore a single
 * sift-up from a known position, not a linear search followed by a full re-heapify (the
 * seed's flaw, O(n) per release).
 *
 * Ties go to the endpoint picked least recently, then to the one added first. Breaking
 * ties by insertion order alone would send every request to the first endpoint whenever
 * requests finish before the next one starts (each acquire sees all counts at zero);
 * least-recently-picked turns that case into round robin while staying deterministic.
 */
interface Entry {
  readonly key: string;
  readonly order: number;
  active: number;
  lastPick: number;
  heapIndex: number;
}

export class LeastConnections {
  private readonly heap: Entry[] = [];
  private readonly entries = new Map<string, Entry>();
  private picks = 0;
  private added = 0;

  constructor(endpoints: Iterable<string> = []) {
    for (const key of endpoints) this.add(key);
  }

  get size(): number {
    return this.heap.length;
  }

  /** Takes a connection on the least busy endpoint and returns it (undefined if empty). */
  acquire(): string | undefined {
    const top = this.heap[0];
    if (top === undefined) return undefined;
    top.active++;
    top.lastPick = ++this.picks;
    this.siftDown(0);
    return top.key;
  }

  /**
   * Returns a connection. False (and no change) when the endpoint is unknown, e.g.
   * removed while the request was in flight, or has no active connections, so a double
   * release can never drive a count negative.
   */
  release(key: string): boolean {
    const entry = this.entries.get(key);
    if (entry === undefined || entry.active === 0) return false;
    entry.active--;
    this.siftUp(entry.heapIndex);
    return true;
  }

  /** The endpoint the next acquire would return, without taking it. */
  peek(): string | undefined {
    return this.heap[0]?.key;
  }

  activeConnections(key: string): number | undefined {
    return this.entries.get(key)?.active;
  }

  add(key: string): boolean {
    if (this.entries.has(key)) return false;
    const entry: Entry = { key, order: this.added++, active: 0, lastPick: 0, heapIndex: this.heap.length };
    this.entries.set(key, entry);
    this.heap.push(entry);
    this.siftUp(entry.heapIndex);
    return true;
  }

  remove(key: string): boolean {
    const entry = this.entries.get(key);
    if (entry === undefined) return false;
    this.entries.delete(key);
    const last = this.heap.pop() as Entry;
    if (last !== entry) {
      const i = entry.heapIndex;
      this.heap[i] = last;
      last.heapIndex = i;
      // The moved entry may belong above or below its new slot.
      this.siftUp(i);
      this.siftDown(last.heapIndex);
    }
    return true;
  }

  private siftUp(index: number): void {
    const heap = this.heap;
    const entry = heap[index] as Entry;
    let i = index;
    while (i > 0) {
      const parentIndex = (i - 1) >> 1;
      const parent = heap[parentIndex] as Entry;
      if (!precedes(entry, parent)) break;
      heap[i] = parent;
      parent.heapIndex = i;
      i = parentIndex;
    }
    heap[i] = entry;
    entry.heapIndex = i;
  }

  private siftDown(index: number): void {
    const heap = this.heap;
    const n = heap.length;
    const entry = heap[index] as Entry;
    let i = index;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && precedes(heap[right] as Entry, heap[left] as Entry)) child = right;
      const candidate = heap[child] as Entry;
      if (!precedes(candidate, entry)) break;
      heap[i] = candidate;
      candidate.heapIndex = i;
      i = child;
    }
    heap[i] = entry;
    entry.heapIndex = i;
  }
}

function precedes(a: Entry, b: Entry): boolean {
  if (a.active !== b.active) return a.active < b.active;
  if (a.lastPick !== b.lastPick) return a.lastPick < b.lastPick;
  return a.order < b.order;
}
