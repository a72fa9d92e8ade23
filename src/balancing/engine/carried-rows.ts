/**
 * Carrying a cluster's per-endpoint rows (PID rows, held weights, error rows) from its existing
 * endpoint order to a new one when it is set again. Each carry used to look every endpoint up by
 * key in the existing index and copy its row through a fresh subarray: at 20k endpoints, three
 * Map lookups and two subarray objects per endpoint, inside the one task that installs the cluster
 * (10–12 ms of CPU quiet, 20–25 ms beside big writes: bench/RESULTS.md "audit19"). The positions
 * are now looked up once (in steps, when the cluster is prepared in steps) and rows that stay in
 * consecutive positions are copied as one run.
 */
import { inChunks, runToEnd } from '../steps.js';

/** No existing position: a new endpoint. */
export const NEW_ENDPOINT = -1;

/**
 * Where each endpoint of `order` was in the existing order (by key), NEW_ENDPOINT where it is new;
 * `chunk` endpoints per step.
 */
export function* carriedPositionSteps(
  order: readonly { readonly key: string }[],
  index: ReadonlyMap<string, number> | undefined,
  chunk: number,
): Generator<void, Int32Array, void> {
  const from = new Int32Array(order.length).fill(NEW_ENDPOINT);
  if (index === undefined) return from;
  yield* inChunks(order.length, chunk, (a, b) => {
    for (let i = a; i < b; i++) from[i] = index.get((order[i] as { key: string }).key) ?? NEW_ENDPOINT;
  });
  return from;
}

/** carriedPositionSteps in one go. */
export function carriedPositions(order: readonly { readonly key: string }[], index: ReadonlyMap<string, number> | undefined): Int32Array {
  return runToEnd(carriedPositionSteps(order, index, Number.POSITIVE_INFINITY));
}

/**
 * Copies rows of `size` doubles from `src` to `dst`; a row that continues the last one's run (the
 * next row of `src` to the next row of `dst`) extends it, and each run is one copy. `flush` ends
 * the last run: call it before the rows are read.
 */
export class RowRuns {
  private from = 0;
  private to = 0;
  private rows = 0;

  constructor(
    private readonly src: Float64Array,
    private readonly dst: Float64Array,
    private readonly size: number,
  ) {}

  row(from: number, to: number): void {
    if (this.rows > 0 && from === this.from + this.rows && to === this.to + this.rows) {
      this.rows++;
      return;
    }
    this.flush();
    this.from = from;
    this.to = to;
    this.rows = 1;
  }

  flush(): void {
    if (this.rows === 0) return;
    const s = this.size;
    this.dst.set(this.src.subarray(this.from * s, (this.from + this.rows) * s), this.to * s);
    this.rows = 0;
  }
}
