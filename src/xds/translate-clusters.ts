import { MAX_LOCALITY_WEIGHT_SUM } from '../balancing/integer-weights.js';
import { endpointKey } from '../catalog/endpoint-key.js';
import type { Cluster, Endpoint } from '../catalog/types.js';
import { LEFT_OUT, routableTier } from '../catalog/routable-tier.js';
import { probesDecide, type EndpointOverride } from '../catalog/weight-overrides.js';
import { anyOf } from './envoy-api.js';
import { duration } from './proto-values.js';
import { localityGroupKey, rescalesLocalities, rescaleToCommonSum } from './ring-hash-localities.js';
import { clientSideWrrPolicy, clusterProtection, leastRequestPolicy, maglevPolicy, randomPolicy, roundRobinPolicy } from './translate-protection.js';

/** Catalog clusters → Envoy `Cluster` and `ClusterLoadAssignment` objects (protobufjs plain form). */

const ADS_SOURCE = { ads: {}, resource_api_version: 'V3' };
const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

function nextPowerOfTwo(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}

/**
 * Load reporting (LRS, served by src/signals/lrs-service.ts) for one emitted cluster.
 * `lrs_report_endpoint_metrics` makes Envoy parse the backends' ORCA `endpoint-load-metrics`
 * header and report those metrics per endpoint; `lrs_server: { self: {} }` tells proxyless gRPC
 * to send its load reports to fulcrum. Envoy 1.40 ignores `lrs_server`: it streams load reports
 * only when its bootstrap has `cluster_manager.load_stats_config` (see src/signals/README.md).
 */
export interface LoadReportingOptions {
  /** ORCA metric names, e.g. `cpu_utilization`, `mem_utilization`, `named_metrics.foo`, `named_metrics.*`. */
  readonly reportEndpointMetrics: readonly string[];
}

/**
 * All that clusterResource reads of a cluster's endpoints. Two clusters whose other fields hold
 * the same values and whose facts are equal build the same Cluster (sameClusterForm).
 */
interface EndpointFacts {
  /** Hosts the ring size is derived from. */
  readonly hosts: number;
  readonly rescalesLocalities: boolean;
}

function endpointFacts(c: Cluster): EndpointFacts {
  return { hosts: Math.max(1, c.endpoints.length), rescalesLocalities: rescalesLocalities(c) };
}

/**
 * Whether `a` and `b` build the same Cluster resource, told without building it: every field but
 * the endpoints is the same value (the store's view patches an endpoint write into a copy of its
 * cluster, `{ ...cluster, endpoints }`), and so are the endpoint facts. False means "not known".
 */
export function sameClusterForm(a: Cluster, b: Cluster): boolean {
  let fields = 0;
  for (const k in b) {
    fields++;
    if (k !== 'endpoints' && a[k as keyof Cluster] !== b[k as keyof Cluster]) return false;
  }
  for (const k in a) if (--fields < 0 || !(k in b)) return false;
  const [fa, fb] = [endpointFacts(a), endpointFacts(b)];
  return fa.hosts === fb.hosts && fa.rescalesLocalities === fb.rescalesLocalities;
}

/**
 * Envoy's least request weighs a host by weight ÷ (active requests + 1)^bias when the weights differ
 * (Envoy's bias: 1). With adaptive weights a host weighted 3× its peers (a 2× backend under pid)
 * that hangs collected ~40 requests before the weights could move, where unweighted least request
 * (two choices) stops at ~18: every one a failure at the route timeout. At 2, the requests in
 * flight weigh more against the weight; fulcrum's controller finds the weights that balance the
 * load either way (bench/RESULTS.md "alarm45": hang, headline and the other failure modes).
 */
export const ADAPTIVE_ACTIVE_REQUEST_BIAS = 2;

/**
 * lb_policy, or load_balancing_policy where an extension policy is needed: client-side WRR is one,
 * and so is ROUND_ROBIN with slow start; LEAST_REQUEST, RANDOM and MAGLEV are written as one so that
 * proxyless gRPC does not reject them (translate-protection.ts leastRequestPolicy, randomPolicy, maglevPolicy).
 */
function lbPolicyFields(c: Cluster, facts: EndpointFacts): Record<string, unknown> {
  if (c.lbPolicy === 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN') return { load_balancing_policy: clientSideWrrPolicy(c.clientSideWeightedRoundRobin) };
  const slowStart = { cluster: c.name, slowStart: c.slowStart };
  if (c.lbPolicy === 'LEAST_REQUEST') {
    const bias = c.weighting.kind !== 'static' ? ADAPTIVE_ACTIVE_REQUEST_BIAS : undefined;
    return { load_balancing_policy: leastRequestPolicy(c.leastRequest?.choiceCount, c.localityWeighted === true, slowStart, bias) };
  }
  if (c.lbPolicy === 'ROUND_ROBIN' && c.slowStart) return { load_balancing_policy: roundRobinPolicy(slowStart, c.localityWeighted === true) };
  if (c.lbPolicy === 'RANDOM') return { load_balancing_policy: randomPolicy(c.localityWeighted === true) };
  if (c.lbPolicy === 'MAGLEV') return { load_balancing_policy: maglevPolicy(c.maglev?.tableSize ?? 65_537, facts.rescalesLocalities) };
  return { lb_policy: c.lbPolicy };
}

/** The Cluster's common_lb_config, if it needs one; `typed`: its policy is a load_balancing_policy. */
function commonLbConfig(c: Cluster, facts: EndpointFacts, typed: boolean): Record<string, unknown> | undefined {
  // Hash-based policies follow endpoint weights alone unless told otherwise: an operator's
  // localityWeighted applies to the others. A hash cluster spanning localities always gets it,
  // because its endpoint weights are rescaled per locality (src/xds/ring-hash-localities.ts) and
  // Envoy must scale them back by the locality weights. An extension policy carries it in its own
  // config: Envoy rejects a load_balancing_policy beside common_lb_config's locality weighting.
  const hashed = c.lbPolicy === 'RING_HASH' || c.lbPolicy === 'MAGLEV';
  const commonLb: Record<string, unknown> = {};
  if (!typed && ((c.localityWeighted && !hashed) || facts.rescalesLocalities)) commonLb.locality_weighted_lb_config = {};
  // Envoy holds back a weight or health change that comes within update_merge_window (1 s by
  // default) of the previous one. Adaptive weights change every tick, so Envoy's own outlier
  // ejection of a dead host waited up to a second, and meanwhile least request sent it most new
  // requests (no requests active: the highest weight ÷ (active + 1)), which failed to connect and
  // overflowed the retry budget (`bench/scenarios/run.ts --scenario death --detail`: ~75 connect
  // failures in that second against 3). fulcrum already coalesces its pushes (debounce).
  if (c.weighting.kind !== 'static') commonLb.update_merge_window = duration(0);
  return Object.keys(commonLb).length > 0 ? commonLb : undefined;
}

export function clusterResource(c: Cluster, lrs?: LoadReportingOptions): Record<string, unknown> {
  const facts = endpointFacts(c);
  const lbPolicy = lbPolicyFields(c, facts);
  const out: Record<string, unknown> = {
    name: c.name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS_SOURCE },
    connect_timeout: duration(c.connectTimeoutMs),
    ...lbPolicy,
    ...clusterProtection(c),
  };
  if (c.ringHash) {
    // Ring size follows the endpoint count (virtual nodes per host), rounded up to a power of two
    // so that scaling by a few endpoints does not change the Cluster and re-warm it in every proxy.
    const derived = Math.min(8_388_608, nextPowerOfTwo(c.ringHash.virtualNodesPerHost * facts.hosts));
    // An operator's maximum caps the derived minimum (rather than being raised to it).
    const minimum = c.ringHash.minimumRingSize ?? Math.min(derived, c.ringHash.maximumRingSize ?? 8_388_608);
    out.ring_hash_lb_config = {
      minimum_ring_size: { value: minimum },
      maximum_ring_size: { value: Math.max(minimum, c.ringHash.maximumRingSize ?? 8_388_608) },
      hash_function: c.ringHash.hashFunction,
    };
  }
  const commonLb = commonLbConfig(c, facts, 'load_balancing_policy' in lbPolicy);
  if (commonLb !== undefined) out.common_lb_config = commonLb;
  if (c.http2) {
    out.typed_extension_protocol_options = {
      [HTTP_PROTOCOL_OPTIONS]: anyOf(HTTP_PROTOCOL_OPTIONS, { explicit_http_config: { http2_protocol_options: {} } }),
    };
  }
  if (lrs) {
    out.lrs_server = { self: {}, resource_api_version: 'V3' };
    if (lrs.reportEndpointMetrics.length > 0) out.lrs_report_endpoint_metrics = [...lrs.reportEndpointMetrics];
  }
  return out;
}

/**
 * Envoy rejects an assignment whose endpoint weights in one priority (all its localities
 * together, whatever its message says) or whose locality weights sum past 2^32−1; scale down
 * proportionally (never below 1) rather than let large weights NACK the whole cluster.
 */
function fitWeights(weights: number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  if (sum <= MAX_LOCALITY_WEIGHT_SUM) return weights;
  const scale = (MAX_LOCALITY_WEIGHT_SUM - weights.length) / sum;
  return weights.map((w) => Math.max(1, Math.floor(w * scale)));
}

/** One LocalityLbEndpoints of an assignment, as the translator publishes it. */
export interface AssignmentGroup {
  readonly locality: Endpoint['locality'];
  /** The endpoints' priority while grouping; in a layout, its rank among the cluster's (consecutive from 0). */
  priority: number;
  /** Each endpoint as published (its health possibly lowered by an override). */
  readonly endpoints: Endpoint[];
  /** The endpoints' published weights, in order. */
  weights: number[];
  /** load_balancing_weight of the locality. */
  weight: number;
}

/** A ClusterLoadAssignment's content: what loadAssignmentResource and encodeAssignment (assignment-encoding.ts) both write. */
export interface AssignmentLayout {
  readonly clusterName: string;
  readonly groups: readonly AssignmentGroup[];
}

/**
 * The translator's rule for one endpoint: the engine's weight (else the operator's) as an integer
 * of at least 1, and probe health (only ever UNHEALTHY) that never lifts an operator's DRAINING,
 * UNHEALTHY or TIMEOUT. It does take a DEGRADED endpoint out: Envoy still sends a degraded host
 * traffic when too few are healthy, and a failing one must not get it. A locality whose weights
 * sum past Envoy's limit is scaled down afterwards (fitWeights).
 */
export function publishedEndpoint(e: Endpoint, o: EndpointOverride | undefined): { endpoint: Endpoint; weight: number } {
  const endpoint = o?.health && probesDecide(e.health) ? { ...e, health: o.health } : e;
  return { endpoint, weight: Math.max(1, Math.round(o?.weight ?? e.weight)) };
}

function lbEndpoint(endpoint: Endpoint, weight: number | undefined): Record<string, unknown> {
  return {
    endpoint: { address: { socket_address: { address: endpoint.address, port_value: endpoint.port } } },
    health_status: endpoint.health,
    load_balancing_weight: { value: weight },
  };
}

/*
 * Health Envoy sends no requests to but counts against its panic threshold (50%): below it, Envoy
 * balances over every host, these included. Sent UNHEALTHY, two dead backends of three (taken out
 * by fulcrum's probes) got two thirds of the attempts, and so did two pods of three not ready.
 * Such endpoints (leftOut) are left out of the assignment instead (as `disabled` ones are: store.ts),
 * so Envoy's panic mode only ever balances over the hosts that may serve, where it still helps (a
 * host Envoy's own outlier detection ejected is used when it is the only one). DRAINING stays:
 * Envoy leaves it out of that count, and lets its requests in flight finish. How far each health
 * is from routable (routableTier) is catalog/routable-tier.ts's, which the admin views read too.
 */

/**
 * What groupEndpoints does with the endpoints published UNHEALTHY or TIMEOUT: leave them out, or
 * send them as they are (across priorities: spansPriorities).
 */
type OutMode = 'leave-out' | 'send';

/**
 * The groups of `c`'s endpoints by priority and locality, in order of priority, then of first
 * appearance; endpoint weights as published (publishedEndpoint), with the priority ranks. Those
 * published UNHEALTHY or TIMEOUT are left out (leftOut) or, across priorities, sent as they are.
 * When no endpoint is routable, the best tier there is (routableTier) is sent UNKNOWN (`promote`): Envoy
 * would balance over them all in its panic mode, but gRPC has none and failed every call. So a
 * DEGRADED endpoint is used before a DRAINING one, that before one taken out, and only when every
 * endpoint is out are all sent (the engine fails static before that; an operator or Kubernetes may
 * declare every endpoint out). Envoy's own outlier detection and health checks still apply.
 */
function groupEndpoints(c: Cluster, overrides: ReadonlyMap<string, EndpointOverride> | undefined, mode: OutMode = spansPriorities(c) ? 'send' : 'leave-out', promote?: number): AssignmentGroup[] {
  const groups: AssignmentGroup[] = [];
  let byKey: Map<string, AssignmentGroup> | undefined;
  let best = LEFT_OUT;
  for (const e of c.endpoints) {
    const published = publishedEndpoint(e, overrides?.get(endpointKey(e)));
    const tier = routableTier(published.endpoint.health);
    best = Math.min(best, tier);
    if (tier === LEFT_OUT && mode === 'leave-out' && promote !== LEFT_OUT) continue;
    const endpoint: Endpoint = tier === promote ? { ...published.endpoint, health: 'UNKNOWN' } : published.endpoint;
    let g = byKey === undefined ? groups.find((x) => x.priority === e.priority && sameLocality(x.locality, e.locality)) : byKey.get(localityGroupKey(e));
    if (g === undefined) {
      groups.push((g = { locality: e.locality, priority: e.priority, endpoints: [], weights: [], weight: 1 }));
      // A few groups are compared field by field; past that, looked up by a key built per endpoint.
      if (byKey === undefined && groups.length > FEW_GROUPS) byKey = new Map(groups.map((x) => [localityGroupKey(x), x]));
      else byKey?.set(localityGroupKey(e), g);
    }
    g.endpoints.push(endpoint);
    g.weights.push(published.weight);
  }
  if (best > 0 && promote === undefined && c.endpoints.length > 0) return groupEndpoints(c, overrides, mode, best);
  return groups.sort((a, b) => a.priority - b.priority);
}

/**
 * Envoy splits a cluster's load over its priorities by each one's share of healthy hosts (× 1.4):
 * a host left out counts in no share, so a priority with one host of four left kept every request
 * instead of spilling most to the next. Across priorities UNHEALTHY hosts are sent, as they carry
 * that ratio (and Envoy's panic is then reckoned on the total, which the spill-over keeps up).
 */
function spansPriorities(c: Cluster): boolean {
  const first = c.endpoints[0]?.priority;
  return c.endpoints.some((e) => e.priority !== first);
}

const FEW_GROUPS = 8;

const sameLocality = (a: Endpoint['locality'], b: Endpoint['locality']): boolean =>
  a === b || (a.region === b.region && a.zone === b.zone && a.subZone === b.subZone);

/**
 * One priority's groups (`groups[from..to)`): endpoint weights fitted so that the priority's sum
 * stays ≤ 2^32−1, locality weights set, and for ring hash across localities every locality's
 * endpoint weights rescaled to one common sum.
 */
function fitPriority(groups: readonly AssignmentGroup[], from: number, to: number, rescale: boolean): void {
  const all: number[] = [];
  for (let i = from; i < to; i++) for (const w of (groups[i] as AssignmentGroup).weights) all.push(w);
  const fitted = fitWeights(all);
  const sums: number[] = [];
  for (let i = from, next = 0; i < to; i++) {
    const g = groups[i] as AssignmentGroup;
    if (fitted !== all) g.weights = fitted.slice(next, next + g.weights.length);
    next += g.weights.length;
    sums.push(g.weights.reduce((a, b) => a + b, 0));
  }
  // Proxyless gRPC (gRFC A27) drops a locality without load_balancing_weight. It picks a locality by
  // that weight, then an endpoint inside it, so the locality's endpoint-weight sum gives Envoy's
  // host-weighted split (Envoy reads locality weights only under locality_weighted_lb_config).
  const localityWeights = fitWeights(sums);
  for (let i = from; i < to; i++) (groups[i] as AssignmentGroup).weight = localityWeights[i - from] ?? 1;
  // Ring hash across localities: the clients disagree on combining locality and endpoint weights
  // (grpc-go and Envoy normalise endpoint weights inside the locality, grpc-js-xds 1.14 multiplies
  // the raw ones, which would square the split). Rescaling every locality's endpoint weights to one
  // common sum makes both rules give each endpoint a share ∝ its weight (ring-hash-localities.ts).
  if (rescale && to - from > 1) {
    const rescaled = rescaleToCommonSum(groups.slice(from, to).map((g) => g.weights));
    for (let i = from; i < to; i++) (groups[i] as AssignmentGroup).weights = rescaled[i - from] ?? [];
  }
}

/** What `c`'s ClusterLoadAssignment holds, with the weight loop's `overrides`. */
export function assignmentLayout(c: Cluster, overrides?: ReadonlyMap<string, EndpointOverride>): AssignmentLayout {
  const groups = groupEndpoints(c, overrides);
  const rescale = rescalesLocalities(c);
  // Priorities must be consecutive from 0 (gRPC NACKs a gap); renumbering keeps their order, which is all they mean.
  for (let from = 0, rank = 0; from < groups.length; rank++) {
    const priority = (groups[from] as AssignmentGroup).priority;
    let to = from;
    while (to < groups.length && (groups[to] as AssignmentGroup).priority === priority) (groups[to++] as AssignmentGroup).priority = rank;
    fitPriority(groups, from, to, rescale);
    from = to;
  }
  return { clusterName: c.name, groups };
}

/**
 * The assignment as the plain object protobufjs encodes, for reading and for checking
 * assignment-encoding.ts against protobufjs in tests (the translator encodes with assignmentResource).
 */
export function loadAssignmentResource(c: Cluster, overrides?: ReadonlyMap<string, EndpointOverride>): Record<string, unknown> {
  const layout = assignmentLayout(c, overrides);
  return {
    cluster_name: layout.clusterName,
    endpoints: layout.groups.map((g) => {
      // protobufjs writes explicitly-set proto3 defaults; leave them out so bytes stay canonical.
      return {
        locality: {
          ...(g.locality.region ? { region: g.locality.region } : {}),
          ...(g.locality.zone ? { zone: g.locality.zone } : {}),
          ...(g.locality.subZone ? { sub_zone: g.locality.subZone } : {}),
        },
        ...(g.priority > 0 ? { priority: g.priority } : {}),
        load_balancing_weight: { value: g.weight },
        lb_endpoints: g.endpoints.map((endpoint, i) => lbEndpoint(endpoint, g.weights[i])),
      };
    }),
  };
}
