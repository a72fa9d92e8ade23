#!/usr/bin/env node
import { randomBytes } from 'node:crypto';
import { hostname, tmpdir } from 'node:os';
import { realpathSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildAdminApp, type AdminApp } from './admin/app.js';
import { parseConfig } from './sources/config-file.js';
import { ConfigWatcher } from './sources/config-watcher.js';
import { AdaptiveWeights, type PublishedOverrides } from './signals/adaptive-weights.js';
import { WeightEngine } from './balancing/engine/weight-engine.js';
import { Signals } from './signals/signals.js';
import type { SignalStore } from './signals/signal-store.js';
import { authFromEnv, authWithFiles, type AuthConfig } from './admin/auth.js';
import type { Catalog } from './catalog/types.js';
import { openStore, type Store } from './catalog/store/index.js';
import { KubernetesSource, mergeKubernetesClusters, type KubernetesContribution } from './sources/kubernetes.js';
import { createLogger, type Logger } from './telemetry/logger.js';
import { Metrics, type EndpointValue } from './telemetry/metrics.js';
import { XdsCache } from './xds/cache.js';
import { envoyRoot, PUSH_ORDER, SHORT_TYPE } from './xds/envoy-api.js';
import { ProxyRegistry } from './xds/proxy-status.js';
import { Publisher } from './xds/publisher.js';
import { endpointKey } from './xds/translate-clusters.js';
import { XdsServer } from './xds/server.js';

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
  readonly debounce?: { quietMs: number; maxMs: number };
  /** Overrides the config file's `server.engine.tickMs`. */
  readonly engineTickMs?: number;
  /** Admin API bearer tokens; default from FULCRUM_ADMIN_TOKEN / FULCRUM_READ_TOKEN / FULCRUM_REPORT_TOKEN. */
  readonly auth?: AuthConfig;
  /**
   * Where the durable store lives. Omitted, fulcrum runs on a temporary directory removed at stop
   * (tests, embedding); the command line always passes one (--data-dir, FULCRUM_DATA_DIR, ./data).
   */
  readonly dataDir?: string;
}

export interface Fulcrum {
  readonly xdsPort: number;
  /** The admin HTTP API's port (health, readiness, metrics, /v1/proxies, /v1/config_dump). */
  readonly adminPort: number;
  readonly registry: ProxyRegistry;
  readonly cache: XdsCache;
  readonly metrics: Metrics;
  /** The adaptive weight engine's adapter: signals go in, published weights come out. */
  readonly adaptive: AdaptiveWeights;
  /** Reports, load reports and probes: the inputs of the adaptive weights. */
  readonly signals: Signals;
  readonly store: Store;
  readonly dataDir: string;
  readonly log: Logger;
  stop(): Promise<void>;
}

export async function startFulcrum(options: FulcrumOptions): Promise<Fulcrum> {
  envoyRoot();
  const versionPrefix = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const cache = new XdsCache(versionPrefix);
  const initial = parseConfig(await readFile(options.configPath, 'utf8'), options.configPath);
  // Before anything starts, so an unreadable certificate fails the start with nothing to undo.
  const adminTls = initial.server.admin.tls ? await readAdminTls(initial.server.admin.tls) : undefined;
  const log = options.logger ?? createLogger(initial.server.logLevel);
  const settings = initial.server.xds;
  const metrics = new Metrics({ xdsTypes: PUSH_ORDER.map((t) => SHORT_TYPE[t]), protocols: ['sotw', 'delta'] });
  const registry = new ProxyRegistry(Date.now, {
    onSent: (_record, type) => metrics.pushed(SHORT_TYPE[type]),
    onNack: (_record, type) => metrics.nacked(SHORT_TYPE[type]),
    onAck: (_record, type, sentAt, at) => {
      if (sentAt !== undefined) metrics.acked(SHORT_TYPE[type], sentAt, at);
    },
  });
  metrics.trackConnected(() => registry.list().map((r) => r.protocol));
  const lrsSettings = initial.server.loadReporting;
  const publisher = new Publisher(
    cache,
    log,
    options.debounce ?? { quietMs: settings.debounceQuietMs, maxMs: settings.debounceMaxMs },
    (_changedGroups, ms) => metrics.published(ms),
    lrsSettings ? { reportEndpointMetrics: lrsSettings.endpointMetrics } : undefined,
  );
  const signals = new Signals({
    log,
    lrsIntervalMs: lrsSettings?.intervalMs ?? 2_000,
    onSamples: (transport, accepted, rejected) => metrics.samplesReceived(transport, accepted, rejected),
    ...(lrsSettings?.metricFields ? { lrsMetricFields: lrsSettings.metricFields } : {}),
    currentWeight: (cluster, key) => adaptive.current().get(cluster)?.get(key)?.weight,
    onLrsEntries: (granularity, result, n) => metrics.lrsEntriesReceived(granularity, result, n),
  });
  const data = await openDataDir(options.dataDir, log);
  const store = openStore(data.dir, { onWrite: (ms, kind) => metrics.storeWritten(kind, ms) });
  const adaptive = new AdaptiveWeights(
    new WeightEngine({ health: initial.server.engineHealth, safety: { tickMs: options.engineTickMs ?? initial.server.engineTickMs } }),
  );
  // The store is the desired state: the config file seeds its file-owned part, the API the rest.
  let discovered: KubernetesContribution | undefined;
  let published: Catalog = { clusters: [], listeners: [], nodeGroups: [] };
  const publishStore = (): void => {
    const catalog = withDiscovered(store.catalog(), discovered);
    published = catalog;
    adaptive.setCatalog(catalog);
    signals.setCatalog(catalog);
    publisher.setCatalog(catalog);
  };
  signals.subscribe((e) => {
    if (e.kind === 'sample') adaptive.observeSample(e.cluster, e.key, e.sample);
    else adaptive.observeProbe(e.cluster, e.key, e.result);
  });
  const seed = (catalog: Catalog): void => {
    const result = store.seedFromConfig(catalog, { actor: 'config-file' });
    for (const c of result.conflicts) {
      log.warn({ kind: c.kind, name: c.name, owner: c.owner }, 'config file defines a name another source owns; keeping that source\'s version');
    }
  };
  store.onChange(publishStore);
  metrics.trackEndpointWeights(() => publishedWeights(published, adaptive.current()));
  metrics.trackEndpointUtilization(() => endpointUtilization(signals.store));
  const watcher = new ConfigWatcher(options.configPath, {
    onConfig: (config) => {
      metrics.configReload('ok');
      log.info({ file: options.configPath, clusters: config.catalog.clusters.length, listeners: config.catalog.listeners.length }, 'config reloaded');
      seed(config.catalog);
    },
    onInvalid: (err) => {
      metrics.configReload('rejected');
      log.error({ file: options.configPath, error: err.message }, 'config edit rejected; serving the last good config');
    },
  });
  // The watcher re-reads the file, so an edit made since the first read is not lost.
  seed((await watcher.start()).catalog);
  publishStore();
  const k8sSettings = initial.kubernetes;
  const k8s = k8sSettings
    ? new KubernetesSource({
        kubeconfig: k8sSettings.kubeconfig
          ? { mode: 'file', path: k8sSettings.kubeconfig, ...(k8sSettings.context ? { context: k8sSettings.context } : {}) }
          : { mode: 'cluster' },
        ...(k8sSettings.namespace ? { namespace: k8sSettings.namespace } : {}),
        nodeTopology: k8sSettings.nodeTopology,
        logger: log,
        onChange: (view) => {
          discovered = view;
          for (const w of view.warnings) log.warn({ warning: w }, 'kubernetes annotation ignored');
          publishStore();
        },
      })
    : undefined;
  // Discovery keeps retrying in the background; until its first complete view, readiness says so.
  const k8sSynced = k8s ? k8s.start().then(() => true, (err: unknown) => (log.error({ err }, 'kubernetes discovery stopped'), false)) : undefined;
  let k8sReady = !k8s;
  void k8sSynced?.then((ok) => (k8sReady = ok));
  // Resume from the weights the previous process published, not from static ones.
  for (const [cluster, weights] of store.loadWeights()) adaptive.seed(cluster, weights);
  const resumed = adaptive.tick(Date.now());
  if (resumed) publisher.setWeights(resumed);
  publisher.publishNow();
  const engineTicker = setInterval(() => {
    const started = performance.now();
    const overrides = adaptive.tick(Date.now());
    metrics.engineTicked(performance.now() - started);
    if (!overrides) return;
    publisher.setWeights(overrides);
    store.saveAllWeights(adaptive.adaptiveWeights());
  }, options.engineTickMs ?? initial.server.engineTickMs);
  engineTicker.unref();
  // The config is loaded by now (startFulcrum fails on an invalid one), so readiness is about serving.
  const state = { xdsServing: false, stopping: false };

  const server = new XdsServer(
    {
      address: options.xdsAddress ?? settings.address,
      port: options.xdsPort ?? settings.port,
      maxMessageBytes: settings.maxMessageBytes,
      keepaliveTimeMs: settings.keepaliveTimeMs,
      keepaliveTimeoutMs: settings.keepaliveTimeoutMs,
      maxResourceNames: settings.maxResourceNames,
      controlPlaneId: `fulcrum@${hostname()}/${process.pid}`,
    },
    cache,
    registry,
    log,
    signals.grpcServices,
  );
  const adminSettings = initial.server.admin;
  const auth = options.auth ?? authWithFiles(authFromEnv(process.env), initial.server.admin.tokenFiles);
  if (auth.adminTokens.length + auth.readTokens.length + (auth.reportTokens?.length ?? 0) === 0) {
    log.warn('admin API has no bearer tokens (FULCRUM_ADMIN_TOKEN / FULCRUM_READ_TOKEN): anyone who can reach it can change clusters and listeners');
  }
  const admin = buildAdminApp({
    registry,
    cache,
    metrics,
    log,
    store,
    weights: adaptive,
    reports: signals.ingest,
    auth,
    ...(adminTls ? { tls: adminTls } : {}),
    version: packageVersion(),
    ready: () => {
      const reasons: string[] = [];
      if (!state.xdsServing) reasons.push('xDS gRPC server not serving');
      if (!k8sReady) reasons.push('kubernetes discovery has not synced');
      if (state.stopping) reasons.push('shutting down');
      return { ready: reasons.length === 0, reasons };
    },
  });
  let xdsPort: number;
  let adminPort: number;
  try {
    // The admin server comes up first so probes get an answer (503 until xDS serves) during start.
    adminPort = await listenAdmin(admin, options.adminAddress ?? adminSettings.address, resolveAdminPort(options, adminSettings.port));
    log.info({ address: options.adminAddress ?? adminSettings.address, scheme: adminTls ? 'https' : 'http', port: adminPort }, 'admin server listening');
    xdsPort = await server.start();
    state.xdsServing = true;
    signals.start();
  } catch (err) {
    clearInterval(engineTicker);
    signals.stop();
    await k8s?.stop();
    store.close();
    await data.release();
    watcher.stop();
    publisher.stop();
    await server.stop(0);
    await admin.close();
    throw err;
  }
  return {
    xdsPort,
    adminPort,
    registry,
    cache,
    metrics,
    adaptive,
    signals,
    store,
    dataDir: data.dir,
    log,
    async stop() {
      // Unready first, so load balancers stop sending new proxies here while streams drain.
      state.stopping = true;
      clearInterval(engineTicker);
      await k8s?.stop();
      watcher.stop();
      publisher.stop();
      signals.stop();
      await server.stop();
      state.xdsServing = false;
      await admin.close();
      store.close();
      await data.release();
      log.info('stopped');
    },
  };
}

/** Per endpoint of the published catalog, the weight sent to proxies (as loadAssignmentResource computes it). */
function* publishedWeights(catalog: Catalog, overrides: PublishedOverrides): Iterable<EndpointValue> {
  for (const c of catalog.clusters) {
    const o = overrides.get(c.name);
    for (const e of c.endpoints) {
      const endpoint = endpointKey(e);
      yield { cluster: c.name, endpoint, value: Math.max(1, Math.round(o?.get(endpoint)?.weight ?? e.weight)) };
    }
  }
}

/** Per endpoint the signals store tracks, the newest CPU utilization reported (endpoints without one are left out). */
function* endpointUtilization(store: SignalStore): Iterable<EndpointValue> {
  for (const cluster of store.clusterNames()) {
    for (const [endpoint, sample] of store.mergedByEndpoint(cluster)) {
      if (sample.cpu !== undefined) yield { cluster, endpoint, value: sample.cpu };
    }
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

/** Kubernetes-discovered clusters join the store's; a route to one gets its hash-header annotation. */
function withDiscovered(catalog: Catalog, view: KubernetesContribution | undefined): Catalog {
  if (!view) return catalog;
  const { clusters } = mergeKubernetesClusters(catalog.clusters, view.clusters);
  const listeners = catalog.listeners.map((l) => ({
    ...l,
    routes: l.routes.map((r) => {
      const hash = view.hashPolicies.get(r.cluster);
      return r.hashPolicy || !hash ? r : { ...r, hashPolicy: hash };
    }),
  }));
  return { ...catalog, clusters, listeners };
}

async function openDataDir(dir: string | undefined, log: Logger): Promise<{ dir: string; release(): Promise<void> }> {
  if (dir !== undefined) return { dir, release: async () => undefined };
  const temp = await mkdtemp(join(tmpdir(), 'fulcrum-data-'));
  log.warn({ dir: temp }, 'no data directory given: state is kept in a temporary directory and lost at stop');
  return { dir: temp, release: () => rm(temp, { recursive: true, force: true }) };
}

function resolveAdminPort(options: FulcrumOptions, configured: number): number {
  const port = options.adminPort ?? (options.xdsPort !== undefined ? 0 : 'config');
  return port === 'config' ? configured : port;
}

async function listenAdmin(admin: AdminApp, host: string, port: number): Promise<number> {
  try {
    await admin.listen({ host, port });
  } catch (err) {
    throw new Error(`admin server cannot listen on ${host}:${port}: ${(err as Error).message}`, { cause: err });
  }
  return (admin.server.address() as AddressInfo).port;
}

function packageVersion(): string {
  try {
    // ../package.json from src/main.ts and from dist/main.js alike.
    return (createRequire(import.meta.url)('../package.json') as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

async function cli(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: 'string', short: 'c', default: 'fulcrum.yaml' },
      'xds-port': { type: 'string' },
      'xds-address': { type: 'string' },
      'admin-port': { type: 'string' },
      'admin-address': { type: 'string' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write('usage: fulcrum --config fulcrum.yaml [--xds-port N] [--xds-address ADDR] [--admin-port N] [--admin-address ADDR] [--data-dir DIR]\n');
    return;
  }
  let fulcrum: Fulcrum;
  try {
    fulcrum = await startFulcrum({
      configPath: values.config,
      ...(values['xds-port'] !== undefined ? { xdsPort: Number(values['xds-port']) } : {}),
      ...(values['xds-address'] !== undefined ? { xdsAddress: values['xds-address'] } : {}),
      // Unless told, the admin API is where the config file puts it; with --xds-port 0 it takes a free port too.
      adminPort: values['admin-port'] !== undefined ? Number(values['admin-port']) : values['xds-port'] === '0' ? 0 : 'config',
      ...(values['admin-address'] !== undefined ? { adminAddress: values['admin-address'] } : {}),
      dataDir: values['data-dir'] ?? process.env.FULCRUM_DATA_DIR ?? 'data',
    });
  } catch (err) {
    process.stderr.write(`fulcrum: ${(err as Error).message}\n`);
    process.exit(1);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    fulcrum.log.info({ signal }, 'shutting down');
    void fulcrum.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

const entry = process.argv[1];
if (entry && realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))) void cli();
