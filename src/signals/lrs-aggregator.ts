import type { WireLoadStatsRequest } from './lrs-codec.js';
import {
  attributeLocality,
  DEFAULT_METRIC_FIELDS,
  localityId,
  METRIC_FIELDS,
  reportLoads,
  type EndpointLoad,
  type LocalityAttribution,
  type LocalityMember,
  type MetricField,
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
 * proxy. An endpoint a proxy stops reporting counts 0 from it; a share expires a few intervals
 * after the proxy last reported the cluster; a closed stream is forgotten.
 *
 * Metrics mapped to `errors` or `rps` are the backend's own view of its whole traffic: the
 * combined value is the larger of that and the sum of the proxies' counts, so a backend can add
 * errors the proxies cannot see (a 200 carrying a failure) but never hide the ones they counted.
 *
 * Cost. A fleet of P proxies that all call an endpoint sends P reports about it per interval.
 * Recombining every share on each of them was O(P) per entry, O(P²) per endpoint and interval: 400
 * proxies on one 100-endpoint cluster took 6.8 s of CPU per 2 s interval (bench/RESULTS.md,
 * "lrs34"). Each endpoint therefore keeps the running sums of its shares, updated by each entry in
 * O(1), and `take` hands over the endpoints that changed since the last take, once each, however
 * many reports touched them in between.
 *
 * Replicas (HA). Each replica's proxies report to it alone, so each replica holds part of every
 * endpoint's shares. A cluster's owner must steer on the whole fleet's sums, not on whichever
 * replica's part arrived last: the other replicas send it their own sums (`partials`), and the
 * owner adds them to its own (`applyPartial`) until they expire as a proxy's share does.
 */

/** A share's values, and an endpoint's sums of them: slots of a Float64Array. */
const RPS = 0;
const ERRORS = 1;
const INFLIGHT = 2;
/** Per MetricField i: requests that carried it at METRICS + 2i, the sum of their values at METRICS + 2i + 1. */
const METRICS = 3;
const SUMMED = METRICS + 2 * METRIC_FIELDS.length;
/** Values in a replica's partial sums (`partials`, `applyPartial`). */
export const PARTIAL_SUMS_LENGTH = SUMMED;
/** Expired partials of other replicas are looked for at most this often (take runs every flush). */
const PARTIAL_SWEEP_MS = 1_000;
const FIELD_SLOT: Readonly<Record<MetricField, number>> = Object.fromEntries(METRIC_FIELDS.map((f, i) => [f, METRICS + 2 * i])) as Record<MetricField, number>;
/** Fields a proxy's requests describe (a mean), not a rate of the backend's whole traffic (a max with the counted rate). */
const GAUGES: ReadonlySet<MetricField> = new Set<MetricField>(['cpu', 'memory', 'latencyMs']);
/**
 * Sums are recomputed from the shares after this many updates of an endpoint: adding and
 * subtracting doubles leaves rounding behind, and an endpoint lives as long as the fleet.
 */
const EXACT_EVERY = 256;
/** A subtraction that leaves less than this fraction of the value taken away lost half the digits or more. */
const CANCELLED = 2 ** -26;

export type LrsGranularity = 'endpoint' | 'locality';
/** `used`: per-endpoint stats taken as they are; `unaddressed`: an endpoint entry without a socket address. */
export type LrsReportResult = 'used' | 'unaddressed' | LocalityAttribution;

export interface LrsAggregatorOptions {
  /** Load metric name → sample field (default DEFAULT_METRIC_FIELDS). */
  readonly metricFields?: Readonly<Record<string, MetricField>>;
  /** A share counts for this many report intervals after its proxy last reported the cluster (default 3). */
  readonly staleAfterIntervals?: number;
  /** The endpoints of a locality and their current weights (for per-locality reports; default: none known). */
  readonly localityMembers?: (cluster: string, locality: string) => readonly LocalityMember[];
  /** Per report: how many entries of each granularity were used, attributed or dropped. */
  readonly onEntries?: (granularity: LrsGranularity, result: LrsReportResult, count: number) => void;
  /**
   * Only endpoints the catalog knows are combined (default: all). A report naming endpoints
   * nobody declared then costs nothing kept: without it, one proxy could make the aggregator
   * hold a share for every address it cared to invent.
   */
  readonly knows?: (cluster: string, endpoint: string) => boolean;
}

export interface EndpointSample {
  readonly cluster: string;
  readonly key: string;
  readonly sample: Sample;
}

/** One replica's sums of its own proxies' shares of an endpoint. */
export interface PartialSums {
  readonly cluster: string;
  readonly key: string;
  /** PARTIAL_SUMS_LENGTH values, opaque to everyone but another LrsAggregator. */
  readonly sums: readonly number[];
}

/** Another replica's sums, counted until `validUntil`. */
interface RemotePartial {
  readonly sums: readonly number[];
  readonly validUntil: number;
}

/** One endpoint's shares, one per stream, and their sums. */
interface Endpoint {
  readonly cluster: string;
  readonly key: string;
  readonly shares: Map<number, Float64Array>;
  readonly sums: Float64Array;
  /** Per summed slot, how many shares hold a non-zero value: a slot none holds is exactly 0, whatever rounding left. */
  readonly holders: Int32Array;
  updates: number;
  /** A subtraction cancelled most of a sum's digits (or left it infinite): recomputed at once. */
  inexact: boolean;
  /** When the shares last changed through a report; NaN: through a stream closing or expiring (then the take's `now`). */
  changedAt: number;
  /** Other replicas' sums (HA), by replica; undefined until one arrives. */
  remote: Map<string, RemotePartial> | undefined;
}

/** What one stream reported of one cluster last time. */
interface StreamCluster {
  /** The stream's shares in this cluster count until then. */
  readonly validUntil: number;
  /** The endpoints it reported (false) or stopped reporting, its share zeroed (true). */
  readonly keys: Map<string, boolean>;
  /** Its shares are in the sums: not yet expired. */
  live: boolean;
}

export class LrsAggregator {
  /** cluster → key → the endpoint's shares. */
  private readonly endpoints = new Map<string, Map<string, Endpoint>>();
  /** stream → cluster → what the stream reported of it. */
  private readonly streams = new Map<number, Map<string, StreamCluster>>();
  /** Endpoints whose shares changed since the last take. */
  private readonly changed = new Set<Endpoint>();
  /** Endpoints whose own (this replica's) shares changed since the last `partials`. */
  private readonly ownChanged = new Set<Endpoint>();
  /** Endpoints holding another replica's sums. */
  private readonly withRemote = new Set<Endpoint>();
  private lastSweep = Number.NEGATIVE_INFINITY;
  private readonly metricFields: Readonly<Record<string, MetricField>>;

  constructor(private readonly options: LrsAggregatorOptions = {}) {
    this.metricFields = options.metricFields ?? DEFAULT_METRIC_FIELDS;
  }

  /** Applies one proxy's report; `take` then has the endpoints it changed. */
  apply(stream: number, req: WireLoadStatsRequest, now: number, defaultIntervalMs: number): void {
    const lifetime = this.options.staleAfterIntervals ?? 3;
    const report = reportLoads(req, defaultIntervalMs);
    let clusters = this.streams.get(stream);
    if (clusters === undefined) this.streams.set(stream, (clusters = new Map()));
    // Per cluster named in the report: the endpoints reported now, and the longest interval.
    const reported = new Map<string, { keys: Map<string, boolean>; intervalMs: number }>();
    for (const c of report.clusters) if (!reported.has(c)) reported.set(c, { keys: new Map(), intervalMs: defaultIntervalMs });
    for (const load of this.endpointLoadsOf(report)) {
      const r = reported.get(load.cluster) as { keys: Map<string, boolean>; intervalMs: number };
      r.intervalMs = Math.max(r.intervalMs, load.intervalMs);
      if (this.options.knows?.(load.cluster, load.key) === false) continue;
      const e = this.endpointOf(load.cluster, load.key);
      this.fillShare(this.openShare(e, stream), load);
      this.closeShare(e, stream, now);
      r.keys.set(load.key, false);
    }
    for (const [cluster, r] of reported) {
      this.zeroAbsent(stream, cluster, clusters.get(cluster), r.keys, now);
      clusters.set(cluster, { validUntil: now + lifetime * r.intervalMs, keys: r.keys, live: true });
    }
  }

  /**
   * The combined sample of every endpoint whose shares changed since the last take (and still
   * has a fresh one), after expiring the shares of proxies that stopped reporting. `at`: when the
   * last report changed it (or `now`, when a share expired or a stream closed since).
   */
  take(now: number): EndpointSample[] {
    this.expire(now);
    if (now - this.lastSweep >= PARTIAL_SWEEP_MS) this.expirePartials(now);
    const out: EndpointSample[] = [];
    for (const e of this.changed) {
      const sums = e.remote === undefined ? (e.shares.size > 0 ? e.sums : undefined) : withPartials(e.shares.size > 0 ? e.sums : undefined, e.remote.values(), now);
      if (sums === undefined) continue;
      const at = e.changedAt === e.changedAt ? e.changedAt : now;
      out.push({ cluster: e.cluster, key: e.key, sample: this.sampleOf(sums, at) });
    }
    this.changed.clear();
    return out;
  }

  /**
   * This replica's own sums of every endpoint whose shares changed since the last call, in the
   * clusters `include` names (HA: those another replica owns). An endpoint whose proxies all
   * stopped is not listed: its owner lets the last sums expire.
   */
  partials(include: (cluster: string) => boolean): PartialSums[] {
    const out: PartialSums[] = [];
    for (const e of this.ownChanged) if (e.shares.size > 0 && include(e.cluster)) out.push({ cluster: e.cluster, key: e.key, sums: Array.from(e.sums) });
    this.ownChanged.clear();
    return out;
  }

  /**
   * Another replica's sums for an endpoint (HA: this replica owns its cluster), counted with this
   * replica's own shares for `lifetimeMs` unless renewed. False (nothing kept) for sums that are
   * not PARTIAL_SUMS_LENGTH finite values ≥ 0, or for an endpoint the catalog does not know.
   */
  applyPartial(replica: string, cluster: string, key: string, sums: readonly number[], now: number, lifetimeMs: number): boolean {
    if (!validPartial(sums) || this.options.knows?.(cluster, key) === false) return false;
    const e = this.endpointOf(cluster, key);
    (e.remote ??= new Map()).set(replica, { sums, validUntil: now + lifetimeMs });
    this.withRemote.add(e);
    e.changedAt = now;
    this.changed.add(e);
    return true;
  }

  /** Forgets a closed stream's shares (the endpoints they leave are in the next take). */
  dropStream(stream: number): void {
    const clusters = this.streams.get(stream);
    if (clusters === undefined) return;
    this.streams.delete(stream);
    for (const [cluster, r] of clusters) if (r.live) for (const key of r.keys.keys()) this.removeShare(cluster, key, stream);
  }

  /**
   * The combined sample of an endpoint over the shares fresh at `now`, recomputed from them (not
   * from the running sums): what `take` hands over, for views and tests.
   */
  combined(cluster: string, key: string, now: number): Sample | undefined {
    const e = this.endpoints.get(cluster)?.get(key);
    if (e === undefined) return undefined;
    const sums = new Float64Array(SUMMED);
    let fresh = 0;
    for (const [stream, share] of e.shares) {
      const r = this.streams.get(stream)?.get(cluster);
      if (r === undefined || !r.live || r.validUntil < now) continue;
      fresh++;
      for (let s = 0; s < SUMMED; s++) sums[s] = (sums[s] as number) + (share[s] as number);
    }
    const all = e.remote === undefined ? (fresh > 0 ? sums : undefined) : withPartials(fresh > 0 ? sums : undefined, e.remote.values(), now);
    return all === undefined ? undefined : this.sampleOf(all, now);
  }

  private sampleOf(sums: Float64Array, at: number): Sample {
    const sample: { -readonly [K in keyof Sample]: Sample[K] } = {
      at,
      rps: nonNegative(sums[RPS] as number),
      errors: nonNegative(sums[ERRORS] as number),
      inflight: nonNegative(sums[INFLIGHT] as number),
      source: 'lrs',
    };
    for (const f of METRIC_FIELDS) {
      const count = sums[FIELD_SLOT[f]] as number;
      if (!(count > 0)) continue;
      const mean = (sums[FIELD_SLOT[f] + 1] as number) / count;
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
    if (report.localities.length === 0) return report.endpoints;
    const loads = [...report.endpoints];
    for (const locality of report.localities) {
      const members = this.options.localityMembers?.(locality.cluster, localityId(locality.locality)) ?? [];
      const { result, loads: attributed } = attributeLocality(locality, members);
      count?.('locality', result, 1);
      loads.push(...attributed);
    }
    return loads;
  }

  /** A share's values from one endpoint's load (in place: a proxy's share of an endpoint is rewritten every interval). */
  private fillShare(share: Float64Array, load: EndpointLoad): void {
    share.fill(0);
    const seconds = load.intervalMs / 1000;
    share[RPS] = load.issued / seconds;
    share[ERRORS] = load.failed / seconds;
    share[INFLIGHT] = load.inProgress;
    for (const [name, m] of load.metrics) {
      const field = this.metricFields[name];
      if (field === undefined) continue;
      const slot = FIELD_SLOT[field];
      share[slot] = (share[slot] as number) + m.count;
      share[slot + 1] = (share[slot + 1] as number) + m.total;
    }
  }

  /**
   * Endpoints the stream reported in `cluster` last time (`before`) but not now: it had no traffic
   * to them in the interval, so its share is 0 (also when the last report had expired). One
   * report later, still absent, the share goes (a zero share changes no sum; it only says this
   * proxy still counts the endpoint).
   */
  private zeroAbsent(stream: number, cluster: string, before: StreamCluster | undefined, reported: Map<string, boolean>, at: number): void {
    if (before === undefined) return;
    for (const [key, zeroed] of before.keys) {
      if (reported.has(key)) continue;
      if (zeroed) {
        if (before.live) this.removeShare(cluster, key, stream);
        continue;
      }
      const e = this.endpointOf(cluster, key);
      this.openShare(e, stream).fill(0);
      this.closeShare(e, stream, at);
      reported.set(key, true);
    }
  }

  /** The stream's share of an endpoint, out of the sums until closeShare (its values are then rewritten). */
  private openShare(e: Endpoint, stream: number): Float64Array {
    const share = e.shares.get(stream);
    if (share === undefined) {
      const fresh = new Float64Array(SUMMED);
      e.shares.set(stream, fresh);
      return fresh;
    }
    if (addTo(e, share, -1)) e.inexact = true;
    return share;
  }

  /** Puts the stream's rewritten share back into the sums. */
  private closeShare(e: Endpoint, stream: number, at: number): void {
    addTo(e, e.shares.get(stream) as Float64Array, 1);
    e.changedAt = at;
    this.updated(e);
  }

  private removeShare(cluster: string, key: string, stream: number): void {
    const byKey = this.endpoints.get(cluster);
    const e = byKey?.get(key);
    const share = e?.shares.get(stream);
    if (byKey === undefined || e === undefined || share === undefined) return;
    e.shares.delete(stream);
    if (addTo(e, share, -1)) e.inexact = true;
    e.changedAt = Number.NaN;
    this.updated(e);
    this.forgetIfEmpty(e);
  }

  /** An endpoint without shares or partials is dropped (its last change is still in `changed`). */
  private forgetIfEmpty(e: Endpoint): void {
    if (e.shares.size > 0 || (e.remote !== undefined && e.remote.size > 0)) return;
    const byKey = this.endpoints.get(e.cluster);
    if (byKey?.get(e.key) !== e) return;
    byKey.delete(e.key);
    if (byKey.size === 0) this.endpoints.delete(e.cluster);
  }

  /** Drops the partials of other replicas that were not renewed in time. */
  private expirePartials(now: number): void {
    this.lastSweep = now;
    for (const e of this.withRemote) {
      const remote = e.remote as Map<string, RemotePartial>;
      for (const [replica, p] of remote) {
        if (p.validUntil >= now) continue;
        remote.delete(replica);
        e.changedAt = Number.NaN;
        this.changed.add(e);
      }
      if (remote.size > 0) continue;
      e.remote = undefined;
      this.withRemote.delete(e);
      this.forgetIfEmpty(e);
    }
  }

  private updated(e: Endpoint): void {
    this.changed.add(e);
    this.ownChanged.add(e);
    if (++e.updates < EXACT_EVERY && !e.inexact) return;
    e.updates = 0;
    e.inexact = false;
    e.sums.fill(0);
    e.holders.fill(0);
    for (const share of e.shares.values()) addTo(e, share, 1);
  }

  private endpointOf(cluster: string, key: string): Endpoint {
    let byKey = this.endpoints.get(cluster);
    if (byKey === undefined) this.endpoints.set(cluster, (byKey = new Map()));
    let e = byKey.get(key);
    if (e === undefined) {
      e = { cluster, key, shares: new Map(), sums: new Float64Array(SUMMED), holders: new Int32Array(SUMMED), updates: 0, inexact: false, changedAt: Number.NaN, remote: undefined };
      byKey.set(key, e);
    }
    return e;
  }

  /**
   * Drops the shares of every stream that stopped reporting a cluster more than its lifetime ago.
   * What it reported is kept: should it report the cluster again, the endpoints it left out count
   * 0 from it, as after any report.
   */
  private expire(now: number): void {
    for (const [stream, clusters] of this.streams) {
      for (const [cluster, r] of clusters) {
        if (!r.live || r.validUntil >= now) continue;
        r.live = false;
        for (const key of r.keys.keys()) this.removeShare(cluster, key, stream);
      }
    }
  }
}

/**
 * Adds (sign 1) or subtracts (sign −1) a share to its endpoint's sums. True when a subtraction
 * left a sum that rounding may have spoiled: most of its digits cancelled (a share far larger
 * than the others left) or not finite.
 */
function addTo(e: Endpoint, share: Float64Array, sign: 1 | -1): boolean {
  let inexact = false;
  for (let s = 0; s < SUMMED; s++) {
    const v = share[s] as number;
    if (v === 0) continue;
    const holders = (e.holders[s] as number) + sign;
    e.holders[s] = holders;
    const sum = holders === 0 ? 0 : (e.sums[s] as number) + sign * v;
    e.sums[s] = sum;
    if (sign < 0 && holders > 0 && !(Math.abs(sum) >= v * CANCELLED && Math.abs(sum) < Number.POSITIVE_INFINITY)) inexact = true;
  }
  return inexact;
}

const nonNegative = (v: number): number => (v > 0 ? v : 0);

/** Whether another replica's sums are what `partials` makes: PARTIAL_SUMS_LENGTH finite values ≥ 0. */
export function validPartial(sums: unknown): sums is readonly number[] {
  return Array.isArray(sums) && sums.length === SUMMED && sums.every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0);
}

/** `own` sums (undefined: none) plus the partials fresh at `now`; undefined when there is neither. */
function withPartials(own: Float64Array | undefined, partials: Iterable<RemotePartial>, now: number): Float64Array | undefined {
  let sums: Float64Array | undefined;
  for (const p of partials) {
    if (p.validUntil < now) continue;
    sums ??= own === undefined ? new Float64Array(SUMMED) : Float64Array.from(own);
    for (let s = 0; s < SUMMED; s++) sums[s] = (sums[s] as number) + (p.sums[s] as number);
  }
  return sums ?? own;
}
