import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/sources/config-file.js';
import { REJECTIONS_LOG_WINDOW_MS, Signals } from '../../src/signals/signals.js';

/** Signals logging into `lines` (parsed JSON), on a clock the test moves. */
function signalsLogging(lines: Record<string, unknown>[], now: () => number): Signals {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const signals = new Signals({ log: pino({ level: 'info' }, sink), lrsIntervalMs: 2_000, now });
  signals.setCatalog(parseConfig(JSON.stringify({ clusters: [{ name: 'web', endpoints: [{ address: '10.0.0.1', port: 80 }] }] }), 'web.json').catalog);
  return signals;
}

const open: Signals[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.stop();
});

describe('rejected report samples in the log', () => {
  it('an agent repeating a bad sample every second is logged once a minute, saying what to fix, not once per batch', async () => {
    const lines: Record<string, unknown>[] = [];
    let now = 1_000_000;
    const signals = signalsLogging(lines, () => now);
    open.push(signals);
    // An endpoint the catalog no longer has, reported every second for a minute, beside a good one.
    const batch = { reporter: 'agent-7', samples: [{ cluster: 'web', endpoint: '10.0.0.1:80', cpu: 0.5 }, { cluster: 'web', endpoint: '10.0.0.9:80', cpu: 0.5 }] };
    for (let i = 0; i < 60; i++, now += 1_000) expect(signals.ingest(batch).rejected).toHaveLength(1);
    await new Promise((resolve) => setImmediate(resolve));
    const warned = lines.filter((l) => l.msg === 'report batch had rejected samples');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({
      level: 40,
      transport: 'http',
      reporter: 'agent-7',
      accepted: 1,
      rejected: 1,
      firstRejection: { field: 'endpoint', reason: 'unknown endpoint "10.0.0.9:80" in cluster "web"' },
    });
    // The next window's first batch is logged, with how many were left out before it.
    now += REJECTIONS_LOG_WINDOW_MS;
    signals.ingest(batch);
    await new Promise((resolve) => setImmediate(resolve));
    const again = lines.filter((l) => l.msg === 'report batch had rejected samples');
    expect(again).toHaveLength(2);
    expect(again[1]).toMatchObject({ suppressedBefore: 59 });
  });
});
