import type { WireLoadStatsRequest, WireLocality, WireLocalityStats, WireRequestCounters } from './lrs-codec.js';
import { durationMs, nonNegative } from './lrs-codec.js';
import { endpointKeyOf } from './report-validation.js';

/**
 * One proxy's LoadStatsRequest → per-endpoint loads (pure).
 *
 * Envoy (with `report_endpoint_granularity`) reports per endpoint. grpc-go reports per locality
 * only (its LRS client leaves `upstream_endpoint_stats` empty, and sends cpu/mem/application
 * utilization in the unnamed message fields, gRFC A85). A locality's load is attributed to its
 * endpoints by `attributeLocality`; see there for why that way.
 */

/** Sample fields a named load metric may feed (`server.loadReporting.metricFields`). */
export const METRIC_FIELDS = ['cpu', 'memory', 'latencyMs', 'errors', 'rps'] as const;
export type MetricField = (typeof METRIC_FIELDS)[number];

/**
 * Which load metric feeds which sample field by default. ORCA's own `eps` and `rps_fractional`
 * (Envoy 1.40 forwards them when `lrs_report_endpoint_metrics` lists them), and
 * `named_metrics.latency_ms` so a backend can report its latency through Envoy
 * (`endpoint-load-metrics: TEXT eps=0.5, named_metrics.latency_ms=12`).
 */
export const DEFAULT_METRIC_FIELDS: Readonly<Record<string, MetricField>> = {
  cpu_utilization: 'cpu',
  mem_utilization: 'memory',
  eps: 'errors',
  rps_fractional: 'rps',
  'named_metrics.latency_ms': 'latencyMs',
};

export interface MetricSum {
  /** Requests that carried the metric. */
  readonly count: number;
  /** Sum of their values. */
  readonly total: number;
}

/** Request counters and load metrics of one interval, for one endpoint or one locality. */
export interface LoadCounts {
  readonly intervalMs: number;
  readonly issued: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly inProgress: number;
  /** Load metrics by name (`cpu_utilization`, `named_metrics.foo`...). */
  readonly metrics: ReadonlyMap<string, MetricSum>;
}

/** One endpoint's load in one report of one proxy. */
export interface EndpointLoad extends LoadCounts {
  readonly cluster: string;
  /** `address:port`, as the catalog keys endpoints. */
  readonly key: string;
}

/** A locality reported without per-endpoint stats (grpc-go). */
export interface LocalityLoad extends LoadCounts {
  readonly cluster: string;
  readonly locality: LocalityName;
}

/** A locality as the catalog names it. */
export interface LocalityName {
  readonly region: string;
  readonly zone: string;
  readonly subZone: string;
}

/** One key per locality, the same for the catalog and the wire. */
export const localityId = (l: LocalityName): string => JSON.stringify([l.region, l.zone, l.subZone]);

const localityName = (l: WireLocality | undefined): LocalityName => ({ region: l?.region ?? '', zone: l?.zone ?? '', subZone: l?.sub_zone ?? '' });

function addMetric(into: Map<string, MetricSum>, name: string, count: number, total: number | undefined): void {
  // A metric the backend's ORCA report lacks comes as count n, total absent (0): unknown, not 0.
  if (count <= 0 || typeof total !== 'number' || !Number.isFinite(total) || total === 0) return;
  const prev = into.get(name);
  into.set(name, { count: (prev?.count ?? 0) + count, total: (prev?.total ?? 0) + total });
}

function counts(s: WireRequestCounters, intervalMs: number, unnamed?: WireLocalityStats): LoadCounts {
  const metrics = new Map<string, MetricSum>();
  for (const m of s.load_metric_stats ?? []) {
    if (m.metric_name) addMetric(metrics, m.metric_name, nonNegative(m.num_requests_finished_with_metric), m.total_metric_value);
  }
  for (const name of ['cpu_utilization', 'mem_utilization', 'application_utilization'] as const) {
    const m = unnamed?.[name];
    if (m) addMetric(metrics, name, nonNegative(m.num_requests_finished_with_metric), m.total_metric_value);
  }
  return {
    intervalMs,
    issued: nonNegative(s.total_issued_requests),
    succeeded: nonNegative(s.total_successful_requests),
    failed: nonNegative(s.total_error_requests),
    inProgress: nonNegative(s.total_requests_in_progress),
    metrics,
  };
}

const active = (c: LoadCounts): boolean => c.issued + c.succeeded + c.failed + c.inProgress > 0 || c.metrics.size > 0;

/** What one report holds, per granularity. */
export interface ReportLoads {
  readonly endpoints: EndpointLoad[];
  readonly localities: LocalityLoad[];
  /** Endpoint entries without a socket address (pipes, internal addresses): not usable. */
  readonly unaddressed: number;
  /** Every named cluster in the report, with or without traffic. */
  readonly clusters: string[];
}

/**
 * A decoded LoadStatsRequest → per-endpoint loads, and per-locality loads for localities that
 * came without endpoint stats but with some activity. Clusters without a name are skipped.
 * `defaultIntervalMs` stands in for a missing `load_report_interval`.
 */
export function reportLoads(req: WireLoadStatsRequest, defaultIntervalMs: number): ReportLoads {
  const endpoints: EndpointLoad[] = [];
  const localities: LocalityLoad[] = [];
  const clusters: string[] = [];
  let unaddressed = 0;
  for (const cs of req.cluster_stats ?? []) {
    const cluster = cs.cluster_name;
    if (!cluster) continue;
    clusters.push(cluster);
    const intervalMs = durationMs(cs.load_report_interval) ?? defaultIntervalMs;
    for (const loc of cs.upstream_locality_stats ?? []) {
      const eps = loc.upstream_endpoint_stats ?? [];
      if (eps.length === 0) {
        const load = counts(loc, intervalMs, loc);
        if (active(load)) localities.push({ cluster, locality: localityName(loc.locality), ...load });
        continue;
      }
      for (const ep of eps) {
        const sa = ep.address?.socket_address;
        if (!sa?.address || !sa.port_value) {
          unaddressed++;
          continue;
        }
        endpoints.push({ cluster, key: endpointKeyOf(sa.address, sa.port_value), ...counts(ep, intervalMs) });
      }
    }
  }
  return { endpoints, localities, unaddressed, clusters };
}

/** Per-endpoint loads only (Envoy's granularity). */
export function endpointLoads(req: WireLoadStatsRequest, defaultIntervalMs: number): EndpointLoad[] {
  return reportLoads(req, defaultIntervalMs).endpoints;
}

/** An endpoint of a locality, with the weight proxies currently get for it. */
export interface LocalityMember {
  readonly key: string;
  readonly weight: number;
}

export type LocalityAttribution = 'exact' | 'spread' | 'dropped';

/**
 * A locality's load → loads of its endpoints.
 *
 * - One endpoint: all of it, exactly (the usual proxyless deployment: one locality per zone
 *   with few endpoints is common, one endpoint per locality is exact).
 * - Several: request counts split by each endpoint's share of the locality's current weight
 *   (that is how the client's picker inside the locality spreads them, so the totals stay right
 *   and each endpoint gets its expected part), and every load metric as the locality's mean
 *   (ORCA values describe the backends; the client cannot tell which one sent which). Within such
 *   a locality the signals therefore cannot single out one endpoint: errors and utilization
 *   steer the locality's endpoints together; probes and reports still tell them apart.
 * - No known endpoint: dropped (counted by the caller).
 */
export function attributeLocality(load: LocalityLoad, members: readonly LocalityMember[]): { result: LocalityAttribution; loads: EndpointLoad[] } {
  const first = members[0];
  if (!first) return { result: 'dropped', loads: [] };
  if (members.length === 1) return { result: 'exact', loads: [share(load, first.key, 1)] };
  const totalWeight = members.reduce((s, m) => s + Math.max(0, m.weight), 0);
  const part = (m: LocalityMember): number => (totalWeight > 0 ? Math.max(0, m.weight) / totalWeight : 1 / members.length);
  return { result: 'spread', loads: members.map((m) => share(load, m.key, part(m))) };
}

function share(load: LocalityLoad, key: string, part: number): EndpointLoad {
  const metrics = new Map<string, MetricSum>();
  // Scaling count and total alike keeps the mean, and weights it by the share when combined.
  for (const [name, v] of load.metrics) metrics.set(name, { count: v.count * part, total: v.total * part });
  return {
    cluster: load.cluster,
    key,
    intervalMs: load.intervalMs,
    issued: load.issued * part,
    succeeded: load.succeeded * part,
    failed: load.failed * part,
    inProgress: load.inProgress * part,
    metrics,
  };
}
