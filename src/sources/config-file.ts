import { Value } from '@sinclair/typebox/value';
import { choosePolicy, type HashKey } from '../catalog/auto-policy.js';
import { comparableKey, spelledTwice } from '../catalog/address-spelling.js';
import { endpointKey } from '../catalog/endpoint-key.js';
import { resolveEjection, resolveSafety } from '../catalog/policy.js';
import { SLOW_START_POLICIES, type Catalog, type Cluster, type Endpoint, type HashPolicy, type LbPolicy, type Listener, type NodeGroup, type Route, type WeightingPolicy } from '../catalog/types.js';
import { PROBE_DEFAULTS } from '../catalog/protection.js';
import type { StoreConfig } from '../catalog/store/etcd-client.js';
import type { XdsServerOptions } from '../xds/server.js';
import { ClusterSchema, ConfigFileSchema, MAX_CLUSTERS, type ConfigFile } from './config-schema.js';
import { checkProtection } from './protection-schema.js';
import { checkXdsSecurity, xdsSecuritySettings, type XdsSecuritySettings } from './xds-security-schema.js';
import { cookieNameProblem, domainClashes, domainProblem, headerNameProblem, ipAddressProblem, listenerAddressProblem, maglevTableSizeProblem } from './envoy-rules.js';
import { storeProblems, toStoreConfig } from './store-schema.js';
import { enumProblem } from './string-enum.js';
import { parseYaml, type YamlParse } from './yaml-parse.js';
import { unpairedSurrogateAt, unpairedSurrogateMessage } from '../catalog/unpaired-surrogates.js';
import { parseYamlOffThread } from './yaml-off-thread.js';
import { runInTurns } from '../runtime/next-turn.js';
import { Slicer } from '../runtime/slicer.js';
import { reportIntervals } from '../catalog/report-intervals.js';

/** `server.xds`: the xDS server's options (its identity is the process's, not configured) and the push debounce. */
export interface XdsServerSettings extends Omit<XdsServerOptions, 'controlPlaneId' | 'security' | 'onLimit' | 'onRefused'>, XdsSecuritySettings {
  readonly debounceQuietMs: number;
  readonly debounceMaxMs: number;
}

export interface AdminServerSettings {
  readonly address: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** HTTPS instead of HTTP: PEM certificate chain and private key files (as written: relative to the working directory). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /** Files holding bearer tokens (comma- or newline-separated), per role. */
  readonly tokenFiles?: { readonly admin?: string; readonly read?: string; readonly report?: string; readonly proxy?: string };
  /** GET /metrics: series per per-endpoint gauge (undefined: the telemetry default). */
  readonly maxEndpointSeries?: number;
  /** Open connections the admin port holds at most (undefined: the admin app's default). */
  readonly maxConnections?: number;
  /** Of those, from one peer (undefined: the admin app's default). */
  readonly maxConnectionsPerPeer?: number;
}

export interface ServerSettings {
  readonly xds: XdsServerSettings;
  readonly admin: AdminServerSettings;
  /** How often the weight engine ticks. */
  readonly engineTickMs: number;
  readonly engineHealth: { failureThreshold?: number; successThreshold?: number; baseBackoffMs?: number; maxBackoffMs?: number };
  /** Envoy load reporting (LRS); undefined when disabled. */
  readonly loadReporting?: {
    /** The shortest interval asked; it stretches toward maxIntervalMs as the fleet's reports grow (src/signals/report-cadence.ts). */
    readonly intervalMs: number;
    readonly maxIntervalMs: number;
    /** Report entries a second the interval stretches to stay within. */
    readonly entriesPerSecond: number;
    /** Asked of Envoy (`lrs_report_endpoint_metrics`): the configured list plus every `metricFields` name. */
    readonly endpointMetrics: readonly string[];
    /** Load metric name → sample field, over the defaults; undefined when not configured. */
    readonly metricFields?: Readonly<Record<string, LoadMetricField>>;
  };
  readonly logLevel: string;
}

export interface KubernetesSettings {
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly namespace?: string;
  readonly nodeTopology: boolean;
}

export interface LoadedConfig {
  readonly catalog: Catalog;
  readonly server: ServerSettings;
  /** Present when Kubernetes discovery is enabled. */
  readonly kubernetes?: KubernetesSettings;
  /** `store:`; sqlite when absent. */
  readonly store: StoreConfig;
  /** Replication settings (used when several replicas share an etcd store). */
  readonly ha: HaSettings;
}

export interface HaSettings {
  /** Undefined: $FULCRUM_REPLICA_ID, else the hostname (resolved at start, not here). */
  readonly replicaId?: string;
  readonly leaseTtlSeconds: number;
  readonly stateRefreshMs: number;
  readonly proxyStatusRefreshMs: number;
}

export const DEFAULT_HA = { leaseTtlSeconds: 3, stateRefreshMs: 5_000, proxyStatusRefreshMs: 10_000 } as const;

export interface ConfigProblem {
  /** JSON pointer into the document, e.g. `/clusters/0/endpoints/1/port`. */
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(problems.map((p) => `${file}: ${p.path || '/'}: ${p.message}`).join('\n'));
    this.name = 'ConfigError';
  }
}

export const DEFAULT_XDS: XdsServerSettings = {
  address: '127.0.0.1',
  port: 18000,
  maxMessageBytes: 64 * 1024 * 1024,
  keepaliveTimeMs: 30_000,
  keepaliveTimeoutMs: 10_000,
  maxResourceNames: 20_000,
  debounceQuietMs: 100,
  debounceMaxMs: 1_000,
};

export const DEFAULT_ADMIN: AdminServerSettings = { address: '127.0.0.1', port: 8080 };

const MAX_PROBLEMS = 50;


/** Parses and validates a config document. Throws ConfigError listing every problem found. */
export function parseConfig(text: string, file: string): LoadedConfig {
  return configFromYaml(parseYaml(text, MAX_PROBLEMS), file);
}

/**
 * parseConfig with a large document's YAML parsed on a worker thread (yaml-off-thread.ts): what
 * a running server uses, so a reload of a large file does not hold its event loop for the parse.
 * The same result and the same errors. `offThreadChars`: the size above which a worker parses.
 */
export async function parseConfigOffThread(text: string, file: string, offThreadChars?: number, signal?: AbortSignal): Promise<LoadedConfig> {
  const parsed = await parseYamlOffThread(text, MAX_PROBLEMS, offThreadChars, signal);
  if ('errors' in parsed) return configFromYaml(parsed, file);
  // Validated in slices, from a later turn than the one that took the worker's copy of the value.
  const slicer = new Slicer();
  await slicer.step();
  return parseConfigValueInTurns(parsed.value, file, slicer.turns);
}

function configFromYaml(parsed: YamlParse, file: string): LoadedConfig {
  if ('errors' in parsed) throw new ConfigError(file, parsed.errors.map((e) => ({ path: '', message: `YAML: ${e}` })));
  return parseConfigValue(parsed.value, file);
}

/**
 * Validates a config document that is already a value (an admin API body, parsed as JSON by the
 * HTTP server): the same rules as parseConfig without a second, YAML, pass over its text, which
 * cost seconds for a 20,000-endpoint body.
 */
export function parseConfigValue(raw: unknown, file: string): LoadedConfig {
  // At once (balancing/steps.ts's runToEnd, which sources/ may not import).
  const steps = configSteps(raw, file);
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
  }
}

/**
 * parseConfigValue with `turn` awaited between clusters (a Slicer's: a turn of the event loop
 * every few ms): at a running server's reload the validation of a 20k-endpoint file held every
 * request ~20 ms in one piece, ~60 ms at 100k. The same result and the same errors.
 */
export function parseConfigValueInTurns(raw: unknown, file: string, turn: () => Promise<void>): Promise<LoadedConfig> {
  return runInTurns(configSteps(raw, file), turn);
}

/** The config document's validation and conversion, yielding between clusters. */
function* configSteps(raw: unknown, file: string): Generator<void, LoadedConfig, void> {
  if (!(yield* schemaHolds(raw))) {
    const problems: ConfigProblem[] = [];
    for (const e of Value.Errors(ConfigFileSchema, raw)) {
      problems.push({ path: e.path, message: enumProblem(e) ?? e.message });
      if (problems.length >= MAX_PROBLEMS) break;
    }
    throw new ConfigError(file, dedupeByPath(problems));
  }
  // The schema held (schemaHolds is Value.Check's answer, in pieces).
  const cfg = raw as ConfigFile;
  const problems = yield* semanticsSteps(cfg);
  if (problems.length > 0) throw new ConfigError(file, problems.slice(0, MAX_PROBLEMS));
  const k = cfg.kubernetes;
  const kubernetes: KubernetesSettings | undefined = k?.enabled
    ? { nodeTopology: k.nodeTopology ?? false, ...(k.kubeconfig ? { kubeconfig: k.kubeconfig } : {}), ...(k.context ? { context: k.context } : {}), ...(k.namespace ? { namespace: k.namespace } : {}) }
    : undefined;
  const ha: HaSettings = { ...DEFAULT_HA, ...cfg.ha };
  const catalog = yield* catalogSteps(cfg);
  return { catalog, server: toServer(cfg), store: toStoreConfig(cfg.store), ...(kubernetes ? { kubernetes } : {}), ha };
}

/**
 * Whether `raw` is a valid config document by its schema: for a document with a list of clusters,
 * the document with that list empty, the list's length and each cluster, yielding between
 * clusters; the same answer as checking the whole document at once.
 */
function* schemaHolds(raw: unknown): Generator<void, boolean, void> {
  const clusters = isRecord(raw) ? raw.clusters : undefined;
  if (!Array.isArray(clusters)) return Value.Check(ConfigFileSchema, raw);
  if (clusters.length > MAX_CLUSTERS || !Value.Check(ConfigFileSchema, { ...(raw as object), clusters: [] })) return false;
  for (const c of clusters as unknown[]) {
    if (!Value.Check(ClusterSchema, c)) return false;
    yield;
  }
  return true;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** TypeBox reports every failing union branch; the first message per path is the useful one. */
function dedupeByPath(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => (seen.has(p.path) ? false : (seen.add(p.path), true)));
}

/** Every problem the schema cannot see, in document order, yielding between clusters. */
function* semanticsSteps(cfg: ConfigFile): Generator<void, ConfigProblem[], void> {
  const problems: ConfigProblem[] = [...checkXdsSecurity(cfg.server?.xds), ...reportIntervalProblems(cfg.server?.loadReporting)];
  textProblems({ ...cfg, clusters: [] }, '', problems);
  const clusterNames = new Set<string>();
  const clusters = cfg.clusters ?? [];
  for (let i = 0; i < clusters.length; i++) {
    const c = clusters[i] as RawCluster;
    const at = `/clusters/${i}`;
    textProblems(c, at, problems);
    if (clusterNames.has(c.name)) problems.push({ path: `${at}/name`, message: `duplicate cluster name "${c.name}"` });
    clusterNames.add(c.name);
    lbPolicyProblems(c, at, problems);
    weightingProblems(c, at, problems);
    settingsProblems(c, at, problems);
    probeProblems(c, at, problems);
    problems.push(...checkProtection(c, at));
    endpointProblems(c, at, problems);
    yield;
  }
  const listenerNames = listenerProblems(cfg, clusterNames, problems);
  nodeGroupProblems(cfg, clusterNames, listenerNames, problems);
  problems.push(...storeProblems(cfg.store));
  return problems;
}

/** Text no UTF-8 encodes (unpaired-surrogates.ts): the first such string of `value`. */
function textProblems(value: unknown, at: string, problems: ConfigProblem[]): void {
  const bad = unpairedSurrogateAt(value, at);
  if (bad) problems.push({ path: bad.path, message: unpairedSurrogateMessage(bad.text) });
}

/** Each LB policy's options only with that policy. */
function lbPolicyProblems(c: RawCluster, at: string, problems: ConfigProblem[]): void {
  const policy = c.lbPolicy ?? 'ROUND_ROBIN';
  if (c.leastRequest && policy !== 'LEAST_REQUEST')
    problems.push({ path: `${at}/leastRequest`, message: `only valid with lbPolicy LEAST_REQUEST (is ${policy})` });
  const slowStart = slowStartProblem(c, policy);
  if (slowStart) problems.push({ path: `${at}/slowStart`, message: slowStart });
  if (c.ringHash && policy !== 'RING_HASH')
    problems.push({ path: `${at}/ringHash`, message: `only valid with lbPolicy RING_HASH (is ${policy})` });
  if (c.maglev && policy !== 'MAGLEV')
    problems.push({ path: `${at}/maglev`, message: `only valid with lbPolicy MAGLEV (is ${policy})` });
  const tableProblem = c.maglev ? maglevTableSizeProblem(c.maglev.tableSize) : undefined;
  if (tableProblem) problems.push({ path: `${at}/maglev/tableSize`, message: tableProblem });
  const rh = c.ringHash;
  if (rh?.minimumRingSize !== undefined && rh.maximumRingSize !== undefined && rh.minimumRingSize > rh.maximumRingSize)
    problems.push({ path: `${at}/ringHash/minimumRingSize`, message: 'must not exceed maximumRingSize' });
}

/**
 * Envoy applies slow start under round robin and least request only. `auto` is refused: the policy
 * it chooses can change with the endpoint count (MAGLEV at 1000+), which would then refuse a write.
 */
function slowStartProblem(c: RawCluster, policy: string): string | undefined {
  if (!c.slowStart) return undefined;
  const allowed = SLOW_START_POLICIES.join(' or ');
  if (c.weighting?.policy === 'auto') return `only valid with lbPolicy ${allowed}, which weighting.policy auto does not set`;
  return (SLOW_START_POLICIES as readonly string[]).includes(policy) ? undefined : `only valid with lbPolicy ${allowed} (is ${policy})`;
}

/** auto needs its traits (and chooses the LB policy itself); blend fractions sum to 1. */
function weightingProblems(c: RawCluster, at: string, problems: ConfigProblem[]): void {
  const w = c.weighting;
  if (w?.policy === 'auto') {
    if (c.lbPolicy !== undefined) problems.push({ path: `${at}/lbPolicy`, message: 'weighting.policy auto chooses the LB policy; remove lbPolicy' });
    if (!w.traits) problems.push({ path: `${at}/weighting/traits`, message: 'weighting.policy auto needs the service traits' });
    const aff = w.traits?.sessionAffinity;
    if (aff && !aff.header && !aff.cookie)
      problems.push({ path: `${at}/weighting/traits/sessionAffinity`, message: 'needs a header or a cookie name' });
    const affAt = `${at}/weighting/traits/sessionAffinity`;
    addProblem(problems, `${affAt}/header`, aff?.header === undefined ? undefined : headerNameProblem(aff.header));
    addProblem(problems, `${affAt}/cookie`, aff?.cookie === undefined ? undefined : cookieNameProblem(aff.cookie));
  } else if (w?.traits) {
    problems.push({ path: `${at}/weighting/traits`, message: 'only valid with weighting.policy auto' });
  }
  if (w?.policy === 'blend') {
    const parts = w.blend ?? {};
    const total = (parts.pid ?? 0) + (parts.ewma ?? 0) + (parts.static ?? 0);
    if (Math.abs(total - 1) > 1e-6) problems.push({ path: `${at}/weighting/blend`, message: `fractions must sum to 1 (they sum to ${total})` });
  } else if (w?.blend) {
    problems.push({ path: `${at}/weighting/blend`, message: 'only valid with weighting.policy blend' });
  }
}

function endpointProblems(c: RawCluster, at: string, problems: ConfigProblem[]): void {
  // Keyed as Envoy compares them: two spellings of one IPv6 address are one host to it.
  const seen = new Map<string, { address: string; index: number }>();
  (c.endpoints ?? []).forEach((e, j) => {
    // EDS endpoints are not resolved by Envoy: a hostname here would be rejected (NACKed) by every proxy.
    addProblem(problems, `${at}/endpoints/${j}/address`, ipAddressProblem(e.address));
    const key = comparableKey(e);
    const first = seen.get(key);
    if (first === undefined) seen.set(key, { address: e.address, index: j });
    else if (first.address === e.address) problems.push({ path: `${at}/endpoints/${j}`, message: `duplicate endpoint ${endpointKey(e)}` });
    else problems.push({ path: `${at}/endpoints/${j}`, message: `duplicate endpoint: ${spelledTwice(e.address, first.address)} (endpoints/${first.index}, port ${e.port})` });
  });
}

/** Unique names, bindable addresses, one listener per address and port, routes to known clusters. */
function listenerProblems(cfg: ConfigFile, clusterNames: ReadonlySet<string>, problems: ConfigProblem[]): Set<string> {
  const listenerNames = new Set<string>();
  const bound = new Map<string, { name: string; address: string }>();
  (cfg.listeners ?? []).forEach((l, i) => {
    const at = `/listeners/${i}`;
    if (listenerNames.has(l.name)) problems.push({ path: `${at}/name`, message: `duplicate listener name "${l.name}"` });
    listenerNames.add(l.name);
    if (l.apiListener) {
      if (l.port !== undefined || l.address !== undefined)
        problems.push({ path: at, message: 'an apiListener (proxyless gRPC) takes no address or port' });
    } else {
      if (l.port === undefined) problems.push({ path: `${at}/port`, message: 'a socket listener needs a port' });
      if (l.address !== undefined) addProblem(problems, `${at}/address`, listenerAddressProblem(l.address));
      const address = l.address ?? '0.0.0.0';
      // One socket to Envoy (it NACKs the second listener), however its IPv6 address is spelled.
      const key = comparableKey({ address, port: l.port ?? 0 });
      const other = bound.get(key);
      if (other !== undefined) problems.push({ path: `${at}/port`, message: `${address}:${l.port} is already used by listener "${other.name}"${other.address === address ? '' : ` (${spelledTwice(address, other.address)})`}` });
      else bound.set(key, { name: l.name, address });
    }
    problems.push(...routeProblems(l, at));
    l.routes.forEach((r, j) => {
      // Names with a '/' belong to Kubernetes discovery (namespace/service:port) and appear at run time.
      const discovered = cfg.kubernetes?.enabled === true && r.cluster.includes('/');
      if (!clusterNames.has(r.cluster) && !discovered)
        problems.push({ path: `${at}/routes/${j}/cluster`, message: `unknown cluster "${r.cluster}"` });
    });
  });
  return listenerNames;
}

/** What Envoy checks in the route configuration built from a listener's routes (envoy-rules.ts). */
function routeProblems(l: RawListener, at: string): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  l.routes.forEach((r, j) => {
    const rAt = `${at}/routes/${j}`;
    addProblem(problems, `${rAt}/domain`, r.domain === undefined ? undefined : domainProblem(r.domain));
    const hp = r.hashPolicy;
    if (hp?.header !== undefined) addProblem(problems, `${rAt}/hashPolicy/header`, headerNameProblem(hp.header));
    if (hp?.cookie !== undefined) addProblem(problems, `${rAt}/hashPolicy/cookie/name`, cookieNameProblem(hp.cookie.name));
  });
  problems.push(...domainClashes(l.routes.map((r) => r.domain ?? '*'), (j) => `${at}/routes/${j}/domain`));
  return problems;
}

function addProblem(problems: ConfigProblem[], path: string, message: string | undefined): void {
  if (message !== undefined) problems.push({ path, message });
}

function nodeGroupProblems(cfg: ConfigFile, clusterNames: ReadonlySet<string>, listenerNames: ReadonlySet<string>, problems: ConfigProblem[]): void {
  (cfg.nodeGroups ?? []).forEach((g, i) => {
    // '*' names the default view every other proxy gets; a group may not replace it.
    if (g.nodeCluster === '*') problems.push({ path: `/nodeGroups/${i}/nodeCluster`, message: '"*" is reserved for the default view' });
    // The cache keeps gRPC clients' form of a group under a key starting with NUL (xds/client-form.ts).
    if (g.nodeCluster.includes('\u0000')) problems.push({ path: `/nodeGroups/${i}/nodeCluster`, message: 'must not hold a NUL character' });
    (g.listeners ?? []).forEach((n, j) => {
      if (!listenerNames.has(n)) problems.push({ path: `/nodeGroups/${i}/listeners/${j}`, message: `unknown listener "${n}"` });
    });
    (g.clusters ?? []).forEach((n, j) => {
      if (!clusterNames.has(n)) problems.push({ path: `/nodeGroups/${i}/clusters/${j}`, message: `unknown cluster "${n}"` });
    });
  });
}

type RawCluster = NonNullable<ConfigFile['clusters']>[number];

/** Safety and ejection overrides must make sense together with the defaults they fall back to. */
function settingsProblems(c: RawCluster, at: string, problems: ConfigProblem[]): void {
  const check = (path: string, f: () => unknown): void => {
    try {
      f();
    } catch (err) {
      problems.push({ path: `${at}/${path}`, message: (err as Error).message });
    }
  };
  if (c.safety) check('safety', () => resolveSafety(c.safety));
  if (c.ejection) check('ejection', () => resolveEjection(c.ejection));
}

/** As healthCheck.path: the prober sends an HTTP probe's path as the request target, which starts with '/'. */
function probeProblems(c: RawCluster, at: string, problems: ConfigProblem[]): void {
  if (c.probe?.kind === 'http' && c.probe.path !== undefined && !c.probe.path.startsWith('/'))
    problems.push({ path: `${at}/probe/path`, message: "an HTTP path starts with '/'" });
}

type RawListener = NonNullable<ConfigFile['listeners']>[number];

type RawWeighting = NonNullable<RawCluster['weighting']>;

export function toWeighting(w: RawWeighting | undefined): WeightingPolicy {
  const gains = { ...(w?.gains ? { gains: w.gains } : {}), ...(w?.errorPenalty !== undefined ? { errorPenalty: w.errorPenalty } : {}) };
  const ewma = { ...(w?.decay !== undefined ? { decay: w.decay } : {}), ...(w?.explorationBonus !== undefined ? { explorationBonus: w.explorationBonus } : {}) };
  switch (w?.policy) {
    case 'pid':
      return { kind: 'pid', setpoint: w.setpoint ?? 'mean', ...(w.metric !== undefined ? { metric: w.metric } : {}), ...gains };
    case 'ewma':
      return { kind: 'ewma', ...ewma, ...(w.errorPenalty !== undefined ? { errorPenalty: w.errorPenalty } : {}) };
    case 'blend':
      return {
        kind: 'blend', parts: w.blend ?? {}, ...ewma, ...gains,
        ...(w.setpoint !== undefined ? { setpoint: w.setpoint } : {}), ...(w.metric !== undefined ? { metric: w.metric } : {}),
      };
    default:
      return { kind: 'static' };
  }
}

/** The seed article's decision table turns declared traits into an LB policy and a weighting. */
function resolveAuto(c: RawCluster): { lbPolicy: LbPolicy; weighting: WeightingPolicy; reason: string; localityTiered: boolean; hashKey?: HashKey } | undefined {
  if (c.weighting?.policy !== 'auto') return undefined;
  const t = c.weighting.traits ?? {};
  const chosen = choosePolicy({ ...t, endpointCount: c.endpoints?.length ?? 0 });
  return {
    lbPolicy: chosen.lbPolicy, weighting: chosen.weighting, reason: chosen.reason, localityTiered: chosen.localityTiered,
    ...(chosen.hashKey ? { hashKey: chosen.hashKey } : {}),
  };
}

function toCluster(c: RawCluster): Cluster {
  const auto = resolveAuto(c);
  const lbPolicy = auto?.lbPolicy ?? c.lbPolicy ?? 'ROUND_ROBIN';
  const endpoints: Endpoint[] = (c.endpoints ?? []).map((e) => ({
    address: e.address,
    port: e.port,
    weight: e.weight ?? 1,
    priority: e.priority ?? 0,
    health: e.health ?? 'HEALTHY',
    locality: { region: e.locality?.region ?? '', zone: e.locality?.zone ?? '', subZone: e.locality?.subZone ?? '' },
  }));
  return {
    name: c.name,
    lbPolicy,
    connectTimeoutMs: c.connectTimeoutMs ?? 1000,
    http2: c.http2 ?? false,
    endpoints,
    weighting: auto?.weighting ?? toWeighting(c.weighting),
    ...(auto ? { autoReason: auto.reason } : {}),
    ...(auto?.hashKey ? { routeHashPolicy: affinityPolicy(auto.hashKey) } : {}),
    ...(c.localityWeighted || auto?.localityTiered ? { localityWeighted: true } : {}),
    ...(c.safety ? { safety: c.safety } : {}),
    ...(c.ejection ? { ejection: c.ejection } : {}),
    ...(c.probe
      ? {
          probe: {
            kind: c.probe.kind, path: c.probe.path ?? (c.probe.kind === 'http' ? '/' : ''),
            intervalMs: c.probe.intervalMs ?? PROBE_DEFAULTS.intervalMs, timeoutMs: c.probe.timeoutMs ?? PROBE_DEFAULTS.timeoutMs,
          },
        }
      : {}),
    ...(c.outlierDetection ? { outlierDetection: c.outlierDetection } : {}),
    ...(c.retryPolicy ? { retryPolicy: c.retryPolicy } : {}),
    ...(c.healthCheck ? { healthCheck: c.healthCheck } : {}),
    ...(lbPolicy === 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN' ? { clientSideWeightedRoundRobin: c.clientSideWeightedRoundRobin ?? {} } : {}),
    ...(lbPolicy === 'LEAST_REQUEST' ? { leastRequest: { choiceCount: c.leastRequest?.choiceCount ?? 2 } } : {}),
    ...(c.slowStart ? { slowStart: { ...c.slowStart } } : {}),
    ...(lbPolicy === 'RING_HASH'
      ? {
          ringHash: {
            virtualNodesPerHost: c.ringHash?.virtualNodesPerHost ?? 160,
            hashFunction: c.ringHash?.hashFunction ?? 'XX_HASH',
            ...(c.ringHash?.minimumRingSize !== undefined ? { minimumRingSize: c.ringHash.minimumRingSize } : {}),
            ...(c.ringHash?.maximumRingSize !== undefined ? { maximumRingSize: c.ringHash.maximumRingSize } : {}),
          },
        }
      : {}),
    ...(lbPolicy === 'MAGLEV' ? { maglev: { tableSize: c.maglev?.tableSize ?? 65_537 } } : {}),
  };
}

/** The schema allows exactly one of header or cookie (minProperties = maxProperties = 1). */
function toHashPolicy(hp: RawListener['routes'][number]['hashPolicy']): HashPolicy | undefined {
  if (hp?.header !== undefined) return { header: hp.header };
  return hp?.cookie ? { cookie: hp.cookie } : undefined;
}

/** The hash policy a route to a cluster `auto` made RING_HASH / MAGLEV uses unless it names one (Cluster.routeHashPolicy). */
function affinityPolicy(key: HashKey): HashPolicy {
  return 'header' in key ? { header: key.header } : { cookie: { name: key.cookie } };
}

function toListener(l: RawListener): Listener {
  const routes: Route[] = l.routes.map((r) => {
    const hashPolicy = toHashPolicy(r.hashPolicy);
    return {
    domain: r.domain ?? '*',
    prefix: r.prefix ?? '/',
    cluster: r.cluster,
    ...(hashPolicy ? { hashPolicy } : {}),
    ...(r.timeoutMs !== undefined ? { timeoutMs: r.timeoutMs } : {}),
    };
  });
  return l.apiListener
    ? { name: l.name, kind: 'api', address: '', port: 0, routes }
    : { name: l.name, kind: 'socket', address: l.address ?? '0.0.0.0', port: l.port ?? 0, routes };
}

/** The validated document's catalog, yielding between clusters. */
function* catalogSteps(cfg: ConfigFile): Generator<void, Catalog, void> {
  const clusters: Cluster[] = [];
  for (const c of cfg.clusters ?? []) {
    clusters.push(toCluster(c));
    yield;
  }
  const nodeGroups: NodeGroup[] = (cfg.nodeGroups ?? []).map((g) => ({
    nodeCluster: g.nodeCluster,
    listeners: g.listeners ?? [],
    clusters: g.clusters ?? [],
  }));
  return {
    clusters,
    listeners: (cfg.listeners ?? []).map(toListener),
    nodeGroups,
  };
}

function toServer(cfg: ConfigFile): ServerSettings {
  const x = cfg.server?.xds ?? {};
  return {
    xds: {
      address: x.address ?? DEFAULT_XDS.address,
      port: x.port ?? DEFAULT_XDS.port,
      maxMessageBytes: x.maxMessageBytes ?? DEFAULT_XDS.maxMessageBytes,
      keepaliveTimeMs: x.keepaliveTimeMs ?? DEFAULT_XDS.keepaliveTimeMs,
      keepaliveTimeoutMs: x.keepaliveTimeoutMs ?? DEFAULT_XDS.keepaliveTimeoutMs,
      maxResourceNames: x.maxResourceNames ?? DEFAULT_XDS.maxResourceNames,
      debounceQuietMs: x.debounceQuietMs ?? DEFAULT_XDS.debounceQuietMs,
      debounceMaxMs: x.debounceMaxMs ?? DEFAULT_XDS.debounceMaxMs,
      ...xdsSecuritySettings(x),
      ...(x.listenBacklog !== undefined ? { listenBacklog: x.listenBacklog } : {}),
      ...(x.limits ? { limits: x.limits } : {}),
    },
    admin: {
      address: cfg.server?.admin?.address ?? DEFAULT_ADMIN.address,
      port: cfg.server?.admin?.port ?? DEFAULT_ADMIN.port,
      ...(cfg.server?.admin?.tls
        ? { tls: { certFile: cfg.server.admin.tls.certFile, keyFile: cfg.server.admin.tls.keyFile } }
        : {}),
      ...(cfg.server?.admin?.tokenFiles ? { tokenFiles: cfg.server.admin.tokenFiles } : {}),
      ...(cfg.server?.admin?.metrics?.maxEndpointSeries !== undefined ? { maxEndpointSeries: cfg.server.admin.metrics.maxEndpointSeries } : {}),
      ...(cfg.server?.admin?.maxConnections !== undefined ? { maxConnections: cfg.server.admin.maxConnections } : {}),
      ...(cfg.server?.admin?.maxConnectionsPerPeer !== undefined ? { maxConnectionsPerPeer: cfg.server.admin.maxConnectionsPerPeer } : {}),
    },
    engineTickMs: cfg.server?.engine?.tickMs ?? 1000,
    engineHealth: cfg.server?.engine?.health ?? {},
    ...(cfg.server?.loadReporting?.enabled === false
      ? {}
      : {
          loadReporting: loadReportingSettings(cfg.server?.loadReporting),
        }),
    logLevel: cfg.server?.logLevel ?? 'info',
  };
}

/** A sample field a load metric may feed (as `MetricField` in src/signals/lrs-conversion.ts). */
export type LoadMetricField = 'cpu' | 'memory' | 'latencyMs' | 'errors' | 'rps';

interface LoadReportingInput {
  intervalMs?: number;
  maxIntervalMs?: number;
  entriesPerSecond?: number;
  endpointMetrics?: string[];
  metricFields?: Record<string, LoadMetricField>;
}

function loadReportingSettings(lr: LoadReportingInput | undefined): ServerSettings['loadReporting'] {
  // What the default metric fields read (rps_fractional aside: Envoy counts requests itself).
  const listed = lr?.endpointMetrics ?? ['cpu_utilization', 'mem_utilization', 'eps', 'named_metrics.latency_ms'];
  const mapped = Object.keys(lr?.metricFields ?? {});
  return {
    ...reportIntervals(lr),
    endpointMetrics: [...new Set([...listed, ...mapped])],
    ...(lr?.metricFields ? { metricFields: lr.metricFields } : {}),
  };
}

/** The longest interval may not be shorter than the shortest (a default counts: maxIntervalMs 500 alone is refused). */
function reportIntervalProblems(lr: LoadReportingInput | undefined): ConfigProblem[] {
  const { intervalMs, maxIntervalMs } = reportIntervals(lr);
  return maxIntervalMs < intervalMs ? [{ path: '/server/loadReporting/maxIntervalMs', message: `must be >= intervalMs (${intervalMs} ms), got ${maxIntervalMs}` }] : [];
}

/**
 * A file holding nothing (blank, or only comments: caught mid-write, or a ConfigMap emptied by
 * mistake) is refused at start and by `fulcrum check` as at a reload: read as an empty config, it
 * would start fulcrum on the defaults (SQLite, default ports) and delete every cluster the file
 * defined before. An empty config is written as such.
 */
export function refuseNoDocument(text: string, path: string): void {
  if (!holdsNoDocument(text)) return;
  throw new Error(`${path}: the file holds no config (blank or only comments: being written?); fulcrum does not start on it. Write "clusters: []" for an empty config`);
}

/**
 * Whether `text` holds no YAML (or JSON) content: only blank lines, comments and document
 * markers. Read line by line up to the first content line, so a large file costs a line or two.
 */
export function holdsNoDocument(text: string): boolean {
  for (let start = 0; start < text.length; ) {
    const end = text.indexOf('\n', start);
    const line = text.slice(start, end < 0 ? text.length : end).trim();
    if (line !== '' && !line.startsWith('#') && line !== '---' && line !== '...') return false;
    start = end < 0 ? text.length : end + 1;
  }
  return true;
}
