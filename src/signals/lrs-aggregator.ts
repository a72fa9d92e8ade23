import type { WireLoadStatsRequest } from './lrs-codec.js';
import {
  attributeLocality,
  DEFAULT_METRIC_FIELDS,
  localityId,
  reportLoads,
  type EndpointLoad,
  type LocalityAttribution,
  type LocalityMember,
  type MetricField,
  type MetricSum,
} from './lrs-conversion.js';
import type { Sample } from './signal-store.js';
import { FRACTION_METRICS, METRIC_LIMITS } from './report-validation.js';

/**
 * Combines the load reports of every proxy into one sample per endpoint (pure: the caller passes
 * `now`, on the store's clock, and stream ids).
 *
 * Every proxy reports only its own share of an endpoint's traffic, so per endpoint the last fresh
 * report of every open stream is combined: rps, errors and inflight summed; load metrics (ORCA)
 * averaged weighted by the requests that carried them, since they describe the backend, not the
 * proxy. An endpoint a proxy stops reporting counts 0 from it; a share expires after a few
 * intervals; a closed stream is forgotten.
 *
 * Metrics mapped to `errors` or `rps` are the backend's own view of its whole traffic: the
 * combined value is the larger of that and the sum of the proxies' counts, so a backend can add
 * errors the proxies cannot see (a 200 carrying a failure) but never hide the ones they counted.
 */

/** One proxy's contribution to one endpoint, as of its last report. */
interface Contribution {
  /** How long it counts: a few intervals, so one late report does not zero the endpoint. */
  validUntil: number;
  rps: number;
  errors: number;
  inflight: number;
  /** Per sample field: requests that carried the metric, and their sum. */
  metrics: Map<MetricField, MetricSum>;
}

export type LrsGranularity = 'endpoint' | 'locality';
/** `used`: per-endpoint stats taken as they are; `unaddressed`: an endpoint entry without a socket address. */
export type LrsReportResult = 'used' | 'unaddressed' | LocalityAttribution;

export interface LrsAggregatorOptions {
  /** Load metric name → sample field (default DEFAULT_METRIC_FIELDS). */
  readonly metricFields?: Readonly<Record<string, MetricField>>;
  /** A contribution counts for this many report intervals after it arrived (default 3). */
  readonly staleAfterIntervals?: number;
  /** The endpoints of a locality and their current weights (for per-locality reports; default: none known). */
  readonly localityMembers?: (cluster: string, locality: string) => readonly LocalityMember[];
  /** Per report: how many entries of each granularity were used, attributed or dropped. */
  readonly onEntries?: (granularity: LrsGranularity, result: LrsReportResult, count: number) => void;
}

export interface EndpointSample {
  readonly cluster: string;
  readonly key: string;
  readonly sample: Sample;
}

const GAUGES = new Set<MetricField>(['cpu', 'memory', 'latencyMs']);

export class LrsAggregator {
  /** cluster → key → stream → contribution. */
  private readonly data = new Map<string, Map<string, Map<number, Contribution>>>();
  /** stream → cluster → keys it reported last time (to zero the ones it stops reporting). */
  private readonly lastKeys = new Map<number, Map<string, Set<string>>>();

  constructor(private readonly options: LrsAggregatorOptions = {}) {}

  /** Applies one proxy's report; returns the new combined sample of every endpoint it touched. */
  apply(stream: number, req: WireLoadStatsRequest, now: number, defaultIntervalMs: number): EndpointSample[] {
    const lifetime = this.options.staleAfterIntervals ?? 3;
    const touched = new Map<string, Set<string>>();
    const streamKeys = this.lastKeys.get(stream) ?? new Map<string, Set<string>>();
    this.lastKeys.set(stream, streamKeys);
    const report = reportLoads(req, defaultIntervalMs);
    const reportedNow = new Map(report.clusters.map((c) => [c, new Set<string>()]));

    for (const load of this.endpointLoadsOf(report)) {
      this.set(load.cluster, load.key, stream, this.contribution(load, now + lifetime * load.intervalMs));
      reportedNow.get(load.cluster)?.add(load.key);
      add(touched, load.cluster, load.key);
    }
    // Endpoints this proxy reported before but not now had no traffic from it in the interval.
    for (const [cluster, keys] of reportedNow) {
      for (const key of streamKeys.get(cluster) ?? []) {
        if (keys.has(key)) continue;
        this.set(cluster, key, stream, { validUntil: now + lifetime * defaultIntervalMs, rps: 0, errors: 0, inflight: 0, metrics: new Map() });
        add(touched, cluster, key);
      }
      streamKeys.set(cluster, keys);
    }

    const out: EndpointSample[] = [];
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
    this.lastKeys.delete(stream);
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
    const metrics = new Map<MetricField, MetricSum>();
    for (const [id, c] of streams) {
      if (c.validUntil < now) {
        streams.delete(id);
        continue;
      }
      fresh++;
      rps += c.rps;
      errors += c.errors;
      inflight += c.inflight;
      for (const [f, m] of c.metrics) addSum(metrics, f, m);
    }
    if (fresh === 0) return undefined;
    const sample: { -readonly [K in keyof Sample]: Sample[K] } = { at: now, rps, errors, inflight, source: 'lrs' };
    for (const [f, m] of metrics) {
      const mean = m.total / m.count;
      // A backend's ORCA value no sample may carry is unknown, not a reading: the engine refuses
      // a sample with a negative or non-finite field whole (an error logged per endpoint per
      // report), and a latency or rate beyond a report's limit is no measurement. Utilizations
      // may exceed 1 in ORCA (usage over a soft limit), so those are bounded only below.
      if (!(mean >= 0 && (FRACTION_METRICS.has(f) || mean <= METRIC_LIMITS[f]))) continue;
      sample[f] = GAUGES.has(f) ? mean : Math.max(sample[f] ?? 0, mean);
    }
    return sample;
  }

  /** Per-endpoint loads of a report, localities without endpoint stats attributed to their endpoints. */
  private endpointLoadsOf(report: ReturnType<typeof reportLoads>): EndpointLoad[] {
    const count = this.options.onEntries;
    if (report.endpoints.length > 0) count?.('endpoint', 'used', report.endpoints.length);
    if (report.unaddressed > 0) count?.('endpoint', 'unaddressed', report.unaddressed);
    const loads = [...report.endpoints];
    for (const locality of report.localities) {
      const members = this.options.localityMembers?.(locality.cluster, localityId(locality.locality)) ?? [];
      const { result, loads: attributed } = attributeLocality(locality, members);
      count?.('locality', result, 1);
      loads.push(...attributed);
    }
    return loads;
  }

  private contribution(load: EndpointLoad, validUntil: number): Contribution {
    const metricFields = this.options.metricFields ?? DEFAULT_METRIC_FIELDS;
    const seconds = load.intervalMs / 1000;
    const metrics = new Map<MetricField, MetricSum>();
    for (const [name, m] of load.metrics) {
      const field = metricFields[name];
      if (field) addSum(metrics, field, m);
    }
    return { validUntil, rps: load.issued / seconds, errors: load.failed / seconds, inflight: load.inProgress, metrics };
  }

  private set(cluster: string, key: string, stream: number, c: Contribution): void {
    let eps = this.data.get(cluster);
    if (!eps) this.data.set(cluster, (eps = new Map()));
    let streams = eps.get(key);
    if (!streams) eps.set(key, (streams = new Map()));
    streams.set(stream, c);
  }
}

function addSum<K>(into: Map<K, MetricSum>, k: K, m: MetricSum): void {
  const prev = into.get(k);
  into.set(k, { count: (prev?.count ?? 0) + m.count, total: (prev?.total ?? 0) + m.total });
}

function add(m: Map<string, Set<string>>, cluster: string, key: string): void {
  let s = m.get(cluster);
  if (!s) m.set(cluster, (s = new Set()));
  s.add(key);
}

