import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CountingHistogram } from '../../src/telemetry/counting-histogram.js';

const BOUNDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

describe('CountingHistogram', () => {
  it("exposes exactly what prom-client's Histogram exposes for the same observations", async () => {
    const theirs = new Registry();
    const ours = new Registry();
    const reference = new Histogram({ name: 'x_seconds', help: 'Help text.', labelNames: ['type'], buckets: BOUNDS, registers: [theirs] });
    const counting = new CountingHistogram('x_seconds', 'Help text.', 'type', BOUNDS, [ours]);
    // On a bound, between bounds, below the first, above the last, zero.
    const observations: [string, number][] = [['EDS', 0.001], ['EDS', 0.0011], ['CDS', 0.3], ['EDS', 70], ['CDS', 0], ['EDS', 0.005], ['LDS', 2.5]];
    for (const [type, v] of observations) {
      reference.observe({ type }, v);
      counting.observe(type, v);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.metrics()).toContain('x_seconds_count{type="EDS"} 4');
    counting.reset();
    expect(await ours.metrics()).not.toContain('x_seconds_count');
  });
});
