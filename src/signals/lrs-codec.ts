import type protobuf from 'protobufjs';
import { countEntries, STRUCT_ENTRIES, type EntryShape, type Oversized } from '../runtime/protobuf-entries.js';
import { envoyType, trimmedNodeType, withNodeType } from '../xds/envoy-api.js';

/**
 * The LRS wire: `envoy.service.load_stats.v3` LoadStatsRequest / LoadStatsResponse bytes ⇄ the
 * plain objects protobufjs decodes them to (longs as numbers, defaults omitted, arrays always).
 * Only the fields fulcrum reads are typed. What Envoy and grpc-go actually put in them is in
 * src/signals/README.md.
 */

export const LRS_METHOD_PATH = '/envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats';

export interface WireDuration {
  seconds?: number;
  nanos?: number;
}

/** A named load metric (`load_metric_stats[]`): requests that carried it and the sum of values. */
export interface WireMetricStats {
  metric_name?: string;
  num_requests_finished_with_metric?: number;
  total_metric_value?: number;
}

/** UnnamedEndpointLoadMetricStats: what grpc-go (gRFC A85) sends cpu/mem/application utilization in. */
export interface WireUnnamedMetricStats {
  num_requests_finished_with_metric?: number;
  total_metric_value?: number;
}

/** The request counters shared by UpstreamEndpointStats and UpstreamLocalityStats. */
export interface WireRequestCounters {
  total_successful_requests?: number;
  total_requests_in_progress?: number;
  total_error_requests?: number;
  total_issued_requests?: number;
  load_metric_stats?: WireMetricStats[];
}

export interface WireEndpointStats extends WireRequestCounters {
  address?: { socket_address?: { address?: string; port_value?: number } };
}

export interface WireLocality {
  region?: string;
  zone?: string;
  sub_zone?: string;
}

export interface WireLocalityStats extends WireRequestCounters {
  locality?: WireLocality;
  upstream_endpoint_stats?: WireEndpointStats[];
  cpu_utilization?: WireUnnamedMetricStats;
  mem_utilization?: WireUnnamedMetricStats;
  application_utilization?: WireUnnamedMetricStats;
}

export interface WireClusterStats {
  cluster_name?: string;
  cluster_service_name?: string;
  upstream_locality_stats?: WireLocalityStats[];
  load_report_interval?: WireDuration;
}

export interface WireLoadStatsRequest {
  node?: { id?: string; cluster?: string; client_features?: string[]; user_agent_name?: string };
  cluster_stats?: WireClusterStats[];
}

export interface LoadStatsResponseFields {
  clusters?: string[];
  send_all_clusters?: boolean;
  load_reporting_interval?: WireDuration;
  report_endpoint_granularity?: boolean;
}

const REQUEST = 'envoy.service.load_stats.v3.LoadStatsRequest';
const RESPONSE = 'envoy.service.load_stats.v3.LoadStatsResponse';
const TO_OBJECT = { longs: Number, defaults: false, arrays: true } as const;

/** What fulcrum reads of the Node in a load report: who sent it and whether it can take send_all_clusters. */
const NODE_FIELDS: ReadonlySet<string> = new Set(['id', 'cluster', 'user_agent_name', 'client_features']);

let requestSummary: protobuf.Type | undefined;

/**
 * LoadStatsRequest whose Node has only NODE_FIELDS. Envoy puts its whole Node in every report, not
 * only the first: 1.40's lists the 516 extensions compiled in (~61 KB), and decoding them into
 * objects was ~40 % of the CPU a fleet's reports cost (bench/RESULTS.md, "lrs32"). With this type
 * protobufjs skips their bytes.
 */
function requestSummaryType(): protobuf.Type {
  if (requestSummary !== undefined) return requestSummary;
  requestSummary = withNodeType(REQUEST, 'LoadStatsRequestSummary', trimmedNodeType('LrsNodeSummary', NODE_FIELDS));
  return requestSummary;
}

/** A LoadStatsRequest as fulcrum reads it: every field but the Node's others (NODE_FIELDS). */
export function decodeLoadStatsRequest(bytes: Buffer): WireLoadStatsRequest {
  const type = requestSummaryType();
  return type.toObject(type.decode(bytes), TO_OBJECT) as WireLoadStatsRequest;
}

/**
 * The most entries (cluster, locality, endpoint, metric and dropped-request stats, and the values
 * of endpoints' metadata, together) one load report may hold. protobufjs makes ~200 bytes of
 * objects of each, even an empty one that took two bytes on the wire: a 4 MiB report of two million empty cluster_stats cost ~500 MB, and
 * two such reports killed a process under the shipped 384 MiB heap. A real report's entries take
 * 20 bytes or more each (an address, a metric name), so the largest request the port takes by
 * default (4 MiB) holds fewer than ~200,000; refused at this many, a hostile one costs ~50 MB.
 */
export const MAX_LOAD_REPORT_ENTRIES = 250_000;

/** The repeated message fields of a load report, by field number, with those of their own entries (an endpoint's metadata (6) is a Struct). */
const ENDPOINT: EntryShape = { 5: undefined, 6: STRUCT_ENTRIES };
const LOCALITY: EntryShape = { 5: undefined, 7: ENDPOINT };
const CLUSTER: EntryShape = { 2: LOCALITY, 5: undefined };
const REQUEST_ENTRIES: EntryShape = { 2: CLUSTER };

/** `decodeLoadStatsRequest`, unless the request holds more than `limit` entries (counted without decoding). */
export function decodeBoundedLoadStatsRequest(bytes: Buffer, limit = MAX_LOAD_REPORT_ENTRIES): WireLoadStatsRequest | Oversized {
  const entries = countEntries(bytes, REQUEST_ENTRIES, limit);
  return entries > limit ? { oversized: entries } : decodeLoadStatsRequest(bytes);
}

export function encodeLoadStatsRequest(req: WireLoadStatsRequest): Buffer {
  const type = envoyType(REQUEST);
  return Buffer.from(type.encode(type.fromObject(req as Record<string, unknown>)).finish());
}

export function encodeLoadStatsResponse(res: LoadStatsResponseFields): Buffer {
  const type = envoyType(RESPONSE);
  return Buffer.from(type.encode(type.fromObject(res as Record<string, unknown>)).finish());
}

export function decodeLoadStatsResponse(bytes: Buffer): LoadStatsResponseFields {
  const type = envoyType(RESPONSE);
  return type.toObject(type.decode(bytes), TO_OBJECT) as LoadStatsResponseFields;
}

/** A duration in ms; undefined when absent or zero. */
export function durationMs(d: WireDuration | undefined): number | undefined {
  if (!d) return undefined;
  const ms = nonNegative(d.seconds) * 1000 + nonNegative(d.nanos) / 1e6;
  return ms > 0 ? ms : undefined;
}

/** A counter as sent: absent, negative or non-finite reads as 0. */
export const nonNegative = (v: number | undefined): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);
