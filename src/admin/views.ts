import type { Snapshot } from '../xds/cache.js';
import { envoyType, PUSH_ORDER, SHORT_TYPE, type XdsTypeUrl } from '../xds/envoy-api.js';
import { rejectedField, streamState, syncState, type NackInfo, type ProxyRecord, type TypeStatus } from '../xds/proxy-status.js';
import { MESSAGE_OF } from '../xds/resource.js';
import type { ConfigDump, DumpedType, Proxy, ShortType, TypeSync } from './schemas.js';

/** Pure views of the xDS room's state, in the admin API's response shapes. */

const iso = (ms: number): string => new Date(ms).toISOString();

function nackView(n: NackInfo): NonNullable<TypeSync['lastNack']> {
  return { version: n.version, keptVersion: n.keptVersion, message: n.message, at: iso(n.at) };
}

export function typeSyncView(t: TypeStatus | undefined): TypeSync {
  if (!t) return { state: 'NOT_SENT', resources: 0, responses: 0, nacks: 0 };
  return {
    state: syncState(t),
    ...(t.sentVersion !== undefined ? { sentVersion: t.sentVersion } : {}),
    ...(t.sentAt !== undefined ? { sentAt: iso(t.sentAt) } : {}),
    ...(t.ackedVersion !== undefined ? { ackedVersion: t.ackedVersion } : {}),
    ...(t.ackedAt !== undefined ? { ackedAt: iso(t.ackedAt) } : {}),
    resources: t.sentResources.size,
    responses: t.responses,
    nacks: t.nacks,
    ...(t.lastNack ? { lastNack: nackView(t.lastNack) } : {}),
    ...rejectedField(t),
  };
}

/**
 * This replica's streams as it shares them with the others (several replicas on etcd): how many,
 * and the views of `max` of them, NACKED ones first, then those awaiting an ACK, the rest after,
 * each in registry order. A replica shares at most 2,000 (FleetProxies), and the troubled ones are
 * those an operator asks the fleet for (GET /v1/proxies?state=NACKED on any replica). Views only
 * of those shared: every stream's view took ~70 % of a share's ~90 ms at 10,000 streams.
 */
export function sharedProxyViews(records: readonly ProxyRecord[], replica: string, max: number): { total: number; proxies: Proxy[] } {
  const rank = (r: ProxyRecord): number => {
    const state = streamState(r);
    return state === 'NACKED' ? 0 : state === 'STALE' ? 1 : 2;
  };
  const shared = records
    .map((r, i) => ({ r, i, rank: rank(r) }))
    .sort((a, b) => a.rank - b.rank || a.i - b.i)
    .slice(0, max);
  return { total: records.length, proxies: shared.map(({ r }) => proxyView(r, replica)) };
}

/** One stream of a connected proxy (same field names as describeProxy, plus the stream id and per-type detail). */
export function proxyView(r: ProxyRecord, replica: string): Proxy {
  const types = {} as Proxy['types'];
  for (const url of PUSH_ORDER) types[SHORT_TYPE[url] as ShortType] = typeSyncView(r.types.get(url));
  return {
    nodeId: r.node.id,
    nodeCluster: r.node.cluster,
    metadata: r.node.metadata,
    userAgent: r.node.userAgent,
    streamId: r.streamId,
    protocol: r.protocol,
    service: r.service,
    peer: r.peer,
    connectedSince: iso(r.connectedAt),
    types,
    replica,
  };
}

/** Of a node's streams, the one that was sent `type` most recently (a node may hold several). */
function latestFor(records: readonly ProxyRecord[], type: XdsTypeUrl): TypeStatus | undefined {
  let best: TypeStatus | undefined;
  for (const r of records) {
    const t = r.types.get(type);
    if (t?.sentAt !== undefined && (best?.sentAt === undefined || t.sentAt >= best.sentAt)) best = t;
  }
  return best;
}

const DECODE = { enums: String, longs: Number, defaults: false, json: true } as const;

/** Decodes an encoded resource back into Envoy's JSON shape (Any fields expanded with their @type). */
export function decodeResource(type: XdsTypeUrl, bytes: Uint8Array): Record<string, unknown> {
  const message = envoyType(MESSAGE_OF[type]);
  return message.toObject(message.decode(bytes), DECODE);
}

/**
 * What a node group's snapshot holds, decoded, grouped by type; with a node's streams, also what
 * was last sent to that node and whether it was ACKed or NACKed. In parts, so that a large dump
 * can be decoded and written a few resources at a time (config-dump-stream.ts).
 */
export interface ConfigDumpParts {
  /** The dump without its types (`types` empty). */
  readonly top: ConfigDump;
  /** Per type asked, in the order asked: its short name, its entry without resources, and its resources to decode. */
  readonly types: readonly {
    readonly short: ShortType;
    readonly head: DumpedType;
    readonly resources: readonly (readonly [string, { readonly version: string; readonly bytes: Uint8Array }])[];
    readonly item: (name: string, r: { readonly version: string; readonly bytes: Uint8Array }) => DumpedType['resources'][number];
  }[];
}

export function configDumpParts(snapshot: Snapshot, types: readonly XdsTypeUrl[], node?: { records: readonly ProxyRecord[] }): ConfigDumpParts {
  const parts = types.map((type) => {
    const status = node ? latestFor(node.records, type) : undefined;
    const head: DumpedType = { typeUrl: type, resources: [] };
    if (node) {
      const sync = typeSyncView(status);
      head.state = sync.state;
      if (sync.sentVersion !== undefined) head.sentVersion = sync.sentVersion;
      if (sync.ackedVersion !== undefined) head.ackedVersion = sync.ackedVersion;
      if (sync.lastNack) head.lastNack = sync.lastNack;
    }
    const resources = [...snapshot.resources(type)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const item = (name: string, r: { readonly version: string; readonly bytes: Uint8Array }): DumpedType['resources'][number] => {
      const sentVersion = status?.sentResources.get(name);
      return { name, version: r.version, ...(sentVersion !== undefined ? { sentVersion } : {}), resource: decodeResource(type, r.bytes) };
    };
    return { short: SHORT_TYPE[type] as ShortType, head, resources, item };
  });
  const first = node?.records[0];
  const top: ConfigDump = {
    group: snapshot.group,
    snapshotSeq: snapshot.seq,
    ...(first ? { node: { id: first.node.id, cluster: first.node.cluster } } : {}),
    types: {},
  };
  return { top, types: parts };
}

/** The whole dump, its parts assembled (every resource decoded). */
export function wholeConfigDump(parts: ConfigDumpParts): ConfigDump {
  const out: ConfigDump['types'] = {};
  for (const t of parts.types) out[t.short] = { ...t.head, resources: t.resources.map(([name, r]) => t.item(name, r)) };
  return { ...parts.top, types: out };
}
