import type { Snapshot } from '../xds/cache.js';
import { envoyType, PUSH_ORDER, SHORT_TYPE, type XdsTypeUrl } from '../xds/envoy-api.js';
import { rejectedField, syncState, type NackInfo, type ProxyRecord, type SyncState, type TypeStatus } from '../xds/proxy-status.js';
import { IN_FLIGHT } from '../xds/fleet-proxies.js';
import { MESSAGE_OF } from '../xds/resource.js';
import { groupOfKey } from '../xds/client-form.js';
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

/** What a replica shares of its streams (FleetProxies): how many, the shared ones' shape, and their views on demand. */
export interface SharedStatus {
  readonly total: number;
  /**
   * The shared streams (by stream id) and each type's sync state in IN_FLIGHT-aware codes: equal
   * shapes mean the share would differ only in versions, times and counters, which FleetProxies
   * writes less often (fleet-proxies.ts sameShape).
   */
  readonly shape: ReadonlyMap<string, string>;
  readonly proxies: () => Proxy[];
}

/**
 * This replica's streams as it shares them with the others (several replicas on etcd): how many,
 * and the views of `max` of them, NACKED ones first, then those awaiting an ACK for 2 s or more,
 * the rest after, each in registry order. A replica shares at most 2,000 (FleetProxies), and the
 * troubled ones are those an operator asks the fleet for (GET /v1/proxies?state=NACKED on any
 * replica). A push in flight ranks as the rest: past `max` streams, ranking it first swapped the
 * shared set at every push, and with it the shape. Views only of those shared, and only when
 * asked: every stream's view took ~70 % of a share's ~90 ms at 10,000 streams, and the shape
 * alone decides whether a share is due.
 */
export function sharedProxyViews(records: readonly ProxyRecord[], replica: string, max: number, now = Date.now()): SharedStatus {
  const code = (t: TypeStatus | undefined): string => {
    const state = syncState(t);
    if (state !== 'STALE') return SHAPE_CODE[state];
    // A response sent moments ago is a push in flight, not news: its ACK is due within milliseconds.
    return now - (t?.sentAt ?? now) >= STALE_NEWS_MS ? SHAPE_CODE.STALE : IN_FLIGHT;
  };
  const rank = (codes: string): number => (codes.includes(SHAPE_CODE.NACKED) ? 0 : codes.includes(SHAPE_CODE.STALE) ? 1 : 2);
  const shared = records
    .map((r, i) => {
      const codes = PUSH_ORDER.map((url) => code(r.types.get(url))).join('');
      return { r, i, codes, rank: rank(codes) };
    })
    .sort((a, b) => a.rank - b.rank || a.i - b.i)
    .slice(0, max);
  const shape = new Map(shared.map(({ r, codes }) => [String(r.streamId), codes]));
  return { total: records.length, shape, proxies: () => shared.map(({ r }) => sharedView(r, replica)) };
}

/** Node metadata over this (as JSON) is not shared with the other replicas: a few sidecars' metadata would fill the share's 1 MiB. */
export const SHARED_METADATA_BYTES = 1024;

/** A stream's view as shared through etcd: its metadata only when small (shown whole by the replica the proxy is on). */
function sharedView(r: ProxyRecord, replica: string): Proxy {
  const view = proxyView(r, replica);
  if (metadataBytes(r.node.metadata) <= SHARED_METADATA_BYTES) return view;
  return { ...view, metadata: {}, metadataOmitted: true };
}

/** A node's metadata never changes for its stream's life: its size is measured once, not at every share. */
const measured = new WeakMap<object, number>();

function metadataBytes(metadata: Record<string, unknown>): number {
  let bytes = measured.get(metadata);
  if (bytes === undefined) {
    bytes = Buffer.byteLength(JSON.stringify(metadata));
    measured.set(metadata, bytes);
  }
  return bytes;
}

const SHAPE_CODE: Record<SyncState, string> = { SYNCED: 's', STALE: 't', NACKED: 'n', NOT_SENT: '-' };
/** How long a stream awaits an ACK before its shape says so. */
const STALE_NEWS_MS = 2_000;

/** One stream of a connected proxy (same field names as describeProxy, plus the stream id and per-type detail). */
export function proxyView(r: ProxyRecord, replica: string): Proxy {
  const types = {} as Proxy['types'];
  for (const url of PUSH_ORDER) types[SHORT_TYPE[url] as ShortType] = typeSyncView(r.types.get(url));
  return {
    nodeId: r.node.id,
    nodeCluster: r.node.cluster,
    metadata: r.node.metadata,
    ...(r.node.metadataOmitted ? { metadataOmitted: true } : {}),
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
  const { group, form } = groupOfKey(snapshot.group);
  const top: ConfigDump = {
    group,
    snapshotSeq: snapshot.seq,
    ...(form === 'grpc' ? { form } : {}),
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
