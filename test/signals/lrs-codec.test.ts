import { describe, expect, it } from 'vitest';
import { decodeBoundedLoadStatsRequest, decodeLoadStatsRequest, encodeLoadStatsRequest, MAX_LOAD_REPORT_ENTRIES, type WireLoadStatsRequest } from '../../src/signals/lrs-codec.js';
import { envoyType } from '../../src/xds/envoy-api.js';

/** A report as Envoy 1.40 sends every one: its whole Node (516 extensions, metadata, locality…) and the stats. */
function envoyReport(): WireLoadStatsRequest {
  // Fields fulcrum does not type (priority, dropped requests, the Node's others) are encoded all the same.
  return ({
    node: {
      id: 'sidecar~10.0.0.7~web-1.default~default.svc.cluster.local',
      cluster: 'web',
      user_agent_name: 'envoy',
      user_agent_build_version: { version: { major_number: 1, minor_number: 40 } },
      metadata: { fields: { zone: { string_value: 'a' } } },
      locality: { region: 'r', zone: 'a' },
      client_features: ['envoy.lb.does_not_support_overprovisioning', 'envoy.lrs.supports_send_all_clusters'],
      extensions: Array.from({ length: 516 }, (_, i) => ({ name: `envoy.filters.http.ext_${i}`, category: 'envoy.filters.http', type_urls: [`type.googleapis.com/envoy.ext.v3.Ext${i}`] })),
    },
    cluster_stats: [
      {
        cluster_name: 'web',
        load_report_interval: { seconds: 2, nanos: 3_000_000 },
        total_dropped_requests: 4,
        upstream_locality_stats: [
          {
            locality: { region: 'r', zone: 'a', sub_zone: 's' },
            total_successful_requests: 18,
            total_error_requests: 2,
            total_requests_in_progress: 3,
            total_issued_requests: 20,
            priority: 1,
            cpu_utilization: { num_requests_finished_with_metric: 20, total_metric_value: 8.5 },
            load_metric_stats: [{ metric_name: 'named_metrics.queue', num_requests_finished_with_metric: 20, total_metric_value: 140 }],
            upstream_endpoint_stats: [
              {
                address: { socket_address: { address: '10.0.0.1', port_value: 8080 } },
                total_successful_requests: 18,
                total_error_requests: 2,
                total_requests_in_progress: 3,
                total_issued_requests: 20,
                load_metric_stats: [{ metric_name: 'cpu_utilization', num_requests_finished_with_metric: 20, total_metric_value: 8.4 }],
              },
            ],
          },
        ],
      },
      { cluster_name: 'idle', load_report_interval: { seconds: 2 } },
    ],
  } as unknown) as WireLoadStatsRequest;
}

describe('LRS codec', () => {
  it("reads a report as the full type does, but of the Node only its id, cluster, user agent name and client features", () => {
    const bytes = encodeLoadStatsRequest(envoyReport());
    expect(bytes.length).toBeGreaterThan(40_000);
    const full = envoyType('envoy.service.load_stats.v3.LoadStatsRequest');
    const whole = full.toObject(full.decode(bytes), { longs: Number, defaults: false, arrays: true }) as { node: Record<string, unknown>; cluster_stats: unknown };
    const read = decodeLoadStatsRequest(bytes);
    expect(read.cluster_stats).toEqual(whole.cluster_stats);
    expect(read.node).toEqual({ id: whole.node.id, cluster: whole.node.cluster, user_agent_name: 'envoy', client_features: whole.node.client_features });
    expect((whole.node.extensions as unknown[]).length).toBe(516);
  });

  it('counts a report\'s entries at every level before decoding it, and refuses one past the limit undecoded', () => {
    // Two clusters, a locality and its metric, an endpoint and its metric: 6; the Node's 516 extensions do not count.
    const bytes = encodeLoadStatsRequest(envoyReport());
    expect(decodeBoundedLoadStatsRequest(bytes, 6)).toEqual(decodeLoadStatsRequest(bytes));
    expect(decodeBoundedLoadStatsRequest(bytes, 5)).toEqual({ oversized: 6 });
    // Two million empty cluster_stats in 4 MiB (two bytes each): refused, counted only one past the limit.
    const empties = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < empties.length; i += 2) empties[i] = 0x12;
    expect(decodeBoundedLoadStatsRequest(empties)).toEqual({ oversized: MAX_LOAD_REPORT_ENTRIES + 1 });
    // A length past the end is an error, as protobufjs's own decoding says.
    expect(() => decodeBoundedLoadStatsRequest(Buffer.from([0x12, 0x05, 0x0a]))).toThrow(RangeError);
  });

  it('counts the values of an endpoint\'s metadata, a Struct a client fills at will', () => {
    const report = envoyReport();
    const endpoint = (report.cluster_stats as { upstream_locality_stats: { upstream_endpoint_stats: Record<string, unknown>[] }[] }[])[0]?.upstream_locality_stats[0]?.upstream_endpoint_stats[0];
    if (!endpoint) throw new Error('the report has no endpoint');
    endpoint.metadata = { fields: { a: { listValue: { values: Array.from({ length: 20 }, () => ({})) } } } };
    // 6 as above, and the metadata: the Struct, its field's entry and Value, the list and its 20 values: 30.
    const bytes = encodeLoadStatsRequest(report);
    expect(decodeBoundedLoadStatsRequest(bytes, 30)).toEqual(decodeLoadStatsRequest(bytes));
    expect(decodeBoundedLoadStatsRequest(bytes, 29)).toHaveProperty('oversized');
  });
});
