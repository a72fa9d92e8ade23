/**
 * fulcrum's own Prometheus metrics beyond xDS: per-endpoint weight and utilization gauges read at
 * scrape time, the engine tick and store write histograms, the report sample counters. First the
 * Metrics class and the store's write hook alone, then a real fulcrum scraped over HTTP.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { Catalog } from '../../src/catalog/types.js';
import { openStore } from '../../src/catalog/store/index.js';
import type { Fulcrum } from '../../src/main.js';
import { Metrics, type EndpointValue } from '../../src/telemetry/metrics.js';
import { waitFor } from '../support/wait.js';
import { startLoopbackFulcrum } from '../support/loopback-fulcrum.js';

/** The value of the series written exactly as `series` (name and labels), or undefined when absent. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Every series of `name` (not its _bucket/_sum/_count), label string → value. */
function series(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const l of text.split('\n')) {
    const m = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(l);
    if (m) out.set(m[1] ?? '', Number(m[2]));
  }
  return out;
}

describe('Metrics', () => {
  it('rebuilds the endpoint gauges from their sources at every scrape, dropping endpoints that disappeared', async () => {
    const metrics = new Metrics({ processMetrics: false });
    let weights: EndpointValue[] = [
      { cluster: 'web', endpoint: '10.0.0.1:80', value: 3 },
      { cluster: 'web', endpoint: '10.0.0.2:80', value: 7 },
    ];
    let cpu: EndpointValue[] = [{ cluster: 'web', endpoint: '10.0.0.1:80', value: 0.42 }];
    metrics.trackEndpointWeights(() => weights);
    metrics.trackEndpointUtilization(() => cpu);
    let text = await metrics.render();
    expect(value(text, 'fulcrum_endpoint_weight{cluster="web",endpoint="10.0.0.1:80"}')).toBe(3);
    expect(value(text, 'fulcrum_endpoint_weight{cluster="web",endpoint="10.0.0.2:80"}')).toBe(7);
    expect(value(text, 'fulcrum_endpoint_utilization{cluster="web",endpoint="10.0.0.1:80"}')).toBe(0.42);
    expect(text).toContain('# TYPE fulcrum_endpoint_weight gauge');

    weights = [{ cluster: 'web', endpoint: '10.0.0.1:80', value: 5 }];
    cpu = [];
    text = await metrics.render();
    expect(series(text, 'fulcrum_endpoint_weight')).toEqual(new Map([['{cluster="web",endpoint="10.0.0.1:80"}', 5]]));
    expect(series(text, 'fulcrum_endpoint_utilization').size).toBe(0);
  });

  it('counts samples by transport and result, with the known series at 0 before any', async () => {
    const metrics = new Metrics({ processMetrics: false });
    let text = await metrics.render();
    expect(series(text, 'fulcrum_reports_samples_total')).toEqual(
      new Map([
        ['{transport="http",result="accepted"}', 0],
        ['{transport="http",result="rejected"}', 0],
        ['{transport="grpc",result="accepted"}', 0],
        ['{transport="grpc",result="rejected"}', 0],
        ['{transport="lrs",result="accepted"}', 0],
      ]),
    );
    metrics.samplesReceived('http', 3, 1);
    metrics.samplesReceived('grpc', 2, 0);
    metrics.samplesReceived('lrs', 1);
    text = await metrics.render();
    expect(value(text, 'fulcrum_reports_samples_total{transport="http",result="accepted"}')).toBe(3);
    expect(value(text, 'fulcrum_reports_samples_total{transport="http",result="rejected"}')).toBe(1);
    expect(value(text, 'fulcrum_reports_samples_total{transport="grpc",result="accepted"}')).toBe(2);
    expect(value(text, 'fulcrum_reports_samples_total{transport="lrs",result="accepted"}')).toBe(1);
  });

  it('observes engine ticks and store writes in seconds', async () => {
    const metrics = new Metrics({ processMetrics: false });
    let text = await metrics.render();
    expect(value(text, 'fulcrum_store_write_seconds_count{kind="catalog"}')).toBe(0);
    expect(value(text, 'fulcrum_store_write_seconds_count{kind="weights"}')).toBe(0);
    metrics.engineTicked(2);
    metrics.storeWritten('weights', 4);
    metrics.storeWritten('catalog', 1);
    text = await metrics.render();
    expect(value(text, 'fulcrum_engine_tick_seconds_count')).toBe(1);
    expect(value(text, 'fulcrum_engine_tick_seconds_sum')).toBeCloseTo(0.002);
    expect(value(text, 'fulcrum_engine_alarm_ticks_total')).toBe(0);
    metrics.engineAlarmTicked();
    expect(value(await metrics.render(), 'fulcrum_engine_alarm_ticks_total')).toBe(1);
    expect(value(text, 'fulcrum_store_write_seconds_count{kind="weights"}')).toBe(1);
    expect(value(text, 'fulcrum_store_write_seconds_sum{kind="weights"}')).toBeCloseTo(0.004);
    expect(value(text, 'fulcrum_store_write_seconds_count{kind="catalog"}')).toBe(1);
  });
});

describe('Store onWrite', () => {
  it('reports every committed write transaction with its duration and kind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fulcrum-metrics-store-'));
    const writes: { ms: number; kind: string }[] = [];
    const store = openStore(dir, { onWrite: (ms, kind) => writes.push({ ms, kind }) });
    try {
      const catalog: Catalog = {
        clusters: [
          {
            name: 'web',
            lbPolicy: 'ROUND_ROBIN',
            connectTimeoutMs: 1000,
            http2: false,
            weighting: { kind: 'static' },
            endpoints: [{ address: '10.0.0.1', port: 80, weight: 1, priority: 0, health: 'HEALTHY', locality: { region: '', zone: '', subZone: '' } }],
          },
        ],
        listeners: [],
        nodeGroups: [],
      };
      store.seedFromConfig(catalog);
      store.saveAllWeights(new Map([['web', new Map([['10.0.0.1:80', 5]])]]));
      expect(writes.map((w) => w.kind)).toEqual(['catalog', 'weights']);
      for (const w of writes) expect(w.ms).toBeGreaterThanOrEqual(0);

      // A hook that throws does not fail a write that committed: it goes to onListenerError.
      const errors: unknown[] = [];
      store.close();
      const throwing = openStore(dir, {
        onWrite: () => {
          throw new Error('metrics broke');
        },
        onListenerError: (err) => errors.push(err),
      });
      try {
        throwing.saveAllWeights(new Map([['web', new Map([['10.0.0.1:80', 6]])]]));
        expect(throwing.loadWeights().get('web')?.get('10.0.0.1:80')).toBe(6);
        expect(errors).toHaveLength(1);
      } finally {
        throwing.close();
      }
    } finally {
      store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ── a real fulcrum, scraped over HTTP ────────────────────────────────────────────────────────────

describe('GET /metrics of a running fulcrum', () => {
  let dir: string;
  let fulcrum: Fulcrum;
  const scrape = async (): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${fulcrum.adminPort}/metrics`);
    expect(res.status).toBe(200);
    return res.text();
  };
  const report = (samples: { cluster: string; endpoint: string; cpu: number }[]) =>
    fulcrum.signals.ingest({ reporter: 'metrics-test', samples: samples.map((s) => ({ ...s, time: Date.now() })) });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-metrics-'));
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(
      configPath,
      stringify({
        clusters: [
          {
            name: 'fixed',
            endpoints: [
              { address: '10.0.1.1', port: 80, weight: 3 },
              { address: '10.0.1.2', port: 80, weight: 7 },
            ],
          },
          {
            name: 'adaptive',
            weighting: { policy: 'pid', setpoint: 'mean', metric: 'cpu' },
            endpoints: [
              { address: '10.0.2.1', port: 80 },
              { address: '10.0.2.2', port: 80 },
            ],
          },
        ],
      }),
    );
    fulcrum = await startLoopbackFulcrum(configPath, {
      engineTickMs: 50,
      debounce: { quietMs: 0, maxMs: 0 },
    });
  });

  afterAll(async () => {
    await fulcrum?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('publishes static weights as written and counts the config seed as a catalog write', async () => {
    const text = await scrape();
    expect(value(text, 'fulcrum_endpoint_weight{cluster="fixed",endpoint="10.0.1.1:80"}')).toBe(3);
    expect(value(text, 'fulcrum_endpoint_weight{cluster="fixed",endpoint="10.0.1.2:80"}')).toBe(7);
    expect(value(text, 'fulcrum_store_write_seconds_count{kind="catalog"}')).toBeGreaterThanOrEqual(1);
    // No report yet: no utilization series at all (unknown is not 0).
    expect(series(text, 'fulcrum_endpoint_utilization').size).toBe(0);
  });

  it('exposes reported CPU, counts accepted and rejected samples, and LRS samples the store keeps', async () => {
    const result = report([
      { cluster: 'adaptive', endpoint: '10.0.2.1:80', cpu: 0.9 },
      { cluster: 'adaptive', endpoint: '10.0.2.2:80', cpu: 0.1 },
      { cluster: 'adaptive', endpoint: '10.9.9.9:80', cpu: 0.5 }, // unknown endpoint: rejected
    ]);
    expect(result.accepted).toBe(2);
    // What the LRS service does with a converted Envoy load report.
    fulcrum.signals.store.record('fixed', '10.0.1.1:80', { at: fulcrum.signals.store.now(), rps: 12, source: 'lrs' });

    const text = await scrape();
    expect(value(text, 'fulcrum_endpoint_utilization{cluster="adaptive",endpoint="10.0.2.1:80"}')).toBe(0.9);
    expect(value(text, 'fulcrum_endpoint_utilization{cluster="adaptive",endpoint="10.0.2.2:80"}')).toBe(0.1);
    // The LRS sample carried no CPU: no utilization series for it.
    expect(value(text, 'fulcrum_endpoint_utilization{cluster="fixed",endpoint="10.0.1.1:80"}')).toBeUndefined();
    expect(value(text, 'fulcrum_reports_samples_total{transport="http",result="accepted"}')).toBe(2);
    expect(value(text, 'fulcrum_reports_samples_total{transport="http",result="rejected"}')).toBe(1);
    expect(value(text, 'fulcrum_reports_samples_total{transport="grpc",result="accepted"}')).toBe(0);
    expect(value(text, 'fulcrum_reports_samples_total{transport="lrs",result="accepted"}')).toBe(1);
  });

  it('publishes the engine\'s weights for an adaptive cluster, times its ticks and weight writes', async () => {
    // Keep the signals fresh while the controller moves weight off the hot endpoint.
    const text = await waitFor(
      async (ctx) => {
        report([
          { cluster: 'adaptive', endpoint: '10.0.2.1:80', cpu: 0.9 },
          { cluster: 'adaptive', endpoint: '10.0.2.2:80', cpu: 0.1 },
        ]);
        const t = await scrape();
        const hot = value(t, 'fulcrum_endpoint_weight{cluster="adaptive",endpoint="10.0.2.1:80"}');
        const cold = value(t, 'fulcrum_endpoint_weight{cluster="adaptive",endpoint="10.0.2.2:80"}');
        const published = fulcrum.adaptive.current().get('adaptive');
        ctx.note({ hot, cold, published });
        const ok =
          hot !== undefined &&
          cold !== undefined &&
          cold > hot &&
          hot === published?.get('10.0.2.1:80')?.weight &&
          cold === published.get('10.0.2.2:80')?.weight;
        return ok ? t : undefined;
      },
      { what: 'the adaptive cluster\'s published weights in /metrics, the cold endpoint heavier', intervalMs: 100 },
    );
    expect(value(text, 'fulcrum_engine_tick_seconds_count')).toBeGreaterThan(0);
    expect(value(text, 'fulcrum_engine_tick_seconds_bucket{le="+Inf"}')).toBe(value(text, 'fulcrum_engine_tick_seconds_count'));
    expect(value(text, 'fulcrum_store_write_seconds_count{kind="weights"}')).toBeGreaterThan(0);
    expect(value(text, 'fulcrum_store_write_seconds_sum{kind="weights"}')).toBeGreaterThan(0);
  });

  it('drops the series of an endpoint that left the catalog, and counts the API write', async () => {
    const before = value(await scrape(), 'fulcrum_store_write_seconds_count{kind="catalog"}') ?? 0;
    const put = await fetch(`http://127.0.0.1:${fulcrum.adminPort}/v1/clusters/shop`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'shop',
        endpoints: [
          { address: '10.0.3.1', port: 80, weight: 2 },
          { address: '10.0.3.2', port: 80, weight: 4 },
        ],
      }),
    });
    expect(put.status).toBe(201);
    report([{ cluster: 'shop', endpoint: '10.0.3.2:80', cpu: 0.3 }]);
    let text = await scrape();
    expect(value(text, 'fulcrum_endpoint_weight{cluster="shop",endpoint="10.0.3.2:80"}')).toBe(4);
    expect(value(text, 'fulcrum_endpoint_utilization{cluster="shop",endpoint="10.0.3.2:80"}')).toBe(0.3);
    expect(value(text, 'fulcrum_store_write_seconds_count{kind="catalog"}')).toBe(before + 1);

    const shrink = await fetch(`http://127.0.0.1:${fulcrum.adminPort}/v1/clusters/shop`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'shop', endpoints: [{ address: '10.0.3.1', port: 80, weight: 2 }] }),
    });
    expect(shrink.status).toBe(200);
    text = await scrape();
    expect(value(text, 'fulcrum_endpoint_weight{cluster="shop",endpoint="10.0.3.1:80"}')).toBe(2);
    expect(value(text, 'fulcrum_endpoint_weight{cluster="shop",endpoint="10.0.3.2:80"}')).toBeUndefined();
    expect(value(text, 'fulcrum_endpoint_utilization{cluster="shop",endpoint="10.0.3.2:80"}')).toBeUndefined();
  });
});
