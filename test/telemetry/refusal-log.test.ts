import { describe, expect, it } from 'vitest';
import { RefusalLog } from '../../src/telemetry/auth-metrics.js';

describe('RefusalLog', () => {
  it('logs the first refusal per surface and reason in each window, then how many were left out', () => {
    const lines: Record<string, unknown>[] = [];
    let now = 0;
    const log = new RefusalLog((fields) => lines.push(fields), 1_000, () => now);
    for (let i = 0; i < 5; i++) log.refused('xds', 'no_credentials', { peer: `p${i}` });
    log.refused('report', 'no_credentials', { peer: 'r' });
    expect(lines).toEqual([
      { surface: 'xds', reason: 'no_credentials', peer: 'p0' },
      { surface: 'report', reason: 'no_credentials', peer: 'r' },
    ]);
    now = 1_000;
    log.refused('xds', 'no_credentials', { peer: 'late' });
    expect(lines[2]).toEqual({ surface: 'xds', reason: 'no_credentials', peer: 'late', suppressedBefore: 4 });
  });
});
