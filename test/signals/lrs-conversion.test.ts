import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LrsAggregator } from '../../src/signals/lrs-aggregator.js';
import { decodeLoadStatsResponse, encodeLoadStatsRequest, LRS_METHOD_PATH, type WireLoadStatsRequest } from '../../src/signals/lrs-codec.js';
import { endpointLoads } from '../../src/signals/lrs-conversion.js';
import { lrsService, type LrsService } from '../../src/signals/lrs-service.js';
import { SignalStore, type Sample } from '../../src/signals/signal-store.js';
import { validateSample as validateEngineSample } from '../../src/balancing/engine/stages.js';
import { applied } from '../support/lrs.js';
import { waitFor } from '../support/wait.js';
import { serveLocal, type LocalGrpc } from '../support/local-grpc.js';

const ep = (port: number, fields: Record<string, unknown>) => ({ address: { socket_address: { address: '10.0.0.1', port_value: port } }, ...fields });

/** Shaped like what Envoy 1.40 sends (see src/signals/README.md). */
function report(eps: Record<string, unknown>[], intervalMs = 2000): WireLoadStatsRequest {
  return {
    node: { id: 'envoy-1' },
    cluster_stats: [
      {
        cluster_name: 'web',
        load_report_interval: { seconds: Math.floor(intervalMs / 1000), nanos: (intervalMs % 1000) * 1e6 },
        upstream_locality_stats: [{ locality: { zone: 'a' }, upstream_endpoint_stats: eps }],
      },
      { cluster_name: 'idle', load_report_interval: { seconds: 2 } },
    ],
  };
}

const A = ep(8080, {
  total_issued_requests: 20,
  total_successful_requests: 18,
  total_error_requests: 2,
  total_requests_in_progress: 3,
  load_metric_stats: [
    { metric_name: 'cpu_utilization', num_requests_finished_with_metric: 20, total_metric_value: 8.4 },
    { metric_name: 'mem_utilization', num_requests_finished_with_metric: 20 }, // the backend did not send it
    { metric_name: 'named_metrics.queue', num_requests_finished_with_metric: 20, total_metric_value: 140 },
  ],
});

describe('LRS conversion', () => {
  it('turns endpoint stats into per-endpoint loads', () => {
    const loads = endpointLoads(report([A, ep(8081, { total_issued_requests: 4 })]), 1000);
    expect(loads).toHaveLength(2);
    const [a, b] = loads;
    expect(a).toMatchObject({ cluster: 'web', key: '10.0.0.1:8080', intervalMs: 2000, issued: 20, succeeded: 18, failed: 2, inProgress: 3 });
    expect(Object.fromEntries(a?.metrics ?? [])).toEqual({ cpu_utilization: { count: 20, total: 8.4 }, 'named_metrics.queue': { count: 20, total: 140 } });
    expect(b).toMatchObject({ key: '10.0.0.1:8081', issued: 4, failed: 0, inProgress: 0 });
    expect(b?.metrics.size).toBe(0);
  });

  it('rps = issued / interval, errors per second, inflight, cpu = mean ORCA value; unknown stays absent', () => {
    const agg = new LrsAggregator();
    const out = applied(agg, 1, report([A]), 5_000, 1000);
    expect(out).toHaveLength(1);
    const s = out[0]?.sample;
    expect(s).toMatchObject({ at: 5_000, rps: 10, errors: 1, inflight: 3, source: 'lrs' });
    expect(s?.cpu).toBeCloseTo(0.42, 9);
    expect(s?.memory).toBeUndefined();
  });

  it('leaves out an ORCA value no sample may carry (negative, non-finite, a latency over its limit); utilization over 1 is kept', () => {
    const agg = new LrsAggregator({ metricFields: { cpu_utilization: 'cpu', mem_utilization: 'memory', 'named_metrics.latency_ms': 'latencyMs', eps: 'errors' } });
    const metric = (metric_name: string, total_metric_value: number) => ({ metric_name, num_requests_finished_with_metric: 10, total_metric_value });
    const out = applied(agg, 1, report([ep(8080, {
      total_issued_requests: 10,
      load_metric_stats: [metric('cpu_utilization', 15), metric('mem_utilization', -3), metric('named_metrics.latency_ms', 1e300), metric('eps', Number.MAX_VALUE)],
    })], 1000), 0, 1000);
    const s = out[0]?.sample;
    expect(s).toMatchObject({ rps: 10, cpu: 1.5, source: 'lrs' });
    expect(s?.memory).toBeUndefined();
    expect(s?.latencyMs).toBeUndefined();
    expect(s?.errors).toBe(0); // the counters' own rate, not the refused ORCA value
    // What is left is a sample the engine takes.
    expect(() => validateEngineSample(s as Sample)).not.toThrow();
  });

  it('sums the shares of several proxies and zeroes an endpoint a proxy stops reporting', () => {
    const agg = new LrsAggregator();
    applied(agg, 1, report([ep(8080, { total_issued_requests: 10, load_metric_stats: [{ metric_name: 'cpu_utilization', num_requests_finished_with_metric: 10, total_metric_value: 5 }] })], 1000), 0, 1000);
    const both = applied(agg, 2, report([ep(8080, { total_issued_requests: 30, load_metric_stats: [{ metric_name: 'cpu_utilization', num_requests_finished_with_metric: 30, total_metric_value: 18 }] })], 1000), 100, 1000);
    expect(both[0]?.sample.rps).toBe(40);
    expect(both[0]?.sample.cpu).toBeCloseTo((5 + 18) / 40, 9); // weighted by requests
    // Proxy 1 reports the cluster without the endpoint: its share is now 0.
    const after = applied(agg, 1, report([], 1000), 1_000, 1000);
    expect(after[0]?.sample.rps).toBe(30);
    // Proxy 2's share expires after 3 intervals without a report; a closed stream is forgotten at once.
    expect(agg.combined('web', '10.0.0.1:8080', 3_200)?.rps).toBe(0);
    agg.dropStream(1);
    expect(agg.combined('web', '10.0.0.1:8080', 3_200)).toBeUndefined();
  });

  it('skips endpoints without a socket address and clusters without a name', () => {
    const req: WireLoadStatsRequest = {
      cluster_stats: [
        { cluster_name: '', upstream_locality_stats: [{ upstream_endpoint_stats: [A] }] },
        { cluster_name: 'web', upstream_locality_stats: [{ upstream_endpoint_stats: [{ total_issued_requests: 3 }] }] },
      ],
    };
    expect(endpointLoads(req, 1000)).toEqual([]);
  });
});

describe('LRS service over loopback', () => {
  let loopback: LocalGrpc | undefined;
  let client: grpc.Client;
  let lrs: LrsService;
  const store = new SignalStore();

  beforeAll(async () => {
    lrs = lrsService({ store, reportingIntervalMs: 1500, knows: (_c, key) => key !== '10.0.0.1:9999' });
    loopback = await serveLocal(lrs);
    client = loopback.client;
  });

  afterAll(() => loopback?.close());

  function open() {
    const call = client.makeBidiStreamRequest(LRS_METHOD_PATH, (b: Buffer) => b, (b: Buffer) => b);
    const responses: ReturnType<typeof decodeLoadStatsResponse>[] = [];
    call.on('data', (b: Buffer) => responses.push(decodeLoadStatsResponse(b)));
    call.on('error', () => undefined);
    return { call, responses };
  }

  it('answers the first request with send_all_clusters, the interval and endpoint granularity, then records reports', async () => {
    const { call, responses } = open();
    call.write(encodeLoadStatsRequest({ node: { id: 'e1', client_features: ['envoy.lrs.supports_send_all_clusters'] } }));
    const first = await waitFor(() => responses[0], { what: 'a LoadStatsResponse' });
    expect(first).toMatchObject({ send_all_clusters: true, report_endpoint_granularity: true, load_reporting_interval: { seconds: 1, nanos: 500_000_000 } });
    call.write(encodeLoadStatsRequest(report([A, ep(9999, { total_issued_requests: 1 })])));
    await waitFor(() => store.latest('web', '10.0.0.1:8080'), { what: 'a sample' });
    expect(store.latest('web', '10.0.0.1:8080')?.rps).toBe(10);
    expect(store.latest('web', '10.0.0.1:9999')).toBeUndefined(); // not in the catalog
    expect(responses).toHaveLength(1);
    lrs.refresh();
    await waitFor(() => responses.length === 2, { what: 'a second response after refresh()' });
    lrs.close();
    await waitFor(() => lrs.streamCount === 0, { what: 'the stream to close' });
  });

  it('a client without send_all_clusters gets nothing asked unless a cluster list is configured', async () => {
    const { call, responses } = open();
    call.write(encodeLoadStatsRequest({ node: { id: 'grpc-client' } }));
    const first = await waitFor(() => responses[0], { what: 'a LoadStatsResponse' });
    expect(first.send_all_clusters).toBeFalsy();
    expect(first.clusters ?? []).toEqual([]);
    call.end();
  });
});

describe('clusterResource with LoadReportingOptions', () => {
  it('emits lrs_server { self } and lrs_report_endpoint_metrics, and nothing without the option', async () => {
    const { clusterResource } = await import('../../src/xds/translate-clusters.js');
    const { encodeMessage, envoyType } = await import('../../src/xds/envoy-api.js');
    const c = { name: 'web', lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false, endpoints: [], weighting: { kind: 'static' } } as const;
    const type = envoyType('envoy.config.cluster.v3.Cluster');
    const decoded = type.toObject(type.decode(encodeMessage('envoy.config.cluster.v3.Cluster', clusterResource(c, { reportEndpointMetrics: ['cpu_utilization', 'named_metrics.*'] }))), { enums: String });
    expect(decoded.lrs_server).toEqual({ self: {}, resource_api_version: 'V3' });
    expect(decoded.lrs_report_endpoint_metrics).toEqual(['cpu_utilization', 'named_metrics.*']);
    const plain = clusterResource(c);
    expect(plain.lrs_server).toBeUndefined();
    expect(plain.lrs_report_endpoint_metrics).toBeUndefined();
  });
});
