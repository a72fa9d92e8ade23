import { describe, expect, it } from 'vitest';
import { carriedPositions, carriedPositionSteps, NEW_ENDPOINT, RowRuns } from '../../../src/balancing/engine/carried-rows.js';

describe('carrying rows to a new endpoint order', () => {
  const keys = (...ks: string[]) => ks.map((key) => ({ key }));

  it('finds each endpoint where it was, new ones as NEW_ENDPOINT, in steps or at once', () => {
    const index = new Map([['a', 0], ['b', 1], ['c', 2]]);
    const order = keys('c', 'x', 'a', 'b');
    expect([...carriedPositions(order, index)]).toEqual([2, NEW_ENDPOINT, 0, 1]);
    expect([...carriedPositions(order, undefined)]).toEqual([NEW_ENDPOINT, NEW_ENDPOINT, NEW_ENDPOINT, NEW_ENDPOINT]);
    const steps = carriedPositionSteps(order, index, 1);
    let yields = 0;
    let step = steps.next();
    for (; step.done !== true; step = steps.next()) yields++;
    expect(yields).toBe(3);
    expect([...step.value]).toEqual([2, NEW_ENDPOINT, 0, 1]);
  });

  it('copies every row given, exactly, whatever the runs (checked against a row-by-row copy)', () => {
    const size = 3;
    const src = Float64Array.from({ length: 10 * size }, (_, i) => i + 0.5);
    // Moves that make runs, break them, skip rows and go backwards.
    const moves: Array<[number, number]> = [[0, 0], [1, 1], [2, 2], [5, 3], [6, 4], [4, 6], [9, 7], [8, 8], [3, 11]];
    const dst = new Float64Array(12 * size).fill(-1);
    const runs = new RowRuns(src, dst, size);
    for (const [from, to] of moves) runs.row(from, to);
    runs.flush();
    const want = new Float64Array(12 * size).fill(-1);
    for (const [from, to] of moves) for (let k = 0; k < size; k++) want[to * size + k] = src[from * size + k] as number;
    expect([...dst]).toEqual([...want]);
    // Nothing is written before flush ends a run, and flushing twice copies nothing more.
    const late = new Float64Array(2 * size);
    const pending = new RowRuns(src, late, size);
    pending.row(1, 0);
    expect([...late]).toEqual([0, 0, 0, 0, 0, 0]);
    pending.flush();
    pending.flush();
    expect([...late.subarray(0, size)]).toEqual([3.5, 4.5, 5.5]);
  });
});
