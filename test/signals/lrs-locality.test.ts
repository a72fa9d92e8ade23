import { describe, expect, it } from 'vitest';
import { LrsAggregator, type LrsGranularity, type LrsReportResult } from '../../src/signals/lrs-aggregator.js';
import type { WireLoadStatsRequest, WireLocalityStats } from '../../src/signals/lrs-codec.js';
import { attributeLocality, localityId, reportLoads, type LocalityLoad } from '../../src/signals/lrs-conversion.js';
import { applied } from '../support/lrs.js';

/** Shaped like grpc-go 1.85's load report: per locality, no endpoint stats, ORCA utilization in the unnamed fields (gRFC A85). */
function grpcGoReport(localities: WireLocalityStats[], intervalMs = 1000): WireLoadStatsRequest {
  return {
    cluster_stats: [
      { cluster_name: 'svc', load_report_interval: { seconds: Math.floor(intervalMs / 1000), nanos: (intervalMs % 1000) * 1e6 }, upstream_locality_stats: localities },
    ],
  };
}

const zoneA = { region: 'r', zone: 'a' };
const zoneB = { region: 'r', zone: 'b' };
const idA = localityId({ region: 'r', zone: 'a', subZone: '' });
const idB = localityId({ region: 'r', zone: 'b', subZone: '' });

const members: Record<string, { key: string; weight: number }[]> = {
  [idA]: [{ key: '10.0.0.1:80', weight: 1 }],
  [idB]: [
    { key: '10.0.0.2:80', weight: 1 },
    { key: '10.0.0.3:80', weight: 3 },
  ],
};

function aggregator(counted: [LrsGranularity, LrsReportResult, number][] = []) {
  return new LrsAggregator({
    localityMembers: (cluster, locality) => (cluster === 'svc' ? (members[localityId(locality)] ?? []) : []),
    onEntries: (g, r, n) => counted.push([g, r, n]),
  });
}

describe('LRS per-locality reports (grpc-go)', () => {
  it('reads localities without endpoint stats, with cpu/mem from the unnamed fields', () => {
    const loads = reportLoads(
      grpcGoReport([
        {
          locality: zoneA,
          total_issued_requests: 10,
          total_successful_requests: 9,
          total_error_requests: 1,
          cpu_utilization: { num_requests_finished_with_metric: 10, total_metric_value: 4 },
          load_metric_stats: [{ metric_name: 'named_metrics.latency_ms', num_requests_finished_with_metric: 10, total_metric_value: 120 }],
        },
        { locality: zoneB }, // no traffic in the interval: nothing to attribute
      ]),
      2000,
    );
    expect(loads.endpoints).toEqual([]);
    expect(loads.localities).toHaveLength(1);
    const [a] = loads.localities;
    expect(a).toMatchObject({ cluster: 'svc', locality: { region: 'r', zone: 'a', subZone: '' }, issued: 10, failed: 1, intervalMs: 1000 });
    expect(Object.fromEntries(a?.metrics ?? [])).toEqual({ cpu_utilization: { count: 10, total: 4 }, 'named_metrics.latency_ms': { count: 10, total: 120 } });
  });

  it('a locality with endpoint stats (Envoy) is taken per endpoint, never as a locality', () => {
    const loads = reportLoads(
      grpcGoReport([{ locality: zoneA, total_issued_requests: 5, upstream_endpoint_stats: [{ address: { socket_address: { address: '10.0.0.1', port_value: 80 } }, total_issued_requests: 5 }] }]),
      1000,
    );
    expect(loads.localities).toEqual([]);
    expect(loads.endpoints.map((e) => e.key)).toEqual(['10.0.0.1:80']);
  });

  it('attributes a one-endpoint locality exactly, spreads a larger one by weight share with the locality mean for metrics, drops an unknown one', () => {
    const load: LocalityLoad = {
      cluster: 'svc',
      locality: { region: 'r', zone: 'b', subZone: '' },
      intervalMs: 1000,
      issued: 40,
      succeeded: 36,
      failed: 4,
      inProgress: 8,
      metrics: new Map([['cpu_utilization', { count: 40, total: 20 }]]),
    };
    expect(attributeLocality(load, [])).toEqual({ result: 'dropped', loads: [] });
    const exact = attributeLocality(load, [{ key: 'x:1', weight: 7 }]);
    expect(exact.result).toBe('exact');
    expect(exact.loads[0]).toMatchObject({ key: 'x:1', issued: 40, failed: 4, inProgress: 8 });
    const spread = attributeLocality(load, members[idB] ?? []);
    expect(spread.result).toBe('spread');
    expect(spread.loads.map((l) => [l.key, l.issued, l.failed])).toEqual([
      ['10.0.0.2:80', 10, 1],
      ['10.0.0.3:80', 30, 3],
    ]);
    for (const l of spread.loads) {
      const cpu = l.metrics.get('cpu_utilization');
      expect(cpu && cpu.total / cpu.count).toBeCloseTo(0.5, 9);
    }
  });

  it('turns a grpc-go report into samples (rps, errors/s, cpu) and counts what it did', () => {
    const counted: [LrsGranularity, LrsReportResult, number][] = [];
    const agg = aggregator(counted);
    const out = applied(agg, 
      1,
      grpcGoReport([
        { locality: zoneA, total_issued_requests: 12, total_error_requests: 2, cpu_utilization: { num_requests_finished_with_metric: 12, total_metric_value: 6 } },
        { locality: zoneB, total_issued_requests: 40, total_error_requests: 4 },
        { locality: { zone: 'nowhere' }, total_issued_requests: 3 },
      ]),
      0,
      1000,
    );
    const byKey = Object.fromEntries(out.map((o) => [o.key, o.sample]));
    expect(byKey['10.0.0.1:80']).toMatchObject({ rps: 12, errors: 2, source: 'lrs' });
    expect(byKey['10.0.0.1:80']?.cpu).toBeCloseTo(0.5, 9);
    expect(byKey['10.0.0.2:80']).toMatchObject({ rps: 10, errors: 1 });
    expect(byKey['10.0.0.3:80']).toMatchObject({ rps: 30, errors: 3 });
    expect(byKey['10.0.0.3:80']?.cpu).toBeUndefined();
    expect(counted).toEqual([
      ['locality', 'exact', 1],
      ['locality', 'spread', 1],
      ['locality', 'dropped', 1],
    ]);
  });
});

describe('LRS load metrics → sample fields', () => {
  const endpointReport = (metrics: { name: string; count: number; total: number }[], failed = 0): WireLoadStatsRequest => ({
    cluster_stats: [
      {
        cluster_name: 'svc',
        load_report_interval: { seconds: 1 },
        upstream_locality_stats: [
          {
            upstream_endpoint_stats: [
              {
                address: { socket_address: { address: '10.0.0.9', port_value: 80 } },
                total_issued_requests: 10,
                total_error_requests: failed,
                load_metric_stats: metrics.map((m) => ({ metric_name: m.name, num_requests_finished_with_metric: m.count, total_metric_value: m.total })),
              },
            ],
          },
        ],
      },
    ],
  });

  it('named_metrics.latency_ms feeds latencyMs by default (mean over the requests that carried it)', () => {
    const [s] = applied(new LrsAggregator(), 1, endpointReport([{ name: 'named_metrics.latency_ms', count: 10, total: 250 }]), 0, 1000);
    expect(s?.sample.latencyMs).toBeCloseTo(25, 9);
  });

  it('a metric mapped to errors raises the counted error rate but never lowers it', () => {
    const agg = new LrsAggregator({ metricFields: { 'named_metrics.eps': 'errors', 'named_metrics.p50': 'latencyMs' } });
    const [higher] = applied(agg, 1, endpointReport([{ name: 'named_metrics.eps', count: 10, total: 50 }], 2), 0, 1000);
    expect(higher?.sample.errors).toBe(5); // backend saw 5/s, the proxy counted 2/s
    const [lower] = applied(agg, 1, endpointReport([{ name: 'named_metrics.eps', count: 10, total: 5 }], 2), 10, 1000);
    expect(lower?.sample.errors).toBe(2);
    // Replacing the defaults: cpu_utilization is no longer mapped.
    const [noCpu] = applied(agg, 2, endpointReport([{ name: 'cpu_utilization', count: 10, total: 5 }]), 20, 1000);
    expect(noCpu?.sample.cpu).toBeUndefined();
  });
});
