import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { LrsAggregator, type LrsAggregatorOptions, type PartialSums } from './lrs-aggregator.js';
import {
  decodeBoundedLoadStatsRequest,
  encodeLoadStatsRequest,
  encodeLoadStatsResponse,
  LRS_METHOD_PATH,
  MAX_LOAD_REPORT_ENTRIES,
  type WireLoadStatsRequest,
} from './lrs-codec.js';
import type { Oversized } from '../runtime/protobuf-entries.js';
import type { MetricField } from './lrs-conversion.js';
import type { GrpcServicePair } from './report-grpc.js';
import { clipped } from './report-validation.js';
import { ReportCadence, reportEntries, type Asked } from './report-cadence.js';
import { reportIntervals } from '../catalog/report-intervals.js';
import type { SignalStore } from './signal-store.js';
import { WindowedLog } from '../telemetry/windowed-log.js';
import { duration } from '../xds/proto-values.js';

/**
 * `envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats`: the stream lifecycle. Each
 * proxy's first request is answered once with what to report and how often; every request after
 * it goes through the LrsAggregator into the SignalStore. What Envoy 1.40 and grpc-go send is in
 * src/signals/README.md.
 */

const SEND_ALL_FEATURE = 'envoy.lrs.supports_send_all_clusters';

/**
 * Well under the engine's tick (1 s by default) and the reporting interval (1–2 s): a tick sees
 * every report that arrived up to this long before it.
 */
const DEFAULT_FLUSH_MS = 200;
/** The longest delay setTimeout takes (2^31 − 1 ms). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export interface LrsServiceOptions {
  readonly store: SignalStore;
  /**
   * `load_reporting_interval` asked of the proxies: the shortest (default 1000 ms). The interval
   * stretches toward `maxReportingIntervalMs` as the fleet's reports grow (report-cadence.ts).
   */
  readonly reportingIntervalMs?: number;
  /** The longest interval asked (default: `reportingIntervalMs` when that is set, else 2000 ms). */
  readonly maxReportingIntervalMs?: number;
  /** Report entries a second the interval stretches to stay within (default: catalog/report-intervals.ts). */
  readonly reportEntriesPerSecond?: number;
  /** Streams re-asked a new interval per check (once a second), at most (default MAX_RETARGETS_PER_CHECK). */
  readonly retargetsPerCheck?: number;
  /**
   * Clusters to ask reports for. Default: `send_all_clusters` for clients that advertise
   * `envoy.lrs.supports_send_all_clusters` (Envoy and grpc-go do); for the others, this list is
   * required to get anything.
   */
  readonly clusters?: () => readonly string[];
  /** Only endpoints the catalog knows are recorded (default: all). See ValidationOptions.knows. */
  readonly knows?: (cluster: string, endpoint?: string) => boolean;
  /** Load metric name → sample field (default DEFAULT_METRIC_FIELDS). */
  readonly metricFields?: Readonly<Record<string, MetricField>>;
  /** For per-locality reports (grpc-go): a locality's endpoints and their current weights. */
  readonly localityMembers?: LrsAggregatorOptions['localityMembers'];
  /** Counts of report entries by granularity and result (metrics). */
  readonly onEntries?: LrsAggregatorOptions['onEntries'];
  /** Every decoded request, before conversion (tests, debugging, metrics). */
  readonly onRequest?: (req: WireLoadStatsRequest, stream: LrsStreamInfo) => void;
  /**
   * How long after a report its endpoints' combined samples reach the store (default 200 ms).
   * Every report that arrives meanwhile is folded into the same samples: P proxies calling an
   * endpoint report it P times per interval, and each engine tick needs its latest sum once.
   */
  readonly flushMs?: number;
  readonly log?: Pick<Logger, 'info' | 'warn' | 'debug'>;
  /**
   * Reports a stream may send ahead of `reportingIntervalMs` (default LRS_REPORT_BURST): it earns
   * one per interval, up to this many, or LRS_STALL_TOLERANCE_MS of them when that is more (lrsPace).
   * Past it the stream ends with RESOURCE_EXHAUSTED.
   */
  readonly reportBurst?: number;
  /** A stream ended for reporting faster than it was asked to (metrics). */
  readonly onRefused?: () => void;
}

/**
 * The interval sent is the *minimum* the client may report at (lrs.proto); Envoy and grpc-go
 * report once per interval (measured 0.998-1.03 of it). Every report is decoded and folded in on
 * the event loop, so a client reporting every millisecond made fulcrum do a thousand times the
 * work of an Envoy, on as many streams as it may open. A few ahead allow for timer jitter and for
 * the first request, which carries no stats.
 */
export const LRS_REPORT_BURST = 5;

/**
 * Reports sent on time but read late all arrive at once: while fulcrum's loop is held up (a big
 * publication, a store write) or the network stalls, they wait in the socket. The pace cannot tell
 * those from a flood, so a stream may always be this far ahead: at a 200 ms interval, 5 reports
 * were a 1 s stall, and a stall that long ended every proxy's stream at once (then all reconnected
 * and their load went missing together). At the shortest default interval (1 s) it is 10 reports.
 * Reports are paced at the shortest interval asked: a stream re-asked a longer one may still send
 * at the shorter until it reads the answer.
 */
export const LRS_STALL_TOLERANCE_MS = 10_000;

/** The reports a stream may be ahead: `burst`, or as many as LRS_STALL_TOLERANCE_MS holds at `intervalMs`. */
export function lrsPace(burst: number, intervalMs: number): number {
  return Math.max(1, burst, Math.ceil(LRS_STALL_TOLERANCE_MS / intervalMs));
}

/** Refused LRS streams are logged at most once a minute per kind (with how many were not). */
const REFUSAL_LOG_WINDOW_MS = 60_000;

export interface LrsStreamInfo {
  readonly id: number;
  readonly peer: string;
  readonly nodeId: string;
}

export interface LrsService extends GrpcServicePair {
  readonly streamCount: number;
  /** The interval a stream opened now is asked (ReportCadence.target). */
  readonly intervalMs: number;
  /**
   * Sends a new LoadStatsResponse on every open stream: needed only with an explicit `clusters`
   * list, after it changes. With `send_all_clusters` Envoy 1.40 picks up clusters added later by
   * itself (from the next interval). Observed: a new response while traffic flows can lose that
   * interval's ORCA metrics, so do not call it needlessly.
   */
  refresh(): void;
  /** Ends every open LRS stream (proxies reconnect elsewhere); call on shutdown. */
  close(): void;
  /** HA: this replica's own sums of the endpoints that changed since the last call, in the clusters `include` names (LrsAggregator.partials). */
  partials(include: (cluster: string) => boolean): PartialSums[];
  /** HA: another replica's sums for an endpoint of a cluster this one owns, counted for a few reporting intervals unless renewed; empty sums withdraw them. */
  applyPartial(replica: string, partial: PartialSums): boolean;
  /** HA: withdraws every sum of a replica that stopped. */
  dropReplica(replica: string): void;
}

/** A share, and another replica's sums, count for this many reporting intervals unless renewed. */
const LIFETIME_INTERVALS = 3;

/** How often open streams are checked against the target interval. */
const CADENCE_CHECK_MS = 1_000;
/**
 * Streams re-asked per check, at most: after a restart a whole fleet asked 1 s before its first
 * reports is due 2 s at once, and 10,000 answers written in one turn would hold every xDS push
 * behind them. The rest are re-asked in the checks after (the ones asked no longer qualify).
 */
export const MAX_RETARGETS_PER_CHECK = 1_000;

type LrsCall = grpc.ServerDuplexStream<WireLoadStatsRequest | Oversized, Buffer>;

let nextStreamId = 1;

/** What every LRS stream of one service shares. */
interface LrsContext {
  readonly options: LrsServiceOptions;
  readonly aggregator: LrsAggregator;
  /** Open streams → resend their LoadStatsResponse (at the target interval, or at `ms`). */
  readonly calls: Map<LrsCall, LrsStreamControl>;
  /** The shortest interval asked: reports are paced at it. */
  readonly intervalMs: number;
  /** The longest interval asked: another replica's sums count for LIFETIME_INTERVALS of it. */
  readonly maxIntervalMs: number;
  readonly cadence: ReportCadence;
  readonly flush: Flush;
  readonly burst: number;
  /** Refused streams' warnings, one a minute per kind: a client reopening streams cannot turn each into a log line. */
  readonly refusals: WindowedLog;
}

/** What the service keeps of an open stream to ask it again. */
interface LrsStreamControl {
  /** What it was last asked (undefined before its first request is answered). */
  asked(): Asked | undefined;
  /** Sends the LoadStatsResponse again, at `ms` (default: the target). */
  resend(ms?: number): void;
}

/** A stream's reports ahead of its interval: `tokens` as of `at` (store clock), one earned per interval. */
interface Pace {
  tokens: number;
  at: number;
}

/** Takes one report from the stream's pace; false when it is reporting faster than asked. */
function paced(ctx: LrsContext, pace: Pace): boolean {
  const now = ctx.options.store.now();
  pace.tokens = Math.min(ctx.burst, pace.tokens + (now - pace.at) / ctx.intervalMs);
  pace.at = now;
  if (pace.tokens < 1) return false;
  pace.tokens -= 1;
  return true;
}

/** When the aggregator's changed endpoints next go to the store. */
interface Flush {
  readonly ms: number;
  timer: NodeJS.Timeout | undefined;
  /** When `timer` fires, on the store's clock. */
  dueAt: number;
  closed: boolean;
}

/** Schedules a flush within `flushMs` (a report, a stream or another replica's sums changed something). */
function changed(ctx: LrsContext): void {
  flushAt(ctx, ctx.options.store.now() + ctx.flush.ms);
}

/** Schedules a flush at `at` (store clock), unless one is due sooner (or the service closed). */
function flushAt(ctx: LrsContext, at: number): void {
  const { flush } = ctx;
  if (flush.closed || (flush.timer !== undefined && flush.dueAt <= at)) return;
  clearTimeout(flush.timer);
  flush.dueAt = at;
  // Capped: node fires a longer timeout at once (and warns), every time.
  flush.timer = setTimeout(() => flushNow(ctx), Math.min(MAX_TIMEOUT_MS, Math.max(0, at - ctx.options.store.now())));
  flush.timer.unref();
}

/**
 * Records the combined sample of every endpoint whose shares changed since the last flush, then
 * schedules the next for when something held expires: a proxy that stalls (or a replica that
 * stops) leaves the sums on time even when no other report comes.
 */
function flushNow(ctx: LrsContext): void {
  clearTimeout(ctx.flush.timer);
  ctx.flush.timer = undefined;
  const { options } = ctx;
  for (const { cluster, key, sample } of ctx.aggregator.take(options.store.now())) {
    if (options.knows && !options.knows(cluster, key)) continue;
    options.store.record(cluster, key, sample);
  }
  const next = ctx.aggregator.nextExpiry();
  // Just after it (take expires what is strictly past its time), and never sooner than a flush's delay.
  if (next !== undefined) flushAt(ctx, Math.max(next + 1, options.store.now() + ctx.flush.ms));
}

/**
 * How much of a load report's `node.id` a stream keeps and its log lines repeat: nothing else
 * bounds it but the request size (4 MiB), and every stream's open and close lines wrote it whole.
 * As a batch's reporter (REPORTER_MAX in report-ingest.ts).
 */
export const LRS_NODE_ID_MAX = 256;

/** One proxy's stream: answer its first request, then fold every report into the signal store. */
function serveLrsStream(ctx: LrsContext, call: LrsCall): void {
  const { options, aggregator, calls, cadence } = ctx;
  const id = nextStreamId++;
  const state = { nodeId: '', answered: false, features: [] as readonly string[], asked: undefined as Asked | undefined };
  const pace: Pace = { tokens: ctx.burst, at: options.store.now() };
  const respond = (ms = cadence.target()): void => {
    state.asked = { ms, at: options.store.now() };
    writeLoadStatsResponse(ctx, call, { id, nodeId: state.nodeId, features: state.features, intervalMs: ms });
  };
  calls.set(call, {
    asked: () => state.asked,
    resend: (ms) => {
      if (state.answered) respond(ms);
    },
  });
  cadence.opened(id);
  const done = (): void => {
    if (!calls.delete(call)) return;
    cadence.closed(id);
    aggregator.dropStream(id);
    changed(ctx);
    options.log?.info({ lrsStream: id, node: state.nodeId }, 'LRS stream closed');
  };
  call.on('data', (req: WireLoadStatsRequest | Oversized) => {
    // A stream already done (failed, closed) is not folded in again: nothing would drop it.
    if (!calls.has(call)) return;
    if ('oversized' in req) {
      refuseOversized(ctx, call, id);
      done();
      return;
    }
    if (!paced(ctx, pace)) {
      refuseTooFast(ctx, call, id);
      done();
      return;
    }
    try {
      if (req.node?.id) state.nodeId = clipped(req.node.id, LRS_NODE_ID_MAX);
      const info: LrsStreamInfo = { id, peer: call.getPeer(), nodeId: state.nodeId };
      options.onRequest?.(req, info);
      if (req.node?.client_features) state.features = req.node.client_features;
      if (!state.answered) {
        state.answered = true;
        respond();
        options.log?.info({ lrsStream: id, node: state.nodeId, peer: info.peer, intervalMs: state.asked?.ms }, 'LRS stream opened');
      }
      cadence.reported(id, reportEntries(req));
      recordReport(ctx, id, req, state.asked?.ms ?? ctx.intervalMs);
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
  for (const event of ['error', 'close', 'cancelled'] as const) call.on(event, done);
}

/** Ends a stream whose report was too large to decode (lrs-codec.ts, MAX_LOAD_REPORT_ENTRIES). */
function refuseOversized(ctx: LrsContext, call: LrsCall, id: number): void {
  const details = `a load report holds at most ${MAX_LOAD_REPORT_ENTRIES} entries (cluster, locality, endpoint, metric and dropped-request stats, and endpoint metadata values, together)`;
  ctx.refusals.event('oversized', { lrsStream: id, peer: call.getPeer(), details });
  call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details });
}

/** Ends a stream reporting faster than the interval it was asked for (LRS_REPORT_BURST). */
function refuseTooFast(ctx: LrsContext, call: LrsCall, id: number): void {
  const details = `load reports come at most once per load_reporting_interval (${ctx.intervalMs} ms), ${ctx.burst} ahead of it at most (server.xds.limits.loadReportBurst)`;
  ctx.refusals.event('too-fast', { lrsStream: id, peer: call.getPeer(), details });
  ctx.options.onRefused?.();
  call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details });
}

/** The LoadStatsResponse: every cluster when the proxy supports send_all_clusters, else the configured list. */
function writeLoadStatsResponse(ctx: LrsContext, call: LrsCall, to: { id: number; nodeId: string; features: readonly string[]; intervalMs: number }): void {
  const { options } = ctx;
  const { id, nodeId, features } = to;
  const sendAll = options.clusters === undefined && features.includes(SEND_ALL_FEATURE);
  const clusters = sendAll ? [] : [...(options.clusters?.() ?? [])];
  if (!sendAll && clusters.length === 0) {
    options.log?.warn({ lrsStream: id, node: nodeId }, 'LRS client does not support send_all_clusters and no cluster list is configured');
  }
  call.write(
    encodeLoadStatsResponse({
      ...(sendAll ? { send_all_clusters: true } : { clusters }),
      load_reporting_interval: duration(to.intervalMs),
      report_endpoint_granularity: true,
    }),
  );
}

/** `askedMs`: the interval the stream was asked, which its report's interval is read against. */
function recordReport(ctx: LrsContext, id: number, req: WireLoadStatsRequest, askedMs: number): void {
  ctx.aggregator.apply(id, req, ctx.options.store.now(), askedMs);
  changed(ctx);
}

/** Asks every stream whose interval is far enough from the target (ReportCadence.retarget) the target. */
function retargetStreams(ctx: LrsContext): void {
  const now = ctx.options.store.now();
  const target = ctx.cadence.target();
  let left = Math.max(1, ctx.options.retargetsPerCheck ?? MAX_RETARGETS_PER_CHECK);
  for (const stream of ctx.calls.values()) {
    const asked = stream.asked();
    const ms = asked === undefined ? undefined : ctx.cadence.retarget(asked, now, target);
    if (ms === undefined) continue;
    stream.resend(ms);
    if (--left === 0) return;
  }
}

export function lrsService(options: LrsServiceOptions): LrsService {
  const asked = reportIntervals({ intervalMs: options.reportingIntervalMs, maxIntervalMs: options.maxReportingIntervalMs, entriesPerSecond: options.reportEntriesPerSecond });
  const intervalMs = Math.max(1, asked.intervalMs);
  const maxIntervalMs = Math.max(intervalMs, asked.maxIntervalMs);
  const cadence = new ReportCadence({ minMs: intervalMs, maxMs: maxIntervalMs, entriesPerSecond: asked.entriesPerSecond });
  const aggregator = new LrsAggregator({
    staleAfterIntervals: LIFETIME_INTERVALS,
    ...(options.metricFields ? { metricFields: options.metricFields } : {}),
    ...(options.localityMembers ? { localityMembers: options.localityMembers } : {}),
    ...(options.onEntries ? { onEntries: options.onEntries } : {}),
    ...(options.knows ? { knows: options.knows } : {}),
  });
  const calls = new Map<LrsCall, LrsStreamControl>();
  const flush: Flush = { ms: Math.max(0, options.flushMs ?? DEFAULT_FLUSH_MS), timer: undefined, dueAt: 0, closed: false };
  const refusals = new WindowedLog((fields, message) => options.log?.warn(fields, message), 'LRS stream refused', REFUSAL_LOG_WINDOW_MS, () => options.store.now());
  const ctx: LrsContext = { options, aggregator, calls, intervalMs, maxIntervalMs, cadence, flush, burst: lrsPace(options.reportBurst ?? LRS_REPORT_BURST, intervalMs), refusals };
  const handle = (call: LrsCall): void => serveLrsStream(ctx, call);
  // Only when the interval can move; unref'd, and stopped by close().
  const checks = maxIntervalMs > intervalMs ? setInterval(() => retargetStreams(ctx), CADENCE_CHECK_MS).unref() : undefined;

  const definition: grpc.ServiceDefinition = {
    StreamLoadStats: {
      path: LRS_METHOD_PATH,
      requestStream: true,
      responseStream: true,
      requestSerialize: encodeLoadStatsRequest,
      requestDeserialize: (bytes: Buffer) => decodeBoundedLoadStatsRequest(bytes),
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
    get intervalMs() {
      return cadence.target();
    },
    refresh() {
      for (const stream of calls.values()) stream.resend();
    },
    close() {
      clearInterval(checks);
      for (const call of [...calls.keys()]) call.end();
      // What arrived before the close still reaches the store; nothing after it does (closed
      // first: the flush schedules none after itself then).
      flush.closed = true;
      flushNow(ctx);
    },
    partials: (include) => aggregator.partials(include),
    applyPartial(replica, p) {
      const kept = aggregator.applyPartial(replica, p.cluster, p.key, p.sums, options.store.now(), LIFETIME_INTERVALS * maxIntervalMs);
      if (kept) changed(ctx);
      return kept;
    },
    dropReplica(replica) {
      aggregator.dropReplica(replica);
      changed(ctx);
    },
  };
}
