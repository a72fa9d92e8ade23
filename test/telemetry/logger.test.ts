import { describe, expect, it } from 'vitest';
import { defaultLogFormat } from '../../src/telemetry/logger.js';
import { registerBuildInfo, registerSyncStates, worstState } from '../../src/telemetry/operator-metrics.js';
import { Registry } from 'prom-client';

describe('log format', () => {
  it('pretty only on a terminal, JSON for pipes and files', () => {
    expect(defaultLogFormat({ isTTY: true })).toBe('pretty');
    expect(defaultLogFormat({ isTTY: false })).toBe('json');
    expect(defaultLogFormat({})).toBe('json');
  });
});

describe('operator metrics', () => {
  it('fulcrum_build_info carries the version; fulcrum_proxies counts streams by their worst state', async () => {
    const registry = new Registry();
    registerBuildInfo(registry, '1.2.3', 'v20.0.0');
    const states = [['SYNCED', 'SYNCED'], ['SYNCED', 'STALE'], ['NACKED', 'STALE'], ['NOT_SENT']];
    registerSyncStates(registry, () => states.map(worstState));
    const text = await registry.metrics();
    expect(text).toContain('fulcrum_build_info{version="1.2.3",node_version="v20.0.0"} 1');
    expect(text).toContain('fulcrum_proxies{state="SYNCED"} 1');
    expect(text).toContain('fulcrum_proxies{state="STALE"} 1');
    expect(text).toContain('fulcrum_proxies{state="NACKED"} 1');
    expect(text).toContain('fulcrum_proxies{state="NOT_SENT"} 1');
  });
});
