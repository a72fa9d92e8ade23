/**
 * The pure half of the Kubernetes source: Services + EndpointSlices (+ optional node regions)
 * → fulcrum clusters. No I/O, no clock; the informer wiring lives in ../kubernetes.ts.
 *
 * Mapping rules (also in README "Kubernetes"):
 *
 * - A Service is selected by the label `fulcrum.io/balance=true` (the informer's label selector;
 *   this function re-checks it so it can be fed unfiltered lists). ExternalName services are skipped.
 * - Every TCP port of a selected Service becomes one cluster named
 *   `<namespace>/<service>:<port name>`, or `<namespace>/<service>:<port number>` when the port is
 *   unnamed (Kubernetes only allows that for single-port Services). UDP and SCTP ports are skipped.
 *   These names always contain one '/', which is how ownership is decided when merging with the
 *   config file and the admin API (see `mergeKubernetesClusters`).
 * - The Service's EndpointSlices are those in its namespace labelled
 *   `kubernetes.io/service-name=<service>`; any number of them, of address type IPv4 or IPv6
 *   (FQDN slices are ignored). For each cluster the slice port with the same name as the Service
 *   port ('' for an unnamed port) and protocol TCP gives the endpoint port (the resolved target
 *   port); a slice without that port contributes nothing to that cluster.
 * - Endpoint conditions (nil `ready` reads as true, nil `serving` as `ready`, nil `terminating`
 *   as false, as the EndpointSlice API documents):
 *     not terminating, ready          → HEALTHY
 *     terminating and serving         → DRAINING  (Envoy lets in-flight requests finish but sends
 *                                                   no new ones: drained, not cut)
 *     anything else (not ready / terminating and not serving)
 *                                      → UNHEALTHY (kept in the catalog, not dropped: the weight
 *                                                   engine never mistakes a not-ready pod for a
 *                                                   deleted one; the translator leaves it out of
 *                                                   EDS, where Envoy's panic threshold would count it)
 * - An address that appears more than once for a cluster (the same pod in two slices while the
 *   EndpointSlice controller moves it, or dual listing) is kept once, keyed by `address:port`;
 *   the most available condition wins (HEALTHY > DRAINING > UNHEALTHY), then the first slice by name.
 * - Locality: zone from the endpoint's `zone` (else the node's `topology.kubernetes.io/zone`
 *   label), region from the node's `topology.kubernetes.io/region` label when node data is
 *   supplied, else ''. subZone is ''.
 * - Weight 1, priority 0. Endpoints and clusters are sorted, so equal input gives equal output.
 * - Policy from Service annotations: `fulcrum.io/lb-policy` (ROUND_ROBIN | LEAST_REQUEST |
 *   RING_HASH | MAGLEV | RANDOM | CLIENT_SIDE_WEIGHTED_ROUND_ROBIN, case-insensitive; default ROUND_ROBIN, an unknown value falls back
 *   to ROUND_ROBIN with a warning) with the same defaults as the config file; and
 *   `fulcrum.io/hash-header` (an HTTP header name), returned in `hashPolicies` for the composition
 *   root to put on routes to that cluster — hashing is a route property in Envoy, not a cluster one;
 *   and `fulcrum.io/weighting` (a policy name, or the config file's weighting block for every
 *   option: see weighting-annotation.ts); and `fulcrum.io/slow-start` (Envoy's slow start under
 *   ROUND_ROBIN or LEAST_REQUEST: a window such as `30s`, or the config file's block; see
 *   slow-start-annotation.ts).
 * - Envoy-side protection from `fulcrum.io/outlier-detection`, `fulcrum.io/retries`,
 *   `fulcrum.io/retry-on` and `fulcrum.io/health-check` (see protection-annotations.ts); without
 *   them a cluster gets fulcrum's defaults (outlier detection and retries on).
 * - HTTP/2 upstream when the Service port's appProtocol is `kubernetes.io/h2c`, `h2c`, `grpc` or `http2`.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { comparableKey } from '../../catalog/address-spelling.js';
import { endpointKey } from '../../catalog/endpoint-key.js';
import type { Cluster, Endpoint, HashPolicy, HealthStatus, LbPolicy } from '../../catalog/types.js';
import { LB_POLICIES } from '../../catalog/types.js';
import { protectionOf } from './protection-annotations.js';
import { slowStartOf } from './slow-start-annotation.js';
import { WEIGHTING_ANNOTATION, weightingOf } from './weighting-annotation.js';
export { WEIGHTING_ANNOTATION } from './weighting-annotation.js';
import { headerNameProblem } from '../envoy-rules.js';

export const BALANCE_LABEL = 'fulcrum.io/balance';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const LB_POLICY_ANNOTATION = 'fulcrum.io/lb-policy';
export const HASH_HEADER_ANNOTATION = 'fulcrum.io/hash-header';
export const REGION_LABEL = 'topology.kubernetes.io/region';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';

const DEFAULT_CONNECT_TIMEOUT_MS = 1000;
const HTTP2_APP_PROTOCOLS = new Set(['kubernetes.io/h2c', 'h2c', 'grpc', 'http2']);

// Structural views of the Kubernetes objects: the raw JSON the informers cache
// (./informer.ts) and the typed objects the tests build fit them alike.

export interface ObjectMetaLike {
  readonly name?: string | null;
  readonly namespace?: string | null;
  readonly labels?: Readonly<Record<string, string>> | null;
  readonly annotations?: Readonly<Record<string, string>> | null;
}

export interface ServicePortLike {
  readonly name?: string | null;
  readonly port: number;
  readonly protocol?: string | null;
  readonly appProtocol?: string | null;
}

export interface ServiceLike {
  readonly metadata?: ObjectMetaLike | null;
  readonly spec?: {
    readonly type?: string | null;
    readonly ports?: readonly ServicePortLike[] | null;
  } | null;
}

export interface EndpointConditionsLike {
  readonly ready?: boolean | null;
  readonly serving?: boolean | null;
  readonly terminating?: boolean | null;
}

export interface SliceEndpointLike {
  readonly addresses?: readonly string[] | null;
  readonly conditions?: EndpointConditionsLike | null;
  readonly zone?: string | null;
  readonly nodeName?: string | null;
}

export interface SlicePortLike {
  readonly name?: string | null;
  readonly port?: number | null;
  readonly protocol?: string | null;
}

export interface EndpointSliceLike {
  readonly metadata?: ObjectMetaLike | null;
  readonly addressType?: string | null;
  readonly endpoints?: readonly SliceEndpointLike[] | null;
  readonly ports?: readonly SlicePortLike[] | null;
}

export interface NodeLike {
  readonly metadata?: ObjectMetaLike | null;
}

/** Topology of one node, from its well-known labels. */
export interface NodeTopology {
  readonly region: string;
  readonly zone: string;
}

export interface MappingOptions {
  /** nodeName → topology; endpoints on unknown nodes get region '' (and the slice's zone). */
  readonly nodes?: ReadonlyMap<string, NodeTopology>;
}

/** What the Kubernetes source contributes to the catalog. */
export interface KubernetesContribution {
  /** One per selected Service TCP port, sorted by name; every name is `ns/svc:port`. */
  readonly clusters: readonly Cluster[];
  /** cluster name → hash policy from `fulcrum.io/hash-header`, for routes to that cluster. */
  readonly hashPolicies: ReadonlyMap<string, HashPolicy>;
  /** Annotation values that were ignored, one sentence each (stable order). */
  readonly warnings: readonly string[];
}

/** Topology of the nodes, keyed by node name, from their labels. */
/**
 * A Node as the informer caches it: its name and its two topology labels. A Node object is mostly
 * status (images, conditions, addresses; 10-30 KB), updated every few minutes, and only these are
 * read (a cluster of 5,000 nodes would otherwise hold ~100 MB of them).
 */
export function nodeAsCached(node: NodeLike): { readonly metadata: { readonly name: string; readonly labels: Record<string, string> } } {
  const labels = node.metadata?.labels ?? {};
  const kept: Record<string, string> = {};
  for (const label of [REGION_LABEL, ZONE_LABEL]) if (labels[label] !== undefined) kept[label] = labels[label];
  return { metadata: { name: node.metadata?.name ?? '', labels: kept } };
}

export function nodeTopologies(nodes: Iterable<NodeLike>): Map<string, NodeTopology> {
  const out = new Map<string, NodeTopology>();
  for (const node of nodes) {
    const name = node.metadata?.name;
    if (!name) continue;
    const labels = node.metadata?.labels ?? {};
    out.set(name, { region: labels[REGION_LABEL] ?? '', zone: labels[ZONE_LABEL] ?? '' });
  }
  return out;
}

/** Health of one EndpointSlice endpoint; see the table at the top of this file. */
export function endpointHealth(conditions: EndpointConditionsLike | null | undefined): HealthStatus {
  const ready = conditions?.ready ?? true;
  const serving = conditions?.serving ?? ready;
  const terminating = conditions?.terminating ?? false;
  if (terminating) return serving ? 'DRAINING' : 'UNHEALTHY';
  return ready ? 'HEALTHY' : 'UNHEALTHY';
}

const HEALTH_RANK: Partial<Record<HealthStatus, number>> = { HEALTHY: 0, DRAINING: 1, UNHEALTHY: 2 };
const rank = (h: HealthStatus): number => HEALTH_RANK[h] ?? 3;

/** The cluster name for one Service port: `ns/svc:name`, or `ns/svc:number` for an unnamed port. */
export function kubernetesClusterName(namespace: string, service: string, port: ServicePortLike): string {
  return `${namespace}/${service}:${port.name ? port.name : String(port.port)}`;
}

/** True for names the Kubernetes source produces (and therefore owns): they contain a '/'. */
export function isKubernetesClusterName(name: string): boolean {
  return name.includes('/');
}

const nsOf = (m: ObjectMetaLike | null | undefined): string => m?.namespace || 'default';
const isTcp = (protocol: string | null | undefined): boolean => (protocol ?? 'TCP') === 'TCP';

function policyOf(
  annotations: Readonly<Record<string, string>>,
  where: string,
  warnings: string[],
): Pick<Cluster, 'lbPolicy' | 'leastRequest' | 'ringHash' | 'maglev' | 'clientSideWeightedRoundRobin'> {
  const raw = annotations[LB_POLICY_ANNOTATION];
  let lbPolicy: LbPolicy = 'ROUND_ROBIN';
  if (raw !== undefined) {
    const wanted = raw.trim().toUpperCase();
    if ((LB_POLICIES as readonly string[]).includes(wanted)) {
      lbPolicy = wanted as LbPolicy;
    } else {
      warnings.push(
        `${where}: annotation ${LB_POLICY_ANNOTATION}=${JSON.stringify(raw)} is not one of ${LB_POLICIES.join(', ')}; using ROUND_ROBIN`,
      );
    }
  }
  switch (lbPolicy) {
    case 'LEAST_REQUEST':
      return { lbPolicy, leastRequest: { choiceCount: 2 } };
    case 'RING_HASH':
      return { lbPolicy, ringHash: { virtualNodesPerHost: 160, hashFunction: 'XX_HASH' } };
    case 'MAGLEV':
      return { lbPolicy, maglev: { tableSize: 65_537 } };
    case 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN':
      return { lbPolicy, clientSideWeightedRoundRobin: {} };
    default:
      return { lbPolicy };
  }
}


interface Candidate {
  readonly endpoint: Endpoint;
  readonly sliceName: string;
}

/**
 * Map Services and EndpointSlices to clusters (see the rules at the top of this file).
 * Pure and deterministic: the same objects, in any order, give the same output.
 * (incremental-mapping.ts gives the same output across a stream of views, keeping what did not change.)
 */
export function slicesToClusters(
  services: Iterable<ServiceLike>,
  slices: Iterable<EndpointSliceLike>,
  options: MappingOptions = {},
): KubernetesContribution {
  const slicesByService = groupSlices(slices);
  return joinServices(selectedServices(services).map(({ key, service }) => serviceClusters(service, slicesByService.get(key) ?? [], options)));
}

/** One selected Service's share of the view. */
export interface ServiceClusters {
  /** One per TCP port, in the Service's port order. */
  readonly clusters: readonly Cluster[];
  readonly hashPolicy: HashPolicy | undefined;
  readonly warnings: readonly string[];
}

/** The Services this source maps (labelled, not ExternalName), keyed `namespace/name`, in key order. */
export function selectedServices(services: Iterable<ServiceLike>): { readonly key: string; readonly service: ServiceLike }[] {
  const out: { key: string; service: ServiceLike }[] = [];
  for (const service of services) {
    const name = service.metadata?.name;
    if (!name || service.metadata?.labels?.[BALANCE_LABEL] !== 'true') continue;
    if (service.spec?.type === 'ExternalName') continue;
    out.push({ key: `${nsOf(service.metadata)}/${name}`, service });
  }
  // Code-unit order: a locale's collation cost ~10 ms per view at 1,000 Services and buys nothing here.
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** A selected Service's clusters, from its slices (`groupSlices`). */
export function serviceClusters(service: ServiceLike, serviceSlices: readonly EndpointSliceLike[], options: MappingOptions): ServiceClusters {
  const warnings: string[] = [];
  const name = service.metadata?.name ?? '';
  const settings = serviceSettings(service, name, warnings);
  const clusters: Cluster[] = [];
  for (const servicePort of service.spec?.ports ?? []) {
    if (!isTcp(servicePort.protocol)) continue;
    const http2 = HTTP2_APP_PROTOCOLS.has(servicePort.appProtocol ?? '');
    clusters.push({
      name: kubernetesClusterName(settings.namespace, name, servicePort),
      ...settings.policy,
      ...(settings.slowStart ? { slowStart: settings.slowStart } : {}),
      connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
      http2,
      endpoints: portEndpoints(serviceSlices, servicePort.name ?? '', options, settings.warn),
      weighting: settings.weighting,
      ...protectionOf(settings.annotations, http2, settings.warn),
    });
  }
  return { clusters, hashPolicy: settings.hashPolicy, warnings };
}

/** The view of the Services' shares, in the order given (selectedServices'). */
export function joinServices(shares: readonly ServiceClusters[]): KubernetesContribution {
  const warnings: string[] = [];
  const hashPolicies = new Map<string, HashPolicy>();
  const clusters: Cluster[] = [];
  for (const share of shares) {
    for (const c of share.clusters) {
      clusters.push(c);
      if (share.hashPolicy) hashPolicies.set(c.name, share.hashPolicy);
    }
    warnings.push(...share.warnings);
  }
  clusters.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { clusters, hashPolicies, warnings };
}

/** namespace/service → its IPv4/IPv6 slices, sorted by name for a stable tie-break. */
export function groupSlices(slices: Iterable<EndpointSliceLike>): Map<string, EndpointSliceLike[]> {
  const slicesByService = new Map<string, EndpointSliceLike[]>();
  for (const slice of slices) {
    const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!service) continue;
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue;
    const key = `${nsOf(slice.metadata)}/${service}`;
    let list = slicesByService.get(key);
    if (!list) slicesByService.set(key, (list = []));
    list.push(slice);
  }
  for (const list of slicesByService.values()) {
    list.sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  }
  return slicesByService;
}

/** What a Service's annotations say, the same for each of its ports (warnings once per Service). */
function serviceSettings(service: ServiceLike, name: string, warnings: string[]) {
  const namespace = nsOf(service.metadata);
  const annotations = service.metadata?.annotations ?? {};
  const where = `service ${namespace}/${name}`;
  const policy = policyOf(annotations, where, warnings);
  let weighting = weightingOf(annotations, where, warnings);
  if (policy.lbPolicy === 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN' && weighting.kind !== 'static') {
    warnings.push(`${where}: ${policy.lbPolicy} weighs hosts in Envoy; annotation ${WEIGHTING_ANNOTATION} ignored`);
    weighting = { kind: 'static' };
  }
  // Once per Service, however many ports it has.
  const warn = (m: string): void => {
    const line = `${where}: ${m}`;
    if (!warnings.includes(line)) warnings.push(line);
  };
  const slowStart = slowStartOf(annotations, policy.lbPolicy, warn);
  return { namespace, annotations, policy, weighting, warn, slowStart, hashPolicy: hashPolicyOf(annotations, where, warnings) };
}

function hashPolicyOf(annotations: Readonly<Record<string, string>>, where: string, warnings: string[]): HashPolicy | undefined {
  const header = annotations[HASH_HEADER_ANNOTATION]?.trim();
  if (header === undefined) return undefined;
  // The config file's rule (envoy-rules.ts), so a Service cannot make Envoy NACK the routes.
  if (headerNameProblem(header) === undefined) return { header: header.toLowerCase() };
  warnings.push(`${where}: annotation ${HASH_HEADER_ANNOTATION}=${JSON.stringify(header)} is not an HTTP header name; ignored`);
  return undefined;
}

/**
 * The endpoints of one Service port across its slices: one per address:port, the most available
 * wins. Keyed as Envoy compares addresses: two slices may spell one IPv6 address two ways, which
 * would be two endpoints to us and one host to Envoy. A current API server refuses a new
 * non-canonical spelling (kube-apiserver 1.37: 422), but one before its strict IP validation took
 * any, and the slices it stored then are kept (validation ratchets: unchanged values pass). They are merged into one, spelled as the first slice
 * in name order spells it (a stable choice: the spelling is the endpoint's key for overrides), with
 * a warning naming both.
 */
function portEndpoints(serviceSlices: readonly EndpointSliceLike[], portName: string, options: MappingOptions, warn: (m: string) => void): Endpoint[] {
  const byKey = new Map<string, Candidate>();
  for (const slice of serviceSlices) {
    const slicePort = (slice.ports ?? []).find((p) => (p.name ?? '') === portName && isTcp(p.protocol));
    const port = slicePort?.port;
    if (port === undefined || port === null || !Number.isInteger(port) || port < 1 || port > 65_535) continue;
    const sliceName = slice.metadata?.name ?? '';
    for (const ep of slice.endpoints ?? []) {
      const health = endpointHealth(ep.conditions);
      const node = ep.nodeName ? options.nodes?.get(ep.nodeName) : undefined;
      const locality = { region: node?.region ?? '', zone: ep.zone || node?.zone || '', subZone: '' };
      // Kubernetes only ever puts one address per endpoint (the field is a list for the future).
      for (const listed of ep.addresses ?? []) {
        if (!(slice.addressType === 'IPv4' ? isIPv4(listed) : isIPv6(listed))) continue;
        const key = slice.addressType === 'IPv4' ? endpointKey({ address: listed, port }) : comparableKey({ address: listed, port });
        const seen = byKey.get(key);
        if (seen && seen.endpoint.address !== listed) warn(`endpoint ${listed} (slice ${sliceName}) and ${seen.endpoint.address} (slice ${seen.sliceName}) are one IPv6 address; merged as ${seen.endpoint.address}`);
        // The first spelling stays whichever slice's endpoint is the more available.
        const address = seen?.endpoint.address ?? listed;
        if (!seen || rank(health) < rank(seen.endpoint.health)) {
          byKey.set(key, { endpoint: { address, port, locality, priority: 0, weight: 1, health }, sliceName: seen?.sliceName ?? sliceName });
        }
      }
    }
  }
  return [...byKey.values()]
    .map((c) => c.endpoint)
    .sort((a, b) => (a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1));
}

/**
 * The ownership rule for merging: the Kubernetes source owns every cluster name containing '/'
 * (always `ns/svc:port`); the config file and the admin API own the rest. A file/API cluster whose
 * name contains '/' and equals a Kubernetes one is an explicit override: it wins, and the collision
 * is reported in `overridden` so it can be logged. Output is sorted by name.
 */
export function mergeKubernetesClusters(
  own: readonly Cluster[],
  kubernetes: readonly Cluster[],
): { clusters: Cluster[]; overridden: string[] } {
  const byName = new Map<string, Cluster>();
  for (const c of kubernetes) byName.set(c.name, c);
  const overridden: string[] = [];
  for (const c of own) {
    if (byName.has(c.name)) overridden.push(c.name);
    byName.set(c.name, c);
  }
  const clusters = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { clusters, overridden };
}
