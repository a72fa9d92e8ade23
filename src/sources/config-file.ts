import { isIP } from 'node:net';
import { Value } from '@sinclair/typebox/value';
import { parseDocument } from 'yaml';
import type { Catalog, Cluster, Endpoint, Listener, NodeGroup, Route } from '../catalog/types.js';
import { ConfigFileSchema, type ConfigFile } from './config-schema.js';

export interface XdsServerSettings {
  readonly address: string;
  readonly port: number;
  readonly maxMessageBytes: number;
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly maxResourceNames: number;
  readonly debounceQuietMs: number;
  readonly debounceMaxMs: number;
}

export interface AdminServerSettings {
  readonly address: string;
  /** 0 picks a free port. */
  readonly port: number;
}

export interface ServerSettings {
  readonly xds: XdsServerSettings;
  readonly admin: AdminServerSettings;
  readonly logLevel: string;
}

export interface LoadedConfig {
  readonly catalog: Catalog;
  readonly server: ServerSettings;
}

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
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.slice(0, MAX_PROBLEMS).map((e) => ({ path: '', message: `YAML: ${e.message.split('\n')[0]}` })),
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  if (!Value.Check(ConfigFileSchema, raw)) {
    const problems: ConfigProblem[] = [];
    for (const e of Value.Errors(ConfigFileSchema, raw)) {
      problems.push({ path: e.path, message: e.message });
      if (problems.length >= MAX_PROBLEMS) break;
    }
    throw new ConfigError(file, dedupeByPath(problems));
  }
  const problems = checkSemantics(raw);
  if (problems.length > 0) throw new ConfigError(file, problems.slice(0, MAX_PROBLEMS));
  return { catalog: toCatalog(raw), server: toServer(raw) };
}

/** TypeBox reports every failing union branch; the first message per path is the useful one. */
function dedupeByPath(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => (seen.has(p.path) ? false : (seen.add(p.path), true)));
}

function checkSemantics(cfg: ConfigFile): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const clusters = cfg.clusters ?? [];
  const clusterNames = new Set<string>();
  clusters.forEach((c, i) => {
    const at = `/clusters/${i}`;
    if (clusterNames.has(c.name)) problems.push({ path: `${at}/name`, message: `duplicate cluster name "${c.name}"` });
    clusterNames.add(c.name);
    const policy = c.lbPolicy ?? 'ROUND_ROBIN';
    if (c.leastRequest && policy !== 'LEAST_REQUEST')
      problems.push({ path: `${at}/leastRequest`, message: `only valid with lbPolicy LEAST_REQUEST (is ${policy})` });
    if (c.ringHash && policy !== 'RING_HASH')
      problems.push({ path: `${at}/ringHash`, message: `only valid with lbPolicy RING_HASH (is ${policy})` });
    if (c.maglev && policy !== 'MAGLEV')
      problems.push({ path: `${at}/maglev`, message: `only valid with lbPolicy MAGLEV (is ${policy})` });
    const rh = c.ringHash;
    if (rh?.minimumRingSize !== undefined && rh.maximumRingSize !== undefined && rh.minimumRingSize > rh.maximumRingSize)
      problems.push({ path: `${at}/ringHash/minimumRingSize`, message: 'must not exceed maximumRingSize' });
    const seen = new Set<string>();
    (c.endpoints ?? []).forEach((e, j) => {
      // EDS endpoints are not resolved by Envoy: a hostname here would be rejected (NACKed) by every proxy.
      if (isIP(e.address) === 0)
        problems.push({ path: `${at}/endpoints/${j}/address`, message: `"${e.address}" is not an IP address` });
      const key = `${e.address}:${e.port}`;
      if (seen.has(key)) problems.push({ path: `${at}/endpoints/${j}`, message: `duplicate endpoint ${key}` });
      seen.add(key);
    });
  });

  const listenerNames = new Set<string>();
  const bound = new Map<string, string>();
  (cfg.listeners ?? []).forEach((l, i) => {
    const at = `/listeners/${i}`;
    if (listenerNames.has(l.name)) problems.push({ path: `${at}/name`, message: `duplicate listener name "${l.name}"` });
    listenerNames.add(l.name);
    if (l.apiListener) {
      if (l.port !== undefined || l.address !== undefined)
        problems.push({ path: at, message: 'an apiListener (proxyless gRPC) takes no address or port' });
    } else {
      if (l.port === undefined) problems.push({ path: `${at}/port`, message: 'a socket listener needs a port' });
      if (l.address !== undefined && isIP(l.address) === 0)
        problems.push({ path: `${at}/address`, message: `"${l.address}" is not an IP address` });
      const key = `${l.address ?? '0.0.0.0'}:${l.port}`;
      const other = bound.get(key);
      if (other !== undefined) problems.push({ path: `${at}/port`, message: `${key} is already used by listener "${other}"` });
      bound.set(key, l.name);
    }
    l.routes.forEach((r, j) => {
      if (!clusterNames.has(r.cluster))
        problems.push({ path: `${at}/routes/${j}/cluster`, message: `unknown cluster "${r.cluster}"` });
    });
  });

  (cfg.nodeGroups ?? []).forEach((g, i) => {
    // '*' names the default view every other proxy gets; a group may not replace it.
    if (g.nodeCluster === '*') problems.push({ path: `/nodeGroups/${i}/nodeCluster`, message: '"*" is reserved for the default view' });
    (g.listeners ?? []).forEach((n, j) => {
      if (!listenerNames.has(n)) problems.push({ path: `/nodeGroups/${i}/listeners/${j}`, message: `unknown listener "${n}"` });
    });
    (g.clusters ?? []).forEach((n, j) => {
      if (!clusterNames.has(n)) problems.push({ path: `/nodeGroups/${i}/clusters/${j}`, message: `unknown cluster "${n}"` });
    });
  });
  return problems;
}

type RawCluster = NonNullable<ConfigFile['clusters']>[number];
type RawListener = NonNullable<ConfigFile['listeners']>[number];

function toCluster(c: RawCluster): Cluster {
  const lbPolicy = c.lbPolicy ?? 'ROUND_ROBIN';
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
    ...(lbPolicy === 'LEAST_REQUEST' ? { leastRequest: { choiceCount: c.leastRequest?.choiceCount ?? 2 } } : {}),
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

function toListener(l: RawListener): Listener {
  const routes: Route[] = l.routes.map((r) => ({
    domain: r.domain ?? '*',
    prefix: r.prefix ?? '/',
    cluster: r.cluster,
    ...(r.hashPolicy ? { hashPolicy: r.hashPolicy } : {}),
    ...(r.timeoutMs !== undefined ? { timeoutMs: r.timeoutMs } : {}),
  }));
  return l.apiListener
    ? { name: l.name, kind: 'api', address: '', port: 0, routes }
    : { name: l.name, kind: 'socket', address: l.address ?? '0.0.0.0', port: l.port ?? 0, routes };
}

function toCatalog(cfg: ConfigFile): Catalog {
  const nodeGroups: NodeGroup[] = (cfg.nodeGroups ?? []).map((g) => ({
    nodeCluster: g.nodeCluster,
    listeners: g.listeners ?? [],
    clusters: g.clusters ?? [],
  }));
  return {
    clusters: (cfg.clusters ?? []).map(toCluster),
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
    },
    admin: {
      address: cfg.server?.admin?.address ?? DEFAULT_ADMIN.address,
      port: cfg.server?.admin?.port ?? DEFAULT_ADMIN.port,
    },
    logLevel: cfg.server?.logLevel ?? 'info',
  };
}
