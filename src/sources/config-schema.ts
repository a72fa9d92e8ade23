import { Type, type Static } from '@sinclair/typebox';
import { UTILIZATION_METRICS } from '../catalog/policy.js';
import { HEALTH_STATUSES, LB_POLICIES } from '../catalog/types.js';
import { MAGLEV_MAX_TABLE_SIZE, MAX_DURATION_SECONDS, RING_HASH_MAX_SIZE } from './envoy-rules.js';
import { protectionProperties } from './protection-schema.js';
import { xdsSecurityProperties } from './xds-security-schema.js';
import { StoreSchema } from './store-schema.js';
import { StringEnum } from './string-enum.js';

/**
 * The config file's shape, as JSON Schema (TypeBox), so validation errors carry a path.
 * Defaults live in config-file.ts, not here: the schema only says what is allowed.
 */

const Name = Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9][A-Za-z0-9._:/-]*$' });
const Port = Type.Integer({ minimum: 1, maximum: 65535 });
const Address = Type.String({ minLength: 1, maxLength: 253 });
const LocalitySchema = Type.Object(
  {
    region: Type.Optional(Type.String({ maxLength: 128 })),
    zone: Type.Optional(Type.String({ maxLength: 128 })),
    subZone: Type.Optional(Type.String({ maxLength: 128 })),
  },
  { additionalProperties: false },
);

const EndpointSchema = Type.Object(
  {
    address: Address,
    port: Port,
    weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 127 })),
    health: Type.Optional(StringEnum(HEALTH_STATUSES)),
    locality: Type.Optional(LocalitySchema),
  },
  { additionalProperties: false },
);

const Fraction = Type.Number({ minimum: 0, maximum: 1 });

/** What errorPenalty does, for the admin API's OpenAPI (its cluster documents are this schema) as for the file. */
const ERROR_PENALTY_DESCRIPTION =
  'How hard errors push an endpoint down under pid, ewma and blend (default 1; r is its error rate). ' +
  "pid adds the penalty 4 × errorPenalty × r to its utilization, fading as the mean reported utilization of the endpoints not failing goes from 0.75 to 0.9; " +
  'ewma multiplies the weight by (1−r)^(4 × errorPenalty). 0 turns that penalty off, not the rest: ' +
  "pid always counts an endpoint's failures as busy as its answers (utilization × r/(1−r), so fast failures do not look idle) " +
  'and never lets an endpoint failing at least 5% gain share; an endpoint without fresh steering data that fails more than 1 point ' +
  "above the cluster's mean rate never rises; the ejection rules judge errors whatever errorPenalty is.";

export const WeightingSchema = Type.Object(
  {
    policy: StringEnum(['static', 'pid', 'ewma', 'blend', 'auto'] as const),
    // pid / blend
    setpoint: Type.Optional(Type.Union([Type.Literal('mean'), Fraction])),
    metric: Type.Optional(StringEnum(UTILIZATION_METRICS)),
    // pid / ewma / blend (AdaptiveSettings.errorPenalty says what it does)
    errorPenalty: Type.Optional(Type.Number({ minimum: 0, maximum: 10, description: ERROR_PENALTY_DESCRIPTION })),
    gains: Type.Optional(
      Type.Object(
        { kp: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })), ki: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })), kd: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })) },
        { additionalProperties: false },
      ),
    ),
    // ewma / blend
    decay: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    explorationBonus: Type.Optional(Type.Number({ minimum: 0, maximum: 1_000_000 })),
    // blend
    blend: Type.Optional(
      Type.Object({ pid: Type.Optional(Fraction), ewma: Type.Optional(Fraction), static: Type.Optional(Fraction) }, { additionalProperties: false }),
    ),
    // auto: the traits the operator declares; fulcrum picks the LB policy and the weighting
    traits: Type.Optional(
      Type.Object(
        {
          sessionAffinity: Type.Optional(
            Type.Object({ header: Type.Optional(Type.String({ minLength: 1 })), cookie: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: false }),
          ),
          heterogeneousCapacity: Type.Optional(Type.Boolean()),
          longLivedConnections: Type.Optional(Type.Boolean()),
          latencySensitive: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

/** The longest timer a policy may set (a week, in ms). */
const WEEK_MS = 604_800_000;

const SafetySchema = Type.Object(
  {
    tickMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
    maxStepRatio: Type.Optional(Type.Number({ minimum: 1, maximum: 100 })),
    minWeightRatio: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    maxWeightRatio: Type.Optional(Type.Number({ minimum: 1, maximum: 10_000 })),
    hysteresis: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    // Bounded: an unbounded integer (1e35 is one) comes back as 1e+35, which clients read as a float.
    staleAfterMs: Type.Optional(Type.Integer({ minimum: 0, maximum: WEEK_MS })),
    decayAfterMs: Type.Optional(Type.Integer({ minimum: 0, maximum: WEEK_MS })),
    decayHalfLifeMs: Type.Optional(Type.Integer({ minimum: 1, maximum: WEEK_MS })),
    deadband: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 1 })),
    smoothing: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    lowLoadHold: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 1 })),
    newcomerShare: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
  },
  { additionalProperties: false },
);

// fulcrum's own fleet-wide outlier detector (see EjectionSettings in the engine's types).
const EjectionSchema = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    minRequests: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000 })),
    allFailingRatio: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    failureRatio: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    successRateStdevFactor: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 100 })),
    minGap: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    maxEjectedRatio: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    baseEjectionMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 86_400_000 })),
    maxEjectionMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 86_400_000 })),
    errorWindowMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000 })),
  },
  { additionalProperties: false },
);

const ProbeSchema = Type.Object(
  {
    kind: StringEnum(['http', 'tcp', 'grpc'] as const),
    // Sent by Node's HTTP client, which refuses a request line with a space, a control character
    // or anything past Latin-1 (ERR_UNESCAPED_CHARACTERS): such a path failed every probe.
    path: Type.Optional(
      Type.String({
        maxLength: 1024,
        pattern: '^[\\x21-\\x7e]*$',
        description: 'http: the path to GET, starting with "/"; grpc: the service name. Printable ASCII without spaces (percent-encode the rest)',
      }),
    ),
    intervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000 })),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 600_000 })),
  },
  { additionalProperties: false },
);

// Envoy's slow_start_config (only with ROUND_ROBIN or LEAST_REQUEST: config-file.ts). Envoy takes
// any Duration and, for a non-positive aggression, logs and uses 1: refused here instead. The upper
// bounds are sanity limits (a day's window; aggression 100 is already a near-step ramp).
export const SlowStartSchema = Type.Object(
  {
    windowMs: Type.Integer({ minimum: 1, maximum: 86_400_000, description: 'How long a new host ramps up (Envoy: slow_start_window)' }),
    aggression: Type.Optional(
      Type.Number({ exclusiveMinimum: 0, maximum: 100, description: 'Ramp shape: weight × (t / window)^(1 / aggression); 1 (Envoy\'s default) is linear' }),
    ),
    minWeightPercent: Type.Optional(
      Type.Number({ minimum: 0, maximum: 100, description: 'The least share of its weight a new host gets (Envoy\'s default: 10)' }),
    ),
  },
  { additionalProperties: false },
);

export const ClusterSchema = Type.Object(
  {
    name: Name,
    lbPolicy: Type.Optional(StringEnum(LB_POLICIES)),
    leastRequest: Type.Optional(
      Type.Object({ choiceCount: Type.Integer({ minimum: 2, maximum: 100 }) }, { additionalProperties: false }),
    ),
    slowStart: Type.Optional(SlowStartSchema),
    ringHash: Type.Optional(
      Type.Object(
        {
          virtualNodesPerHost: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
          minimumRingSize: Type.Optional(Type.Integer({ minimum: 1, maximum: RING_HASH_MAX_SIZE })),
          maximumRingSize: Type.Optional(Type.Integer({ minimum: 1, maximum: RING_HASH_MAX_SIZE })),
          hashFunction: Type.Optional(StringEnum(['XX_HASH', 'MURMUR_HASH_2'] as const)),
        },
        { additionalProperties: false },
      ),
    ),
    maglev: Type.Optional(
      // Envoy also requires a prime (checked in envoy-rules.ts).
      Type.Object({ tableSize: Type.Integer({ minimum: 2, maximum: MAGLEV_MAX_TABLE_SIZE }) }, { additionalProperties: false }),
    ),
    connectTimeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 600_000 })),
    http2: Type.Optional(Type.Boolean()),
    endpoints: Type.Optional(Type.Array(EndpointSchema, { maxItems: 100_000 })),
    weighting: Type.Optional(WeightingSchema),
    safety: Type.Optional(SafetySchema),
    ejection: Type.Optional(EjectionSchema),
    probe: Type.Optional(ProbeSchema),
    localityWeighted: Type.Optional(Type.Boolean()),
    // Envoy-side protection and client-side WRR settings (see protection-schema.ts).
    ...protectionProperties,
  },
  { additionalProperties: false },
);

// Exactly one of header or cookie. Not a union: a union's error names the union, not the field
// at fault inside the branch that was meant.
const HashPolicySchema = Type.Object(
  {
    header: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    cookie: Type.Optional(
      Type.Object(
        // A ttl becomes a google.protobuf.Duration, which Envoy bounds (envoy-rules.ts).
        { name: Type.String({ minLength: 1, maxLength: 256 }), ttlSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_DURATION_SECONDS })) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false, minProperties: 1, maxProperties: 1 },
);

const RouteSchema = Type.Object(
  {
    domain: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
    prefix: Type.Optional(Type.String({ pattern: '^/', maxLength: 1024 })),
    cluster: Name,
    hashPolicy: Type.Optional(HashPolicySchema),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000 })),
  },
  { additionalProperties: false },
);

const ListenerSchema = Type.Object(
  {
    name: Name,
    apiListener: Type.Optional(Type.Boolean()),
    address: Type.Optional(Address),
    port: Type.Optional(Port),
    routes: Type.Array(RouteSchema, { maxItems: 10_000 }),
  },
  { additionalProperties: false },
);

const NodeGroupSchema = Type.Object(
  {
    nodeCluster: Type.String({ minLength: 1 }),
    listeners: Type.Optional(Type.Array(Name)),
    clusters: Type.Optional(Type.Array(Name)),
  },
  { additionalProperties: false },
);

const Bound = (minimum: number, maximum: number) => Type.Optional(Type.Integer({ minimum, maximum }));

// `server.xds.limits`: memory bounds against hostile or broken clients (src/xds/limits.ts).
const XdsLimitsSchema = Type.Object(
  {
    maxRequestBytes: Bound(65_536, 67_108_864),
    maxResponseBytes: Bound(65_536, 1_073_741_824),
    maxNameBytes: Bound(64, 65_536),
    maxNodeMetadataBytes: Bound(0, 4_194_304),
    maxRequestNameBytes: Bound(1_024, 67_108_864),
    maxSubscriptionNameBytes: Bound(1_024, 1_073_741_824),
    maxSubscriptionNameBytesPerPeer: Bound(1_024, 17_179_869_184),
    maxSubscriptionNameBytesTotal: Bound(1_024, 17_179_869_184),
    maxConcurrentStreamsPerConnection: Bound(1, 1_000_000),
    maxConnectionsPerPeer: Bound(1, 10_000_000),
    maxConnections: Bound(1, 10_000_000),
    maxStreamsPerPeer: Bound(1, 10_000_000),
    maxStreams: Bound(1, 10_000_000),
    ipv6PeerPrefixLength: Bound(32, 128),
    handshakeTimeoutMs: Bound(100, 600_000),
    idleConnectionMs: Bound(1_000, 2_147_483_647),
    maxQueuedBytesPerStream: Bound(1, 1_073_741_824),
    reportSamplesPerSecondPerPeer: Bound(1, 100_000_000),
    // At least one full batch (src/signals/report-validation.ts, maxBatch), or a full batch could never pass.
    reportBurstSamplesPerPeer: Bound(10_000, 1_000_000_000),
    loadReportBurst: Bound(1, 1_000),
  },
  { additionalProperties: false },
);

const ServerSchema = Type.Object(
  {
    xds: Type.Optional(
      Type.Object(
        {
          address: Type.Optional(Address),
          port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
          maxMessageBytes: Type.Optional(Type.Integer({ minimum: 65_536, maximum: 1_073_741_824 })),
          keepaliveTimeMs: Type.Optional(Type.Integer({ minimum: 1_000, maximum: 86_400_000 })),
          keepaliveTimeoutMs: Type.Optional(Type.Integer({ minimum: 1_000, maximum: 86_400_000 })),
          maxResourceNames: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
          debounceQuietMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000 })),
          debounceMaxMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
          // TLS/mTLS and client certificate identities (see xds-security-schema.ts).
          ...xdsSecurityProperties,
          listenBacklog: Bound(1, 65_535),
          limits: Type.Optional(XdsLimitsSchema),
        },
        { additionalProperties: false },
      ),
    ),
    // Envoy load reports (LRS): clusters carry lrs_server and the ORCA metrics to report.
    loadReporting: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean()),
          intervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
          maxIntervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
          entriesPerSecond: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000_000 })),
          endpointMetrics: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 50 })),
          // Load metric → sample field (src/signals/lrs-conversion.ts); the names are also asked of Envoy.
          metricFields: Type.Optional(
            Type.Record(
              Type.String({ pattern: '^(cpu_utilization|mem_utilization|application_utilization|eps|rps_fractional|named_metrics\\.[A-Za-z0-9_.:-]{1,180})$' }),
              StringEnum(['cpu', 'memory', 'latencyMs', 'errors', 'rps']),
              { additionalProperties: false, maxProperties: 50 },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    engine: Type.Optional(
      Type.Object(
        {
          tickMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
          // The probe health gate: N failures out, M successes back, after a backoff that doubles per relapse.
          health: Type.Optional(
            Type.Object(
              {
                failureThreshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
                successThreshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
                baseBackoffMs: Type.Optional(Type.Integer({ minimum: 0, maximum: WEEK_MS })),
                maxBackoffMs: Type.Optional(Type.Integer({ minimum: 0, maximum: WEEK_MS })),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    // The admin HTTP API (health, readiness, metrics, proxy status, resources); bearer tokens come from the environment.
    admin: Type.Optional(
      Type.Object(
        {
          address: Type.Optional(Address),
          port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
          // Serve the admin API over HTTPS: PEM files, read once at start (a relative path is from the working directory).
          // Bearer tokens from files (e.g. a mounted Secret), one or more per file, merged with
          // FULCRUM_ADMIN_TOKEN / FULCRUM_READ_TOKEN / FULCRUM_REPORT_TOKEN. Never the tokens themselves.
          tokenFiles: Type.Optional(
            Type.Object(
              {
                admin: Type.Optional(Type.String({ minLength: 1 })),
                read: Type.Optional(Type.String({ minLength: 1 })),
                report: Type.Optional(Type.String({ minLength: 1 })),
                proxy: Type.Optional(Type.String({ minLength: 1 })),
              },
              { additionalProperties: false },
            ),
          ),
          tls: Type.Optional(
            Type.Object(
              {
                certFile: Type.String({ minLength: 1 }),
                keyFile: Type.String({ minLength: 1 }),
              },
              { additionalProperties: false },
            ),
          ),
          // Open connections at most (idle keep-alive ones too), default 1024; one more is closed at accept.
          maxConnections: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
          // Of those, from one peer (IP address; IPv6 grouped by server.xds.limits.ipv6PeerPrefixLength), default 256.
          maxConnectionsPerPeer: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
          // GET /metrics: at most this many series per per-endpoint gauge (whole clusters), default 1000; 0: none.
          metrics: Type.Optional(
            Type.Object({ maxEndpointSeries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })) }, { additionalProperties: false }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    logLevel: Type.Optional(StringEnum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const)),
  },
  { additionalProperties: false },
);

/** Clusters a config file may define. */
export const MAX_CLUSTERS = 100_000;

export const ConfigFileSchema = Type.Object(
  {
    server: Type.Optional(ServerSchema),
    /** Where desired state lives: sqlite (default, one node) or etcd (several replicas). */
    store: Type.Optional(StoreSchema),
    clusters: Type.Optional(Type.Array(ClusterSchema, { maxItems: MAX_CLUSTERS })),
    listeners: Type.Optional(Type.Array(ListenerSchema, { maxItems: 10_000 })),
    nodeGroups: Type.Optional(Type.Array(NodeGroupSchema)),
    // Replication (issue 9): used when fulcrum runs as one of several replicas on etcd.
    ha: Type.Optional(
      Type.Object(
        {
          /** Unique per replica; default $FULCRUM_REPLICA_ID, else the hostname (the pod name on Kubernetes). */
          replicaId: Type.Optional(Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9._:-]+$' })),
          /** The membership lease: a dead replica's clusters move to others after about this long. */
          leaseTtlSeconds: Type.Optional(Type.Integer({ minimum: 2, maximum: 60 })),
          /** An owner rewrites a cluster's controller state at most this often when its weights hold. */
          stateRefreshMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
          /** A replica rewrites its shared proxy status at most this often when only versions, times or counters moved. */
          proxyStatusRefreshMs: Type.Optional(Type.Integer({ minimum: 1_000, maximum: 600_000 })),
        },
        { additionalProperties: false },
      ),
    ),
    // Services labelled fulcrum.io/balance=true become clusters named <namespace>/<service>:<port>.
    kubernetes: Type.Optional(
      Type.Object(
        {
          enabled: Type.Boolean(),
          /** A kubeconfig file; omitted, the in-cluster service account is used. */
          kubeconfig: Type.Optional(Type.String({ minLength: 1 })),
          context: Type.Optional(Type.String({ minLength: 1 })),
          namespace: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
          nodeTopology: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type ConfigFile = Static<typeof ConfigFileSchema>;
