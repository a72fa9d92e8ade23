import type { Logger } from 'pino';
import { WindowedLog } from '../telemetry/windowed-log.js';
import { endpointKey } from '../catalog/endpoint-key.js';
import { changedClusters } from '../catalog/changed-clusters.js';
import type { Catalog, Cluster, Endpoint } from '../catalog/types.js';
import { inChunks, runToEnd } from '../balancing/steps.js';
import type { LrsGranularity, LrsReportResult } from './lrs-aggregator.js';
import { LocalityLookup, sameLocality, type LocalityRow, type LocalityRows } from './locality-lookup.js';
import { DEFAULT_METRIC_FIELDS, localityId, type LocalityMember, type LocalityName, type MetricField } from './lrs-conversion.js';
import { lrsService, type LrsService } from './lrs-service.js';
import { Prober, probeConfigFromCatalog } from './prober.js';
import { ReportBudget, httpReservation, type Admission, type ReportBudgetOptions, type ReportsGate } from './report-budget.js';
import { reportService, type GrpcServicePair } from './report-grpc.js';
import { VALIDATION_DEFAULTS } from './report-validation.js';
import { ingestReports, type BatchSummary, type IngestResult } from './report-ingest.js';
import { SignalStore, type SignalListener } from './signal-store.js';

/** What the HA signal share needs of LRS: each replica's own sums out, the others' in. */
export type LrsShare = Pick<LrsService, 'partials' | 'applyPartial' | 'dropReplica'>;

export interface SignalsOptions {
  readonly log: Logger;
  /** LoadStatsResponse.load_reporting_interval asked of proxies: the shortest (fixed unless lrsMaxIntervalMs is longer). */
  readonly lrsIntervalMs: number;
  /** The longest interval asked as the fleet's reports grow (report-cadence.ts); default lrsIntervalMs. */
  readonly lrsMaxIntervalMs?: number;
  /** Report entries a second the interval stretches to stay within. */
  readonly lrsEntriesPerSecond?: number;
  /**
   * Ingestion counts (metrics): per report batch (http, grpc) the samples kept and rejected; per
   * LRS sample kept in the store, ('lrs', 1, 0). LRS samples dropped (unknown endpoint, too old)
   * are not seen here. Batches refused whole (400 / 413) are not counted.
   */
  readonly onSamples?: (transport: 'http' | 'grpc' | 'lrs', accepted: number, rejected: number) => void;
  /** Load metric name → sample field for LRS, over DEFAULT_METRIC_FIELDS (lrs-conversion.ts). */
  readonly lrsMetricFields?: Readonly<Record<string, MetricField>>;
  /** The weight proxies currently get for an endpoint (published); the catalog's when undefined. */
  readonly currentWeight?: (cluster: string, key: string) => number | undefined;
  /** LRS report entries by granularity (endpoint, locality) and result (metrics). */
  readonly onLrsEntries?: (granularity: LrsGranularity, result: LrsReportResult, count: number) => void;
  /** Wall clock for the rate of log lines (default Date.now). */
  readonly now?: () => number;
  /**
   * Each sender's budget of report samples, HTTP and gRPC together (report-budget.ts); default
   * none. Its clock is the signal store's.
   */
  readonly reportBudget?: Omit<ReportBudgetOptions, 'now'>;
  /** LRS: reports one stream may send ahead of the interval it was asked for (lrs-service.ts); default LRS_REPORT_BURST. */
  readonly lrsReportBurst?: number;
  /** A report request refused by the sender's budget, or an LRS stream ended for reporting too often (metrics). */
  readonly onRefused?: (transport: 'http' | 'grpc' | 'lrs') => void;
}

/** At most one "rejected samples" warning per transport in this long. */
export const REJECTIONS_LOG_WINDOW_MS = 60_000;

/**
 * Every way fulcrum learns about endpoint load, behind one object: reports (HTTP and gRPC),
 * Envoy's load reports (LRS, with ORCA utilization) and active probes, all landing in one
 * SignalStore that the weight engine listens to.
 */
export class Signals {
  readonly store: SignalStore;
  private readonly prober: Prober;
  private readonly lrs: LrsService;
  private readonly reports: GrpcServicePair;
  private known = new Map<string, Set<string>>();
  /** The catalog's clusters last seen, to tell which changed (by identity). */
  private clusters = new Map<string, Cluster>();
  /** The same, as the catalog listed them: after one write, the changed cluster is found by position. */
  private seen: readonly Cluster[] = [];
  /** cluster → locality id → its endpoints' keys and positions in the cluster (for per-locality LRS). */
  private localities = new Map<string, Map<string, LocalityRow[]>>();
  /** Per cluster's locality rows (the map object: a layout rebuilt is a new one), how a report's locality is found in them. */
  private readonly lookups = new WeakMap<LocalityRows, LocalityLookup>();

  constructor(private readonly options: SignalsOptions) {
    this.store = new SignalStore({ onListenerError: (err) => options.log.error({ err }, 'signal listener failed') });
    const knows = (cluster: string, endpoint?: string): boolean => {
      const keys = this.known.get(cluster);
      return keys !== undefined && (endpoint === undefined || keys.has(endpoint));
    };
    // An agent whose samples keep failing (an endpoint removed from the catalog, a percentage for
    // a fraction) sends the same problem every second: logged once a minute per transport, with
    // the first problem to fix; the metric counts every sample. (The reporter is cut at ingest: REPORTER_MAX.)
    const rejections = new WindowedLog((fields, message) => options.log.warn(fields, message), 'report batch had rejected samples', REJECTIONS_LOG_WINDOW_MS, options.now);
    const onBatch = (s: BatchSummary): void => {
      options.onSamples?.(s.transport, s.accepted, s.rejected);
      if (s.rejected > 0) rejections.event(s.transport, { ...s, ...(s.firstRejection ? { firstRejection: { field: s.firstRejection.field.slice(0, 100), reason: s.firstRejection.reason.slice(0, 300) } } : {}) });
    };
    const onSamples = options.onSamples;
    if (onSamples) {
      this.store.subscribe((e) => {
        if (e.kind === 'sample' && e.sample.source === 'lrs') onSamples('lrs', 1, 0);
      });
    }
    this.prober = new Prober({ store: this.store });
    this.lrs = lrsService({
      store: this.store,
      knows,
      reportingIntervalMs: options.lrsIntervalMs,
      ...(options.lrsMaxIntervalMs !== undefined ? { maxReportingIntervalMs: options.lrsMaxIntervalMs } : {}),
      ...(options.lrsEntriesPerSecond !== undefined ? { reportEntriesPerSecond: options.lrsEntriesPerSecond } : {}),
      log: options.log,
      localityMembers: (cluster, locality) => this.localityMembers(cluster, locality),
      ...(options.lrsMetricFields ? { metricFields: { ...DEFAULT_METRIC_FIELDS, ...options.lrsMetricFields } } : {}),
      ...(options.onLrsEntries ? { onEntries: options.onLrsEntries } : {}),
      ...(options.lrsReportBurst !== undefined ? { reportBurst: options.lrsReportBurst } : {}),
      ...(options.onRefused ? { onRefused: () => options.onRefused?.('lrs') } : {}),
    });
    const budget = options.reportBudget ? new ReportBudget({ ...options.reportBudget, now: () => this.store.now() }) : undefined;
    const admit = budget ? this.refusalsCounted(budget) : undefined;
    this.reports = reportService({ store: this.store, knows, onBatch, ...(admit ? { admit: (address, samples) => admit('grpc', address, samples) } : {}) });
    this.ingest = (body) => ingestReports(body, { store: this.store, knows, onBatch });
    this.reportsGate =
      budget && admit
        ? {
            reserve: (address, bytes) => admit('http', address, httpReservation(bytes, VALIDATION_DEFAULTS.maxBatch)),
            settle: (address, reserved, samples) => budget.settle(address, reserved, samples),
          }
        : undefined;
  }

  /** POST /v1/reports: each sender's budget, asked before a body is read; undefined without a budget. */
  readonly reportsGate: ReportsGate | undefined;

  /** The budget's `take`, each refusal counted, and logged once a minute per transport. */
  private refusalsCounted(budget: ReportBudget): (transport: 'http' | 'grpc', address: string, samples: number) => Admission {
    const refusals = new WindowedLog((fields, message) => this.options.log.warn(fields, message), 'reports refused: the sender is over its budget of samples per second', REJECTIONS_LOG_WINDOW_MS, this.options.now);
    return (transport, address, samples) => {
      const admission = budget.take(address, samples);
      if (!admission.admitted) {
        this.options.onRefused?.(transport);
        refusals.event(transport, { transport, address: address.slice(0, 64), retryAfterMs: admission.retryAfterMs });
      }
      return admission;
    };
  }

  /** POST /v1/reports. Throws ReportBatchError (with its HTTP status) for a batch refused whole. */
  readonly ingest: (body: unknown) => IngestResult;

  /** The load report interval a stream opened now is asked (report-cadence.ts). */
  get lrsIntervalMs(): number {
    return this.lrs.intervalMs;
  }

  /** HA: the LRS sums this replica and the others exchange (src/ha/signal-share.ts). */
  get lrsShare(): LrsShare {
    return this.lrs;
  }

  /** gRPC services to serve beside xDS: fulcrum.reports.v1.ReportService and Envoy's LRS. */
  get grpcServices(): readonly GrpcServicePair[] {
    return [this.reports, this.lrs];
  }

  subscribe(listener: SignalListener): () => void {
    return this.store.subscribe(listener);
  }

  /**
   * Incremental: a cluster that is the same object as in the previous catalog (the stores keep
   * unchanged clusters) is skipped, so one endpoint write costs one cluster, not the catalog.
   */
  setCatalog(catalog: Catalog): void {
    this.apply(catalog, new Map());
  }

  /**
   * setCatalog in steps (the catalog feed runs one per turn for a big change): the keys and
   * locality members of each changed cluster, `chunk` endpoints per step (pure: from the catalog
   * alone), then the last step applies the catalog with them. Nothing changes before it.
   */
  *setCatalogSteps(catalog: Catalog, chunk = SIGNALS_STEP_ENDPOINTS): Generator<void, void, void> {
    const prepared = new Map<Cluster, KeysAndLocalities>();
    for (const c of catalog.clusters) {
      if (this.clusters.get(c.name) === c || c.endpoints.length <= chunk) continue;
      yield;
      prepared.set(c, yield* keysAndLocalitiesSteps(c.endpoints, chunk));
    }
    yield;
    this.apply(catalog, prepared);
  }

  private apply(catalog: Catalog, prepared: ReadonlyMap<Cluster, KeysAndLocalities>): void {
    // Names added or removed (a cluster created or deleted): those alone, found by name.
    const changes = changedClusters(this.seen, catalog.clusters);
    for (const name of changes.removed) {
      this.clusters.delete(name);
      this.known.delete(name);
      this.localities.delete(name);
      // Only known clusters' samples are taken in (`knows`) and probed: the removed ones' go with them.
      this.store.forget(name);
      this.prober.setCluster(name, undefined, []);
    }
    for (const c of changes.changed) {
      const { keys, byLocality } = this.changedCluster(c, this.clusters.get(c.name), prepared);
      this.clusters.set(c.name, c);
      this.known.set(c.name, keys);
      this.localities.set(c.name, byLocality);
    }
    // Last: if a cluster threw above, the next catalog is compared with this one's predecessor again.
    this.seen = catalog.clusters;
  }

  /** A new or changed cluster: its keys and locality members; the samples of endpoints it no longer has forgotten, its probes set. */
  private changedCluster(c: Cluster, before: Cluster | undefined, prepared: ReadonlyMap<Cluster, KeysAndLocalities>): KeysAndLocalities {
    const found = prepared.get(c) ?? this.unchangedLayout(c, before) ?? keysAndLocalities(c.endpoints);
    for (const key of this.store.endpointKeys(c.name)) if (!found.keys.has(key)) this.store.forget(c.name, key);
    this.prober.setCluster(c.name, c.probe ? probeConfigFromCatalog(c.probe) : undefined, c.endpoints);
    return found;
  }

  /**
   * The keys kept for `before` (the cluster's previous object) when `c` has the same endpoints by
   * address and port in the same order (a weight, health or locality change), and its locality
   * rows too unless a locality changed. Rebuilt, their new key strings, Set and Map lived as long
   * as the cluster, so every endpoint write promoted them to the old generation (~13 KB at 100
   * endpoints).
   */
  private unchangedLayout(c: Cluster, before: Cluster | undefined): KeysAndLocalities | undefined {
    const keys = this.known.get(c.name);
    const rows = this.localities.get(c.name);
    if (before === undefined || keys === undefined || rows === undefined || !sameKeys(before.endpoints, c.endpoints)) return undefined;
    if (sameLocalities(before.endpoints, c.endpoints)) return { keys, byLocality: rows };
    const keyAt: string[] = [];
    for (const list of rows.values()) for (const r of list) keyAt[r.index] = r.key;
    return { keys, byLocality: rowsByLocality(c.endpoints, (i) => keyAt[i] ?? endpointKey(c.endpoints[i] as Endpoint)) };
  }

  /**
   * A locality's endpoints with the weights proxies get: how per-locality LRS is split among them.
   * A locality gRPC clients were sent for one endpoint (catalog/endpoint-localities.ts) is that
   * endpoint alone, when it is in the real locality named (LocalityLookup).
   */
  localityMembers(cluster: string, locality: LocalityName): LocalityMember[] {
    const byLocality = this.localities.get(cluster);
    const endpoints = this.clusters.get(cluster)?.endpoints ?? [];
    if (byLocality === undefined) return [];
    let lookup = this.lookups.get(byLocality);
    if (lookup === undefined) this.lookups.set(byLocality, (lookup = new LocalityLookup(byLocality)));
    const current = this.options.currentWeight;
    return lookup.find(locality, endpoints).map((r) => ({ key: r.key, weight: current?.(cluster, r.key) ?? endpoints[r.index]?.weight ?? 0 }));
  }

  /** How many endpoints are set to be probed (those of clusters with a probe). */
  get probeTargets(): number {
    return this.prober.targetCount;
  }

  start(): void {
    this.prober.start();
  }

  /** Stops probing and ends LRS streams, so they do not hold up the gRPC drain. */
  stop(): void {
    this.prober.stop();
    this.lrs.close();
  }
}

/** Whether every endpoint of `after` has the address and port of the one at its position in `before`. */
function sameKeys(before: readonly Endpoint[], after: readonly Endpoint[]): boolean {
  if (before.length !== after.length) return false;
  for (let i = 0; i < after.length; i++) {
    const a = before[i] as Endpoint;
    const b = after[i] as Endpoint;
    if (a !== b && (a.address !== b.address || a.port !== b.port)) return false;
  }
  return true;
}

/** Whether every endpoint of `after` has the locality of the one at its position in `before` (same length). */
function sameLocalities(before: readonly Endpoint[], after: readonly Endpoint[]): boolean {
  for (let i = 0; i < after.length; i++) if (!sameLocality((before[i] as Endpoint).locality, (after[i] as Endpoint).locality)) return false;
  return true;
}

/** Endpoints per step when a big catalog change reaches the signals in steps. */
export const SIGNALS_STEP_ENDPOINTS = 5_000;

interface KeysAndLocalities {
  readonly keys: Set<string>;
  readonly byLocality: Map<string, LocalityRow[]>;
}

/** A cluster's endpoint keys and its members by locality, in one pass: each key made once (20k of them for a big cluster, with their GC). */
function keysAndLocalities(endpoints: Catalog['clusters'][number]['endpoints']): KeysAndLocalities {
  return runToEnd(keysAndLocalitiesSteps(endpoints, Number.POSITIVE_INFINITY));
}

/** keysAndLocalities, `chunk` endpoints per step. */
function* keysAndLocalitiesSteps(endpoints: Catalog['clusters'][number]['endpoints'], chunk: number): Generator<void, KeysAndLocalities, void> {
  const keys = new Set<string>();
  const byLocality = new Map<string, LocalityRow[]>();
  yield* inChunks(endpoints.length, chunk, (from, to) => {
    for (let i = from; i < to; i++) {
      const e = endpoints[i] as Endpoint;
      const key = endpointKey(e);
      keys.add(key);
      addRow(byLocality, e, key, i);
    }
  });
  return { keys, byLocality };
}

/** The endpoints' locality rows, their keys from `keyAt` (positions). */
function rowsByLocality(endpoints: readonly Endpoint[], keyAt: (i: number) => string): Map<string, LocalityRow[]> {
  const byLocality = new Map<string, LocalityRow[]>();
  for (let i = 0; i < endpoints.length; i++) addRow(byLocality, endpoints[i] as Endpoint, keyAt(i), i);
  return byLocality;
}

function addRow(byLocality: Map<string, LocalityRow[]>, e: Endpoint, key: string, index: number): void {
  const id = localityId(e.locality);
  const list = byLocality.get(id);
  if (list) list.push({ key, index });
  else byLocality.set(id, [{ key, index }]);
}
