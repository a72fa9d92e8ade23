/**
 * Kubernetes source: discovers clusters and endpoints from Services labelled
 * `fulcrum.io/balance=true` and their `discovery.k8s.io/v1` EndpointSlices, with list/watch
 * informers of our own (./kubernetes/informer.ts, over node's https), and hands the result to `onChange` as a
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
 * The mapping itself is the pure `slicesToClusters` (./kubernetes/mapping.ts), applied across
 * views by ./kubernetes/incremental-mapping.ts; this file is only the I/O around it:
 * - one informer per kind: Services (label selector `fulcrum.io/balance=true`), EndpointSlices
 *   (label selector `kubernetes.io/service-name`: every slice that belongs to some Service),
 *   and, with `nodeTopology: true`, Nodes (for the region label; needs list/watch on nodes);
 * - nothing is emitted until every informer has completed its first list, so a half-synced view
 *   never reaches Envoy; after that every change makes the view again from the informer caches
 *   (mapping only the Services whose objects changed), debounced (quiet period, bounded by a
 *   maximum delay), and emits only if it differs;
 * - watches ask for bookmarks and a server-side timeout, and a client-side watchdog aborts a watch
 *   that has been silent for longer than that (half-open connections);
 * - a watch that ends is resumed from the last resourceVersion; 410 Gone makes the informer relist
 *   (objects that vanished meanwhile are deleted from the cache, so their clusters and endpoints
 *   disappear); any other error (API server down or restarting, 5xx, 429, network) restarts the
 *   informer with exponential backoff and jitter. While the API server is unreachable the last
 *   view stays in force (fail static): nothing is emitted until the informer is back.
 */
import { isDeepStrictEqual } from 'node:util';
import { KubeClient, type KubeObject } from './kubernetes/api-client.js';
import { Informer } from './kubernetes/informer.js';
import { inClusterOrDefaultAccess, kubeconfigAccess, type KubeAccess } from './kubernetes/kubeconfig.js';
import { Debouncer } from '../runtime/debounce.js';
import { IncrementalMapping } from './kubernetes/incremental-mapping.js';
import {
  BALANCE_LABEL,
  SERVICE_NAME_LABEL,
  nodeAsCached,
  nodeTopologies,
  type EndpointSliceLike,
  type KubernetesContribution,
  type NodeLike,
  type NodeTopology,
  type ServiceLike,
} from './kubernetes/mapping.js';

export * from './kubernetes/mapping.js';
export type { KubeAccess } from './kubernetes/kubeconfig.js';

/** Where the API server and credentials come from. */
export type KubeconfigSource =
  /** In-cluster: the pod's service account token and CA, `KUBERNETES_SERVICE_HOST/PORT`. */
  | { readonly mode: 'cluster' }
  /** A kubeconfig file; `context` defaults to its current-context. */
  | { readonly mode: 'file'; readonly path: string; readonly context?: string }
  /** Already resolved access (tests, embedding). */
  | { readonly mode: 'config'; readonly config: KubeAccess };

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

/** Resolve the API server and credentials as the option says. */
export function loadKubeConfig(source: KubeconfigSource): KubeAccess {
  if (source.mode === 'config') return source.config;
  if (source.mode === 'cluster') return inClusterOrDefaultAccess();
  return kubeconfigAccess([source.path], source.context);
}

interface InformerEntry {
  readonly kind: string;
  readonly informer: Informer;
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
  private readonly client: KubeClient;
  private readonly log: KubernetesSourceLogger;
  private readonly entries: InformerEntry[] = [];
  private started = false;
  private stopped = false;
  private emits = 0;
  /** The mapping across views: an unchanged cluster stays the same object (incremental-mapping.ts). */
  private readonly mapping = new IncrementalMapping();
  /** The node topology last mapped with: the same map while no node's region or zone changed. */
  private topology: ReadonlyMap<string, NodeTopology> | undefined;
  private lastWarnings = new Set<string>();
  private latest: KubernetesContribution | undefined;
  private readonly debouncer: Debouncer;
  private firstEmit: { resolve: () => void; promise: Promise<void> } | undefined;

  constructor(private readonly options: KubernetesSourceOptions) {
    this.client = new KubeClient(loadKubeConfig(options.kubeconfig));
    this.log = options.logger ?? noopLogger;
    // At least 1 ms: changes are coalesced from a timer.
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

    const ns = this.options.namespace;
    const scoped = (group: string, resource: string): string =>
      ns ? `${group}/namespaces/${encodeURIComponent(ns)}/${resource}` : `${group}/${resource}`;
    this.add('Service', scoped('/api/v1', 'services'), `${BALANCE_LABEL}=true`);
    this.add('EndpointSlice', scoped('/apis/discovery.k8s.io/v1', 'endpointslices'), SERVICE_NAME_LABEL);
    if (this.options.nodeTopology) this.add('Node', '/api/v1/nodes', undefined, (o) => nodeAsCached(o as NodeLike));
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
      e.informer.stop();
    }
    this.client.close();
  }

  private add(kind: string, path: string, labelSelector: string | undefined, cached?: (o: KubeObject) => KubeObject): void {
    // The callbacks run only after start(), when `entry` below exists.
    const informer = new Informer({
      client: this.client,
      kind,
      path,
      ...(labelSelector !== undefined ? { labelSelector } : {}),
      listTimeoutMs: this.options.listTimeoutMs ?? 60_000,
      watchTimeoutSeconds: this.options.watchTimeoutSeconds ?? 300,
      onList: (items) => this.listed(entry, items),
      onChange: () => this.schedule(),
      onError: (err) => this.onError(entry, err),
      onConnect: (resourceVersion) => this.log.debug({ kind, resourceVersion }, 'kubernetes: informer (re)connecting'),
      ...(cached ? { cached } : {}),
    });
    const entry: InformerEntry = { kind, informer, synced: false, lists: 0, errors: 0, lastError: undefined, backoffMs: 0, lastErrorAt: 0, retry: undefined };
    this.entries.push(entry);
  }

  /** A list reached the informer's cache: the informer is synced; recompute from a timer. */
  private listed(entry: InformerEntry, items: number): void {
    entry.lists++;
    if (entry.lists > 1) this.log.info({ kind: entry.kind, items }, 'kubernetes: relisted');
    entry.synced = true;
    entry.backoffMs = 0;
    this.schedule();
    // The first complete view goes out at once: there is nothing to coalesce yet, and readiness
    // (and so the start of a pod) waits for it. The informer has applied the list already.
    if (this.emits === 0 && this.entries.every((e) => e.synced)) this.debouncer.flush();
  }

  private run(entry: InformerEntry): void {
    if (this.stopped) return;
    entry.informer.start();
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

  /**
   * The nodes' topology; the map of last time while every node's region and zone are the same:
   * nodes' status updates are frequent, and a new map would map every Service again.
   */
  private nodes(list: readonly NodeLike[]): ReadonlyMap<string, NodeTopology> {
    const fresh = nodeTopologies(list);
    if (this.topology !== undefined && isDeepStrictEqual(this.topology, fresh)) return this.topology;
    return (this.topology = fresh);
  }

  private schedule(): void {
    if (!this.stopped) this.debouncer.trigger();
  }

  private flush(): void {
    if (this.stopped || !this.entries.every((e) => e.synced)) return;
    const get = (kind: string): readonly KubeObject[] =>
      this.entries.find((e) => e.kind === kind)?.informer.list() ?? [];
    const nodes = this.options.nodeTopology ? this.nodes(get('Node') as readonly NodeLike[]) : undefined;
    const view = this.mapping.map(get('Service') as readonly ServiceLike[], get('EndpointSlice') as readonly EndpointSliceLike[], nodes ? { nodes } : {});

    const warnings = new Set(view.warnings);
    for (const w of warnings) if (!this.lastWarnings.has(w)) this.log.warn({ warning: w }, 'kubernetes: a Service mapped with a warning (annotation ignored, endpoints merged)');
    this.lastWarnings = warnings;

    // The mapping hands back the view before when nothing in it changed.
    if (view === this.latest) return;
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
