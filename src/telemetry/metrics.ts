import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CountingHistogram } from './counting-histogram.js';
import { clustersOf, DEFAULT_MAX_ENDPOINT_SERIES, EndpointGauges, type ClusterEndpointValues, type EndpointValue } from './endpoint-series.js';

/**
 * fulcrum's Prometheus metrics, on a registry of their own (never prom-client's global one, so
 * two instances in one process — tests, embedders — do not collide). This room imports nothing
 * from the others: the composition root (main.ts) turns xDS and config events into calls here,
 * with label values (type names, protocols) it gets from the xDS room.
 */

export interface MetricsOptions {
  /** xDS type short names (CDS, EDS, ...): their series exist at 0 before the first event. */
  readonly xdsTypes?: readonly string[];
  /** Stream protocols (sotw, delta): likewise. */
  readonly protocols?: readonly string[];
  /** Process metrics (CPU, memory, event loop lag, GC, handles); default on. */
  readonly processMetrics?: boolean;
  /** Series per per-endpoint gauge (endpoint-series.ts); default DEFAULT_MAX_ENDPOINT_SERIES, 0: none. */
  readonly maxEndpointSeries?: number;
}

/** Seconds. Snapshot publishes are sub-millisecond for small catalogs, seconds for huge ones. */
const PUBLISH_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Seconds from a response sent to its ACK: network RTT plus the proxy's apply time (cluster warming). */
const CONVERGENCE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Seconds. An engine tick is sub-millisecond for a few clusters, tens of ms for thousands of endpoints. */
const TICK_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** Seconds. One SQLite transaction with an fsync per commit: ~ms on SSDs, more on network disks. */
const STORE_WRITE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export type { ClusterEndpointValues, EndpointValue } from './endpoint-series.js';

/** How samples arrived: HTTP and gRPC reports, or Envoy's load reports (LRS). */
export type ReportTransport = 'http' | 'grpc' | 'lrs';
/** Which store transaction: a desired-state change (API, config file) or the engine's published weights. */
export type StoreWriteKind = 'catalog' | 'weights';

/** Counted per response (10,000 per push to 10,000 proxies) in a plain map, added at scrape. */
function pushesCounter(registers: Registry[], unscraped: Map<string, number>): Counter<'type'> {
  return new Counter({
    name: 'xds_pushes_total',
    help: 'xDS responses sent to proxies, by type (CDS, EDS, LDS, RDS).',
    labelNames: ['type'],
    registers,
    collect(): void {
      for (const [type, n] of unscraped) this.inc({ type }, n);
      unscraped.clear();
    },
  });
}

export class Metrics {
  readonly registry = new Registry();
  private readonly connected: Gauge<'protocol'>;
  private readonly pushes: Counter<'type'>;
  private readonly nacks: Counter<'type'>;
  private readonly publishSeconds: Histogram;
  private readonly convergence: CountingHistogram;
  private readonly reloads: Counter<'result'>;
  private readonly tickSeconds: Histogram;
  private readonly alarmTicks: Counter;
  private readonly samples: Counter<'transport' | 'result'>;
  private readonly lrsEntries: Counter<'granularity' | 'result'>;
  private readonly refusedReports: Counter<'transport'>;
  private readonly storeWrites: Histogram<'kind'>;
  /** Pushes counted since the last scrape, by type (see xds_pushes_total's collect). */
  private readonly unscrapedPushes = new Map<string, number>();
  private connectedSource: () => Iterable<string> = () => [];
  private weightSource: () => Iterable<ClusterEndpointValues> = () => [];
  private utilizationSource: () => Iterable<ClusterEndpointValues> = () => [];
  private readonly endpointGauges: EndpointGauges;
  /** The scrape being built in turns, if any: the next waits for it (they share the prepared endpoint values). */
  private rendering: Promise<unknown> = Promise.resolve();

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    this.connected = connectedGauge(registers, options.protocols ?? [], () => this.connectedSource());
    this.pushes = pushesCounter(registers, this.unscrapedPushes);
    this.nacks = new Counter({
      name: 'xds_nacks_total',
      help: 'xDS responses rejected (NACKed) by proxies, by type.',
      labelNames: ['type'],
      registers,
    });
    this.publishSeconds = new Histogram({
      name: 'fulcrum_snapshot_publish_seconds',
      help: 'Time to translate the desired state into Envoy resources and version them in the cache (one publish).',
      buckets: PUBLISH_BUCKETS,
      registers,
    });
    // Observed once per ACK, by every proxy on every push: a histogram cheap per observation.
    this.convergence = new CountingHistogram(
      'xds_convergence_seconds',
      'Time from an xDS response sent to its ACK by the proxy, by type.',
      'type',
      CONVERGENCE_BUCKETS,
      registers,
    );
    this.reloads = new Counter({
      name: 'fulcrum_config_reloads_total',
      help: 'Config file reloads, by result: ok (stored), store_failed (valid, but the store refused it; retried, counted once per edit) or rejected (invalid; the last good config stays).',
      labelNames: ['result'],
      registers,
    });
    this.endpointGauges = new EndpointGauges(registers, options.maxEndpointSeries ?? DEFAULT_MAX_ENDPOINT_SERIES, [
      {
        name: 'fulcrum_endpoint_weight',
        help: 'Weight published to proxies per endpoint: the engine\'s for adaptive clusters, the operator\'s for static ones.',
        source: () => this.weightSource(),
      },
      {
        name: 'fulcrum_endpoint_utilization',
        help: 'Latest CPU utilization (0..1) reported for the endpoint (reports or LRS/ORCA); absent until one arrives.',
        source: () => this.utilizationSource(),
      },
    ]);
    this.tickSeconds = new Histogram({
      name: 'fulcrum_engine_tick_seconds',
      help: 'Time spent in one weight engine tick (every cluster\'s weights recomputed), summed over its slices; other work runs between slices.',
      buckets: TICK_BUCKETS,
      registers,
    });
    this.alarmTicks = new Counter({
      name: 'fulcrum_engine_alarm_ticks_total',
      help: 'Ticks run at once, between periodic ones, for clusters whose signals showed an endpoint newly stalled, newly failing all its requests or as many as an outlier rule ejects at, taken out by its probes, or a backlog to drain.',
      registers,
    });
    this.samples = new Counter({
      name: 'fulcrum_reports_samples_total',
      help: 'Load samples received, by transport (http, grpc: reports; lrs: Envoy load reports, accepted only) and result (accepted, rejected).',
      labelNames: ['transport', 'result'],
      registers,
    });
    this.lrsEntries = new Counter({
      name: 'fulcrum_lrs_report_entries_total',
      help:
        'Load report (LRS) entries, by granularity (endpoint: per-endpoint stats, as Envoy sends; locality: a locality without them, as grpc-go sends) ' +
        'and result (used; unaddressed: endpoint without a socket address; exact: locality with one endpoint; spread: split over its endpoints by weight; dropped: no known endpoint).',
      labelNames: ['granularity', 'result'],
      registers,
    });
    this.refusedReports = refusedReportsCounter(registers);
    this.storeWrites = new Histogram({
      name: 'fulcrum_store_write_seconds',
      help: 'Time of one committed store write transaction (fsync included), by kind: catalog (API, config file) or weights (engine).',
      labelNames: ['kind'],
      buckets: STORE_WRITE_BUCKETS,
      registers,
    });
    this.zeroSeries(options.xdsTypes ?? []);
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Every known label set starts at 0, so rates and alerts see a series before its first event. */
  private zeroSeries(xdsTypes: readonly string[]): void {
    for (const transport of ['http', 'grpc'] as const) {
      this.samples.inc({ transport, result: 'accepted' }, 0);
      this.samples.inc({ transport, result: 'rejected' }, 0);
    }
    this.samples.inc({ transport: 'lrs', result: 'accepted' }, 0);
    this.storeWrites.zero({ kind: 'catalog' });
    this.storeWrites.zero({ kind: 'weights' });
    for (const type of xdsTypes) {
      this.pushes.inc({ type }, 0);
      this.nacks.inc({ type }, 0);
    }
    this.reloads.inc({ result: 'ok' }, 0);
    this.reloads.inc({ result: 'rejected' }, 0);
    this.reloads.inc({ result: 'store_failed' }, 0);
  }

  /** Where `xds_connected_proxies` reads from at scrape time: one protocol name per connected stream. */
  trackConnected(source: () => Iterable<string>): void {
    this.connectedSource = source;
  }

  /** Where `fulcrum_endpoint_weight` reads from at scrape time: every endpoint's published weight (each cluster's together). */
  trackEndpointWeights(source: () => Iterable<EndpointValue>): void {
    this.weightSource = () => clustersOf(source());
  }

  /** As trackEndpointWeights, by cluster with its size: the clusters over the cap are counted, not walked. */
  trackEndpointWeightsByCluster(source: () => Iterable<ClusterEndpointValues>): void {
    this.weightSource = source;
  }

  /** Where `fulcrum_endpoint_utilization` reads from at scrape time: the endpoints with a known CPU utilization. */
  trackEndpointUtilization(source: () => Iterable<EndpointValue>): void {
    this.utilizationSource = () => clustersOf(source());
  }

  /** As trackEndpointUtilization, by cluster with its size. */
  trackEndpointUtilizationByCluster(source: () => Iterable<ClusterEndpointValues>): void {
    this.utilizationSource = source;
  }

  engineTicked(ms: number): void {
    this.tickSeconds.observe(ms / 1000);
  }

  engineAlarmTicked(): void {
    this.alarmTicks.inc();
  }

  /** Samples of one report batch kept and refused (LRS: one per combined sample recorded). */
  samplesReceived(transport: ReportTransport, accepted: number, rejected = 0): void {
    if (accepted > 0) this.samples.inc({ transport, result: 'accepted' }, accepted);
    if (rejected > 0) this.samples.inc({ transport, result: 'rejected' }, rejected);
  }

  /** Entries of one LRS request, by granularity and what became of them. */
  lrsEntriesReceived(granularity: string, result: string, count: number): void {
    if (count > 0) this.lrsEntries.inc({ granularity, result }, count);
  }

  /** A report request refused by its sender's budget, or an LRS stream ended for its pace. */
  reportsRefused(transport: ReportTransport): void {
    this.refusedReports.inc({ transport });
  }

  storeWritten(kind: StoreWriteKind, ms: number): void {
    this.storeWrites.observe({ kind }, ms / 1000);
  }

  pushed(type: string): void {
    this.unscrapedPushes.set(type, (this.unscrapedPushes.get(type) ?? 0) + 1);
  }

  nacked(type: string): void {
    this.nacks.inc({ type });
  }

  /** An ACK of the response sent at `sentAt` (ms since the epoch), received at `ackedAt`. */
  acked(type: string, sentAt: number, ackedAt: number): void {
    this.convergence.observe(type, Math.max(0, ackedAt - sentAt) / 1000);
  }

  published(ms: number): void {
    this.publishSeconds.observe(ms / 1000);
  }

  configReload(result: 'ok' | 'store_failed' | 'rejected'): void {
    this.reloads.inc({ result });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * The text exposition format, for GET /metrics. Given `turn` (what the server awaits to let
   * other requests run: runtime/next-turn.ts), built in pieces with a turn before each: the
   * per-endpoint values capped in steps first, then one metric at a time — prom-client's
   * `registry.metrics()` collects and formats every metric in one task (42–64 ms of CPU at 100k
   * endpoints). The text is the same: the pieces are prom-client's own per-metric text, joined as
   * `registry.metrics()` joins them (the Prometheus format; OpenMetrics is never set here).
   */
  render(turn?: () => Promise<void>): Promise<string> {
    if (turn === undefined) return this.registry.metrics();
    const rendered = this.rendering.then(() => this.renderInTurns(turn));
    this.rendering = rendered.catch(() => undefined);
    return rendered;
  }

  private async renderInTurns(turn: () => Promise<void>): Promise<string> {
    await this.endpointGauges.prepare(turn);
    const pieces: string[] = [];
    // In registration order, as registry.metrics(): fulcrum_endpoint_series_omitted after the gauges it counts.
    for (const metric of this.registry.getMetricsAsArray()) {
      await turn();
      pieces.push(await this.registry.getSingleMetricAsString(metric.name));
    }
    return `${pieces.join('\n\n')}\n`;
  }
}

/** `xds_connected_proxies`, read at scrape time from the registry of streams: never drifts from what is connected. */
function connectedGauge(registers: Registry[], protocols: readonly string[], source: () => Iterable<string>): Gauge<'protocol'> {
  return new Gauge({
    name: 'xds_connected_proxies',
    help: 'Open xDS streams that have identified their node, by protocol (sotw, delta).',
    labelNames: ['protocol'],
    registers,
    collect() {
      const counts = new Map<string, number>(protocols.map((p) => [p, 0]));
      for (const protocol of source()) counts.set(protocol, (counts.get(protocol) ?? 0) + 1);
      this.reset();
      for (const [protocol, n] of counts) this.set({ protocol }, n);
    },
  });
}

/** `fulcrum_reports_refused_total{transport}`, every transport's series at 0 from the start. */
function refusedReportsCounter(registers: Registry[]): Counter<'transport'> {
  const counter = new Counter({
    name: 'fulcrum_reports_refused_total',
    help:
      'Report requests refused unread because their sender (IP address) was over server.xds.limits.reportSamplesPerSecondPerPeer, by transport (http: 429, grpc: RESOURCE_EXHAUSTED); ' +
      'lrs: load report streams ended for reporting faster than asked (server.xds.limits.loadReportBurst).',
    labelNames: ['transport'],
    registers,
  });
  for (const transport of ['http', 'grpc', 'lrs']) counter.inc({ transport }, 0);
  return counter;
}
