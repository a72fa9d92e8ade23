import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFulcrumProcess, type FulcrumProcess } from '../support/fulcrum-process.js';
import { scaled, waitFor } from '../support/wait.js';
import { METRIC_LIMITS } from '../../src/signals/report-validation.js';

/**
 * Reports that validation accepts (finite, within the limits) but no backend would send: denormal
 * latencies, and every metric at its limit beside zeros and denormals. One report of three
 * latencies (0, 5e-324, 8.9e-16 ms) made the PID's setpoint Infinity and the tick threw from its
 * timer, ending the process. Beyond the limits (Number.MAX_VALUE) reports are refused, each
 * sample with its reasons. Here fulcrum runs as its own process, ticking every 200 ms, under
 * every adaptive policy.
 */
const POLICIES = {
  'pid-latency': 'policy: pid\n      metric: latency',
  'pid-cpu-latency': 'policy: pid\n      metric: cpu-latency',
  'pid-inflight': 'policy: pid\n      metric: inflight',
  'pid-max': 'policy: pid\n      metric: max',
  ewma: 'policy: ewma',
  blend: 'policy: blend\n      blend: { pid: 0.5, ewma: 0.5 }',
} as const;

const ADDRESSES = ['10.1.0.1', '10.1.0.2', '10.1.0.3'];

const config = (): string => `server:
  engine:
    tickMs: 200
clusters:
${Object.entries(POLICIES)
  .map(([name, weighting]) => `  - name: ${name}\n    endpoints: [${ADDRESSES.map((a) => `{ address: ${a}, port: 80 }`).join(', ')}]\n    weighting:\n      ${weighting}`)
  .join('\n')}
`;

/** Per endpoint, a sample no backend sends. */
const HOSTILE = [
  { latencyMs: 0, cpu: 0.5, inflight: 0, rps: 0, errors: 0 },
  { latencyMs: 5e-324, cpu: 0.5, inflight: METRIC_LIMITS.inflight, rps: 1e-300, errors: METRIC_LIMITS.errors },
  { latencyMs: METRIC_LIMITS.latencyMs, cpu: 1, inflight: METRIC_LIMITS.inflight, rps: METRIC_LIMITS.rps, errors: METRIC_LIMITS.errors },
];
const DENORMAL = [{ latencyMs: 0 }, { latencyMs: 5e-324 }, { latencyMs: 8.881784197001252e-16 }];
const OVER = [{ latencyMs: Number.MAX_VALUE }, { inflight: Number.MAX_VALUE, rps: Number.MAX_VALUE }, { errors: Number.MAX_VALUE, cpu: 0.5 }];

let dir: string;
let fulcrum: FulcrumProcess | undefined;

async function ticks(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(/^fulcrum_engine_tick_seconds_count (\d+)/m.exec(text)?.[1] ?? Number.NaN);
}

describe('reports no backend would send', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-hostile-reports-'));
    await writeFile(join(dir, 'fulcrum.yaml'), config());
    fulcrum = await startFulcrumProcess({ config: join(dir, 'fulcrum.yaml'), dataDir: join(dir, 'data') });
  }, scaled(120_000));

  afterAll(async () => {
    await fulcrum?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('are accepted, and fulcrum keeps ticking, serving and publishing integer weights >= 1 under every policy', async () => {
    const f = fulcrum;
    if (!f) throw new Error('setup failed');
    const base = `http://127.0.0.1:${f.adminPort}`;
    const post = async (set: readonly object[]): Promise<{ sent: number; answer: unknown }> => {
      const samples = Object.keys(POLICIES).flatMap((cluster) => set.map((metrics, i) => ({ cluster, endpoint: `${ADDRESSES[i] ?? ''}:80`, ...metrics })));
      const res = await fetch(`${base}/v1/reports`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ samples }) });
      expect(res.status).toBe(200);
      return { sent: samples.length, answer: await res.json() };
    };
    const over = await post(OVER);
    const rejected = (over.answer as { accepted: number; rejected: { field: string; reason: string }[] }).rejected;
    expect((over.answer as { accepted: number }).accepted).toBe(0);
    expect(new Set(rejected.map((r) => r.field))).toEqual(new Set(['latencyMs', 'inflight', 'rps', 'errors']));
    expect(rejected.every((r) => /the most a report may carry/.test(r.reason))).toBe(true);
    for (const set of [DENORMAL, HOSTILE]) {
      const { sent, answer } = await post(set);
      expect(answer).toEqual({ accepted: sent, rejected: [] });
      // Several ticks over these samples: a tick that threw would have ended the process.
      const before = await ticks(base);
      await waitFor(async () => (await ticks(base)) >= before + 5, { what: 'five engine ticks after the reports', timeoutMs: scaled(30_000) });
      expect(f.proc.exit).toBeUndefined();
    }
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    for (const cluster of Object.keys(POLICIES)) {
      const res = await fetch(`${base}/v1/weights/${cluster}`);
      expect(res.status, cluster).toBe(200);
      const body = (await res.json()) as { endpoints: { weight: number }[] };
      expect(body.endpoints).toHaveLength(ADDRESSES.length);
      for (const e of body.endpoints) {
        expect(Number.isInteger(e.weight), `${cluster}: ${e.weight}`).toBe(true);
        expect(e.weight, cluster).toBeGreaterThanOrEqual(1);
      }
    }
    expect(f.proc.output.join('')).not.toContain('weight engine tick failed');
  }, scaled(120_000));
});
