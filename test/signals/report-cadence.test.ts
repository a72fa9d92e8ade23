import { describe, expect, it } from 'vitest';
import { ReportCadence, reportEntries, SHORTEN_HOLD_MS, STRETCH_HOLD_MS } from '../../src/signals/report-cadence.js';
import type { WireLoadStatsRequest } from '../../src/signals/lrs-codec.js';

const DEFAULTS = { minMs: 1_000, maxMs: 2_000, entriesPerSecond: 20_000 };

describe('ReportCadence: the interval asked follows one round of the fleet\'s reports', () => {
  it('asks the shortest interval while a round fits the budget, stretches it in 100 ms steps past it, and never past the longest', () => {
    const c = new ReportCadence(DEFAULTS);
    expect(c.target()).toBe(1_000);
    c.opened(1);
    c.reported(1, 20_000);
    expect(c.target()).toBe(1_000);
    c.reported(1, 20_001);
    expect(c.target()).toBe(1_100);
    c.reported(1, 30_000);
    expect(c.target()).toBe(1_500);
    c.reported(1, 1_000_000);
    expect(c.target()).toBe(2_000);
  });

  it('counts each stream by its latest report only, and forgets a closed one', () => {
    const c = new ReportCadence({ ...DEFAULTS, entriesPerSecond: 100 });
    c.opened(1);
    c.opened(2);
    c.reported(1, 60);
    c.reported(2, 60);
    c.reported(1, 60);
    expect(c.roundEntries()).toBe(120);
    expect(c.target()).toBe(1_200);
    c.closed(2);
    expect(c.roundEntries()).toBe(60);
    expect(c.target()).toBe(1_000);
  });

  it('counts a stream that has not reported as the mean of those that have (a storm of reconnects stretches it before their first reports)', () => {
    const c = new ReportCadence({ ...DEFAULTS, entriesPerSecond: 1_000 });
    c.opened(1);
    c.reported(1, 100);
    for (let id = 2; id <= 20; id++) c.opened(id);
    expect(c.roundEntries()).toBe(2_000);
    expect(c.target()).toBe(2_000);
    // With none reported yet, each counts one entry: 1,500 new streams are 1.5 s at 1,000 a second.
    const fresh = new ReportCadence({ ...DEFAULTS, entriesPerSecond: 1_000 });
    for (let id = 1; id <= 1_500; id++) fresh.opened(id);
    expect(fresh.target()).toBe(1_500);
  });

  it('ignores a report without stats (the first request) and one from a stream it was not told of', () => {
    const c = new ReportCadence({ ...DEFAULTS, entriesPerSecond: 10 });
    c.opened(1);
    c.reported(1, 0);
    c.reported(9, 1_000);
    expect(c.roundEntries()).toBe(1);
  });

  it('re-asks a stream only past a 1.2× move (or at the longest), a stretch after 5 s, a shortening after 30 s', () => {
    const c = new ReportCadence({ ...DEFAULTS, entriesPerSecond: 100 });
    c.opened(1);
    c.reported(1, 110);
    expect(c.target()).toBe(1_100);
    const asked = { ms: 1_000, at: 0 };
    expect(c.retarget(asked, STRETCH_HOLD_MS)).toBeUndefined(); // 1.1×: not worth a new answer
    c.reported(1, 150);
    expect(c.retarget(asked, STRETCH_HOLD_MS - 1)).toBeUndefined();
    expect(c.retarget(asked, STRETCH_HOLD_MS)).toBe(1_500);
    // At the longest, a stream asked 1.9 s is asked 2 s although 2.0 < 1.9 × 1.2: the bound on cost holds.
    c.reported(1, 10_000);
    expect(c.retarget({ ms: 1_900, at: 0 }, STRETCH_HOLD_MS)).toBe(2_000);
    c.reported(1, 50);
    const long = { ms: 2_000, at: 0 };
    expect(c.retarget(long, SHORTEN_HOLD_MS - 1)).toBeUndefined();
    expect(c.retarget(long, SHORTEN_HOLD_MS)).toBe(1_000);
    expect(c.retarget({ ms: 1_100, at: 0 }, SHORTEN_HOLD_MS)).toBeUndefined();
  });

  it('with the longest equal to the shortest, asks that one interval whatever the reports', () => {
    const c = new ReportCadence({ minMs: 2_000, maxMs: 2_000, entriesPerSecond: 1 });
    c.opened(1);
    c.reported(1, 1_000_000);
    expect(c.target()).toBe(2_000);
    expect(c.retarget({ ms: 2_000, at: 0 }, 1e9)).toBeUndefined();
  });

  it('refuses settings that ask nothing sensible', () => {
    expect(() => new ReportCadence({ minMs: 2_000, maxMs: 1_000, entriesPerSecond: 1 })).toThrow(RangeError);
    expect(() => new ReportCadence({ minMs: 0, maxMs: 1_000, entriesPerSecond: 1 })).toThrow(RangeError);
    expect(() => new ReportCadence({ minMs: 1_000, maxMs: 1_000, entriesPerSecond: 0 })).toThrow(RangeError);
  });
});

describe('reportEntries', () => {
  it('counts each endpoint entry, and a locality without endpoint entries as one', () => {
    const ep = { address: { socket_address: { address: '10.0.0.1', port_value: 80 } } };
    const req: WireLoadStatsRequest = {
      cluster_stats: [
        { cluster_name: 'a', upstream_locality_stats: [{ upstream_endpoint_stats: [ep, ep, ep] }, { total_issued_requests: 5 }] },
        { cluster_name: 'b', upstream_locality_stats: [{ upstream_endpoint_stats: [ep] }] },
        { cluster_name: 'c' },
      ],
    };
    expect(reportEntries(req)).toBe(5);
    expect(reportEntries({ node: { id: 'x' } })).toBe(0);
  });
});
