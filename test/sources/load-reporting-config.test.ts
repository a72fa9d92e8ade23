import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/sources/config-file.js';

const withLoadReporting = (block: string): string => `
server:
  loadReporting:
${block}
clusters:
  - name: web
    endpoints: [{ address: 10.0.0.1, port: 80 }]
`;

describe('server.loadReporting', () => {
  it('defaults: what the built-in metric fields read is asked of Envoy; no mapping configured', () => {
    const cfg = parseConfig('clusters: []\n', 'f.yaml');
    expect(cfg.server.loadReporting).toEqual({
      intervalMs: 1_000,
      maxIntervalMs: 2_000,
      entriesPerSecond: 20_000,
      endpointMetrics: ['cpu_utilization', 'mem_utilization', 'eps', 'named_metrics.latency_ms'],
    });
  });

  it('intervalMs alone is a fixed interval, as before the interval could stretch; maxIntervalMs alone stretches from 1 s', () => {
    const lr = (block: string) => parseConfig(withLoadReporting(block), 'f.yaml').server.loadReporting;
    expect(lr('    intervalMs: 2000')).toMatchObject({ intervalMs: 2_000, maxIntervalMs: 2_000 });
    expect(lr('    maxIntervalMs: 4000\n    entriesPerSecond: 5000')).toMatchObject({ intervalMs: 1_000, maxIntervalMs: 4_000, entriesPerSecond: 5_000 });
  });

  it('refuses a longest interval shorter than the shortest, the default shortest included', () => {
    expect(() => parseConfig(withLoadReporting('    intervalMs: 3000\n    maxIntervalMs: 2000'), 'f.yaml')).toThrow(/loadReporting\/maxIntervalMs: must be >= intervalMs \(3000 ms\), got 2000/);
    expect(() => parseConfig(withLoadReporting('    maxIntervalMs: 500'), 'f.yaml')).toThrow(/must be >= intervalMs \(1000 ms\), got 500/);
    expect(() => parseConfig(withLoadReporting('    entriesPerSecond: 0'), 'f.yaml')).toThrow(ConfigError);
  });

  it('metricFields maps ORCA metrics to sample fields and adds their names to what Envoy reports', () => {
    const cfg = parseConfig(
      withLoadReporting(`    endpointMetrics: [cpu_utilization]\n    metricFields: { named_metrics.p90_ms: latencyMs, rps_fractional: rps, application_utilization: cpu }`),
      'f.yaml',
    );
    expect(cfg.server.loadReporting?.metricFields).toEqual({ 'named_metrics.p90_ms': 'latencyMs', rps_fractional: 'rps', application_utilization: 'cpu' });
    expect(cfg.server.loadReporting?.endpointMetrics).toEqual(['cpu_utilization', 'named_metrics.p90_ms', 'rps_fractional', 'application_utilization']);
  });

  it('rejects a metric Envoy would not forward and a field samples do not have, naming them', () => {
    const problems = (text: string): string => {
      try {
        parseConfig(text, 'f.yaml');
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).problems.map((p) => `${p.path}: ${p.message}`).join('\n');
      }
      throw new Error('expected the config to be rejected');
    };
    // Envoy 1.40 forwards cpu/mem/application utilization, eps, rps_fractional and named_metrics.*.
    expect(problems(withLoadReporting(`    metricFields: { qps: rps }`))).toMatch(/metricFields\/qps: Unexpected property/);
    expect(problems(withLoadReporting(`    metricFields: { named_metrics.latency_ms: latency }`))).toMatch(/metricFields\/named_metrics\.latency_ms: /);
  });
});
