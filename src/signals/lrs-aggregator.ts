import TinyQueue from 'tinyqueue';
import type { WireLoadStatsRequest } from './lrs-codec.js';
import {
  attributeLocality,
  DEFAULT_METRIC_FIELDS,
  METRIC_FIELDS,
  reportLoads,
  type EndpointLoad,
  type LocalityAttribution,
  type LocalityMember,
  type LocalityName,
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
 * proxies on one 100-endpoint cluster took 2.9 s of CPU per 2 s interval (bench/RESULTS.md,
 * "lrs32"). Each endpoint therefore keeps the running sums of its shares, updated by each entry in
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
/**
 * Successful completions per second, and the same proxies' in-progress count and completions
 * (successes and errors) per second on the cluster's other endpoints that succeeded some (their
 * sums over the shares): what the engine's stall rule reads (a hung backend answers none while
 * its peers, as the proxies calling it see them, answer theirs). After the values other replicas
 * share: those stay as they were.
 */
const SUCCEEDED = METRICS + 2 * METRIC_FIELDS.length;
const PEER_INFLIGHT = SUCCEEDED + 1;
const PEER_COMPLETED = SUCCEEDED + 2;
const SUMMED = SUCCEEDED + 3;
/**
 * Values in a replica's partial sums (`partials`, `applyPartial`); an empty list withdraws them.
 * Without the completion slots: the format replicas of earlier releases send and accept. An
 * endpoint with another replica's sums therefore has no completion count (its proxies' views
 * are not all here) and the stall rule does not judge it.
 */
export const PARTIAL_SUMS_LENGTH = SUCCEEDED;
const FIELD_SLOT: Readonly<Record<MetricField, number>> = Object.fromEntries(METRIC_FIELDS.map((f, i) => [f, METRICS + 2 * i])) as Record<MetricField, number>;
/** Fields a proxy's requests describe (a mean), not a rate of the backend's whole traffic (a max with the counted rate). */
const GAUGES: ReadonlySet<MetricField> = new Set<MetricField>(['cpu', 'memory', 'latencyMs']);
/**
 * Sums are recomputed from the shares after this many updates of an endpoint, plus one per share
 * it holds (about one report interval): adding and subtracting doubles leaves rounding behind, at
 * the scale of the largest sum since the last recompute, and an endpoint lives as long as the
 * fleet. A subtraction that cancels most of a sum recomputes at once (CANCELLED); a sum brought
 * down in several smaller steps carries the rounding until the next recompute.
 */
const EXACT_EVERY = 256;
/** A subtraction that leaves less than this fraction of the value taken away lost half the digits or more. */
const CANCELLED = 2 ** -26;
/** A share counts for at most this many of the asked intervals (times `staleAfterIntervals`), whatever interval its report claims. */
const MAX_INTERVALS = 10;
/**
 * A share's rates are taken over at least this fraction of the asked interval, whatever interval
 * its report claims: one proxy claiming its requests took a microsecond would otherwise add
 * millions of requests a second to an endpoint's sum and dilute every other proxy's errors to
 * nothing (a backend failing every request then kept its traffic).
 */
const MIN_INTERVAL_FRACTION = 1 / MAX_INTERVALS;

export type LrsGranularity = 'endpoint' | 'locality';
/** `used`: per-endpoint stats taken as they are; `unaddressed`: an endpoint entry without a socket address. */
export type LrsReportResult = 'used' | 'unaddressed' | LocalityAttribution;

export interface LrsAggregatorOptions {
  /** Load metric name → sample field (default DEFAULT_METRIC_FIELDS). */
  readonly metricFields?: Readonly<Record<string, MetricField>>;
  /** A share counts for this many report intervals after its proxy last reported the cluster (default 3). */
  readonly staleAfterIntervals?: number;
  /** The endpoints of a locality and their current weights (for per-locality reports; default: none known). */
  readonly localityMembers?: (cluster: string, locality: LocalityName) => readonly LocalityMember[];
  /** Per report: how many entries of each granularity were used, attributed or dropped. */
  readonly onEntries?: (granularity: LrsGranularity, result: LrsReportResult, count: number) => void;
  /**
   * Whether the catalog has this cluster (`endpoint` undefined) or this endpoint of it (default:
   * all). A report naming clusters or endpoints nobody declared then costs nothing kept: without
   * it, one proxy could make the aggregator hold a share for every name it cared to invent.
   */
  readonly knows?: (cluster: string, endpoint?: string) => boolean;
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
  /** PARTIAL_SUMS_LENGTH values, opaque to everyone but another LrsAggregator; empty: withdrawn (its proxies left). */
  readonly sums: readonly number[];
}

/** Another replica's sums, counted until `validUntil`. */
interface RemotePartial {
  readonly sums: readonly number[];
  readonly validUntil: number;
  /** Its entry in the expiry queue (handed on to the sums that renew these). */
  arm: Expiry | undefined;
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
  /** Other replicas' sums (HA), by replica; undefined until one arrives. */
  remote: Map<string, RemotePartial> | undefined;
  /** Its own sums went to other replicas (`partials`) since it last had none: an empty list withdraws them. */
  sent: boolean;
}

/** What one stream reported of one cluster last time. */
interface StreamCluster {
  /** The stream's shares in this cluster count until then. */
  readonly validUntil: number;
  /** The endpoints it reported (false) or stopped reporting, its share zeroed (true). */
  readonly keys: Map<string, boolean>;
  /** Its shares are in the sums: not yet expired. */
  live: boolean;
  /** Its entry in the expiry queue (handed on to the report that renews this one). */
  arm: Expiry | undefined;
}

/**
 * The expiry queue's entry for a stream's shares in a cluster, or for a replica's sums of an
 * endpoint: one per such key, whatever the number of reports renewing it. `at` is when the key
 * expired as of the entry's last (re)arming; a renewed key's entry moves to its new time when it
 * comes up, and an entry its key no longer holds (`arm`) is dropped then.
 */
type Expiry =
  | { at: number; readonly stream: number; readonly cluster: string }
  | { at: number; readonly e: Endpoint; readonly replica: string };

export class LrsAggregator {
  /** cluster → key → the endpoint's shares. */
  private readonly endpoints = new Map<string, Map<string, Endpoint>>();
  /** stream → cluster → what the stream reported of it. */
  private readonly streams = new Map<number, Map<string, StreamCluster>>();
  /** Endpoints whose shares changed since the last take. */
  private readonly changed = new Set<Endpoint>();
  /**
   * Endpoints whose own (this replica's) shares changed since the last `partials`; kept only once
   * `partials` was called (a replica among others), else it would hold every endpoint ever seen.
   */
  private readonly ownChanged = new Set<Endpoint>();
  private sharing = false;
  /** The clusters `partials` included last time: one newly included has every endpoint sent. */
  private included: ReadonlySet<string> = new Set();
  /**
   * What expires, soonest first: a take costs what expired, not a walk over every stream's every
   * cluster, and the head is the next expiry (nextExpiry), so a flush is scheduled for it only.
   */
  private readonly expiries = new TinyQueue<Expiry>([], (a, b) => a.at - b.at);
  private readonly metricFields: Readonly<Record<string, MetricField>>;
  /** The share an entry makes, before rewriteShare copies it into the stream's share of the endpoint (one array, reused by every entry). */
  private readonly next = new Float64Array(SUMMED);

  constructor(private readonly options: LrsAggregatorOptions = {}) {
    this.metricFields = options.metricFields ?? DEFAULT_METRIC_FIELDS;
  }

  /** Applies one proxy's report; `take` then has the endpoints it changed. */
  apply(stream: number, req: WireLoadStatsRequest, now: number, defaultIntervalMs: number): void {
    const lifetime = this.options.staleAfterIntervals ?? 3;
    const report = reportLoads(req, defaultIntervalMs);
    let clusters = this.streams.get(stream);
    if (clusters === undefined) this.streams.set(stream, (clusters = new Map()));
    // Per cluster named in the report (and known): the endpoints reported now, and the longest interval.
    const reported = new Map<string, { keys: Map<string, boolean>; intervalMs: number }>();
    for (const c of report.clusters) if (!reported.has(c) && this.options.knows?.(c) !== false) reported.set(c, { keys: new Map(), intervalMs: defaultIntervalMs });
    const loads = this.endpointLoadsOf(report).filter((l) => reported.has(l.cluster) && this.options.knows?.(l.cluster, l.key) !== false);
    const flows = clusterFlows(loads, defaultIntervalMs);
    for (const load of loads) {
      const r = reported.get(load.cluster);
      if (r === undefined) continue;
      // Bounded: a proxy claiming a week-long interval must not hold its share for weeks.
      r.intervalMs = Math.max(r.intervalMs, Math.min(load.intervalMs, MAX_INTERVALS * defaultIntervalMs));
      const e = this.endpointOf(load.cluster, load.key);
      const next = this.next;
      const intervalForRates = Math.max(load.intervalMs, MIN_INTERVAL_FRACTION * defaultIntervalMs);
      this.fillShare(next, load, intervalForRates);
      fillPeers(next, flows.get(load.cluster), load, intervalForRates);
      this.rewriteShare(e, stream, next);
      r.keys.set(load.key, false);
    }
    for (const [cluster, r] of reported) {
      const before = clusters.get(cluster);
      this.zeroAbsent(stream, cluster, before, r.keys);
      if (r.keys.size === 0) {
        clusters.delete(cluster);
        continue;
      }
      const group: StreamCluster = { validUntil: now + lifetime * r.intervalMs, keys: r.keys, live: true, arm: before?.arm };
      clusters.set(cluster, group);
      group.arm ??= this.arm({ at: group.validUntil, stream, cluster });
    }
    if (clusters.size === 0) this.streams.delete(stream);
  }

  /**
   * The combined sample, stamped `now`, of every endpoint whose shares changed since the last
   * take and still has a fresh one, after expiring what was not renewed in time. Stamped when
   * handed over, not when the report came: a sample from an agent recorded meanwhile must not
   * make the engine take this one for an older one.
   */
  take(now: number): EndpointSample[] {
    this.expire(now);
    const out: EndpointSample[] = [];
    for (const e of this.changed) {
      const sums = withPartials(e.shares.size > 0 ? e.sums : undefined, e.remote?.values() ?? []);
      if (sums !== undefined) out.push({ cluster: e.cluster, key: e.key, sample: this.sampleOf(sums, now, e.remote === undefined) });
    }
    this.changed.clear();
    return out;
  }

  /** When the next share or partial expires (undefined: nothing held): a take then hands over what it changes. */
  nextExpiry(): number | undefined {
    this.settleHead(undefined);
    return this.expiries.peek()?.at;
  }

  /**
   * This replica's own sums of every endpoint whose shares changed since the last call, in the
   * clusters `include` names (HA: those another replica owns); every endpoint of a cluster it did
   * not name last time. An endpoint whose proxies all left is withdrawn: empty sums.
   */
  partials(include: (cluster: string) => boolean): PartialSums[] {
    this.sharing = true;
    const included = new Set<string>();
    for (const [cluster, byKey] of this.endpoints) {
      if (!include(cluster)) continue;
      included.add(cluster);
      if (!this.included.has(cluster)) for (const e of byKey.values()) this.ownChanged.add(e);
    }
    this.included = included;
    const out: PartialSums[] = [];
    for (const e of this.ownChanged) {
      if (!include(e.cluster)) continue;
      if (e.shares.size > 0) {
        out.push({ cluster: e.cluster, key: e.key, sums: sendable(e.sums) });
        e.sent = true;
      } else if (e.sent) {
        out.push({ cluster: e.cluster, key: e.key, sums: [] });
        e.sent = false;
      }
    }
    this.ownChanged.clear();
    return out;
  }

  /**
   * Another replica's sums for an endpoint (HA: this replica owns its cluster), counted with this
   * replica's own shares for `lifetimeMs` unless renewed; empty sums withdraw them. False (nothing
   * changed) for sums that are not PARTIAL_SUMS_LENGTH finite values with counts ≥ 0, or for an
   * endpoint the catalog does not know.
   */
  applyPartial(replica: string, cluster: string, key: string, sums: readonly number[], now: number, lifetimeMs: number): boolean {
    if (sums.length === 0) return this.withdraw(this.endpoints.get(cluster)?.get(key), replica);
    if (!validPartial(sums) || this.options.knows?.(cluster, key) === false) return false;
    const e = this.endpointOf(cluster, key);
    const partial: RemotePartial = { sums, validUntil: now + lifetimeMs, arm: e.remote?.get(replica)?.arm };
    (e.remote ??= new Map()).set(replica, partial);
    partial.arm ??= this.arm({ at: partial.validUntil, e, replica });
    this.changed.add(e);
    return true;
  }

  /** Withdraws every sum `replica` sent (its key under the lease is gone: it stopped). */
  dropReplica(replica: string): void {
    for (const byKey of [...this.endpoints.values()]) for (const e of [...byKey.values()]) this.withdraw(e, replica);
  }

  /** Forgets a closed stream's shares (the endpoints they leave are in the next take). */
  dropStream(stream: number): void {
    const clusters = this.streams.get(stream);
    if (clusters === undefined) return;
    this.streams.delete(stream);
    for (const [cluster, r] of clusters) if (r.live) for (const key of r.keys.keys()) this.removeShare(cluster, key, stream);
  }

  /**
   * The combined sample of an endpoint over the shares and partials fresh at `now`, recomputed
   * from them (not from the running sums): what `take` hands over, for views and tests.
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
    const partials = [...(e.remote?.values() ?? [])].filter((p) => p.validUntil >= now);
    const all = withPartials(fresh > 0 ? sums : undefined, partials);
    return all === undefined ? undefined : this.sampleOf(all, now, partials.length === 0);
  }

  /** `flows`: every view of the endpoint is here (no other replica's sums), so its successes are known. */
  private sampleOf(sums: Float64Array, at: number, flows: boolean): Sample {
    const sample: { -readonly [K in keyof Sample]: Sample[K] } = {
      at,
      rps: nonNegative(sums[RPS] as number),
      errors: nonNegative(sums[ERRORS] as number),
      inflight: nonNegative(sums[INFLIGHT] as number),
      source: 'lrs',
    };
    if (flows) {
      sample.successes = nonNegative(sums[SUCCEEDED] as number);
      sample.peerInflight = nonNegative(sums[PEER_INFLIGHT] as number);
      sample.peerCompletions = nonNegative(sums[PEER_COMPLETED] as number);
    }
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
      const members = this.options.localityMembers?.(locality.cluster, locality.locality) ?? [];
      const { result, loads: attributed } = attributeLocality(locality, members);
      count?.('locality', result, 1);
      loads.push(...attributed);
    }
    return loads;
  }

  /** A share's values from one endpoint's load, every slot written; its rates over `intervalMs`. */
  private fillShare(share: Float64Array, load: EndpointLoad, intervalMs: number): void {
    for (let s = 0; s < SUMMED; s++) share[s] = 0;
    const seconds = intervalMs / 1000;
    share[RPS] = load.issued / seconds;
    share[ERRORS] = load.failed / seconds;
    share[INFLIGHT] = load.inProgress;
    share[SUCCEEDED] = load.succeeded / seconds;
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
  private zeroAbsent(stream: number, cluster: string, before: StreamCluster | undefined, reported: Map<string, boolean>): void {
    if (before === undefined) return;
    for (const [key, zeroed] of before.keys) {
      if (reported.has(key)) continue;
      if (zeroed) {
        if (before.live) this.removeShare(cluster, key, stream);
        continue;
      }
      this.rewriteShare(this.endpointOf(cluster, key), stream, ZERO_SHARE);
      reported.set(key, true);
    }
  }

  /**
   * The stream's share of an endpoint rewritten to `values` (in place: a proxy's share of an
   * endpoint is rewritten every interval), the sums with it in one pass (replaceIn).
   */
  private rewriteShare(e: Endpoint, stream: number, values: Float64Array): void {
    let share = e.shares.get(stream);
    if (share === undefined) e.shares.set(stream, (share = new Float64Array(SUMMED)));
    if (replaceIn(e, share, values)) e.inexact = true;
    this.updated(e);
  }

  private removeShare(cluster: string, key: string, stream: number): void {
    const e = this.endpoints.get(cluster)?.get(key);
    const share = e?.shares.get(stream);
    if (e === undefined || share === undefined) return;
    e.shares.delete(stream);
    if (addTo(e, share, -1)) e.inexact = true;
    this.updated(e);
    this.forgetIfEmpty(e);
  }

  /** Withdraws `replica`'s sums of an endpoint; false when it had none. */
  private withdraw(e: Endpoint | undefined, replica: string): boolean {
    if (e?.remote?.delete(replica) !== true) return false;
    if (e.remote.size === 0) e.remote = undefined;
    this.changed.add(e);
    this.forgetIfEmpty(e);
    return true;
  }

  /**
   * An endpoint without shares or partials is dropped (its last change is still in `changed`;
   * in `ownChanged` only while other replicas hold its sums, to withdraw them).
   */
  private forgetIfEmpty(e: Endpoint): void {
    if (e.shares.size > 0 || e.remote !== undefined) return;
    if (!e.sent) this.ownChanged.delete(e);
    const byKey = this.endpoints.get(e.cluster);
    if (byKey?.get(e.key) !== e) return;
    byKey.delete(e.key);
    if (byKey.size === 0) this.endpoints.delete(e.cluster);
  }

  private updated(e: Endpoint): void {
    this.changed.add(e);
    if (this.sharing) this.ownChanged.add(e);
    // Amortized: a recompute walks every share, so it comes once per EXACT_EVERY updates plus one
    // per share. Every 256 updates alone, an endpoint 2,000 proxies report walked 8 shares per
    // entry: half the aggregator's time (bench/RESULTS.md, "lrs35").
    if (++e.updates < EXACT_EVERY + e.shares.size && !e.inexact) return;
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
      e = { cluster, key, shares: new Map(), sums: new Float64Array(SUMMED), holders: new Int32Array(SUMMED), updates: 0, inexact: false, remote: undefined, sent: false };
      byKey.set(key, e);
    }
    return e;
  }

  /**
   * Drops what was not renewed in time: the shares of a stream that stopped reporting a cluster
   * (what it reported is kept: should it report the cluster again, the endpoints it left out
   * count 0 from it, as after any report), and another replica's stale sums.
   */
  private expire(now: number): void {
    this.settleHead(now);
  }

  /**
   * Brings the queue's head up to date: entries whose key is gone are dropped, entries of renewed
   * keys move to the key's time; with `now`, every key whose time is past is expired. Afterwards
   * the head (if any) is the next time something held expires.
   */
  private settleHead(now: number | undefined): void {
    for (let head = this.expiries.peek(); head !== undefined; head = this.expiries.peek()) {
      const key = 'stream' in head ? this.streams.get(head.stream)?.get(head.cluster) : head.e.remote?.get(head.replica);
      if (key === undefined || key.arm !== head || ('live' in key && !key.live)) {
        this.expiries.pop();
        if (key?.arm === head) key.arm = undefined;
        continue;
      }
      if (key.validUntil !== head.at) {
        this.expiries.pop();
        head.at = key.validUntil;
        this.expiries.push(head);
        continue;
      }
      if (now === undefined || head.at >= now) return;
      this.expiries.pop();
      key.arm = undefined;
      if ('stream' in head) this.expireGroup(head.stream, head.cluster, key as StreamCluster);
      else this.withdraw(head.e, head.replica);
    }
  }

  private arm(entry: Expiry): Expiry {
    this.expiries.push(entry);
    return entry;
  }

  private expireGroup(stream: number, cluster: string, group: StreamCluster): void {
    group.live = false;
    for (const key of group.keys.keys()) this.removeShare(cluster, key, stream);
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
    if (sign < 0 && holders > 0 && !(Math.abs(sum) >= Math.abs(v) * CANCELLED && Math.abs(sum) < Number.POSITIVE_INFINITY)) inexact = true;
  }
  return inexact;
}

/**
 * `share`'s values replaced by `values` in its endpoint's sums and in place, in one pass: the
 * arithmetic of addTo(share, −1), then the new values written, then addTo(share, 1), slot by
 * slot, so the sums come out bit for bit the same. True as addTo's subtraction would be.
 */
function replaceIn(e: Endpoint, share: Float64Array, values: Float64Array): boolean {
  let inexact = false;
  for (let s = 0; s < SUMMED; s++) {
    const v = share[s] as number;
    const w = values[s] as number;
    if (v !== 0) {
      const holders = (e.holders[s] as number) - 1;
      e.holders[s] = holders;
      const sum = holders === 0 ? 0 : (e.sums[s] as number) - v;
      e.sums[s] = sum;
      if (holders > 0 && !(Math.abs(sum) >= Math.abs(v) * CANCELLED && Math.abs(sum) < Number.POSITIVE_INFINITY)) inexact = true;
    }
    if (w !== 0) {
      const holders = (e.holders[s] as number) + 1;
      e.holders[s] = holders;
      e.sums[s] = holders === 0 ? 0 : (e.sums[s] as number) + w;
    }
    share[s] = w;
  }
  return inexact;
}

/** What a stream's share of an endpoint it stopped reporting becomes (zeroAbsent). */
const ZERO_SHARE = new Float64Array(SUMMED);

const nonNegative = (v: number): number => (v > 0 ? v : 0);

/** Whether `slot` holds the sum of a metric's values (any finite number, as ORCA's may be), not a count or a rate. */
const isTotal = (slot: number): boolean => slot >= METRICS && (slot - METRICS) % 2 === 1;

/** Whether another replica's sums are what `partials` makes: PARTIAL_SUMS_LENGTH finite values, all but metric totals ≥ 0. */
export function validPartial(sums: unknown): sums is readonly number[] {
  return Array.isArray(sums) && sums.length === PARTIAL_SUMS_LENGTH && sums.every((v, slot) => typeof v === 'number' && Number.isFinite(v) && (v >= 0 || isTotal(slot)));
}

/** Sums as another replica takes them (validPartial): a metric whose total overflowed is left out, count and all. */
function sendable(sums: Float64Array): number[] {
  const out = Array.from(sums.subarray(0, PARTIAL_SUMS_LENGTH));
  for (let slot = METRICS; slot < PARTIAL_SUMS_LENGTH; slot += 2) {
    if (Number.isFinite(out[slot + 1]) && Number.isFinite(out[slot])) continue;
    out[slot] = 0;
    out[slot + 1] = 0;
  }
  return out;
}

/** One proxy's report of a cluster: in progress and completions per second over the endpoints that succeeded some. */
interface ClusterFlow {
  inflight: number;
  completed: number;
}

/**
 * Per cluster, the report's sums over the endpoints it reported that succeeded some (the peers
 * of each are these less its own). Endpoints that answered none have no latency to speak of:
 * counted, their piling requests would make the peers look slow, and one hung backend would
 * hide another.
 */
function clusterFlows(loads: readonly EndpointLoad[], defaultIntervalMs: number): Map<string, ClusterFlow> {
  const flows = new Map<string, ClusterFlow>();
  for (const l of loads) {
    let f = flows.get(l.cluster);
    if (f === undefined) flows.set(l.cluster, (f = { inflight: 0, completed: 0 }));
    if (!(l.succeeded > 0)) continue;
    f.inflight += l.inProgress;
    f.completed += (l.succeeded + l.failed) / (Math.max(l.intervalMs, MIN_INTERVAL_FRACTION * defaultIntervalMs) / 1000);
  }
  return flows;
}

/** A share's peer slots: what the same proxy saw of the cluster's other endpoints (its cluster's sums less the load's own, if counted there). */
function fillPeers(share: Float64Array, flow: ClusterFlow | undefined, load: EndpointLoad, intervalMs: number): void {
  if (flow === undefined) return;
  const counted = load.succeeded > 0;
  share[PEER_INFLIGHT] = Math.max(0, flow.inflight - (counted ? load.inProgress : 0));
  share[PEER_COMPLETED] = Math.max(0, flow.completed - (counted ? (load.succeeded + load.failed) / (intervalMs / 1000) : 0));
}

/** `own` sums (undefined: none) plus `partials`; undefined when there is neither. */
function withPartials(own: Float64Array | undefined, partials: Iterable<RemotePartial>): Float64Array | undefined {
  let sums: Float64Array | undefined;
  for (const p of partials) {
    sums ??= own === undefined ? new Float64Array(SUMMED) : Float64Array.from(own);
    for (let s = 0; s < PARTIAL_SUMS_LENGTH; s++) sums[s] = (sums[s] as number) + (p.sums[s] as number);
  }
  return sums ?? own;
}
