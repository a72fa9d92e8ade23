import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { XdsCache } from '../../xds/cache.js';
import { PUSH_ORDER, SHORT_TYPE, type XdsTypeUrl } from '../../xds/envoy-api.js';
import type { FleetProxies } from '../../xds/fleet-proxies.js';
import { streamState, type ProxyRecord, type ProxyRegistry, type SyncState } from '../../xds/proxy-status.js';
import { worstState } from '../../telemetry/operator-metrics.js';
import { DEFAULT_GROUP } from '../../xds/translator.js';
import { clientFormOf } from '../../xds/client-form.js';
import { ApiError } from '../resources.js';
import { ConfigDump, NodeId, Proxy, SHORT_TYPES, StringEnum, SYNC_STATES, type ShortType } from '../schemas.js';
import { configDumpParts, proxyView } from '../views.js';
import { sendConfigDump } from '../config-dump-stream.js';
import { errorOf, securedRoute } from './schema-parts.js';
import { sendSliced } from '../sliced-answer.js';

/** The operator views of the xDS state: connected proxies and what each is being sent (read tokens may see them). */

export interface ProxyRoutesOptions {
  readonly registry: Pick<ProxyRegistry, 'list'>;
  readonly cache: Pick<XdsCache, 'snapshotFor'>;
  /** This replica's id, shown with its proxies; 'local' when fulcrum runs alone. */
  readonly replica?: string;
  /** The proxies of the other replicas (several replicas on etcd). */
  readonly fleet?: Pick<FleetProxies, 'remote'>;
}

export const ProxyList = Type.Object(
  {
    count: Type.Integer({ description: 'How many of the listed streams match (all of them without `state`), even when `limit` lists fewer. Other replicas list the streams they share (at most 2,000 and 1 MiB of them each).' }),
    proxies: Type.Array(Proxy),
  },
  { description: 'The connected proxy streams of the fleet (every replica) that match, ordered by node id, replica, connection time and stream id' },
);

const ProxyListQuery = Type.Object(
  {
    state: Type.Optional(
      StringEnum(SYNC_STATES, {
        description:
          'Only the streams in this overall state, as fulcrum_proxies{state} counts them: NACKED if any type is NACKED, else STALE if any awaits an ACK, else SYNCED (NOT_SENT: nothing sent yet). Judged when the list is read; each stream is shown as it is when serialized.',
      }),
    ),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'At most this many streams, the first in listing order (a 10,000-stream fleet lists ~7 MB)' })),
  },
  { additionalProperties: false },
);

const ProxyDetail = Type.Object(
  {
    nodeId: Type.String(),
    streams: Type.Array(Proxy, {
      description: 'Usually one (ADS); more when the proxy uses the per-type services or a reconnect overlaps the old stream',
    }),
  },
  { description: 'A connected proxy\'s streams, newest first' },
);

const ProxyParams = Type.Object({ nodeId: NodeId }, { additionalProperties: false });

const ConfigDumpQuery = Type.Object(
  {
    node: Type.Optional(NodeId),
    type: Type.Optional(StringEnum(SHORT_TYPES, { description: 'Only this resource type' })),
  },
  { additionalProperties: false },
);

const NO_PROXY = { 404: errorOf('No connected proxy has this node id (code NOT_FOUND)') };

const URL_OF = Object.fromEntries(Object.entries(SHORT_TYPE).map(([url, short]) => [short, url])) as Record<ShortType, XdsTypeUrl>;

export const proxyRoutes: FastifyPluginAsyncTypebox<ProxyRoutesOptions> = async (app, { registry, cache, replica = 'local', fleet }) => {
  /** A node's streams on this replica, newest first; 404 when it has none. */
  const streamsOf = (nodeId: string): [ProxyRecord, ...ProxyRecord[]] => {
    const [newest, ...older] = localStreams(nodeId);
    if (!newest) throw new ApiError(404, `no connected proxy has node id ${JSON.stringify(nodeId)} on this replica`, undefined, 'NOT_FOUND');
    return [newest, ...older];
  };
  const localStreams = (nodeId: string): ProxyRecord[] =>
    registry
      .list()
      .filter((r) => r.node.id === nodeId)
      .sort((a, b) => b.connectedAt - a.connectedAt || b.streamId - a.streamId);
  // Other replicas' entries have the shape this route serves: they are written by this code.
  const remote = (): Proxy[] => (fleet?.remote() ?? []) as unknown as Proxy[];

  app.get(
    '/v1/proxies',
    {
      schema: securedRoute('proxies', 'The connected proxy streams of the fleet, with the replica each is on and per-type sync state (SYNCED, STALE, NACKED, NOT_SENT); `state` and `limit` narrow a large fleet\'s list', {
        querystring: ProxyListQuery,
        response: { 200: ProxyList },
      }),
    },
    // Ordered by their records (10,000 streams: 7 MB of JSON), then viewed and serialized in slices.
    async (request, reply) => {
      const { state, limit } = request.query;
      const all: Listed[] = [...registry.list(), ...remote()];
      const matching = state === undefined ? all : all.filter((x) => inState(x, state));
      const keyed = matching.map((x) => ({ x, key: listingKey(x, replica) }));
      const listed = keyed.sort((a, b) => byNodeThenReplica(a.key, b.key)).slice(0, limit ?? keyed.length).map((k) => k.x);
      return sendSliced(reply, 200, ProxyList, { count: matching.length, proxies: listed }, 'proxies', (x: Listed) => (isRecord(x) ? proxyView(x, replica) : x));
    },
  );

  app.get(
    '/v1/proxies/:nodeId',
    {
      schema: securedRoute('proxies', 'One connected proxy, by node id, on whichever replica (404 if no stream has it)', {
        params: ProxyParams,
        response: { 200: ProxyDetail, ...NO_PROXY },
      }),
    },
    async (request) => {
      const { nodeId } = request.params;
      const streams = [...localStreams(nodeId).map((r) => proxyView(r, replica)), ...remote().filter((p) => p.nodeId === nodeId)];
      if (streams.length === 0) throw new ApiError(404, `no connected proxy has node id ${JSON.stringify(nodeId)}`, undefined, 'NOT_FOUND');
      return { nodeId, streams };
    },
  );

  app.get(
    '/v1/config_dump',
    {
      schema: securedRoute('config', 'The resources a node is being sent (its node group\'s snapshot), decoded; without node, the default group', {
        querystring: ConfigDumpQuery,
        response: { 200: ConfigDump, ...NO_PROXY },
      }),
    },
    async (request, reply) => {
      const { node, type } = request.query;
      const types = type !== undefined ? [URL_OF[type]] : PUSH_ORDER;
      if (node === undefined) return sendConfigDump(reply, configDumpParts(cache.snapshotFor(DEFAULT_GROUP), types));
      const records = streamsOf(node);
      return sendConfigDump(reply, configDumpParts(cache.snapshotFor(records[0].node.cluster, clientFormOf(records[0].node.userAgent)), types, { records }));
    },
  );
};

/** A stream of this replica (its record) or of another (the view that replica shared). */
type Listed = ProxyRecord | Proxy;
const isRecord = (x: Listed): x is ProxyRecord => 'node' in x;

/** Whether the stream's overall state (its worst type's, as fulcrum_proxies counts it) is `state`; only the types the list shows count. */
function inState(x: Listed, state: SyncState): boolean {
  return (isRecord(x) ? streamState(x) : worstState(SHORT_TYPES.map((t) => x.types[t]?.state ?? 'NOT_SENT'))) === state;
}

interface ListingKey {
  readonly nodeId: string;
  readonly replica: string;
  /** Connected since, ms (an ISO timestamp has ms precision: the same order as its text). */
  readonly since: number;
  readonly streamId: number;
}

const listingKey = (x: Listed, replica: string): ListingKey =>
  isRecord(x) ? { nodeId: x.node.id, replica, since: x.connectedAt, streamId: x.streamId } : { nodeId: x.nodeId, replica: x.replica, since: Date.parse(x.connectedSince), streamId: x.streamId };

/** Listing order across replicas: by node id, then replica, then oldest stream first. */
function byNodeThenReplica(a: ListingKey, b: ListingKey): number {
  if (a.nodeId !== b.nodeId) return a.nodeId < b.nodeId ? -1 : 1;
  if (a.replica !== b.replica) return a.replica < b.replica ? -1 : 1;
  return a.since - b.since || a.streamId - b.streamId;
}
