import { Type, type Static } from '@sinclair/typebox';
import { StringEnum } from '../sources/string-enum.js';
import { MAX_REJECTED_LISTED } from '../xds/proxy-status.js';
import { SYNC_STATES } from '../telemetry/operator-metrics.js';

/**
 * Shapes of the admin API shared beyond one route plugin (TypeBox → JSON Schema): the error body,
 * and the views of the xDS state that views.ts builds. fastify validates requests and serializes
 * responses with them, and @fastify/swagger turns them into OpenAPI.
 *
 * Kept to the OpenAPI 3.0 subset of JSON Schema: enums rather than `const` unions, and
 * free-form objects as `additionalProperties: true` rather than `patternProperties`.
 */

export { StringEnum };

export const SHORT_TYPES = ['CDS', 'EDS', 'LDS', 'RDS'] as const;
export type ShortType = (typeof SHORT_TYPES)[number];

export const Timestamp = Type.String({ format: 'date-time' });
/** Anything JSON: metadata and decoded Envoy resources. */
const FreeObject = Type.Object({}, { additionalProperties: true });

/** Envoy accepts any node id; this bound keeps a request from carrying megabytes in one. */
export const NODE_ID_MAX = 512;
export const NodeId = Type.String({ minLength: 1, maxLength: NODE_ID_MAX, description: 'The proxy\'s node.id' });

export const ErrorResponse = Type.Object(
  {
    error: Type.String({ description: 'HTTP reason phrase, e.g. "Bad Request"' }),
    message: Type.String({ description: 'What was wrong' }),
    path: Type.Optional(Type.String({ description: 'Where in the request, e.g. /querystring/node' })),
    code: Type.String({
      pattern: '^[A-Z][A-Z0-9_]*$',
      description:
        'A stable machine-readable reason: VALIDATION_FAILED, BAD_REQUEST, BAD_URL, INVALID_JSON, EMPTY_BODY, UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, ' +
        'METHOD_NOT_ALLOWED, REQUEST_TIMEOUT, REVISION_MISMATCH, CONCURRENT_CHANGES, OWNED_ELSEWHERE, REFERENCED, ADDRESS_IN_USE, BODY_TOO_LARGE, TOO_LARGE, ' +
        'URI_TOO_LONG, UNSUPPORTED_MEDIA_TYPE, UNAVAILABLE, INTERNAL, or a rule\'s own',
    }),
  },
  { title: 'Error' },
);
export type ErrorResponse = Static<typeof ErrorResponse>;

export { SYNC_STATES };
export const SyncStateSchema = StringEnum(SYNC_STATES, {
  description:
    'SYNCED: the last response was ACKed. STALE: sent, not yet ACKed. NACKED: the last response was rejected, or resources a rejected response carried are still not held as sent (see lastNack and rejected). NOT_SENT: nothing of this type sent on this stream.',
});

export const Nack = Type.Object({
  version: Type.String({ description: 'The version the proxy rejected' }),
  keptVersion: Type.String({ description: 'The version the proxy still runs (empty for Delta)' }),
  message: Type.String({ description: 'The proxy\'s error text' }),
  at: Timestamp,
});

export const TypeSync = Type.Object({
  state: SyncStateSchema,
  sentVersion: Type.Optional(Type.String()),
  sentAt: Type.Optional(Timestamp),
  ackedVersion: Type.Optional(Type.String()),
  ackedAt: Type.Optional(Timestamp),
  resources: Type.Integer({ description: 'Resources of this type in the proxy\'s current set' }),
  responses: Type.Integer({ description: 'Responses of this type sent on this stream' }),
  nacks: Type.Integer({ description: 'NACKs of this type received on this stream' }),
  lastNack: Type.Optional(Nack),
  rejected: Type.Optional(
    Type.Array(Type.String(), {
      maxItems: MAX_REJECTED_LISTED,
      description: `Resources a NACKed response carried that the proxy refused and still does not hold as sent (those its error names, else all it carried); the first ${MAX_REJECTED_LISTED} by name`,
    }),
  ),
});
export type TypeSync = Static<typeof TypeSync>;

export const Proxy = Type.Object(
  {
    nodeId: Type.String(),
    nodeCluster: Type.String({ description: 'node.cluster: selects the node group (snapshot) the proxy is served' }),
    metadata: FreeObject,
    metadataOmitted: Type.Optional(
      Type.Boolean({
        description:
          'metadata is left empty: the proxy sent node metadata over server.xds.limits.maxNodeMetadataBytes (not kept), or, listed by another replica than the one it is connected to, over 1 KiB (ask that replica)',
      }),
    ),
    userAgent: Type.String(),
    streamId: Type.Integer(),
    protocol: StringEnum(['sotw', 'delta'] as const),
    service: Type.String({ description: 'The discovery service the stream is on (ADS or a per-type service)' }),
    peer: Type.String(),
    connectedSince: Timestamp,
    types: Type.Object({ CDS: TypeSync, EDS: TypeSync, LDS: TypeSync, RDS: TypeSync }),
    replica: Type.String({ description: 'The fulcrum replica the stream is connected to (with several replicas on etcd, every replica lists every proxy)' }),
  },
  { description: 'One xDS stream of a connected proxy' },
);
export type Proxy = Static<typeof Proxy>;

export const DumpedResource = Type.Object({
  name: Type.String(),
  version: Type.String({ description: 'The version fulcrum serves' }),
  sentVersion: Type.Optional(Type.String({ description: 'The version last sent to this node (when a node is given and it was sent)' })),
  resource: FreeObject,
});

export const DumpedType = Type.Object({
  typeUrl: Type.String(),
  state: Type.Optional(SyncStateSchema),
  sentVersion: Type.Optional(Type.String()),
  ackedVersion: Type.Optional(Type.String()),
  lastNack: Type.Optional(Nack),
  resources: Type.Array(DumpedResource),
});
export type DumpedType = Static<typeof DumpedType>;

export const ConfigDump = Type.Object(
  {
    group: Type.String({ description: 'The node group whose snapshot this is ("*" is the default group)' }),
    snapshotSeq: Type.Integer({ description: 'Increases with every change of this group\'s snapshot' }),
    form: Type.Optional(Type.Literal('grpc', { description: 'Set when the node is a proxyless gRPC client: its assignments give every endpoint a locality of its own (README, "Point an Envoy at it")' })),
    node: Type.Optional(Type.Object({ id: Type.String(), cluster: Type.String() })),
    types: Type.Object({
      CDS: Type.Optional(DumpedType),
      EDS: Type.Optional(DumpedType),
      LDS: Type.Optional(DumpedType),
      RDS: Type.Optional(DumpedType),
    }),
  },
  { description: 'The snapshot a node is served, decoded, grouped by type' },
);
export type ConfigDump = Static<typeof ConfigDump>;
