/**
 * Per-endpoint series capped (issue 13: /metrics was 7 MB and 3.6 s at 100k endpoints): whole
 * clusters while they fit, the rest counted in fulcrum_endpoint_series_omitted; the cap from
 * `server.admin.metrics.maxEndpointSeries`, checked by the config parser and honoured by a real
 * fulcrum's /metrics.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { capEndpointValues, DEFAULT_MAX_ENDPOINT_SERIES, type EndpointValue } from '../../src/telemetry/endpoint-series.js';
import { Metrics } from '../../src/telemetry/metrics.js';

const values = (sizes: Record<string, number>): EndpointValue[] =>
  Object.entries(sizes).flatMap(([cluster, n]) => Array.from({ length: n }, (_, i) => ({ cluster, endpoint: `10.0.0.${i}:80`, value: i })));

const lines = (text: string, name: string): string[] => text.split('\n').filter((l) => l.startsWith(`${name}{`));

/** 100k endpoints in 1,000 clusters of 100, in catalog order. */
function* fleet(): Iterable<EndpointValue> {
  for (let c = 0; c < 1000; c++) {
    const cluster = `svc-${String(c).padStart(4, '0')}`;
    for (let e = 0; e < 100; e++) yield { cluster, endpoint: `10.${c >> 8}.${c & 255}.${e}:8080`, value: e + 1 };
  }
}

describe('capEndpointValues', () => {
  it('keeps whole clusters while they fit, then counts everything left out', () => {
    const { kept, omitted } = capEndpointValues(values({ a: 2, b: 3, c: 1 }), 4);
    expect(kept.map((v) => v.cluster)).toEqual(['a', 'a']);
    expect(omitted).toBe(4); // b does not fit after a; c comes after the cap was reached
    expect(capEndpointValues(values({ a: 2, b: 2 }), 4)).toMatchObject({ omitted: 0 });
    expect(capEndpointValues(values({ a: 2, b: 2 }), 4).kept).toHaveLength(4);
    expect(capEndpointValues(values({ a: 5 }), 4)).toEqual({ kept: [], omitted: 5 });
    expect(capEndpointValues(values({ a: 2 }), 0)).toEqual({ kept: [], omitted: 2 });
    expect(capEndpointValues([], 10)).toEqual({ kept: [], omitted: 0 });
  });

  it('keeps /metrics small at 100k endpoints in 1,000 clusters by default, and emits everything when asked', async () => {
    const capped = new Metrics({ processMetrics: false });
    capped.trackEndpointWeights(fleet);
    const text = await capped.render();
    expect(lines(text, 'fulcrum_endpoint_weight')).toHaveLength(DEFAULT_MAX_ENDPOINT_SERIES);
    expect(text).toContain('fulcrum_endpoint_series_omitted{metric="fulcrum_endpoint_weight"} 99000');
    expect(text).toContain('fulcrum_endpoint_series_omitted{metric="fulcrum_endpoint_utilization"} 0');
    expect(Buffer.byteLength(text)).toBeLessThan(200 * 1024);

    const all = new Metrics({ processMetrics: false, maxEndpointSeries: 200_000 });
    all.trackEndpointWeights(fleet);
    const full = await all.render();
    expect(lines(full, 'fulcrum_endpoint_weight')).toHaveLength(100_000);
    expect(full).toContain('fulcrum_endpoint_series_omitted{metric="fulcrum_endpoint_weight"} 0');
  });
});

describe('server.admin.metrics.maxEndpointSeries', () => {
  it('is parsed, defaults to the telemetry default, and refuses what is not a count', () => {
    expect(parseConfig('server: { admin: { metrics: { maxEndpointSeries: 0 } } }\n', 'f.yaml').server.admin.maxEndpointSeries).toBe(0);
    expect(parseConfig('clusters: []\n', 'f.yaml').server.admin.maxEndpointSeries).toBeUndefined();
    expect(() => parseConfig('server: { admin: { metrics: { maxEndpointSeries: -1 } } }\n', 'f.yaml')).toThrow(/\/server\/admin\/metrics\/maxEndpointSeries/);
    expect(() => parseConfig('server: { admin: { metrics: { maxEndpointSerie: 5 } } }\n', 'f.yaml')).toThrow(/\/server\/admin\/metrics/);
  });

  describe('a fulcrum with a cap of 2', () => {
    let dir = '';
    let fulcrum: Fulcrum;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'fulcrum-series-'));
      const configPath = join(dir, 'fulcrum.yaml');
      const ep = (n: number) => Array.from({ length: n }, (_, i) => ({ address: `10.0.0.${i + 1}`, port: 80 }));
      await writeFile(
        configPath,
        stringify({
          server: { admin: { metrics: { maxEndpointSeries: 2 } } },
          clusters: [{ name: 'a', endpoints: ep(1) }, { name: 'b', endpoints: ep(2) }, { name: 'c', endpoints: ep(1) }],
        }),
      );
      fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminPort: 0, adminAddress: '127.0.0.1', logger: pino({ level: 'silent' }), debounce: { quietMs: 0, maxMs: 0 } });
    });
    afterAll(async () => {
      await fulcrum?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('serves cluster a\'s series only and says three endpoints were left out', async () => {
      const res = await fetch(`http://127.0.0.1:${fulcrum.adminPort}/metrics`);
      const text = await res.text();
      expect(lines(text, 'fulcrum_endpoint_weight')).toEqual(['fulcrum_endpoint_weight{cluster="a",endpoint="10.0.0.1:80"} 1']);
      expect(text).toContain('fulcrum_endpoint_series_omitted{metric="fulcrum_endpoint_weight"} 3');
    });
  });
});
