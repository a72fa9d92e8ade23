import { Type, type Static, type TObject, type TSchema } from '@sinclair/typebox';
import { SAFETY_DEFAULTS, SAFETY_RULES } from '../balancing/engine/types.js';
import { OPERATOR_STATES } from '../catalog/store/records.js';
import { HEALTH_STATUSES, LB_POLICIES } from '../catalog/types.js';
import { ConfigFileSchema } from '../sources/config-schema.js';
import { ErrorResponse, StringEnum } from './schemas.js';

/**
 * Request and response shapes of the admin API's resources (clusters, endpoints, policies,
 * listeners, weights, audit).
 *
 * One format for operators: a cluster or listener in the API is the same JSON as an entry of the
 * config file's `clusters:` / `listeners:` list (the schemas below are built from the config file's
 * own schema), plus read-only metadata (`owner`, `revision`, `updatedAt`) on the way out. A GET
 * body can be edited and PUT back as it is: the read-only fields are accepted and ignored.
 */

const CfgCluster = ConfigFileSchema.properties.clusters.items;
const CfgEndpoint = CfgCluster.properties.endpoints.items;
const CfgListener = ConfigFileSchema.properties.listeners.items;
const CfgWeighting = CfgCluster.properties.weighting;
const CfgSafety = CfgCluster.properties.safety;

export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:/-]*$';
export const ResourceName = Type.String({ minLength: 1, maxLength: 200, pattern: NAME_PATTERN, description: 'A cluster or listener name' });

const Timestamp = Type.String({ format: 'date-time' });
const Owner = StringEnum(['file', 'api', 'kubernetes'] as const, {
  description: 'The source that owns the resource; only it may change it (file: edit the config file)',
});
export const OperatorState = StringEnum(OPERATOR_STATES, {
  description: 'Operator intent: active (served as declared), draining (served DRAINING: no new requests), disabled (not served)',
});
const Health = StringEnum(HEALTH_STATUSES);
const LbPolicy = StringEnum(LB_POLICIES);

const readOnly = (description: string) => ({ description: `${description} (read-only: ignored on input)`, readOnly: true });
const Meta = {
  owner: Owner,
  revision: Type.Integer({ minimum: 1, description: 'Store revision of the last change; the ETag is this number in quotes' }),
  updatedAt: Timestamp,
};
const MetaIn = {
  owner: Type.Optional(Type.String(readOnly('owner'))),
  revision: Type.Optional(Type.Integer(readOnly('revision'))),
  updatedAt: Type.Optional(Type.String(readOnly('updatedAt'))),
};

// ── endpoints ───────────────────────────────────────────────────────────────────────────────────

const Locality = Type.Object({ region: Type.String(), zone: Type.String(), subZone: Type.String() });

/** An endpoint as the config file writes it, plus its operator state. */
export const EndpointEntry = Type.Object(
  {
    address: Type.String({ description: 'An IP address (Envoy does not resolve EDS hostnames)' }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    weight: Type.Integer({ minimum: 1, description: 'Static (operator) weight' }),
    priority: Type.Integer({ minimum: 0 }),
    health: Health,
    locality: Locality,
    state: OperatorState,
  },
  { title: 'Endpoint' },
);
export type EndpointEntry = Static<typeof EndpointEntry>;

/** Request body of PUT .../endpoints/{address}/{port}, and of every endpoint in a cluster PUT. */
export const EndpointEntryIn = Type.Object(
  {
    ...CfgEndpoint.properties,
    address: Type.Optional(CfgEndpoint.properties.address),
    port: Type.Optional(CfgEndpoint.properties.port),
    state: Type.Optional(OperatorState),
    ...MetaIn,
    effectiveWeight: Type.Optional(Type.Number(readOnly('effectiveWeight'))),
    publishedHealth: Type.Optional(Type.String(readOnly('publishedHealth'))),
  },
  { additionalProperties: false, title: 'EndpointInput', description: 'A config-file endpoint entry; address and port default to (and must equal) the path\'s' },
);
export type EndpointEntryIn = Static<typeof EndpointEntryIn>;

export const EndpointStatus = Type.Object(
  {
    ...EndpointEntry.properties,
    revision: Meta.revision,
    updatedAt: Timestamp,
    effectiveWeight: Type.Optional(
      Type.Number({ description: 'The weight proxies are sent now: the weight engine\'s when it overrides, else the static weight. Absent when disabled.' }),
    ),
    publishedHealth: Type.Optional(
      Type.String({ description: 'The health proxies are sent now (DRAINING when draining, UNHEALTHY when the engine took it out). Absent when disabled.' }),
    ),
  },
  { title: 'EndpointStatus' },
);
export type EndpointStatus = Static<typeof EndpointStatus>;

export const EndpointList = Type.Object({
  cluster: Type.String(),
  revision: Type.Integer({ description: 'The cluster\'s revision (it covers its endpoints)' }),
  count: Type.Integer(),
  endpoints: Type.Array(EndpointStatus),
});

export const EndpointParams = Type.Object(
  {
    name: ResourceName,
    address: Type.String({ minLength: 2, maxLength: 64, description: 'The endpoint\'s IP address (IPv6 unbracketed; percent-encode it if you like)' }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
  },
  { additionalProperties: false },
);

// ── clusters ────────────────────────────────────────────────────────────────────────────────────

const { endpoints: _cfgEndpoints, name: _cfgName, ...clusterSettings } = CfgCluster.properties;

/** A cluster as the config file writes it (defaults filled in), plus metadata. */
export const ClusterView = Type.Object(
  {
    name: Type.String(),
    ...clusterSettings,
    lbPolicy: LbPolicy,
    connectTimeoutMs: Type.Integer(),
    http2: Type.Boolean(),
    weighting: CfgWeighting,
    autoReason: Type.Optional(Type.String({ description: 'Why fulcrum chose the LB policy and weighting (weighting.policy auto, resolved when written)' })),
    endpoints: Type.Array(EndpointEntry),
    ...Meta,
  },
  { title: 'Cluster' },
);
export type ClusterView = Static<typeof ClusterView>;

export const ClusterIn = Type.Object(
  {
    ...CfgCluster.properties,
    name: Type.Optional(ResourceName),
    endpoints: Type.Optional(
      Type.Array(EndpointEntryIn, { maxItems: 100_000, description: 'Replaces the cluster\'s endpoints; omitted, the endpoints are left as they are' }),
    ),
    autoReason: Type.Optional(Type.String(readOnly('autoReason'))),
    ...MetaIn,
  },
  {
    additionalProperties: false,
    title: 'ClusterInput',
    description: 'A config-file cluster entry. name defaults to (and must equal) the path\'s.',
  },
);
export type ClusterIn = Static<typeof ClusterIn>;

export const ClusterList = Type.Object({ count: Type.Integer(), clusters: Type.Array(ClusterView) });
export const NameParams = Type.Object({ name: ResourceName }, { additionalProperties: false });

export const Deleted = Type.Object(
  {
    deleted: Type.String({ description: 'What was deleted' }),
    revision: Type.Integer({ description: 'The store revision of the deletion' }),
  },
  { title: 'Deleted' },
);

/** Envoy-side protection (absent: fulcrum's defaults) and the client-side WRR settings block. */
const protectionSettings = {
  outlierDetection: clusterSettings.outlierDetection,
  retryPolicy: clusterSettings.retryPolicy,
  healthCheck: clusterSettings.healthCheck,
  clientSideWeightedRoundRobin: clusterSettings.clientSideWeightedRoundRobin,
};

// ── policy ──────────────────────────────────────────────────────────────────────────────────────

export const PolicyView = Type.Object(
  {
    cluster: Type.String(),
    lbPolicy: LbPolicy,
    leastRequest: clusterSettings.leastRequest,
    ringHash: clusterSettings.ringHash,
    maglev: clusterSettings.maglev,
    ...protectionSettings,
    weighting: CfgWeighting,
    safety: Type.Object(CfgSafety.properties, { description: 'This cluster\'s overrides of the engine\'s safety settings' }),
    safetyDefaults: Type.Object(
      Object.fromEntries(Object.keys(SAFETY_DEFAULTS).map((k) => [k, Type.Number()])),
      { description: 'The built-in defaults an absent override falls back to (fulcrum-wide settings may differ)' },
    ),
    autoReason: Type.Optional(Type.String()),
    ...Meta,
  },
  { title: 'Policy' },
);
export type PolicyView = Static<typeof PolicyView>;

/**
 * A JSON merge patch (RFC 7396) of `schema`: every property optional and nullable (null removes
 * it), nested objects patched the same way.
 */
function mergePatchOf(schema: TObject, options: { title?: string; description?: string } = {}): TObject {
  const props: Record<string, TSchema> = {};
  for (const [key, prop] of Object.entries(schema.properties)) {
    const inner = (prop as TSchema).type === 'object' && (prop as TObject).properties ? mergePatchOf(prop as TObject) : Type.Unsafe(strip(prop));
    props[key] = Type.Optional(Type.Union([inner, Type.Null()]));
  }
  return Type.Object(props, { additionalProperties: false, ...options });
}

/** A schema without TypeBox's Optional marker (so it can be a union member). */
function strip(schema: TSchema): TSchema {
  return JSON.parse(JSON.stringify(schema)) as TSchema;
}

export const PolicyPatch = mergePatchOf(
  Type.Object({
    lbPolicy: clusterSettings.lbPolicy,
    leastRequest: clusterSettings.leastRequest,
    ringHash: clusterSettings.ringHash,
    maglev: clusterSettings.maglev,
    ...protectionSettings,
    weighting: CfgWeighting,
    safety: CfgSafety,
  }),
  {
    title: 'PolicyPatch',
    description:
      'A JSON merge patch (RFC 7396) of the cluster\'s policy fields: objects merge, null removes a field (e.g. a safety override). ' +
      'Changing lbPolicy drops the old policy\'s block (ringHash, maglev, leastRequest) unless the patch sets it.',
  },
);

// ── listeners ───────────────────────────────────────────────────────────────────────────────────

const CfgRoute = CfgListener.properties.routes.items;
export const RouteEntry = Type.Object(
  { ...CfgRoute.properties, domain: Type.String(), prefix: Type.String() },
  { title: 'Route' },
);

export const ListenerView = Type.Object(
  {
    ...CfgListener.properties,
    name: Type.String(),
    routes: Type.Array(RouteEntry),
    ...Meta,
  },
  { title: 'Listener' },
);
export type ListenerView = Static<typeof ListenerView>;

export const ListenerIn = Type.Object(
  { ...CfgListener.properties, name: Type.Optional(ResourceName), ...MetaIn },
  {
    additionalProperties: false,
    title: 'ListenerInput',
    description: 'A config-file listener entry; name defaults to (and must equal) the path\'s. Every route must name an existing cluster.',
  },
);
export type ListenerIn = Static<typeof ListenerIn>;

export const ListenerList = Type.Object({ count: Type.Integer(), listeners: Type.Array(ListenerView) });

// ── weights ─────────────────────────────────────────────────────────────────────────────────────

const num = (description?: string) => Type.Optional(Type.Number(description ? { description } : {}));

export const ExplanationSchema = Type.Object(
  {
    policy: Type.String(),
    health: Type.String({ description: 'HEALTHY or UNHEALTHY, as published' }),
    healthState: Type.String(),
    freshness: StringEnum(['fresh', 'stale', 'expired', 'none'] as const),
    sampleAgeMs: num(),
    inputs: Type.Object({
      utilization: num(),
      cpu: num(),
      inflight: num(),
      latencyMs: num(),
      errors: num(),
      rps: num(),
      probeLatencyMs: num(),
    }),
    pid: Type.Optional(
      Type.Object({
        setpoint: num(),
        measurement: num(),
        error: num(),
        p: num(),
        i: num(),
        d: num(),
        output: num('Clamped controller output'),
        multiplier: num('exp(k · output): the factor applied to the weight'),
        updated: Type.Boolean({ description: 'False when this tick reused the previous step (no new sample)' }),
      }),
    ),
    ewma: Type.Optional(
      Type.Object({ estimateMs: num(), bonusMs: num(), samples: num(), weight: num() }),
    ),
    staticWeight: num(),
    fairWeight: num('Static weight × cluster scale: the decay target and the unit of floor and ceiling'),
    previousWeight: num(),
    rawWeight: num('What the controller asked for, before any safety rule'),
    weight: num('After step limit, floor, ceiling and freshness'),
    publishedWeight: num(),
    integerWeight: num(),
    rules: Type.Array(StringEnum(SAFETY_RULES), { description: 'Every safety rule that changed or held the weight' }),
    notes: Type.Array(Type.String()),
  },
  { title: 'WeightExplanation', description: 'The inputs, setpoint, error and P/I/D terms behind one weight; a number is absent when it is not finite' },
);

export const WeightsView = Type.Object(
  {
    cluster: Type.String(),
    computed: Type.Boolean({ description: 'False until the weight engine has ticked for this cluster (weights are then the static ones)' }),
    policy: Type.Optional(Type.String()),
    failStatic: Type.Boolean({ description: 'Every eligible endpoint would be out: all published HEALTHY at static weights' }),
    setpoint: num('The PID setpoint used in the last tick'),
    endpoints: Type.Array(
      Type.Object({
        endpoint: Type.String({ description: 'address:port' }),
        staticWeight: num(),
        weight: num('The weight proxies are sent'),
        health: Type.Optional(Type.String()),
        explanation: Type.Optional(ExplanationSchema),
      }),
    ),
  },
  { title: 'Weights' },
);
export type WeightsView = Static<typeof WeightsView>;
export const WeightsParams = Type.Object({ cluster: ResourceName }, { additionalProperties: false });

// ── audit ───────────────────────────────────────────────────────────────────────────────────────

export const AuditQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'Entries per page (newest first)' })),
    before: Type.Optional(Type.Integer({ minimum: 1, description: 'Only entries older than this id (the previous page\'s nextBefore)' })),
  },
  { additionalProperties: false },
);

export const AuditEntrySchema = Type.Object(
  {
    id: Type.Integer(),
    at: Timestamp,
    actor: Type.String(),
    action: StringEnum(['create', 'update', 'delete', 'set-state'] as const),
    kind: StringEnum(['cluster', 'endpoint', 'listener', 'node-group'] as const),
    name: Type.String({ description: 'Endpoints are named <cluster>/<address>:<port>' }),
    revision: Type.Integer(),
    before: Type.Any({ description: 'The record before the change (null on create)' }),
    after: Type.Any({ description: 'The record after the change (null on delete)' }),
  },
  { title: 'AuditEntry' },
);

export const AuditPage = Type.Object({
  entries: Type.Array(AuditEntrySchema),
  nextBefore: Type.Optional(Type.Integer({ description: 'Pass as before= for the next (older) page; absent on the last page' })),
});

// ── errors ──────────────────────────────────────────────────────────────────────────────────────

const errorOf = (description: string) => Type.Object(ErrorResponse.properties, { title: 'Error', description });
/** Extra documented statuses of write routes (the catch-all 4xx stays). */
export const WRITE_ERRORS = {
  404: errorOf('Unknown cluster, endpoint or listener'),
  409: errorOf('Conflict: owned by another source (code OWNED_ELSEWHERE), still referenced (REFERENCED), or address in use (ADDRESS_IN_USE)'),
  412: errorOf('If-Match / If-None-Match precondition failed (code REVISION_MISMATCH); nothing was written'),
} as const;
export const AUTH_ERRORS = {
  401: errorOf('Missing or unknown bearer token (WWW-Authenticate: Bearer)'),
  403: errorOf('The token\'s role does not allow this (a read-only token on a write)'),
} as const;
