import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import YAML from 'yaml';
import { startFulcrum } from '../../src/main.js';
import { durationMs, type WireLoadStatsRequest } from '../../src/signals/lrs-codec.js';
import { lrsService, type LrsService, type LrsServiceOptions } from '../../src/signals/lrs-service.js';
import { SignalStore } from '../../src/signals/signal-store.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { envoyType, TYPE } from '../../src/xds/envoy-api.js';
import { encodeResource } from '../../src/xds/resource.js';
import { clusterResource } from '../../src/xds/translate-clusters.js';
import { translate } from '../../src/xds/translator.js';
import { sendRequests } from '../support/backends.js';
import { describeEnvoy, dumpLogsOnFailure, startEnvoy, type Bootstrap, type EnvoyHandle } from '../support/envoy.js';
import { startOrcaBackends, type OrcaBackends } from '../support/orca-backends.js';
import { freePort } from '../support/ports.js';
import { waitFor, scaled } from '../support/wait.js';

/**
 * A real Envoy 1.40 gets its listener, cluster and endpoints from fulcrum (SotW ADS); the cluster
 * carries `lrs_report_endpoint_metrics`; the bootstrap has `cluster_manager.load_stats_config`.
 * Backends answer with ORCA headers (TEXT and JSON). Asserted: what Envoy sends on the LRS stream
 * and what lands in the SignalStore.
 *
 * The LRS service runs on its own gRPC server here because XdsServer cannot register extra
 * services yet; in production it shares the xDS port and load_stats_config names fulcrum_xds.
 */

/** Field numbers on the wire that the loaded proto tree does not know (Envoy newer than the tree?). */
function unknownFields(type: protobuf.Type, buf: Uint8Array, path = type.name, out = new Set<string>()): Set<string> {
  const r = protobuf.Reader.create(buf);
  while (r.pos < r.len) {
    const tag = r.uint32();
    const id = tag >>> 3;
    const wt = tag & 7;
    const field = type.fieldsById[id];
    if (!field) {
      out.add(`${path}#${id}`);
      r.skipType(wt);
    } else if (wt === 2 && field.resolvedType instanceof protobuf.Type) {
      const len = r.uint32();
      unknownFields(field.resolvedType, r.buf.subarray(r.pos, r.pos + len), `${path}.${field.name}`, out);
      r.pos += len;
    } else r.skipType(wt);
  }
  return out;
}

/** What a test of Envoy's load reports runs against: ORCA backends behind a real Envoy, its LRS stream to an LrsService of its own. */
interface LrsRig {
  readonly backends: OrcaBackends;
  readonly envoy: EnvoyHandle;
  readonly lrs: LrsService;
  readonly listenerPort: number;
  close(): Promise<void>;
}

/** Where a rig's requests and samples go, and what it runs. */
interface RigSinks {
  readonly nodeId: string;
  readonly backends: Parameters<typeof startOrcaBackends>[0];
  readonly store: SignalStore;
  readonly requests: { at: number; req: WireLoadStatsRequest }[];
  readonly unknown?: Set<string>;
}

async function startLrsRig(lrsOptions: Omit<LrsServiceOptions, 'store' | 'onRequest'>, sinks: RigSinks): Promise<LrsRig> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-lrs-'));
  const backends = await startOrcaBackends(sinks.backends);
  const listenerPort = await freePort();

  // LRS on its own port, capturing every request (decoded, and its raw bytes for unknown fields).
  const lrs = lrsService({ ...lrsOptions, store: sinks.store, onRequest: (req) => sinks.requests.push({ at: Date.now(), req }) });
  const method = lrs.definition.StreamLoadStats;
  if (!method) throw new Error('no StreamLoadStats');
  const requestType = envoyType('envoy.service.load_stats.v3.LoadStatsRequest');
  const definition: grpc.ServiceDefinition = {
    StreamLoadStats: {
      ...method,
      requestDeserialize: (b: Buffer) => {
        for (const f of unknownFields(requestType, b)) sinks.unknown?.add(f);
        return method.requestDeserialize(b);
      },
    },
  };
  const lrsServer = new grpc.Server();
  lrsServer.addService(definition, lrs.implementation);
  const lrsPort = await new Promise<number>((resolve, reject) =>
    lrsServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );

  const configText = YAML.stringify({
    // Retries and outlier detection (on by default) would re-send or divert the 503s this test counts.
    clusters: [{
      name: 'web', lbPolicy: 'ROUND_ROBIN', outlierDetection: { enabled: false }, retryPolicy: { enabled: false },
      endpoints: backends.list.map((b) => ({ address: '127.0.0.1', port: b.port })),
    }],
    listeners: [{ name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'web' }] }],
  });
  const configPath = join(dir, 'fulcrum.yaml');
  await writeFile(configPath, configText);
  const fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger: pino({ level: 'silent' }), debounce: { quietMs: 20, maxMs: 200 } });

  // The translator does not pass LoadReportingOptions yet: publish the same resources with the
  // web cluster re-encoded with them, straight into fulcrum's cache (what the wiring will do).
  const catalog = parseConfig(configText, configPath).catalog;
  const reporting = new Map(catalog.clusters.map((c) => {
    const res = clusterResource(c, { reportEndpointMetrics: ['cpu_utilization', 'mem_utilization', 'named_metrics.*', 'eps', 'rps_fractional'] });
    return [c.name, encodeResource(TYPE.cluster, c.name, res)];
  }));
  // The translator's maps are read-only: each group's set with its Cluster map replaced.
  const groups = new Map([...translate(catalog)].map(([group, set]) => [group, new Map([...set, [TYPE.cluster, reporting]])]));
  fulcrum.cache.update(groups);

  const envoy = await startEnvoy({
    xdsPort: fulcrum.xdsPort,
    mode: 'sotw',
    nodeId: sinks.nodeId,
    name: sinks.nodeId,
    patchBootstrap: (b: Bootstrap) => {
      const statics = b.static_resources as { clusters: unknown[] };
      statics.clusters.push({
        name: 'fulcrum_lrs',
        type: 'STATIC',
        connect_timeout: '1s',
        typed_extension_protocol_options: {
          'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
            '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
            explicit_http_config: { http2_protocol_options: {} },
          },
        },
        load_assignment: {
          cluster_name: 'fulcrum_lrs',
          endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: lrsPort } } } }] }],
        },
      });
      b.cluster_manager = {
        load_stats_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'fulcrum_lrs' } }] },
      };
    },
  });
  const close = async (): Promise<void> => {
    await envoy.stop();
    lrs.close();
    lrsServer.forceShutdown();
    await fulcrum.stop();
    await backends.close();
    await rm(dir, { recursive: true, force: true });
  };
  return { backends, envoy, lrs, listenerPort, close };
}

describeEnvoy('LRS from a real Envoy (ORCA via endpoint-load-metrics)', () => {
  const intervalMs = 1000;
  let rig: LrsRig | undefined;
  let backends: OrcaBackends;
  let envoy: EnvoyHandle;
  let lrs: LrsService;
  let listenerPort: number;
  const store = new SignalStore();
  const requests: { at: number; req: WireLoadStatsRequest }[] = [];
  const unknown = new Set<string>();

  beforeAll(async () => {
    rig = await startLrsRig(
      { reportingIntervalMs: intervalMs },
      {
        nodeId: 'envoy-lrs',
        backends: [
          { format: 'TEXT', cpu: 0.42, mem: 0.3, named: { queue: 7 }, other: { eps: 3, rps_fractional: 9 } },
          { format: 'JSON', cpu: 0.8, mem: 0.5, named: { latency_ms: 12 } },
          { format: 'TEXT', cpu: 0.1, status: 503 },
          { format: 'none' },
        ],
        store,
        requests,
        unknown,
      },
    );
    ({ backends, envoy, lrs, listenerPort } = rig);
  }, scaled(60_000));

  afterAll(async () => {
    await rig?.close();
  });

  dumpLogsOnFailure(() => envoy);

  it('Envoy accepts the LRS fields over CDS and opens the LRS stream with node first, no stats', async () => {
    await envoy.waitForListener('ingress', 20_000);
    const dump = JSON.stringify(await envoy.configDump());
    expect(dump).toContain('"lrs_report_endpoint_metrics":["cpu_utilization","mem_utilization","named_metrics.*","eps","rps_fractional"]');
    const first = await waitFor(() => requests[0], { what: 'the first LoadStatsRequest' });
    expect(first.req.node?.id).toBe('envoy-lrs');
    expect(first.req.node?.client_features).toContain('envoy.lrs.supports_send_all_clusters');
    expect(first.req.cluster_stats ?? []).toEqual([]);
    expect(lrs.streamCount).toBe(1);
    // A cluster that arrives over CDS after the LoadStatsResponse is reported from the next interval on.
    await waitFor(() => requests.some(({ req }) => (req.cluster_stats ?? []).some((cs) => cs.cluster_name === 'web')), { what: 'a report naming web' });
  });

  it('reports per-endpoint request counts and ORCA utilization, which land in the SignalStore', async () => {
    const sent = await sendRequests(`http://127.0.0.1:${listenerPort}/`, 120, { concurrency: 4 });
    expect(sent.sent).toBe(120);
    const [a, b, c, d] = backends.list;
    if (!a || !b || !c || !d) throw new Error('four backends expected');

    // Every request is accounted for, per endpoint, across reports (counters are per interval).
    const issued = await waitFor(
      ({ note }) => {
        const perKey = new Map<string, number>();
        for (const { req } of requests) {
          for (const cs of req.cluster_stats ?? []) {
            if (cs.cluster_name !== 'web') continue;
            for (const loc of cs.upstream_locality_stats ?? []) {
              for (const ep of loc.upstream_endpoint_stats ?? []) {
                const key = `${ep.address?.socket_address?.address}:${ep.address?.socket_address?.port_value}`;
                perKey.set(key, (perKey.get(key) ?? 0) + (ep.total_issued_requests ?? 0));
              }
            }
          }
        }
        const total = [...perKey.values()].reduce((x, y) => x + y, 0);
        note({ perKey: Object.fromEntries(perKey), n: requests.length, names: [...new Set(requests.flatMap((r) => (r.req.cluster_stats ?? []).map((c) => c.cluster_name)))] });
        return total === 120 && perKey;
      },
      { what: 'LRS reports accounting for all 120 requests', timeoutMs: 10_000 },
    );
    expect(issued.get(a.key)).toBe(a.count);
    expect(issued.get(b.key)).toBe(b.count);
    expect(issued.get(c.key)).toBe(c.count);
    expect(issued.get(d.key)).toBe(d.count);

    // ORCA, TEXT and JSON forms alike, as named load_metric_stats; 503s as errors.
    const webReports = requests.flatMap(({ req }) => (req.cluster_stats ?? []).filter((cs) => cs.cluster_name === 'web' && cs.upstream_locality_stats));
    const endpointStats = webReports.flatMap((cs) => (cs.upstream_locality_stats ?? []).flatMap((l) => l.upstream_endpoint_stats ?? []));
    const statsOf = (port: number) => endpointStats.filter((e) => e.address?.socket_address?.port_value === port);
    const metric = (port: number, name: string) => {
      const ms = statsOf(port).flatMap((e) => e.load_metric_stats ?? []).filter((m) => m.metric_name === name);
      const n = ms.reduce((s, m) => s + (m.num_requests_finished_with_metric ?? 0), 0);
      return n === 0 ? undefined : ms.reduce((s, m) => s + (m.total_metric_value ?? 0), 0) / n;
    };
    expect(metric(a.port, 'cpu_utilization')).toBeCloseTo(0.42, 6);
    expect(metric(a.port, 'mem_utilization')).toBeCloseTo(0.3, 6);
    expect(metric(a.port, 'named_metrics.queue')).toBeCloseTo(7, 6);
    expect(metric(b.port, 'cpu_utilization')).toBeCloseTo(0.8, 6);
    expect(metric(b.port, 'mem_utilization')).toBeCloseTo(0.5, 6);
    // ORCA's eps and rps_fractional are forwarded too when listed; a named latency as any named metric.
    expect(metric(a.port, 'eps')).toBeCloseTo(3, 6);
    expect(metric(a.port, 'rps_fractional')).toBeCloseTo(9, 6);
    expect(metric(b.port, 'named_metrics.latency_ms')).toBeCloseTo(12, 6);
    // Envoy takes ORCA from error responses too.
    expect(metric(c.port, 'cpu_utilization')).toBeCloseTo(0.1, 6);
    // No ORCA header: no load_metric_stats. A header lacking a listed metric: that metric comes
    // with its request count and no total (0), which fulcrum reads as unknown, not as 0.
    expect(statsOf(d.port).flatMap((e) => e.load_metric_stats ?? [])).toEqual([]);
    const cMem = statsOf(c.port).flatMap((e) => e.load_metric_stats ?? []).filter((m) => m.metric_name === 'mem_utilization');
    expect(cMem.reduce((s, m) => s + (m.num_requests_finished_with_metric ?? 0), 0)).toBe(c.count);
    expect(cMem.every((m) => (m.total_metric_value ?? 0) === 0)).toBe(true);
    const errorsOf = (port: number) => statsOf(port).reduce((s, e) => s + (e.total_error_requests ?? 0), 0);
    const okOf = (port: number) => statsOf(port).reduce((s, e) => s + (e.total_successful_requests ?? 0), 0);
    expect(errorsOf(c.port)).toBe(c.count);
    expect(okOf(c.port)).toBe(0);
    expect(okOf(a.port)).toBe(a.count);
    expect(errorsOf(a.port)).toBe(0);

    // The interval Envoy measured is the one asked for (±10%).
    for (const cs of webReports) {
      const ms = (cs.load_report_interval?.seconds ?? 0) * 1000 + (cs.load_report_interval?.nanos ?? 0) / 1e6;
      expect(Math.abs(ms - intervalMs)).toBeLessThan(intervalMs * 0.1);
    }
    // Nothing on the wire beyond the proto tree fulcrum loads.
    expect([...unknown]).toEqual([]);

    // And in the SignalStore (each report's samples reach it within the LRS flush): cpu and
    // memory from ORCA, errors for the 503 backend.
    const withCpu = (key: string) => store.latestWith('web', key, 'cpu');
    await waitFor(() => [a, b, c].every((x) => withCpu(x.key) !== undefined) && store.samples('web', d.key).some((s) => (s.rps ?? 0) > 0), {
      what: 'the reports in the SignalStore',
      timeoutMs: 5_000,
    });
    expect(withCpu(a.key)?.cpu).toBeCloseTo(0.42, 6);
    expect(withCpu(a.key)?.memory).toBeCloseTo(0.3, 6);
    expect(withCpu(b.key)?.cpu).toBeCloseTo(0.8, 6);
    expect(withCpu(c.key)?.cpu).toBeCloseTo(0.1, 6);
    expect(store.samples('web', c.key).some((s) => (s.errors ?? 0) > 0)).toBe(true);
    expect(store.samples('web', a.key).some((s) => (s.rps ?? 0) > 0)).toBe(true);
    expect(withCpu(a.key)?.source).toBe('lrs');
    // Default metric fields: the backend's own eps raises errors/s (Envoy counted none for it),
    // its rps_fractional raises rps; named_metrics.latency_ms is the latency.
    expect(withCpu(a.key)?.errors).toBeCloseTo(3, 6);
    expect(withCpu(a.key)?.rps).toBeGreaterThanOrEqual(9);
    expect(withCpu(b.key)?.latencyMs).toBeCloseTo(12, 6);
    expect(store.latestWith('web', c.key, 'memory')).toBeUndefined();
    expect(store.latestWith('web', d.key, 'cpu')).toBeUndefined();
    expect(store.samples('web', d.key).some((s) => (s.rps ?? 0) > 0)).toBe(true);
  });

  it('after the traffic stops, Envoy sends the cluster with only its name and interval, and the store sees rps 0', async () => {
    const quiet = requests.length;
    const [a] = backends.list;
    if (!a) throw new Error('backend expected');
    await waitFor(
      () => requests.slice(quiet).some(({ req }) => (req.cluster_stats ?? []).some((cs) => cs.cluster_name === 'web' && (cs.upstream_locality_stats ?? []).length === 0)),
      { what: 'an empty web report', timeoutMs: 5_000 },
    );
    await waitFor(() => store.latest('web', a.key)?.rps === 0, { what: 'rps 0 in the SignalStore', timeoutMs: 5_000 });
  });
});

describeEnvoy('LRS from a real Envoy: the interval stretched mid-stream (report-cadence.ts)', () => {
  let rig: LrsRig | undefined;
  const store = new SignalStore();
  const requests: { at: number; req: WireLoadStatsRequest }[] = [];
  /** The interval each report of web says it covers (Envoy measures it), in order. */
  const covered = (): number[] =>
    requests.flatMap(({ req }) => (req.cluster_stats ?? []).filter((cs) => cs.cluster_name === 'web').map((cs) => durationMs(cs.load_report_interval) ?? Number.NaN));

  beforeAll(async () => {
    // Two endpoints a round at one entry a second: past the longest (2 s) once Envoy reports them.
    rig = await startLrsRig(
      { reportingIntervalMs: 1_000, maxReportingIntervalMs: 2_000, reportEntriesPerSecond: 1 },
      { nodeId: 'envoy-lrs-cadence', backends: [{ format: 'TEXT', cpu: 0.3 }, { format: 'TEXT', cpu: 0.6 }], store, requests },
    );
  }, scaled(60_000));

  afterAll(async () => {
    await rig?.close();
  });

  dumpLogsOnFailure(() => rig?.envoy);

  it('Envoy reports every second, then every 2 s once asked, and every request is still counted', async () => {
    const r = rig;
    if (!r) throw new Error('rig expected');
    await r.envoy.waitForListener('ingress', 20_000);
    // Envoy counts a cluster's requests from the report period after it is tracked: traffic
    // starts once a report names web, so every request sent falls in a reported period.
    await waitFor(() => covered().length > 0, { what: 'a report naming web', timeoutMs: scaled(20_000) });
    let sent = 0;
    let stop = false;
    const traffic = (async () => {
      while (!stop) sent += (await sendRequests(`http://127.0.0.1:${r.listenerPort}/`, 20, { concurrency: 2 })).sent;
    })();
    try {
      // At first, reports of 1 s.
      await waitFor(() => covered().filter((ms) => Math.abs(ms - 1_000) < 150).length >= 2, { what: 'two 1 s reports of web', timeoutMs: scaled(20_000) });
      // Asked 2 s after the stretch hold (5 s from the stream's answer): Envoy follows.
      await waitFor(() => r.lrs.intervalMs === 2_000, { what: 'the target at 2 s', timeoutMs: scaled(20_000) });
      await waitFor(() => covered().slice(-2).every((ms) => Math.abs(ms - 2_000) < 200) && covered().length >= 4, { what: 'two 2 s reports of web in a row', timeoutMs: scaled(30_000) });
    } finally {
      stop = true;
      await traffic;
    }
    // Nothing lost across the change: the reports account for every request sent.
    const issued = (): number =>
      requests.reduce(
        (n, { req }) =>
          n + (req.cluster_stats ?? []).filter((cs) => cs.cluster_name === 'web').flatMap((cs) => cs.upstream_locality_stats ?? []).flatMap((l) => l.upstream_endpoint_stats ?? []).reduce((m, e) => m + (e.total_issued_requests ?? 0), 0),
        0,
      );
    await waitFor(
      ({ note }) => {
        note({ issued: issued(), sent });
        return issued() === sent;
      },
      { what: 'every request in the reports', timeoutMs: scaled(10_000) },
    );
    expect(sent).toBeGreaterThan(0);
    for (const b of r.backends.list) expect(store.latest('web', b.key)).toBeDefined();
  });
});
