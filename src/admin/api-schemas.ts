import { Type, type Static, type TObject, type TSchema } from '@sinclair/typebox';
import { SAFETY_DEFAULTS } from '../balancing/engine/types.js';
import { OPERATOR_STATES } from '../catalog/store/records.js';
import { HEALTH_STATUSES, LB_POLICIES } from '../catalog/types.js';
import { ConfigFileSchema } from '../sources/config-schema.js';
import { StringEnum, Timestamp } from './schemas.js';

/**
 * The documents of the admin API's desired-state resources (clusters, endpoints, policies,
 * listeners), shared by the conversions in resources.ts and the route plugins; each plugin keeps
 * its own envelopes (lists, params, statuses) beside its routes.
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
const CfgEjection = CfgCluster.properties.ejection;

export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:/-]*$';
export const ResourceName = Type.String({ minLength: 1, maxLength: 200, pattern: NAME_PATTERN, description: 'A cluster or listener name' });

export const Owner = StringEnum(['file', 'api', 'kubernetes'] as const, {
  description: 'The source that owns the resource; only it may change it (file: edit the config file)',
});
export const OperatorState = StringEnum(OPERATOR_STATES, {
  description: 'Operator intent: active (served as declared), draining (served DRAINING: no new requests), disabled (not served)',
});
const Health = StringEnum(HEALTH_STATUSES);
const LbPolicy = StringEnum(LB_POLICIES);

const readOnly = (description: string) => ({ description: `${description} (read-only: ignored on input)`, readOnly: true });
export const Meta = {
  owner: Owner,
  revision: Type.Integer({ minimum: 1, description: 'Store revision of the last change; the ETag is this number in quotes' }),
  updatedAt: Timestamp,
};
const MetaIn = {
  owner: Type.Optional(Type.String(readOnly('owner'))),
  revision: Type.Optional(Type.Integer(readOnly('revision'))),
  updatedAt: Type.Optional(Type.String(readOnly('updatedAt'))),
};

/**
 * An IP address, as the server requires of endpoints and socket listeners (Envoy does not resolve
 * EDS hostnames); the config file's schema only says "a string", its parser checks the rest.
 */
export const IpAddress = (description: string) =>
  Type.Union([Type.String({ format: 'ipv4' }), Type.String({ format: 'ipv6', maxLength: 64 })], { description });

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

const EndpointAddress = IpAddress('An IP address (Envoy does not resolve EDS hostnames)');
const endpointInFields = {
  ...CfgEndpoint.properties,
  address: EndpointAddress,
  state: Type.Optional(OperatorState),
  ...MetaIn,
  effectiveWeight: Type.Optional(Type.Number(readOnly('effectiveWeight'))),
  publishedHealth: Type.Optional(Type.String(readOnly('publishedHealth'))),
};

/** Request body of PUT .../endpoints/{address}/{port}: address and port come from the path. */
export const EndpointEntryIn = Type.Object(
  { ...endpointInFields, address: Type.Optional(EndpointAddress), port: Type.Optional(CfgEndpoint.properties.port) },
  { additionalProperties: false, title: 'EndpointInput', description: 'A config-file endpoint entry; address and port default to (and must equal) the path\'s' },
);
export type EndpointEntryIn = Static<typeof EndpointEntryIn>;

/** Every endpoint in a cluster PUT: a config-file endpoint entry, address and port required. */
export const ClusterEndpointIn = Type.Object(endpointInFields, { additionalProperties: false, title: 'ClusterEndpointInput' });
export type ClusterEndpointIn = Static<typeof ClusterEndpointIn>;

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
      Type.Array(ClusterEndpointIn, { maxItems: 100_000, description: 'Replaces the cluster\'s endpoints; omitted, the endpoints are left as they are' }),
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
    slowStart: clusterSettings.slowStart,
    ringHash: clusterSettings.ringHash,
    maglev: clusterSettings.maglev,
    ...protectionSettings,
    weighting: CfgWeighting,
    safety: Type.Object(CfgSafety.properties, { description: 'This cluster\'s overrides of the engine\'s safety settings' }),
    ejection: Type.Object(CfgEjection.properties, { description: 'This cluster\'s overrides of the fleet outlier detector\'s settings' }),
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
    const inner = (prop as TSchema).type === 'object' && (prop as TObject).properties ? mergePatchOf(prop as TObject) : strip(prop);
    props[key] = Type.Optional(orNull(inner));
  }
  return Type.Object(props, { additionalProperties: false, ...options });
}

/**
 * `schema` or null. OpenAPI 3.0's `nullable` (which Ajv knows) where the schema has one type: an
 * `anyOf` with null made Ajv write twice the code (ClusterPatch 265 → 138 KiB, its first compile
 * 341 → 143 ms) and its errors say each branch. An enum lists null too (OpenAPI 3.0.3, and Ajv
 * checks `enum` whatever `nullable` says). A union (a setpoint, an IP address) keeps the anyOf.
 */
function orNull(schema: TSchema): TSchema {
  if (typeof schema.type !== 'string') return Type.Union([Type.Unsafe(schema), Type.Null()]);
  const values: unknown = schema.enum;
  return Type.Unsafe({ ...schema, nullable: true, ...(Array.isArray(values) ? { enum: [...values, null] } : {}) });
}

/** A schema without TypeBox's Optional marker (so it can be a union member). */
function strip(schema: TSchema): TSchema {
  return JSON.parse(JSON.stringify(schema)) as TSchema;
}

export const PolicyPatch = mergePatchOf(
  Type.Object({
    lbPolicy: clusterSettings.lbPolicy,
    leastRequest: clusterSettings.leastRequest,
    slowStart: clusterSettings.slowStart,
    ringHash: clusterSettings.ringHash,
    maglev: clusterSettings.maglev,
    ...protectionSettings,
    weighting: CfgWeighting,
    safety: CfgSafety,
    ejection: CfgEjection,
  }),
  {
    title: 'PolicyPatch',
    description:
      'A JSON merge patch (RFC 7396) of the cluster\'s policy fields: objects merge, null removes a field (e.g. a safety override). ' +
      'Changing lbPolicy drops the old policy\'s block (ringHash, maglev, leastRequest; slowStart unless the new policy is ROUND_ROBIN or LEAST_REQUEST) unless the patch sets it.',
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
    missingClusters: Type.Optional(
      Type.Array(Type.String(), {
        description: 'Clusters its routes name that do not exist now, removed by their owner (a config reload, Kubernetes discovery): proxies answer those routes 503. Absent when there are none.',
      }),
    ),
    ...Meta,
  },
  { title: 'Listener' },
);
export type ListenerView = Static<typeof ListenerView>;

export const ListenerIn = Type.Object(
  { ...CfgListener.properties, name: Type.Optional(ResourceName), missingClusters: Type.Optional(Type.Array(Type.String(), readOnly('missingClusters'))), ...MetaIn },
  {
    additionalProperties: false,
    title: 'ListenerInput',
    description: 'A config-file listener entry; name defaults to (and must equal) the path\'s. Every route must name an existing cluster.',
  },
);
export type ListenerIn = Static<typeof ListenerIn>;

// ── merge patches (PATCH): change some fields, keep the others ───────────────────────────────────

const PATCH_NOTE = 'A JSON merge patch (RFC 7396): the fields it names change, the others keep their value; objects merge, null removes a field, arrays are replaced whole.';

export const ClusterPatch = mergePatchOf(ClusterIn, { title: 'ClusterPatch', description: `${PATCH_NOTE} \`endpoints\` replaces the endpoint list; to change one endpoint PATCH it.` });
export const EndpointPatch = mergePatchOf(EndpointEntryIn, { title: 'EndpointPatch', description: `${PATCH_NOTE} E.g. {"weight": 5} keeps the locality and priority.` });
export const ListenerPatch = mergePatchOf(ListenerIn, { title: 'ListenerPatch', description: `${PATCH_NOTE} \`routes\` replaces the route list.` });
