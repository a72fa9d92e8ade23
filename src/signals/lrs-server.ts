import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { envoyType } from '../xds/envoy-api.js';
import type { GrpcServicePair } from './report-grpc.js';
import { endpointKeyOf } from './report-validation.js';
import type { Sample, SignalStore } from './signal-store.js';

/**
 * `envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats`: Envoy's load reports
 * (LRS) → per-endpoint samples in the SignalStore.
 *
 * What Envoy 1.40.0 actually does (measured by test/signals/lrs-envoy.test.ts; details in
 * src/signals/README.md):
 *
 * - It opens the LRS stream only when its BOOTSTRAP has `cluster_manager.load_stats_config` (an
 *   ApiConfigSource, api_type GRPC, naming a static cluster such as `fulcrum_xds`). The Cluster
 *   field `lrs_server` (even `{ self: {} }`) is ignored: with it and without load_stats_config no
 *   stream is ever opened. (It is what proxyless gRPC uses.) Accepted over CDS without complaint.
 * - The first LoadStatsRequest carries `node` (client_features include
 *   `envoy.lrs.supports_send_all_clusters`) and no cluster_stats. Nothing more comes until a
 *   LoadStatsResponse; then one request per `load_reporting_interval`, each again with `node`.
 * - With `send_all_clusters: true` every cluster is reported, static ones too (the LRS cluster
 *   itself shows one request in progress: the stream). A cluster added over CDS later shows up
 *   from the next report on, without a new response; traffic it served before that is lost. A
 *   cluster without traffic in the interval comes with only `cluster_name` and
 *   `load_report_interval`.
 * - `load_report_interval` is the measured interval (0.998 s, 1.002 s... for 1 s).
 * - Counters are deltas per interval: `total_issued_requests` (sent in the interval),
 *   `total_successful_requests` / `total_error_requests` (completed; errors are 5xx),
 *   `total_requests_in_progress` (gauge). Zero fields are absent (proto3). With
 *   `report_endpoint_granularity: true` they also come per endpoint in
 *   `upstream_locality_stats[].upstream_endpoint_stats[]` (address as socket_address); an
 *   endpoint without activity in the interval is omitted.
 * - ORCA: Envoy parses the backend's `endpoint-load-metrics` response header (`TEXT
 *   cpu_utilization=0.42, mem_utilization=0.3, named_metrics.foo=7` or `JSON {...}`, on 5xx
 *   responses too) only for clusters whose `lrs_report_endpoint_metrics` names the metrics. They
 *   come as NAMED `load_metric_stats[]` entries ({ metric_name: 'cpu_utilization',
 *   num_requests_finished_with_metric: n, total_metric_value: sum }), per endpoint and summed per
 *   locality. A listed metric missing from a backend's header comes with its count and no total
 *   (reads as 0): treated as unknown here. No header at all: no entries. The
 *   UnnamedEndpointLoadMetricStats fields (`cpu_utilization`, `mem_utilization`,
 *   `application_utilization` of UpstreamLocalityStats) stay empty; UpstreamEndpointStats has no
 *   such fields. No field numbers beyond the proto tree of @grpc/grpc-js-xds 1.14.1 are sent.
 *
 * Conversion per endpoint, per report: rps = issued / interval, errors = error completions /
 * interval (per second), inflight = in progress, cpu = mean of `cpu_utilization` over the
 * requests that carried it, memory = mean of `mem_utilization`. Every proxy reports only its own
 * share of an endpoint's traffic, so per endpoint the contributions of all open streams are
 * combined: rps, errors and inflight summed over the streams whose last report is fresh, cpu and
 * memory averaged weighted by request count (they describe the backend, not the proxy).
 */

export const LRS_METHOD_PATH = '/envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats';
const SEND_ALL_FEATURE = 'envoy.lrs.supports_send_all_clusters';

// --- decoded wire shapes (protobufjs toObject, longs as numbers, defaults omitted) -------------

interface WireDuration {
  seconds?: number;
  nanos?: number;
}

interface WireMetricStats {
  metric_name?: string;
  num_requests_finished_with_metric?: number;
  total_metric_value?: number;
}

interface WireEndpointStats {
  address?: { socket_address?: { address?: string; port_value?: number } };
  total_successful_requests?: number;
  total_requests_in_progress?: number;
  total_error_requests?: number;
  total_issued_requests?: number;
  load_metric_stats?: WireMetricStats[];
}

interface WireLocalityStats {
  locality?: { region?: string; zone?: string; sub_zone?: string };
  upstream_endpoint_stats?: WireEndpointStats[];
}

export interface WireClusterStats {
  cluster_name?: string;
  cluster_service_name?: string;
  upstream_locality_stats?: WireLocalityStats[];
  load_report_interval?: WireDuration;
}

export interface WireLoadStatsRequest {
  node?: { id?: string; cluster?: string; client_features?: string[] };
  cluster_stats?: WireClusterStats[];
}

export function decodeLoadStatsRequest(bytes: Buffer): WireLoadStatsRequest {
  const type = envoyType('envoy.service.load_stats.v3.LoadStatsRequest');
  return type.toObject(type.decode(bytes), { longs: Number, defaults: false, arrays: true }) as WireLoadStatsRequest;
}

export function encodeLoadStatsRequest(req: WireLoadStatsRequest): Buffer {
  const type = envoyType('envoy.service.load_stats.v3.LoadStatsRequest');
  return Buffer.from(type.encode(type.fromObject(req as Record<string, unknown>)).finish());
}

export interface LoadStatsResponseFields {
  clusters?: string[];
  send_all_clusters?: boolean;
  load_reporting_interval?: WireDuration;
  report_endpoint_granularity?: boolean;
}

export function encodeLoadStatsResponse(res: LoadStatsResponseFields): Buffer {
  const type = envoyType('envoy.service.load_stats.v3.LoadStatsResponse');
  return Buffer.from(type.encode(type.fromObject(res as Record<string, unknown>)).finish());
}

export function decodeLoadStatsResponse(bytes: Buffer): LoadStatsResponseFields {
  const type = envoyType('envoy.service.load_stats.v3.LoadStatsResponse');
  return type.toObject(type.decode(bytes), { longs: Number, defaults: false, arrays: true }) as LoadStatsResponseFields;
}

// --- conversion (pure) ---------------------------------------------------------------------------

/** One endpoint's load in one report of one proxy. */
export interface EndpointLoad {
  readonly cluster: string;
  /** `address:port`, as the catalog keys endpoints. */
  readonly key: string;
  readonly intervalMs: number;
  readonly issued: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly inProgress: number;
  /** ORCA and other named metrics: per name, requests that carried it and the sum of values. */
  readonly metrics: ReadonlyMap<string, { readonly count: number; readonly total: number }>;
}

const nonNegative = (v: number | undefined): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);

function durationMs(d: WireDuration | undefined): number | undefined {
  if (!d) return undefined;
  const ms = nonNegative(d.seconds) * 1000 + nonNegative(d.nanos) / 1e6;
  return ms > 0 ? ms : undefined;
}

/**
 * A decoded LoadStatsRequest → per-endpoint loads. Endpoints without a socket address (pipes,
 * internal addresses) are skipped; so are clusters without a name. `defaultIntervalMs` stands
 * in for a missing `load_report_interval`.
 */
export function endpointLoads(req: WireLoadStatsRequest, defaultIntervalMs: number): EndpointLoad[] {
  const out: EndpointLoad[] = [];
  for (const cs of req.cluster_stats ?? []) {
    const cluster = cs.cluster_name;
    if (!cluster) continue;
    const intervalMs = durationMs(cs.load_report_interval) ?? defaultIntervalMs;
    for (const loc of cs.upstream_locality_stats ?? []) {
      for (const ep of loc.upstream_endpoint_stats ?? []) {
        const sa = ep.address?.socket_address;
        if (!sa?.address || !sa.port_value) continue;
        const metrics = new Map<string, { count: number; total: number }>();
        for (const m of ep.load_metric_stats ?? []) {
          if (!m.metric_name) continue;
          const count = nonNegative(m.num_requests_finished_with_metric);
          const total = m.total_metric_value;
          // A metric the backend's ORCA report lacks comes as count n, total absent (0): unknown, not 0.
          if (count === 0 || typeof total !== 'number' || !Number.isFinite(total) || total === 0) continue;
          const prev = metrics.get(m.metric_name);
          metrics.set(m.metric_name, { count: (prev?.count ?? 0) + count, total: (prev?.total ?? 0) + total });
        }
        out.push({
          cluster,
          key: endpointKeyOf(sa.address, sa.port_value),
          intervalMs,
          issued: nonNegative(ep.total_issued_requests),
          succeeded: nonNegative(ep.total_successful_requests),
          failed: nonNegative(ep.total_error_requests),
          inProgress: nonNegative(ep.total_requests_in_progress),
          metrics,
        });
      }
    }
  }
  return out;
}

/** Which named load metric feeds which sample field (means over the requests that carried it). */
export const DEFAULT_METRIC_FIELDS: Readonly<Record<string, 'cpu' | 'memory'>> = {
  cpu_utilization: 'cpu',
  mem_utilization: 'memory',
};

/** One proxy's contribution to one endpoint, as of its last report. */
interface Contribution {
  at: number;
  /** How long it counts: a few intervals, so one late report does not zero the endpoint. */
  validUntil: number;
  rps: number;
  errors: number;
  inflight: number;
  /** Per sample field: requests that carried the metric, and their sum. */
  metrics: Map<'cpu' | 'memory', { count: number; total: number }>;
}

/**
 * Combines the reports of every proxy into one sample per endpoint. Pure: the caller passes
 * `now` (store clock) and stream ids.
 */
export class LrsAggregator {
  /** cluster → key → stream → contribution. */
  private readonly data = new Map<string, Map<string, Map<number, Contribution>>>();
  /** stream → cluster → keys it reported last time (to zero the ones it stops reporting). */
  private readonly lastKeys = new Map<number, Map<string, Set<string>>>();

  constructor(
    private readonly options: {
      readonly metricFields?: Readonly<Record<string, 'cpu' | 'memory'>>;
      /** A contribution counts for this many report intervals after it arrived (default 3). */
      readonly staleAfterIntervals?: number;
    } = {},
  ) {}

  /** Applies one proxy's report; returns the new combined sample of every endpoint it touched. */
  apply(stream: number, req: WireLoadStatsRequest, now: number, defaultIntervalMs: number): { cluster: string; key: string; sample: Sample }[] {
    const metricFields = this.options.metricFields ?? DEFAULT_METRIC_FIELDS;
    const lifetime = this.options.staleAfterIntervals ?? 3;
    const touched = new Map<string, Set<string>>();
    const reportedNow = new Map<string, Set<string>>();
    const streamKeys = this.lastKeys.get(stream) ?? new Map<string, Set<string>>();
    this.lastKeys.set(stream, streamKeys);

    for (const cs of req.cluster_stats ?? []) {
      if (cs.cluster_name && !reportedNow.has(cs.cluster_name)) reportedNow.set(cs.cluster_name, new Set());
    }
    for (const load of endpointLoads(req, defaultIntervalMs)) {
      const seconds = load.intervalMs / 1000;
      const metrics = new Map<'cpu' | 'memory', { count: number; total: number }>();
      for (const [name, m] of load.metrics) {
        const field = metricFields[name];
        if (!field) continue;
        const prev = metrics.get(field);
        metrics.set(field, { count: (prev?.count ?? 0) + m.count, total: (prev?.total ?? 0) + m.total });
      }
      this.set(load.cluster, load.key, stream, {
        at: now,
        validUntil: now + lifetime * load.intervalMs,
        rps: load.issued / seconds,
        errors: load.failed / seconds,
        inflight: load.inProgress,
        metrics,
      });
      reportedNow.get(load.cluster)?.add(load.key);
      add(touched, load.cluster, load.key);
    }
    // Endpoints this proxy reported before but not now had no traffic from it in the interval.
    for (const [cluster, keys] of reportedNow) {
      for (const key of streamKeys.get(cluster) ?? []) {
        if (keys.has(key)) continue;
        const intervalMs = defaultIntervalMs;
        this.set(cluster, key, stream, { at: now, validUntil: now + lifetime * intervalMs, rps: 0, errors: 0, inflight: 0, metrics: new Map() });
        add(touched, cluster, key);
      }
      streamKeys.set(cluster, keys);
    }

    const out: { cluster: string; key: string; sample: Sample }[] = [];
    for (const [cluster, keys] of touched) {
      for (const key of keys) {
        const sample = this.combined(cluster, key, now);
        if (sample) out.push({ cluster, key, sample });
      }
    }
    return out;
  }

  /** Forgets a closed stream's contributions. */
  dropStream(stream: number): void {
    const clusters = this.lastKeys.get(stream);
    this.lastKeys.delete(stream);
    for (const [cluster, keys] of clusters ?? []) {
      for (const key of keys) this.data.get(cluster)?.get(key)?.delete(stream);
    }
    for (const [cluster, eps] of this.data) {
      for (const [key, streams] of eps) {
        streams.delete(stream);
        if (streams.size === 0) eps.delete(key);
      }
      if (eps.size === 0) this.data.delete(cluster);
    }
  }

  /** The combined sample of an endpoint over the fresh contributions of every stream. */
  combined(cluster: string, key: string, now: number): Sample | undefined {
    const streams = this.data.get(cluster)?.get(key);
    if (!streams) return undefined;
    let rps = 0;
    let errors = 0;
    let inflight = 0;
    let fresh = 0;
    const metrics = new Map<'cpu' | 'memory', { count: number; total: number }>();
    for (const [id, c] of streams) {
      if (c.validUntil < now) {
        streams.delete(id);
        continue;
      }
      fresh++;
      rps += c.rps;
      errors += c.errors;
      inflight += c.inflight;
      for (const [f, m] of c.metrics) {
        const prev = metrics.get(f);
        metrics.set(f, { count: (prev?.count ?? 0) + m.count, total: (prev?.total ?? 0) + m.total });
      }
    }
    if (fresh === 0) return undefined;
    const sample: { -readonly [K in keyof Sample]: Sample[K] } = { at: now, rps, errors, inflight, source: 'lrs' };
    for (const [f, m] of metrics) sample[f] = m.total / m.count;
    return sample;
  }

  private set(cluster: string, key: string, stream: number, c: Contribution): void {
    let eps = this.data.get(cluster);
    if (!eps) this.data.set(cluster, (eps = new Map()));
    let streams = eps.get(key);
    if (!streams) eps.set(key, (streams = new Map()));
    streams.set(stream, c);
  }
}

function add(m: Map<string, Set<string>>, cluster: string, key: string): void {
  let s = m.get(cluster);
  if (!s) m.set(cluster, (s = new Set()));
  s.add(key);
}

// --- the gRPC service ------------------------------------------------------------------------------

export interface LrsServiceOptions {
  readonly store: SignalStore;
  /** `load_reporting_interval` asked of the proxies (default 2000 ms). */
  readonly reportingIntervalMs?: number;
  /**
   * Clusters to ask reports for. Default: `send_all_clusters` for clients that advertise
   * `envoy.lrs.supports_send_all_clusters` (Envoy does); for the others, this list is required
   * to get anything.
   */
  readonly clusters?: () => readonly string[];
  /** Only endpoints the catalog knows are recorded (default: all). See ValidationOptions.knows. */
  readonly knows?: (cluster: string, endpoint?: string) => boolean;
  /** ORCA metric name → sample field (default DEFAULT_METRIC_FIELDS). */
  readonly metricFields?: Readonly<Record<string, 'cpu' | 'memory'>>;
  /** Every decoded request, before conversion (tests, debugging, metrics). */
  readonly onRequest?: (req: WireLoadStatsRequest, stream: LrsStreamInfo) => void;
  readonly log?: Pick<Logger, 'info' | 'warn' | 'debug'>;
}

export interface LrsStreamInfo {
  readonly id: number;
  readonly peer: string;
  readonly nodeId: string;
}

export interface LrsService extends GrpcServicePair {
  readonly streamCount: number;
  /**
   * Sends a new LoadStatsResponse on every open stream: needed only with an explicit `clusters`
   * list, after it changes. With `send_all_clusters` Envoy 1.40 picks up clusters added later by
   * itself (from the next interval). Observed: a new response while traffic flows can lose that
   * interval's ORCA metrics, so do not call it needlessly.
   */
  refresh(): void;
  /** Ends every open LRS stream (proxies reconnect elsewhere); call on shutdown. */
  close(): void;
}

let nextStreamId = 1;

export function lrsService(options: LrsServiceOptions): LrsService {
  const intervalMs = Math.max(1, options.reportingIntervalMs ?? 2_000);
  const aggregator = new LrsAggregator({ ...(options.metricFields ? { metricFields: options.metricFields } : {}) });
  const calls = new Map<grpc.ServerDuplexStream<WireLoadStatsRequest, Buffer>, () => void>();
  const interval = { seconds: Math.floor(intervalMs / 1000), nanos: Math.round((intervalMs % 1000) * 1e6) };

  const handle = (call: grpc.ServerDuplexStream<WireLoadStatsRequest, Buffer>): void => {
    const id = nextStreamId++;
    let nodeId = '';
    let answered = false;
    let features: readonly string[] = [];
    const respond = (): void => {
      const sendAll = options.clusters === undefined && features.includes(SEND_ALL_FEATURE);
      const clusters = sendAll ? [] : [...(options.clusters?.() ?? [])];
      if (!sendAll && clusters.length === 0) {
        options.log?.warn({ lrsStream: id, node: nodeId }, 'LRS client does not support send_all_clusters and no cluster list is configured');
      }
      call.write(
        encodeLoadStatsResponse({
          ...(sendAll ? { send_all_clusters: true } : { clusters }),
          load_reporting_interval: interval,
          report_endpoint_granularity: true,
        }),
      );
    };
    calls.set(call, () => {
      if (answered) respond();
    });
    const done = (): void => {
      if (!calls.delete(call)) return;
      aggregator.dropStream(id);
      options.log?.info({ lrsStream: id, node: nodeId }, 'LRS stream closed');
    };
    call.on('data', (req: WireLoadStatsRequest) => {
      try {
        if (req.node?.id) nodeId = req.node.id;
        const info: LrsStreamInfo = { id, peer: call.getPeer(), nodeId };
        options.onRequest?.(req, info);
        if (req.node?.client_features) features = req.node.client_features;
        if (!answered) {
          answered = true;
          respond();
          options.log?.info({ lrsStream: id, node: nodeId, peer: info.peer, intervalMs }, 'LRS stream opened');
        }
        const now = options.store.now();
        for (const { cluster, key, sample } of aggregator.apply(id, req, now, intervalMs)) {
          if (options.knows && !options.knows(cluster, key)) continue;
          options.store.record(cluster, key, sample);
        }
      } catch (err) {
        // A bug must cost one stream, never the process.
        options.log?.warn({ err, lrsStream: id }, 'LRS request failed');
        call.emit('error', { code: grpc.status.INTERNAL, details: 'internal error' });
        done();
      }
    });
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('close', done);
    call.on('cancelled', done);
  };

  const definition: grpc.ServiceDefinition = {
    StreamLoadStats: {
      path: LRS_METHOD_PATH,
      requestStream: true,
      responseStream: true,
      requestSerialize: encodeLoadStatsRequest,
      requestDeserialize: decodeLoadStatsRequest,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  };
  return {
    definition,
    implementation: { StreamLoadStats: handle },
    get streamCount() {
      return calls.size;
    },
    refresh() {
      for (const resend of calls.values()) resend();
    },
    close() {
      for (const call of [...calls.keys()]) call.end();
    },
  };
}
