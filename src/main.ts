#!/usr/bin/env node
import { hostname } from 'node:os';
import { realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { Etcd3 } from 'etcd3';
import { ADMIN_MAX_CONNECTIONS, ADMIN_MAX_CONNECTIONS_PER_PEER, buildAdminApp, closeAdminApp, type AdminApp, type AdminConnectionLimit } from './admin/app.js';
import { PrebuiltCode } from './admin/prebuilt-code.js';
import type { FileTakeovers } from './admin/routes/store-access.js';
import { authFromEnv, Authorizer, authWithFiles, type AuthConfig } from './admin/auth.js';
import { WeightEngine } from './balancing/engine/weight-engine.js';
import { CatalogFeed } from './catalog/catalog-feed.js';
import { DanglingReferenceWatch, type DanglingReference } from './catalog/dangling-references.js';
import { DiscoveredView, DiscoveryAwareStore } from './catalog/discovered-clusters.js';
import { OverrideIndex } from './catalog/override-index.js';
import { runCli } from './cli/run.js';
import type { ServeFlags } from './cli/serve-flags.js';
import { packageVersion } from './cli/version.js';
import { DurableStore } from './catalog/store/durable-store.js';
import type { WatchState } from './catalog/store/etcd-store.js';
import { EtcdCompactor } from './catalog/store/etcd-compactor.js';
import { auditKeepLastOf, DEFAULT_COMPACT_EVERY_MS } from './catalog/store/store-config.js';
import { AuditRetention } from './catalog/audit-retention.js';
import { StoreUnavailableError, type CatalogStore } from './catalog/store/index.js';
import { DataDirLock } from './runtime/data-dir-lock.js';
import { collectStartupGarbageAfter, collectStartupHeap, FullCollections } from './runtime/startup-garbage.js';
import { loopQuiet } from './runtime/loop-quiet.js';
import { loadMallocTrim, NativeMemoryTrimmer, oldGenerationUsed } from './runtime/native-memory.js';
import { HaReplica } from './ha/replica.js';
import { component, Lifecycle, type Component } from './runtime/lifecycle.js';
import { Signals, type SignalsOptions } from './signals/signals.js';
import type { SignalStore } from './signals/signal-store.js';
import { parseConfigOffThread, refuseNoDocument, type LoadedConfig, type ServerSettings } from './sources/config-file.js';
import { ConfigSource } from './sources/config-source.js';
import { withEtcdEndpointsFromEnv } from './sources/etcd-endpoints-env.js';
import { withKubernetes } from './sources/kubernetes/catalog-merge.js';
import type { KubernetesDiscovery } from './sources/kubernetes/discovery.js';
import type { KubernetesContribution } from './sources/kubernetes/mapping.js';
import { RefusalLog, XdsAuthMetrics } from './telemetry/auth-metrics.js';
import { createLogger, defaultLogFormat, type LogFormat, type Logger } from './telemetry/logger.js';
import { Metrics, type ClusterEndpointValues, type EndpointValue } from './telemetry/metrics.js';
import { registerAdminConnectionsRefused, registerBuildInfo, registerDanglingReferences, registerLastResorts, registerLrsInterval, registerNativeMemoryTrims, registerSignalStates, registerSyncStates } from './telemetry/operator-metrics.js';
import { AdaptiveWeights } from './weights/adaptive-weights.js';
import { MissingSignalsLog } from './weights/missing-signals.js';
import { WeightArchiveSweep } from './weights/archive-sweep.js';
import { WeightLoop, type WeightArchive } from './weights/weight-loop.js';
import { clearTextTokensWarning, unboundClientsWarning, XdsAuthz } from './xds/authz.js';
import { sharedProxyViews } from './admin/views.js';
import { XdsCache } from './xds/cache.js';
import { FleetProxies } from './xds/fleet-proxies.js';
import { envoyRoot, PUSH_ORDER, SHORT_TYPE } from './xds/envoy-api.js';
import { ProxyRegistry, streamState } from './xds/proxy-status.js';
import { Publisher } from './xds/publisher.js';
import { XdsServer } from './xds/server.js';
import { ReloadingServerCredentials } from './xds/transport-security.js';
import { TlsSessions } from './xds/tls-sessions.js';
import { COUNTED_LIMITS, withDefaults } from './xds/limits.js';
import { peerGroup } from './xds/peer-group.js';
import { xdsEdgeMetrics } from './telemetry/xds-edge-metrics.js';
import { WindowedLog } from './telemetry/windowed-log.js';

/** The composition root: reads the config, builds each room, wires them, starts and stops them. */

export interface FulcrumOptions {
  readonly configPath: string;
  /** Overrides the config file's xDS port (0 picks a free one). */
  readonly xdsPort?: number;
  readonly xdsAddress?: string;
  /**
   * The admin HTTP port: a number overrides the config file's (0 picks a free one); 'config' uses
   * the config file's `server.admin.port`. Omitted, it is 'config' unless `xdsPort` is given, then
   * 0: a caller that chooses the xDS port itself (tests, embedders, a restart on a known port) gets
   * a free admin port rather than colliding with other instances on the configured fixed one.
   */
  readonly adminPort?: number | 'config';
  readonly adminAddress?: string;
  readonly logger?: Logger;
  /** Without `logger`: the level (default FULCRUM_LOG_LEVEL, else the config's server.logLevel) and format (default json). */
  readonly logLevel?: string;
  readonly logFormat?: LogFormat;
  readonly debounce?: { quietMs: number; maxMs: number };
  /** Overrides the config file's `server.engine.tickMs`. */
  readonly engineTickMs?: number;
  /**
   * Bearer tokens of the admin API and the xDS port; default from FULCRUM_ADMIN_TOKEN /
   * FULCRUM_READ_TOKEN / FULCRUM_REPORT_TOKEN / FULCRUM_PROXY_TOKEN and `server.admin.tokenFiles`.
   */
  readonly auth?: AuthConfig;
  /**
   * Where the durable store lives. Omitted, fulcrum runs on a temporary directory removed at stop
   * (tests, embedding); the command line always passes one (--data-dir, FULCRUM_DATA_DIR, ./data).
   */
  readonly dataDir?: string;
  /**
   * This replica's name, shown with its proxies in /v1/proxies (and, with several replicas on
   * etcd, the key its shared state lives under). Default: FULCRUM_REPLICA_ID, else the host name
   * (a pod's name in Kubernetes).
   */
  readonly replicaId?: string;
  /**
   * Replication: the etcd client and key prefix of the store when `store.kind` is etcd. Given,
   * this process is one of several replicas: it ticks only the clusters it owns and serves the
   * others' weights from etcd (src/ha). Omitted (SQLite), it owns every cluster, as one process.
   */
  readonly etcd?: { readonly client: Etcd3; readonly prefix: string };
}

export interface Fulcrum {
  readonly xdsPort: number;
  /** The admin HTTP API's port (health, readiness, metrics, /v1/proxies, /v1/config_dump). */
  readonly adminPort: number;
  readonly registry: ProxyRegistry;
  readonly cache: XdsCache;
  readonly metrics: Metrics;
  /** The adaptive weight engine's adapter (src/weights): signals go in, published weights come out. */
  readonly adaptive: AdaptiveWeights;
  /** Reports, load reports and probes: the inputs of the adaptive weights. */
  readonly signals: Signals;
  readonly store: CatalogStore;
  readonly dataDir: string;
  readonly replicaId: string;
  readonly log: Logger;
  /** This replica's part in replication (ownership, fencing); undefined on a single node. */
  readonly ha: HaReplica | undefined;
  /** Resolves once every source has its first complete view in (Kubernetes discovery synced; at once without it). */
  readonly settled: Promise<void>;
  /** Resolves once the admin API's background warm-up (its write routes' schemas) is done, or at stop. */
  readonly warmed: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts fulcrum: reads the config, builds each room, then starts the components in pipeline
 * order — store, config file, catalog, Kubernetes, weights, publisher (first snapshot), admin,
 * xDS, signals, readiness — and stops them in reverse, whether a later one fails to start or
 * `stop()` is called.
 */
export async function startFulcrum(options: FulcrumOptions): Promise<Fulcrum> {
  const boot = await readBoot(options);
  const core = buildCore(boot, options);
  const life = new Lifecycle((name, err) => boot.log.error({ err, component: name }, 'component failed to stop'));
  const durable = new DurableStore(options.dataDir, boot.log, {
    config: boot.config.store,
    onWrite: (ms, kind) => core.metrics.storeWritten(kind, ms),
    onHealth: (h) => (h.writable ? boot.log.info('store writable again') : boot.log.error({ reason: h.reason }, 'store refuses writes')),
    onWatch: (state, reason) => logWatch(boot.log, state, reason),
  });
  if (options.dataDir !== undefined) await life.start(dataDirLock(options.dataDir, boot.log));
  await life.start(durable);
  boot.log.info({ store: durable.store.describe() }, 'store open');
  const parts = await life.guard(() => buildParts(boot, core, durable.store, options));
  await life.start(...parts.components);
  const { log } = boot;
  const { registry, cache, metrics, adaptive, signals } = core;
  log.info(
    { version: packageVersion(), config: options.configPath, dataDir: durable.dir, xdsPort: parts.xds.port, adminPort: parts.admin.port(), pid: process.pid },
    'fulcrum started',
  );
  return {
    registry,
    cache,
    metrics,
    adaptive,
    signals,
    xdsPort: parts.xds.port,
    adminPort: parts.admin.port(),
    store: durable.store,
    dataDir: durable.dir,
    replicaId: resolveReplicaId(options, boot.config),
    log,
    ha: parts.ha,
    settled: parts.settled,
    warmed: parts.warmed,
    async stop() {
      await life.stop();
      log.info('stopped');
    },
  };
}

/** Read before anything starts, so an invalid config or unreadable certificate fails with nothing to undo. */
interface Boot {
  readonly config: LoadedConfig;
  /** The config file's text as parsed into `config` (the config source reuses the parse while the file is unchanged). */
  readonly configText: string;
  readonly adminTls: { cert: Buffer; key: Buffer } | undefined;
  /** TLS on the xDS port, its files read and checked. */
  readonly xdsTls: ReloadingServerCredentials | undefined;
  readonly auth: AuthConfig;
  readonly log: Logger;
  /** Loaded only when the config enables discovery: the Kubernetes client is most of a cold start's module loading. */
  readonly Discovery: typeof KubernetesDiscovery | undefined;
}

async function readBoot(options: FulcrumOptions): Promise<Boot> {
  envoyRoot();
  const configText = await readFile(options.configPath, 'utf8');
  refuseNoDocument(configText, options.configPath);
  const parsed = await parseConfigOffThread(configText, options.configPath);
  const config = { ...parsed, store: withEtcdEndpointsFromEnv(parsed.store, process.env) };
  const adminTls = config.server.admin.tls ? await readAdminTls(config.server.admin.tls) : undefined;
  const xdsTls = config.server.xds.tls ? new ReloadingServerCredentials(config.server.xds.tls) : undefined;
  const auth = options.auth ?? authWithFiles(authFromEnv(process.env), config.server.admin.tokenFiles);
  const level = options.logLevel ?? process.env.FULCRUM_LOG_LEVEL ?? config.server.logLevel;
  const Discovery = config.kubernetes ? (await import('./sources/kubernetes/discovery.js')).KubernetesDiscovery : undefined;
  return { config, configText, adminTls, xdsTls, auth, log: options.logger ?? createLogger(level, options.logFormat ?? 'json'), Discovery };
}

/** The rooms' objects that do no I/O of their own; the components below drive them. */
interface Core {
  readonly metrics: Metrics;
  readonly registry: ProxyRegistry;
  readonly cache: XdsCache;
  readonly publisher: Publisher;
  readonly signals: Signals;
  readonly adaptive: AdaptiveWeights;
}

function buildCore({ config, log }: Boot, options: FulcrumOptions): Core {
  const xds = config.server.xds;
  const lrs = config.server.loadReporting;
  const maxEndpointSeries = config.server.admin.maxEndpointSeries;
  const metrics = new Metrics({ xdsTypes: PUSH_ORDER.map((t) => SHORT_TYPE[t]), protocols: ['sotw', 'delta'], ...(maxEndpointSeries !== undefined ? { maxEndpointSeries } : {}) });
  const registry = proxyRegistry(metrics);
  const cache = new XdsCache();
  const publisher = new Publisher(
    cache,
    log,
    options.debounce ?? { quietMs: xds.debounceQuietMs, maxMs: xds.debounceMaxMs },
    (_changedGroups, ms) => metrics.published(ms),
    lrs ? { reportEndpointMetrics: lrs.endpointMetrics } : undefined,
  );
  const signals = new Signals({
    log,
    lrsIntervalMs: lrs?.intervalMs ?? 2_000,
    ...(lrs ? { lrsMaxIntervalMs: lrs.maxIntervalMs, lrsEntriesPerSecond: lrs.entriesPerSecond } : {}),
    onSamples: (transport, accepted, rejected) => metrics.samplesReceived(transport, accepted, rejected),
    ...(lrs?.metricFields ? { lrsMetricFields: lrs.metricFields } : {}),
    currentWeight: (cluster, key) => adaptive.current().get(cluster)?.get(key)?.weight,
    onLrsEntries: (granularity, result, n) => metrics.lrsEntriesReceived(granularity, result, n),
    ...signalBudgets(xds.limits),
    onRefused: (transport) => metrics.reportsRefused(transport),
  });
  const adaptive = new AdaptiveWeights(
    new WeightEngine({ health: config.server.engineHealth, safety: { tickMs: options.engineTickMs ?? config.server.engineTickMs } }),
  );
  metrics.trackConnected(() => registry.list().map((r) => r.protocol));
  registerBuildInfo(metrics.registry, packageVersion());
  registerSyncStates(metrics.registry, () => registry.list().map(streamState));
  registerLastResorts(metrics.registry, () => adaptive.lastResorts());
  registerLrsInterval(metrics.registry, () => signals.lrsIntervalMs / 1000);
  registerSignalStates(metrics.registry, { failStatic: () => adaptive.failStaticClusters(), notFresh: () => adaptive.signalsNotFresh() });
  metrics.trackEndpointWeightsByCluster(() => publisher.endpointWeightsByCluster());
  metrics.trackEndpointUtilizationByCluster(() => endpointUtilization(signals.store));
  return { metrics, registry, cache, publisher, signals, adaptive };
}

/** Each report sender's budget and each LRS stream's pace, from server.xds.limits: per peer as the xDS port's own limits. */
function signalBudgets(configured: ServerSettings['xds']['limits']): Pick<SignalsOptions, 'reportBudget' | 'lrsReportBurst'> {
  const limits = withDefaults(configured);
  return {
    reportBudget: {
      samplesPerSecond: limits.reportSamplesPerSecondPerPeer,
      burstSamples: limits.reportBurstSamplesPerPeer,
      peerOf: (address) => peerGroup(address, limits.ipv6PeerPrefixLength),
    },
    lrsReportBurst: limits.loadReportBurst,
  };
}

function proxyRegistry(metrics: Metrics): ProxyRegistry {
  return new ProxyRegistry(Date.now, {
    onSent: (_record, type) => metrics.pushed(SHORT_TYPE[type]),
    onNack: (_record, type) => metrics.nacked(SHORT_TYPE[type]),
    onAck: (_record, type, sentAt, at) => {
      if (sentAt !== undefined) metrics.acked(SHORT_TYPE[type], sentAt, at);
    },
  });
}

interface Parts {
  /** In start order; the store is started before these are built. */
  readonly components: readonly Component[];
  readonly xds: XdsServer;
  readonly admin: { port(): number };
  readonly ha: HaReplica | undefined;
  readonly settled: Promise<void>;
  readonly warmed: Promise<void>;
}

/** Sources → catalog → weights → publisher, then the servers, signals and readiness. */
function buildParts(boot: Boot, core: Core, store: CatalogStore, options: FulcrumOptions): Parts {
  const { config, log } = boot;
  // The embedder's client, or the etcd store's own: one client per replica, closed by the store.
  const etcd = options.etcd ?? store.replication?.();
  const ha = etcd ? haReplica(boot, core, etcd, options) : undefined;
  // Replicated, archived weights are the replication's records, swept by it (src/ha); alone, the store's.
  const sweep = ha ? undefined : new WeightArchiveSweep(store, (err, clusters) => boot.log.warn({ err, clusters }, 'published weights of removed clusters not deleted; swept again at the next start'));
  const references = danglingReferenceWatch(boot.log, core);
  const feed = new CatalogFeed(store, [core.adaptive, ...(sweep ? [sweep] : []), core.signals, core.publisher, ...(ha ? [ha] : []), references]);
  const source = new ConfigSource(options.configPath, {
    store,
    log,
    onReload: (outcome) => core.metrics.configReload(outcome),
    started: { text: boot.configText, config },
  });
  // Discovered clusters, seen by the admin API (as owner kubernetes) and layered with their overrides on the catalog.
  const discovered = new DiscoveredView();
  const overrides = new OverrideIndex(store);
  const onDiscovered = (view: KubernetesContribution): void => {
    discovered.set(view.clusters);
    feed.setOverlay((c) => withKubernetes(c, view, overrides.current()));
  };
  const discovery = config.kubernetes && boot.Discovery ? new boot.Discovery({ settings: config.kubernetes, log, onChange: onDiscovered }) : undefined;
  const weights = weightLoop(boot, core, ha ? NO_ARCHIVE : store, options);
  const security = xdsSecurity(boot, core, options.xdsAddress ?? boot.config.server.xds.address);
  // Discovered clusters are not stored: proxies' first answers wait until discovery's first view
  // is published, or a proxy connecting before it would delete them (held-answers.ts).
  const complete = discovery?.firstSync.then(() => feed.delivered()).then(() => core.publisher.publishNow());
  if (complete) ha?.sweepAfter(complete);
  // Restored weights wait for the discovered clusters that arrive with discovery's first view, and
  // no longer; the archived weights of clusters still absent then are deleted; a route to a
  // discovered cluster is dangling only from then on.
  const settle = (): void => {
    core.adaptive.settleSeeds();
    sweep?.settle();
    references.open();
  };
  if (complete) void complete.then(settle, () => undefined);
  else settle();
  const xds = xdsServer(boot, core, options, security, complete);
  // Unready first at stop, so load balancers stop sending new proxies here while streams drain.
  const stopping = { now: false };
  const readiness = component('readiness', { start: () => undefined, stop: () => (stopping.now = true) });
  const ready = (): { ready: boolean; reasons: string[] } => {
    const reasons: string[] = [];
    // The config is loaded by now (startFulcrum fails on an invalid one), so readiness is about serving.
    if (xds.port === 0) reasons.push('xDS gRPC server not serving');
    if (discovery && !discovery.synced) reasons.push(discovery.unsyncedReason());
    // Not ready while the store cannot take writes (etcd unreachable or without quorum): xDS keeps
    // serving the last good state to connected proxies, but new ones are better sent elsewhere.
    const health = store.health();
    if (!health.writable) reasons.push(`store: ${health.reason ?? 'not writable'}`);
    const fenced = ha?.notReady();
    if (fenced !== undefined) reasons.push(fenced);
    if (stopping.now) reasons.push('shutting down');
    return { ready: reasons.length === 0, reasons };
  };
  const fleet = etcd ? fleetProxies(boot, core, etcd, options) : undefined;
  const admin = adminServer(boot, core, { store: new DiscoveryAwareStore(store, discovered), fileTakesOver: { cluster: (name) => source.takeoverOf(name), listener: (name) => source.listenerTakeoverOf(name) } }, options, ready, fleet);
  const missing = new MissingSignalsLog({ notices: () => core.adaptive.allMissingSignals(), log });
  // Replication starts after the catalog (it needs the cluster names) and before the weight loop.
  const pipeline = [source, feed, references, ...(discovery ? [discovery] : []), ...(ha ? [ha] : []), weights, missing, core.publisher];
  const compactor = etcd ? etcdCompactor(boot, etcd) : undefined;
  // etcd deletes in transactions it awaits (the loop is free between them) but sorts its whole
  // mirrored log per call: one call a pass there; SQLite deletes synchronously, so in batches.
  const audit = new AuditRetention({ store, keepLast: auditKeepLastOf(config.store), log, ...(config.store.kind === 'etcd' ? { batch: Number.MAX_SAFE_INTEGER } : {}) });
  const served = [security.component, xdsComponent(xds, config.server.xds, options), ...(fleet ? [fleet] : []), ...(compactor ? [compactor] : []), audit, component('signals', core.signals)];
  // The admin server comes up before xDS so probes get an answer (503 until xDS serves) during start.
  const settled = discovery ? discovery.firstSync : Promise.resolve();
  return { components: [...pipeline, admin, ...served, readiness], xds, admin, ha, settled, warmed: admin.warmed };
}

/** The weight loop: the engine's ticks, published to the publisher and archived to `archive`. */
function weightLoop({ config, log }: Boot, core: Core, archive: WeightArchive, options: FulcrumOptions): WeightLoop {
  return new WeightLoop({
    adaptive: core.adaptive,
    signals: core.signals,
    // Replicated, published weights live in etcd (src/ha), written by each cluster's owner: NO_ARCHIVE.
    archive,
    tickMs: options.engineTickMs ?? config.server.engineTickMs,
    // An unreachable etcd is logged once by the store's health; not again at every tick.
    // (SQLite's refusals, a full disk say, have no health log of their own: warned here.)
    onArchiveError: (err) => (err instanceof StoreUnavailableError && config.store.kind === 'etcd' ? undefined : log.warn({ err }, 'published weights not archived')),
    publish: (overrides) => core.publisher.setWeights(overrides),
    onTicked: (ms) => core.metrics.engineTicked(ms),
    onAlarmTicked: () => core.metrics.engineAlarmTicked(),
    onTickError: (err) => log.error({ err }, 'weight engine tick failed: published weights held'),
  });
}

/**
 * References to clusters that do not exist, made by another owner than the referrer's (a reload
 * or restart dropping a file cluster an API listener routes to, a discovered Service gone): the
 * API refuses to make them, so these are logged once as they appear and as they resolve, and
 * counted in fulcrum_dangling_references.
 */
function danglingReferenceWatch(log: Logger, core: Core): DanglingReferenceWatch {
  const watch = new DanglingReferenceWatch(({ appeared, resolved, now }) => {
    if (appeared.length > 0) log.warn({ references: appeared.slice(0, 100).map(referenceText), count: appeared.length, dangling: now.length }, 'routes or node groups name clusters that do not exist (removed by their owner); proxies answer those routes 503 until the cluster is back or the reference is removed');
    if (resolved.length > 0) log.info({ references: resolved.slice(0, 100).map(referenceText), count: resolved.length, dangling: now.length }, 'references to missing clusters resolved');
  }, REFERENCES_SETTLE);
  registerDanglingReferences(core.metrics.registry, () => watch.current());
  return watch;
}

/** A name handed between owners (deleted by one, seeded by the other) is not reported lost and found. */
const REFERENCES_SETTLE = { quietMs: 1_000, maxMs: 5_000 };

const referenceText = (r: DanglingReference): string => `${r.referrer} ${JSON.stringify(r.name)} -> cluster ${JSON.stringify(r.cluster)}`;

/** The etcd store's watch: lost or rewound is a warning (the replica serves what it read last meanwhile). */
function logWatch(log: Logger, state: WatchState, reason: string | undefined): void {
  if (state === 'watching') log.info('etcd store: watching etcd again');
  else if (state === 'lost') log.warn({ reason }, 'etcd store: watch of etcd lost; serving the last state read until it is back');
  else log.warn({ reason }, "etcd store: etcd's history went back (restored without --bump-revision?): listing it again");
}

/** The etcd client and key prefix replication uses (FulcrumOptions.etcd, or the etcd store's own). */
type ReplicationEtcd = NonNullable<FulcrumOptions['etcd']>;

/**
 * On etcd, this replica's proxy status is shared with the others (and theirs read), so
 * /v1/proxies on any replica lists the whole fleet.
 */
function fleetProxies({ config, log }: Boot, core: Core, etcd: ReplicationEtcd, options: FulcrumOptions): FleetProxies {
  const replica = resolveReplicaId(options, config);
  return new FleetProxies({
    client: etcd.client,
    prefix: `${etcd.prefix}/`,
    replica,
    local: (max) => sharedProxyViews(core.registry.list(), replica, max),
    version: () => core.registry.version,
    // A dead replica's proxies leave the listing when its ownership does.
    leaseTtlSeconds: config.ha.leaseTtlSeconds,
    refreshMs: config.ha.proxyStatusRefreshMs,
    log,
  });
}

/** On etcd, its history compacted every `store.etcd.compactEveryMs` (0: left to etcd's own auto-compaction). */
function etcdCompactor({ config, log }: Boot, etcd: ReplicationEtcd): EtcdCompactor | undefined {
  const everyMs = config.store.kind === 'etcd' ? config.store.etcd.compactEveryMs : undefined;
  if (everyMs === 0) return undefined;
  return new EtcdCompactor({ client: etcd.client, key: `${etcd.prefix}/compaction`, everyMs: everyMs ?? DEFAULT_COMPACT_EVERY_MS, log });
}

/** Replicated: weights are not archived locally; the owners write them to etcd. */
const NO_ARCHIVE = { loadWeights: () => new Map<string, ReadonlyMap<string, number>>(), saveAllWeights: () => undefined };

function haReplica({ config, log }: Boot, core: Core, etcd: ReplicationEtcd, options: FulcrumOptions): HaReplica {
  const { leaseTtlSeconds, stateRefreshMs } = config.ha;
  return new HaReplica({
    client: etcd.client,
    prefix: etcd.prefix,
    replicaId: resolveReplicaId(options, config),
    leaseTtlSeconds,
    stateRefreshMs,
    tickMs: options.engineTickMs ?? config.server.engineTickMs,
    weights: core.adaptive,
    signals: core.signals.store,
    lrs: core.signals.lrsShare,
    log,
  });
}

/** $FULCRUM_REPLICA_ID, else the hostname: the pod name on Kubernetes (a StatefulSet's is stable). */
export function defaultReplicaId(env: NodeJS.ProcessEnv = process.env): string {
  const id = env.FULCRUM_REPLICA_ID;
  return id !== undefined && id !== '' ? id : hostname();
}

interface XdsSecurity {
  readonly credentials: ReloadingServerCredentials | undefined;
  readonly authz: XdsAuthz;
  /** With TLS: each connection's handshake counted; a resumed one whose certificate expired, or that has none where one is required, closed. */
  readonly sessions: TlsSessions | undefined;
  /** Watches the certificate files while running. */
  readonly component: Component;
}

/** TLS credentials and the authorizer of the xDS port (tokens shared with the admin API), which listens on `address`. */
function xdsSecurity({ config, log, xdsTls, auth }: Boot, core: Core, address: string): XdsSecurity {
  const tokens = new Authorizer(auth);
  const metrics = new XdsAuthMetrics(core.metrics.registry);
  const refusals = new RefusalLog((fields, message) => log.warn(fields, message));
  const authz = new XdsAuthz({
    tokenRole: (token) => tokens.roleOf(token),
    configuredRoles: tokens.configuredRoles(),
    mutualTls: xdsTls?.mutual ?? false,
    ...(config.server.xds.identities ? { identities: config.server.xds.identities } : {}),
    onRefused: (surface, reason, detail) => {
      metrics.refused(surface, reason);
      refusals.refused(surface, reason, detail);
    },
  });
  const watch = () =>
    xdsTls?.watch((outcome) => {
      if (outcome.result === 'unchanged') return;
      metrics.tlsReloaded(outcome.result);
      if (outcome.result === 'failed') return log.error({ error: outcome.error }, 'xDS TLS files changed but are not usable; the previous ones stay');
      const { fingerprint, validTo, ticketKeyChanged, ticketKeyError } = outcome;
      log.info({ fingerprint, validTo, ticketKeyChanged }, 'xDS TLS files reloaded');
      if (ticketKeyError !== undefined) log.error({ error: ticketKeyError }, 'xDS TLS session-ticket key file is not usable');
    });
  const identities = config.server.xds.identities?.length ?? 0;
  log.info({ tls: xdsTls !== undefined, mutualTls: xdsTls?.mutual ?? false, identities, tokenRoles: [...tokens.configuredRoles()] }, 'xDS port security');
  const unbound = unboundClientsWarning({ identities, certificateOptional: xdsTls?.mutual === true && !xdsTls.requiresClientCert, proxyTokens: tokens.configuredRoles().has('proxy') });
  if (unbound !== undefined) log.warn(unbound);
  const clearText = clearTextTokensWarning({ tls: xdsTls !== undefined, proxyTokens: tokens.configuredRoles().has('proxy'), address });
  if (clearText !== undefined) log.warn(clearText);
  const sessions = xdsTls ? new TlsSessions({ now: Date.now, requireCert: xdsTls.requiresClientCert, onHandshake: (h) => metrics.tlsHandshake(h) }) : undefined;
  return { credentials: xdsTls, authz, sessions, component: component('xds-tls', { start: watch, stop: () => xdsTls?.unwatch() }) };
}

function xdsServer({ config, log }: Boot, core: Core, options: FulcrumOptions, security: XdsSecurity, answerAfter: Promise<void> | undefined): XdsServer {
  const { debounceQuietMs: _quiet, debounceMaxMs: _max, tls: _tls, identities: _identities, ...settings } = config.server.xds;
  // The gauges read the server at scrape time; it is built after them (it reports into them).
  const built: { server?: XdsServer } = {};
  const edge = xdsEdgeMetrics(core.metrics.registry, COUNTED_LIMITS, () => ({
    connections: built.server?.connectionCount ?? 0,
    calls: built.server?.callCount ?? 0,
    queuedBytes: built.server?.queuedBytes ?? 0,
    congestedStreams: built.server?.congestedStreams ?? 0,
    heldAnswers: built.server?.heldAnswers ?? 0,
  }));
  built.server = new XdsServer(
    {
      ...settings,
      address: options.xdsAddress ?? settings.address,
      port: options.xdsPort ?? settings.port,
      controlPlaneId: `fulcrum@${hostname()}/${process.pid}`,
      security: { authz: security.authz, ...(security.credentials ? { credentials: security.credentials } : {}), ...(security.sessions ? { sessions: security.sessions } : {}) },
      onLimit: (limit) => edge.limitExceeded(limit),
      onRefused: (reason) => edge.refused(reason),
      onClientForm: (form) => {
        if (form === 'grpc') core.publisher.serveGrpcForm();
      },
      ...(answerAfter ? { answerAfter } : {}),
    },
    core.cache,
    core.registry,
    log,
    core.signals.grpcServices,
  );
  return built.server;
}

/** The xDS server as a component whose listen error names the server, address and port. */
function xdsComponent(xds: XdsServer, settings: { address: string; port: number }, options: FulcrumOptions): Component {
  return {
    name: 'xds',
    start: async () => {
      const address = options.xdsAddress ?? settings.address;
      const port = options.xdsPort ?? settings.port;
      try {
        await xds.start();
      } catch (err) {
        throw new Error(`xDS gRPC server cannot listen on ${address}:${port}: ${listenFailure(err)}`, { cause: err });
      }
    },
    stop: () => xds.stop(),
  };
}

/** grpc-js reports a bind failure as "No address added out of total 1 resolved" with the errno in its cause chain. */
function listenFailure(err: unknown): string {
  const text = String((err as Error).message ?? err);
  if (/EADDRINUSE|address already in use/i.test(text)) return 'EADDRINUSE: the port is in use by another process';
  if (/EACCES|permission denied/i.test(text)) return 'EACCES: not permitted (ports below 1024 need privileges)';
  if (/EADDRNOTAVAIL/i.test(text)) return 'EADDRNOTAVAIL: the address is not on this host';
  return text;
}

function dataDirLock(dir: string, log: Logger): DataDirLock {
  return new DataDirLock(dir, (pid) => log.warn({ dataDir: dir, stalePid: pid }, 'taking over a stale data directory lock (its process is gone)'));
}

type Readiness = () => { ready: boolean; reasons: string[] };

/** The admin HTTP API as a component: listens on start, closes on stop. */
function adminServer(
  boot: Boot,
  core: Core,
  { store, fileTakesOver }: { readonly store: CatalogStore; readonly fileTakesOver: FileTakeovers },
  options: FulcrumOptions,
  ready: Readiness,
  fleet: FleetProxies | undefined,
): Component & { port(): number; readonly warmed: Promise<void> } {
  const { config, log, adminTls, auth } = boot;
  let onWarmed: () => void = () => undefined;
  const warmed = new Promise<void>((resolve) => (onWarmed = resolve));
  // The validators and serializers `npm run build` generated (dist/admin/prebuilt/); from src/, none.
  const prebuilt = new PrebuiltCode();
  // What the warm-up found ready-made and what it had to compile (a stale or missing build shows here).
  void warmed.then(() => log.info({ prebuilt: prebuilt.counts }, 'admin schemas warmed'));
  const settings = config.server.admin;
  if (auth.adminTokens.length + auth.readTokens.length + (auth.reportTokens?.length ?? 0) === 0) {
    log.warn('admin API has no bearer tokens (FULCRUM_ADMIN_TOKEN / FULCRUM_READ_TOKEN): anyone who can reach it can change clusters and listeners');
  }
  const app = buildAdminApp({
    registry: core.registry,
    cache: core.cache,
    replica: resolveReplicaId(options, config),
    ...(fleet ? { fleet } : {}),
    metrics: core.metrics,
    // fastify's own "Server listening at" would double the line below; at debug it is kept.
    log: log.isLevelEnabled('debug') ? log : log.child({}, { level: 'warn' }),
    store,
    fileTakesOver,
    weights: core.adaptive,
    reports: core.signals.ingest,
    ...(core.signals.reportsGate ? { reportsGate: core.signals.reportsGate } : {}),
    auth,
    ...(adminTls ? { tls: adminTls } : {}),
    version: packageVersion(),
    ready,
    onWarmed,
    prebuilt,
    ...(settings.maxConnections !== undefined ? { maxConnections: settings.maxConnections } : {}),
    ...(settings.maxConnectionsPerPeer !== undefined ? { maxConnectionsPerPeer: settings.maxConnectionsPerPeer } : {}),
    peerOf: (address) => peerGroup(address, withDefaults(config.server.xds.limits).ipv6PeerPrefixLength),
    onConnectionRefused: adminConnectionRefused(core, log, { maxConnections: settings.maxConnections ?? ADMIN_MAX_CONNECTIONS, maxConnectionsPerPeer: settings.maxConnectionsPerPeer ?? ADMIN_MAX_CONNECTIONS_PER_PEER }),
  });
  const address = options.adminAddress ?? settings.address;
  let port = 0;
  return {
    name: 'admin',
    port: () => port,
    warmed,
    start: async () => {
      port = await listenAdmin(app, address, resolveAdminPort(options, settings.port));
      log.info({ address, scheme: adminTls ? 'https' : 'http', port }, 'admin server listening');
    },
    stop: () => closeAdminApp(app),
  };
}

/** Counts each connection the admin port refuses at a cap, and says so once a minute at most per cap. */
function adminConnectionRefused(core: Core, log: Logger, max: Record<AdminConnectionLimit, number>): (limit: AdminConnectionLimit) => void {
  const count = registerAdminConnectionsRefused(core.metrics.registry);
  const say = (fields: Record<string, unknown>, message: string): void => log.warn(fields, message);
  const warn: Record<AdminConnectionLimit, WindowedLog> = {
    maxConnections: new WindowedLog(say, `admin port refused a connection: server.admin.maxConnections (${max.maxConnections}) are open`, 60_000),
    maxConnectionsPerPeer: new WindowedLog(say, `admin port refused a connection: its peer holds server.admin.maxConnectionsPerPeer (${max.maxConnectionsPerPeer})`, 60_000),
  };
  return (limit) => {
    count(limit);
    warn[limit].event('cap', {});
  };
}

/** This replica's id: --replica-id (options), else the config's ha.replicaId, else defaultReplicaId(). */
export function resolveReplicaId(options: Pick<FulcrumOptions, 'replicaId'>, config: Pick<LoadedConfig, 'ha'>): string {
  return options.replicaId ?? config.ha.replicaId ?? defaultReplicaId();
}

/**
 * Per cluster the signals store tracks, the newest CPU utilization reported per endpoint (endpoints
 * without one are left out); a cluster's values are read when it is reached, to know its size.
 */
function* endpointUtilization(store: SignalStore): Iterable<ClusterEndpointValues> {
  for (const cluster of store.clusterNames()) {
    const values: EndpointValue[] = [];
    for (const [endpoint, sample] of store.mergedByEndpoint(cluster)) {
      if (sample.cpu !== undefined) values.push({ cluster, endpoint, value: sample.cpu });
    }
    if (values.length > 0) yield { cluster, size: values.length, values: () => values };
  }
}

async function readAdminTls(tls: { certFile: string; keyFile: string }): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (file: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new Error(`server.admin.tls.${what}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  const pair = { cert: await read(tls.certFile, 'certFile'), key: await read(tls.keyFile, 'keyFile') };
  try {
    // Not PEM, or a key that does not match the certificate: fail here rather than inside fastify.
    createSecureContext(pair);
  } catch (err) {
    throw new Error(`server.admin.tls: ${tls.certFile} / ${tls.keyFile}: not a usable certificate and key: ${(err as Error).message}`, { cause: err });
  }
  return pair;
}

/**
 * The admin port when none is asked for. An embedder (tests, a restart on a known port) that
 * chooses the xDS port itself gets a free admin port rather than colliding with other instances
 * on the configured fixed one; from the command line only `--xds-port 0` implies a free one.
 */
export function defaultAdminPort(xdsPort: number | undefined, caller: 'embedder' | 'command line'): number | 'config' {
  if (caller === 'command line') return xdsPort === 0 ? 0 : 'config';
  return xdsPort !== undefined ? 0 : 'config';
}

function resolveAdminPort(options: FulcrumOptions, configured: number): number {
  const port = options.adminPort ?? defaultAdminPort(options.xdsPort, 'embedder');
  return port === 'config' ? configured : port;
}

async function listenAdmin(admin: AdminApp, host: string, port: number): Promise<number> {
  try {
    await admin.listen({ host, port });
  } catch (err) {
    throw new Error(`admin server cannot listen on ${host}:${port}: ${listenFailure(err)}`, { cause: err });
  }
  return (admin.server.address() as AddressInfo).port;
}

/** `fulcrum serve`: starts, logs to stdout, and stops on SIGTERM or SIGINT (exit 0). */
async function serveFromFlags(flags: ServeFlags): Promise<void> {
  // Watched from before the config is read until the start-up collection below: what the last
  // full collection kept tells it how much of a large heap is garbage.
  const collections = new FullCollections();
  const fulcrum = await startFulcrum({
    configPath: flags.config,
    ...(flags.xdsPort !== undefined ? { xdsPort: flags.xdsPort } : {}),
    ...(flags.xdsAddress !== undefined ? { xdsAddress: flags.xdsAddress } : {}),
    adminPort: flags.adminPort ?? defaultAdminPort(flags.xdsPort, 'command line'),
    ...(flags.adminAddress !== undefined ? { adminAddress: flags.adminAddress } : {}),
    ...(flags.logLevel !== undefined ? { logLevel: flags.logLevel } : {}),
    logFormat: flags.logFormat ?? defaultLogFormat(),
    dataDir: flags.dataDir,
    ...(flags.replicaId !== undefined ? { replicaId: flags.replicaId } : {}),
  }).catch((err: unknown) => {
    collections.stop();
    throw err;
  });
  // What start-up promoted and left would otherwise stay in the old generation at rest. With
  // Kubernetes discovery, start-up ends at its first view (its first complete catalog);
  // the admin API's warm-up compiles promote ~10 MiB more, so the compaction waits for them too,
  // and then for V8 to see a low allocation rate (startup-garbage.ts).
  collectStartupGarbageAfter(fulcrum.settled, fulcrum.warmed, undefined, () => {
    collections.stop();
    fulcrum.log.info(collectStartupHeap(collections.kept), 'start-up heap collection');
  });
  let trimmer: NativeMemoryTrimmer | undefined;
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    fulcrum.log.info({ signal }, 'shutting down');
    void Promise.all([trimmer?.stop(), fulcrum.stop()]).then(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // After the handlers: a stop asked for while the FFI loads is not left to the default action.
  const loaded = flags.trimNativeMemory
    ? await nativeMemoryTrimmer(fulcrum).catch((err: unknown) => {
        fulcrum.log.warn({ err }, 'native memory trimming not started');
        return undefined;
      })
    : undefined;
  if (!stopping) {
    trimmer = loaded;
    trimmer?.start();
  }
}

/** The native-memory trimmer of a served process (not started), when its C library has malloc_trim (runtime/native-memory.ts). */
async function nativeMemoryTrimmer(fulcrum: Fulcrum): Promise<NativeMemoryTrimmer | undefined> {
  const loaded = await loadMallocTrim();
  if ('unavailable' in loaded) {
    fulcrum.log.info({ reason: loaded.unavailable }, 'native memory trimming unavailable');
    return undefined;
  }
  const counted = registerNativeMemoryTrims(fulcrum.metrics.registry);
  return new NativeMemoryTrimmer({
    trim: loaded.trim,
    rss: () => process.memoryUsage.rss(),
    oldGenerationUsed,
    proxies: () => fulcrum.registry.size,
    // Stricter than the warm-up's half: a trim may hold the allocator's lock for milliseconds.
    quiet: loopQuiet(0.25),
    now: () => performance.now(),
    onTrimmed: (t) => {
      counted(t.reason, t.returnedBytes);
      fulcrum.log.debug(t, 'native memory trimmed');
    },
    onError: (err) => fulcrum.log.warn({ err }, 'native memory trim failed; trimming stopped'),
  });
}

async function main(): Promise<void> {
  const outcome = await runCli(process.argv.slice(2), {
    env: process.env,
    write: (t) => process.stdout.write(t),
    error: (t) => process.stderr.write(t),
    serve: serveFromFlags,
  }).catch((err: unknown) => {
    process.stderr.write(`fulcrum: ${(err as Error).message}\n`);
    return 1;
  });
  if (outcome !== 'keep-running') process.exitCode = outcome;
}

const entry = process.argv[1];
if (entry && realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))) void main();
