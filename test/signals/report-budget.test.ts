import { describe, expect, it } from 'vitest';
import { httpReservation, ReportBudget } from '../../src/signals/report-budget.js';

/** A budget of 1,000 samples a second, 10,000 at once, on a clock the test moves; peers are addresses. */
function budget(): { b: ReportBudget; advance: (ms: number) => void } {
  let now = 0;
  const b = new ReportBudget({ samplesPerSecond: 1_000, burstSamples: 10_000, peerOf: (a) => a.replace(/\.\d+$/, '.0'), now: () => now });
  return { b, advance: (ms) => void (now += ms) };
}

describe('ReportBudget: samples per peer per second', () => {
  it('admits a full burst, then refuses with the time until the request fits', () => {
    const { b, advance } = budget();
    expect(b.take('10.0.0.1', 10_000)).toEqual({ admitted: true, reserved: 10_000 });
    expect(b.take('10.0.0.1', 500)).toEqual({ admitted: false, retryAfterMs: 500 });
    advance(500);
    expect(b.take('10.0.0.1', 500).admitted).toBe(true);
  });

  it('counts a peer as peerOf groups it, and never lets one peer spend another\'s samples', () => {
    const { b } = budget();
    expect(b.take('10.0.0.1', 10_000).admitted).toBe(true);
    expect(b.take('10.0.0.2', 1).admitted).toBe(false);
    expect(b.take('10.0.1.1', 10_000).admitted).toBe(true);
  });

  it('charges what a settled request held beyond its reservation: a peer in debt waits it out', () => {
    const { b, advance } = budget();
    const first = b.take('10.0.0.1', 100);
    expect(first.admitted).toBe(true);
    b.settle('10.0.0.1', 100, 10_000 + 100);
    expect(b.take('10.0.0.1', 1)).toEqual({ admitted: false, retryAfterMs: 101 });
    advance(101);
    expect(b.take('10.0.0.1', 1).admitted).toBe(true);
    b.settle('10.0.0.1', 1, 0);
  });

  it('gives back what a request reserved and did not hold, up to the burst', () => {
    const { b } = budget();
    b.take('10.0.0.1', 10_000);
    b.settle('10.0.0.1', 10_000, 1);
    expect(b.take('10.0.0.1', 9_999).admitted).toBe(true);
  });

  it('forgets peers whose bucket is full again: the map holds only those that sent lately', () => {
    const { b, advance } = budget();
    for (let i = 0; i < 1_000; i++) b.take(`10.0.${i >> 8}.${i & 255}`, 10);
    expect(b.peers).toBe(4);
    for (let i = 0; i < 1_000; i++) b.take(`11.${i >> 8}.${i & 255}.1`, 10);
    expect(b.peers).toBe(1_004);
    advance(10_000);
    b.take('10.9.9.9', 1);
    expect(b.peers).toBe(1);
  });
});

describe('httpReservation: samples held before an HTTP body is read', () => {
  it('reserves what the body could hold at the fewest bytes a sample takes, at most a batch', () => {
    expect(httpReservation(400, 10_000)).toBe(10);
    expect(httpReservation(4 * 1024 * 1024, 10_000)).toBe(10_000);
    expect(httpReservation(undefined, 10_000)).toBe(10_000);
    expect(httpReservation(0, 10_000)).toBe(1);
  });
});
