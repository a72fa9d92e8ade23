/**
 * Kubernetes source: discovers clusters and endpoints from Services labelled
 * `fulcrum.io/balance=true` and their `discovery.k8s.io/v1` EndpointSlices, with
 * @kubernetes/client-node informers (ListWatch), and hands the result to `onChange` as a
 * `KubernetesContribution` (`{ clusters, hashPolicies, warnings }`).
 *
 *   const source = new KubernetesSource({
 *     kubeconfig: { mode: 'cluster' },          // or { mode: 'file', path, context? }
 *     onChange: (k8s) => republish(mergeKubernetesClusters(fileClusters, k8s.clusters).clusters),
 *     logger,
 *   });
 *   await source.start();                       // resolves after the first complete view was emitted
 *   ...
 *   await source.stop();
 *
 * The mapping itself is the pure `slicesToClusters` (./kubernetes/mapping.ts); this file is only
 * the I/O around it:
 * - one informer per kind: Services (label selector `fulcrum.io/balance=true`), EndpointSlices
 *   (label selector `kubernetes.io/service-name`: every slice that belongs to some Service),
 *   and, with `nodeTopology: true`, Nodes (for the region label; needs list/watch on nodes);
 * - nothing is emitted until every informer has completed its first list, so a half-synced view
 *   never reaches Envoy; after that every change recomputes the whole view from the informer
 *   caches, debounced (quiet period, bounded by a maximum delay), and emits only if it differs;
 * - watches ask for bookmarks and a server-side timeout, and a client-side watchdog aborts a watch
 *   that has been silent for longer than that (half-open connections);
 * - a watch that ends is resumed from the last resourceVersion; 410 Gone makes the informer relist
 *   (objects that vanished meanwhile are deleted from the cache, so their clusters and endpoints
 *   disappear); any other error (API server down or restarting, 5xx, 429, network) restarts the
 *   informer with exponential backoff and jitter. While the API server is unreachable the last
 *   view stays in force (fail static): nothing is emitted until the informer is back.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { CoreV1Api, DiscoveryV1Api, KubeConfig, ListWatch, Watch } from '@kubernetes/client-node';
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { Debouncer } from '../runtime/debounce.js';
import {
  BALANCE_LABEL,
  SERVICE_NAME_LABEL,
  nodeTopologies,
  slicesToClusters,
  type EndpointSliceLike,
  type KubernetesContribution,
  type NodeLike,
  type ServiceLike,
} from './kubernetes/mapping.js';

export * from './kubernetes/mapping.js';

/** Where the API server and credentials come from. */
export type KubeconfigSource =
  /** In-cluster: the pod's service account token and CA, `KUBERNETES_SERVICE_HOST/PORT`. */
  | { readonly mode: 'cluster' }
  /** A kubeconfig file; `context` defaults to its current-context. */
  | { readonly mode: 'file'; readonly path: string; readonly context?: string }
  /** An already loaded KubeConfig (tests, embedding). */
  | { readonly mode: 'config'; readonly config: KubeConfig };

/** The subset of pino's Logger this source uses. */
export interface KubernetesSourceLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface KubernetesSourceOptions {
  readonly kubeconfig: KubeconfigSource;
  /** Called with the complete Kubernetes view after the first sync and after every change. */
  readonly onChange: (contribution: KubernetesContribution) => void;
  /** Watch one namespace only (needs only namespaced RBAC); default: all namespaces. */
  readonly namespace?: string;
  /** Also watch Nodes to fill locality.region (and zone, when a slice has none). Default false. */
  readonly nodeTopology?: boolean;
  /** Emit after this much quiet (default 50 ms) ... */
  readonly debounceQuietMs?: number;
  /** ... but never later than this after the first unemitted change (default 500 ms). */
  readonly debounceMaxMs?: number;
  /** Restart backoff after an informer error: initial (default 500 ms), doubling up to max (default 30 s). */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** Give up on a list call after this long and retry with backoff (default 60 s). */
  readonly listTimeoutMs?: number;
  /** Server-side watch timeout (default 300 s, jittered +0..10%); the watch is then resumed. */
  readonly watchTimeoutSeconds?: number;
  readonly logger?: KubernetesSourceLogger;
}

/** Per-informer counters, for status pages and tests. */
export interface InformerStatus {
  readonly kind: string;
  /** Completed the first list. */
  readonly synced: boolean;
  /** Completed lists (the first one plus relists after 410 Gone or after an error). */
  readonly lists: number;
  /** Errors that caused a restart with backoff. */
  readonly errors: number;
  readonly lastError: string | undefined;
}

export interface KubernetesSourceStatus {
  readonly started: boolean;
  /** Every informer has listed once and the first view was emitted. */
  readonly synced: boolean;
  /** Number of `onChange` calls so far. */
  readonly emits: number;
  readonly informers: readonly InformerStatus[];
}

const noopLogger: KubernetesSourceLogger = { debug() {}, info() {}, warn() {} };

/**
 * In a pod, the service account; outside one (a developer's machine), the kubeconfig kubectl
 * would use ($KUBECONFIG, else ~/.kube/config); with neither, a clear error at start rather than
 * a watch that retries `https://undefined:undefined` for ever.
 */
function loadInClusterOrDefault(kc: KubeConfig): void {
  if (process.env.KUBERNETES_SERVICE_HOST) return kc.loadFromCluster();
  const candidates = (process.env.KUBECONFIG ?? '').split(delimiter).filter((f) => f !== '');
  const home = join(homedir(), '.kube', 'config');
  if (candidates.some(existsSync) || existsSync(home)) return kc.loadFromDefault();
  throw new Error(
    'kubernetes.enabled: not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set) and no kubeconfig found ' +
      `(kubernetes.kubeconfig in the config file, $KUBECONFIG, or ${home}); give one, or set kubernetes.enabled: false`,
  );
}

/** Load a KubeConfig as the option says. */
export function loadKubeConfig(source: KubeconfigSource): KubeConfig {
  if (source.mode === 'config') return source.config;
  const kc = new KubeConfig();
  if (source.mode === 'cluster') {
    loadInClusterOrDefault(kc);
  } else {
    kc.loadFromFile(source.path);
    if (source.context !== undefined) kc.setCurrentContext(source.context);
  }
  if (!kc.getCurrentCluster()) throw new Error(`kubeconfig (${source.mode}): no current cluster`);
  return kc;
}

/**
 * client-node's Watch, plus: bookmarks, a jittered server-side timeout, a client-side watchdog for
 * silent connections, and a hard stop (a watch that connects after `close()` is aborted at once and
 * its events are dropped; the stock ListWatch can start one after `stop()` while a list is in flight).
 */
class GuardedWatch extends Watch {
  private closed = false;
  private readonly active = new Set<AbortController>();

  constructor(
    config: KubeConfig,
    private readonly timeoutSeconds: number,
  ) {
    super(config);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    if (this.closed) {
      const controller = new AbortController();
      controller.abort();
      return controller;
    }
    const timeoutSeconds = Math.round(this.timeoutSeconds * (1 + Math.random() * 0.1));
    // Filled in once super.watch() returns; the callbacks below can run before that.
    const current: { controller?: AbortController; watchdog?: NodeJS.Timeout } = {};
    const arm = (): void => {
      if (current.watchdog) clearTimeout(current.watchdog);
      current.watchdog = setTimeout(() => current.controller?.abort(), (timeoutSeconds + 30) * 1000);
      current.watchdog.unref();
    };
    arm();
    const controller = await super.watch(
      path,
      { ...queryParams, allowWatchBookmarks: true, timeoutSeconds },
      (phase, obj, raw) => {
        if (this.closed) return;
        arm();
        callback(phase, obj, raw);
      },
      (err) => {
        if (current.watchdog) clearTimeout(current.watchdog);
        if (current.controller) this.active.delete(current.controller);
        if (!this.closed) done(err);
      },
    );
    current.controller = controller;
    if (this.closed || controller.signal.aborted) {
      if (current.watchdog) clearTimeout(current.watchdog);
      controller.abort();
    } else {
      this.active.add(controller);
    }
    return controller;
  }

  close(): void {
    this.closed = true;
    for (const c of this.active) c.abort();
    this.active.clear();
  }
}

interface InformerEntry {
  readonly kind: string;
  readonly informer: ListWatch<KubernetesObject>;
  readonly watch: GuardedWatch;
  synced: boolean;
  lists: number;
  errors: number;
  lastError: string | undefined;
  backoffMs: number;
  lastErrorAt: number;
  retry: NodeJS.Timeout | undefined;
}

const errorText = (err: unknown): string => {
  if (err instanceof Error) {
    const code = (err as { code?: unknown; statusCode?: unknown }).statusCode ?? (err as { code?: unknown }).code;
    return code !== undefined ? `${err.message} (${String(code)})` : err.message;
  }
  return String(err);
};

export class KubernetesSource {
  private readonly kc: KubeConfig;
  private readonly log: KubernetesSourceLogger;
  private readonly entries: InformerEntry[] = [];
  private started = false;
  private stopped = false;
  private emits = 0;
  private lastKey: string | undefined;
  private lastWarnings = new Set<string>();
  private latest: KubernetesContribution | undefined;
  private readonly debouncer: Debouncer;
  private firstEmit: { resolve: () => void; promise: Promise<void> } | undefined;

  constructor(private readonly options: KubernetesSourceOptions) {
    this.kc = loadKubeConfig(options.kubeconfig);
    this.log = options.logger ?? noopLogger;
    // At least 1 ms: the recompute must run from a timer, after the informer applied its list.
    this.debouncer = new Debouncer(Math.max(1, options.debounceQuietMs ?? 50), options.debounceMaxMs ?? 500, () => this.flush());
  }

  /** The last emitted view (undefined before the first sync). */
  current(): KubernetesContribution | undefined {
    return this.latest;
  }

  status(): KubernetesSourceStatus {
    return {
      started: this.started,
      synced: this.emits > 0,
      emits: this.emits,
      informers: this.entries.map((e) => ({
        kind: e.kind,
        synced: e.synced,
        lists: e.lists,
        errors: e.errors,
        lastError: e.lastError,
      })),
    };
  }

  /**
   * Start the informers. Resolves once every informer has listed and the first view was emitted;
   * until then errors are retried with backoff (so this waits for an API server that is not up
   * yet). Use `signal` to give up waiting (the source keeps trying until `stop()`).
   */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.started) throw new Error('KubernetesSource already started');
    this.started = true;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.firstEmit = { resolve, promise };

    const core = this.kc.makeApiClient(CoreV1Api);
    const discovery = this.kc.makeApiClient(DiscoveryV1Api);
    const ns = this.options.namespace;
    const balance = `${BALANCE_LABEL}=true`;

    this.add(
      'Service',
      ns ? `/api/v1/namespaces/${encodeURIComponent(ns)}/services` : '/api/v1/services',
      balance,
      () =>
        ns
          ? core.listNamespacedService({ namespace: ns, labelSelector: balance })
          : core.listServiceForAllNamespaces({ labelSelector: balance }),
    );
    this.add(
      'EndpointSlice',
      ns
        ? `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/endpointslices`
        : '/apis/discovery.k8s.io/v1/endpointslices',
      SERVICE_NAME_LABEL,
      () =>
        ns
          ? discovery.listNamespacedEndpointSlice({ namespace: ns, labelSelector: SERVICE_NAME_LABEL })
          : discovery.listEndpointSliceForAllNamespaces({ labelSelector: SERVICE_NAME_LABEL }),
    );
    if (this.options.nodeTopology) {
      this.add('Node', '/api/v1/nodes', undefined, () => core.listNode());
    }
    for (const e of this.entries) this.run(e);

    if (!signal) return promise;
    signal.throwIfAborted();
    await new Promise<void>((res, rej) => {
      const onAbort = (): void => rej(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      void promise.then(() => {
        signal.removeEventListener('abort', onAbort);
        res();
      });
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.debouncer.cancel();
    for (const e of this.entries) {
      if (e.retry) clearTimeout(e.retry);
      e.watch.close();
      await e.informer.stop();
    }
  }

  private add(
    kind: string,
    path: string,
    labelSelector: string | undefined,
    list: () => Promise<KubernetesListObject<KubernetesObject>>,
  ): void {
    const watch = new GuardedWatch(this.kc, this.options.watchTimeoutSeconds ?? 300);
    // The entry is filled in below; the list wrapper needs it to count lists and mark the sync.
    const entry = { kind } as InformerEntry;
    const listFn = async (): Promise<KubernetesListObject<KubernetesObject>> => {
      if (this.stopped) throw new Error('stopped');
      // A list that hangs (API server accepting connections but not answering) must not stall the
      // informer forever: give up, and the error path retries with backoff.
      let timer: NodeJS.Timeout | undefined;
      const limitMs = this.options.listTimeoutMs ?? 60_000;
      const result = await Promise.race([
        list(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`list ${kind} timed out after ${limitMs} ms`)), limitMs);
        }),
      ]).finally(() => clearTimeout(timer));
      if (this.stopped) throw new Error('stopped');
      entry.lists++;
      if (entry.lists > 1) this.log.info({ kind, items: result.items.length }, 'kubernetes: relisted');
      // The informer applies the list to its cache synchronously after this resolves; the
      // recompute runs from a timer, so it sees the applied list.
      entry.synced = true;
      entry.backoffMs = 0;
      this.schedule();
      return result;
    };
    const informer = new ListWatch<KubernetesObject>(path, watch, listFn, false, labelSelector);
    Object.assign(entry, {
      informer,
      watch,
      synced: false,
      lists: 0,
      errors: 0,
      lastError: undefined,
      backoffMs: 0,
      lastErrorAt: 0,
      retry: undefined,
    });
    const changed = (): void => this.schedule();
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', changed);
    informer.on('error', (err: unknown) => this.onError(entry, err));
    informer.on('connect', () => this.log.debug({ kind, resourceVersion: informer.latestResourceVersion() }, 'kubernetes: informer (re)connecting'));
    this.entries.push(entry);
  }

  private run(entry: InformerEntry): void {
    if (this.stopped) return;
    entry.informer.start().catch((err: unknown) => this.onError(entry, err));
  }

  private onError(entry: InformerEntry, err: unknown): void {
    if (this.stopped) return;
    const initial = this.options.backoffInitialMs ?? 500;
    const max = this.options.backoffMaxMs ?? 30_000;
    const now = Date.now();
    // Errors in a row double the delay; an error after a long healthy stretch starts over.
    entry.backoffMs =
      entry.backoffMs === 0 || now - entry.lastErrorAt > 2 * max ? initial : Math.min(max, entry.backoffMs * 2);
    entry.lastErrorAt = now;
    entry.errors++;
    entry.lastError = errorText(err);
    const delay = Math.round(entry.backoffMs * (0.8 + Math.random() * 0.4));
    this.log.warn(
      { kind: entry.kind, err: entry.lastError, retryInMs: delay },
      'kubernetes: informer failed; keeping the last view and retrying',
    );
    if (entry.retry) clearTimeout(entry.retry);
    entry.retry = setTimeout(() => {
      entry.retry = undefined;
      this.run(entry);
    }, delay);
  }

  private schedule(): void {
    if (!this.stopped) this.debouncer.trigger();
  }

  private flush(): void {
    if (this.stopped || !this.entries.every((e) => e.synced)) return;
    const get = (kind: string): readonly KubernetesObject[] =>
      this.entries.find((e) => e.kind === kind)?.informer.list() ?? [];
    const nodes = this.options.nodeTopology ? nodeTopologies(get('Node') as readonly NodeLike[]) : undefined;
    const view = slicesToClusters(
      get('Service') as readonly ServiceLike[],
      get('EndpointSlice') as readonly EndpointSliceLike[],
      nodes ? { nodes } : {},
    );

    const warnings = new Set(view.warnings);
    for (const w of warnings) if (!this.lastWarnings.has(w)) this.log.warn({ warning: w }, 'kubernetes: annotation ignored');
    this.lastWarnings = warnings;

    const key = JSON.stringify([view.clusters, [...view.hashPolicies]]);
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.latest = view;
    this.emits++;
    this.log.debug(
      { clusters: view.clusters.length, endpoints: view.clusters.reduce((n, c) => n + c.endpoints.length, 0) },
      'kubernetes: view changed',
    );
    try {
      this.options.onChange(view);
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'kubernetes: onChange threw');
    } finally {
      this.firstEmit?.resolve();
    }
  }
}
