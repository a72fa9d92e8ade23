import type { EjectionSettings, SafetySettings, WeightingPolicy } from './policy.js';
import type { ClientSideWeightedRoundRobinSpec, HealthCheckSpec, OutlierDetectionSpec, RetryPolicySpec } from './protection.js';

export type { WeightingPolicy };

/**
 * Domain model of the desired state: what the operator wants the fleet to look like.
 * Plain, immutable data: every source (config file, admin API, Kubernetes) produces it,
 * the translator consumes it. Nothing here knows about Envoy's wire format.
 */

/** CLIENT_SIDE_WEIGHTED_ROUND_ROBIN: Envoy weighs hosts itself from their ORCA reports (fulcrum's weights are ignored). */
export const LB_POLICIES = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RING_HASH', 'MAGLEV', 'RANDOM', 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN'] as const;
export type LbPolicy = (typeof LB_POLICIES)[number];

export const HEALTH_STATUSES = ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT', 'DEGRADED'] as const;
export type HealthStatus = (typeof HEALTH_STATUSES)[number];

export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subZone: string;
}

export interface Endpoint {
  readonly address: string;
  readonly port: number;
  readonly locality: Locality;
  /** Lower is preferred; Envoy spills to the next priority only when this one is unhealthy. */
  readonly priority: number;
  /** Static (operator) weight, >= 1. Adaptive weights start from and decay back to it. */
  readonly weight: number;
  readonly health: HealthStatus;
}

export interface LeastRequestConfig {
  readonly choiceCount: number;
}

/**
 * Envoy's slow start (ROUND_ROBIN and LEAST_REQUEST): a host new to the cluster (added after the
 * cluster's first update, or back from failing Envoy's active health checks) has its weight scaled
 * by max(minWeightPercent / 100, (t / window)^(1 / aggression)) for `windowMs` after it joins.
 * Envoy's own defaults when absent: aggression 1 (linear), minWeightPercent 10.
 */
export interface SlowStartConfig {
  readonly windowMs: number;
  readonly aggression?: number;
  readonly minWeightPercent?: number;
}

/** The LB policies Envoy applies slow start under. */
export const SLOW_START_POLICIES: readonly LbPolicy[] = ['ROUND_ROBIN', 'LEAST_REQUEST'];

export interface RingHashConfig {
  /** Virtual nodes per host; the ring size is derived from it and the endpoint count. */
  readonly virtualNodesPerHost: number;
  readonly minimumRingSize?: number;
  readonly maximumRingSize?: number;
  readonly hashFunction: 'XX_HASH' | 'MURMUR_HASH_2';
}

export interface MaglevConfig {
  /** Prime table size; Envoy's default is 65537. */
  readonly tableSize: number;
}

export interface Cluster {
  readonly name: string;
  readonly lbPolicy: LbPolicy;
  readonly leastRequest?: LeastRequestConfig;
  /** Envoy-side ramp of a newcomer's weight (only with SLOW_START_POLICIES). */
  readonly slowStart?: SlowStartConfig;
  readonly ringHash?: RingHashConfig;
  readonly maglev?: MaglevConfig;
  readonly connectTimeoutMs: number;
  /** Serve HTTP/2 to the upstream (required for gRPC backends behind Envoy). */
  readonly http2: boolean;
  readonly endpoints: readonly Endpoint[];
  /** How fulcrum computes endpoint weights: static (the operator's), or adaptive (PID, EWMA, blend). */
  readonly weighting: WeightingPolicy;
  /** Per-cluster overrides of the engine's safety settings (step limit, floor, freshness...). */
  readonly safety?: Partial<SafetySettings>;
  /** Per-cluster overrides of the fleet outlier detector's settings (ejection on error rates). */
  readonly ejection?: Partial<EjectionSettings>;
  /** Why the LB policy and weighting are what they are, when fulcrum chose them (`auto`). */
  readonly autoReason?: string;
  /**
   * The hash policy of every route to the cluster that names none: `auto` sets it for session
   * affinity (RING_HASH / MAGLEV pick a random host for a request without a hash). Applied when
   * the routes are translated, so a listener from the file or the API gets it alike.
   */
  readonly routeHashPolicy?: HashPolicy;
  readonly probe?: ProbeSpec;
  /**
   * Locality-tiered balancing: Envoy first picks a locality by its weight (the sum of its
   * endpoints' adaptive weights, i.e. the zone's aggregated capacity), then an endpoint inside it.
   */
  readonly localityWeighted?: boolean;
  /** Envoy's passive outlier detection; absent = fulcrum's defaults (on), `enabled: false` = off. */
  readonly outlierDetection?: OutlierDetectionSpec;
  /** Retries on every route to this cluster, with a retry budget on the cluster; absent = defaults (on). */
  readonly retryPolicy?: RetryPolicySpec;
  /** Envoy active health checks; absent = off (fulcrum's probes gate health). */
  readonly healthCheck?: HealthCheckSpec;
  readonly clientSideWeightedRoundRobin?: ClientSideWeightedRoundRobinSpec;
}

/** An active health check fulcrum runs against every endpoint of a cluster. */
export interface ProbeSpec {
  readonly kind: 'http' | 'tcp' | 'grpc';
  /** HTTP path (http) or gRPC service name (grpc; '' = the server as a whole). */
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
}

export type HashPolicy =
  | { readonly header: string }
  | { readonly cookie: { readonly name: string; readonly ttlSeconds?: number } };

export interface Route {
  /** Virtual host domain; '*' matches any Host. */
  readonly domain: string;
  readonly prefix: string;
  readonly cluster: string;
  readonly hashPolicy?: HashPolicy;
  readonly timeoutMs?: number;
}

export interface Listener {
  readonly name: string;
  /**
   * A socket listener for Envoy (address + port), or an api_listener for proxyless gRPC
   * clients, which dial `xds:///<name>`.
   */
  readonly kind: 'socket' | 'api';
  readonly address: string;
  readonly port: number;
  readonly routes: readonly Route[];
}

/** Optional per-`node.cluster` views; a proxy whose node.cluster is not listed sees everything. */
export interface NodeGroup {
  readonly nodeCluster: string;
  readonly listeners: readonly string[];
  /** Extra clusters beyond those the group's listeners route to. */
  readonly clusters: readonly string[];
}

export interface Catalog {
  readonly clusters: readonly Cluster[];
  readonly listeners: readonly Listener[];
  readonly nodeGroups: readonly NodeGroup[];
}
