import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { waitFor } from '../support/wait.js';
import { ADS, EDS } from '../support/xds-client.js';
import { baseConfig, edit, NODE, startHarness, type Harness } from './protocol-fixture.js';

/**
 * NACKs in the log: a proxy that refuses every new version with the same error (an Envoy too old
 * for a field, while the engine changes weights every tick) is a warning once, not one per push;
 * a new error, or the same after the proxy accepted something, is a warning again.
 */
describe('NACK log lines', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  test('the same error again is logged once (at debug after that); a different one, or one after an ACK, is a warning again', async () => {
    const lines: { level: number; msg: string; error?: string; nacks?: number }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as (typeof lines)[number]);
        done();
      },
    });
    h = await startHarness(baseConfig(), pino({ level: 'debug' }, sink));
    const warnings = (): string[] => lines.filter((l) => l.level === 40 && l.msg === 'NACK').map((l) => l.error ?? '');
    const s = h.client.sotw(ADS);
    s.request(EDS, ['web'], { node: NODE });
    let doc = baseConfig();
    // Five versions in a row, each refused with the same error.
    for (let port = 8081; port <= 8085; port++) {
      const eds = await s.nextOf(EDS);
      s.nack(eds, 'unknown field weight_v2');
      await waitFor(() => lines.filter((l) => l.msg.startsWith('NACK')).length === port - 8080, {
        what: `NACK ${port - 8080} seen`,
        timeoutMs: 5_000,
        intervalMs: 10,
      });
      doc = edit(doc, (d) => (d.clusters![1]!.endpoints = [{ address: '10.0.0.1', port }]));
      await h.apply(doc);
    }
    expect(warnings()).toEqual(['unknown field weight_v2']);
    expect(lines.filter((l) => l.msg === 'NACK repeated')).toHaveLength(4);
    // Another error: a warning.
    const other = await s.nextOf(EDS);
    s.nack(other, 'weight out of range');
    await waitFor(() => warnings().length === 2, { what: 'the new error warned', timeoutMs: 5_000, intervalMs: 10 });
    // The proxy accepts a version, then refuses the next with the first error: a warning again.
    await h.apply((doc = edit(doc, (d) => (d.clusters![1]!.endpoints = [{ address: '10.0.0.2', port: 8080 }]))));
    s.ack(await s.nextOf(EDS));
    await waitFor(async () => (await h!.proxy()).types.EDS?.state === 'SYNCED', { what: 'EDS SYNCED', timeoutMs: 5_000, intervalMs: 10 });
    await h.apply(edit(doc, (d) => (d.clusters![1]!.endpoints = [{ address: '10.0.0.3', port: 8080 }])));
    s.nack(await s.nextOf(EDS), 'unknown field weight_v2');
    await waitFor(() => warnings().length === 3, { what: 'the first error warned again after an ACK', timeoutMs: 5_000, intervalMs: 10 });
    expect(warnings()).toEqual(['unknown field weight_v2', 'weight out of range', 'unknown field weight_v2']);
  });
});
