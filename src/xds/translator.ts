import type { Catalog, NodeGroup } from '../catalog/types.js';
import type { WeightOverrides } from '../catalog/weight-overrides.js';
import { TYPE, type XdsTypeUrl } from './envoy-api.js';
import { encodeResource, type EncodedResource } from './resource.js';
import { clusterResource, loadAssignmentResource, type LoadReportingOptions } from './translate-clusters.js';
import { listenerResource, routeConfigurationResource } from './translate-listeners.js';
import { DEFAULT_GROUP, type ResourceSet } from './resource-set.js';
import { retryPolicies } from './translate-protection.js';

/** Re-exported for callers that still import them from here; the cache side owns them. */
export { DEFAULT_GROUP, type ResourceSet } from './resource-set.js';

/**
 * Catalog (+ adaptive weights) → one encoded resource set per node group.
 * Each resource is encoded once here, whichever groups include it.
 */
export function translate(catalog: Catalog, weights?: WeightOverrides, lrs?: LoadReportingOptions): Map<string, ResourceSet> {
  const all = new Map<XdsTypeUrl, Map<string, EncodedResource>>([
    [TYPE.cluster, new Map()],
    [TYPE.endpoint, new Map()],
    [TYPE.listener, new Map()],
    [TYPE.route, new Map()],
  ]);
  const put = (r: EncodedResource) => all.get(r.typeUrl)?.set(r.name, r);
  for (const c of catalog.clusters) {
    put(encodeResource(TYPE.cluster, c.name, clusterResource(c, lrs)));
    put(encodeResource(TYPE.endpoint, c.name, loadAssignmentResource(c, weights?.get(c.name))));
  }
  const retries = retryPolicies(catalog.clusters);
  for (const l of catalog.listeners) {
    put(encodeResource(TYPE.listener, l.name, listenerResource(l)));
    put(encodeResource(TYPE.route, l.name, routeConfigurationResource(l, retries)));
  }
  const groups = new Map<string, ResourceSet>([[DEFAULT_GROUP, all]]);
  for (const g of catalog.nodeGroups) groups.set(g.nodeCluster, selectGroup(catalog, g, all));
  return groups;
}

function selectGroup(catalog: Catalog, group: NodeGroup, all: ResourceSet): ResourceSet {
  const listeners = new Set(group.listeners);
  const clusters = new Set(group.clusters);
  for (const l of catalog.listeners) {
    if (listeners.has(l.name)) for (const r of l.routes) clusters.add(r.cluster);
  }
  const pick = (type: XdsTypeUrl, names: Set<string>) =>
    new Map([...(all.get(type) ?? new Map<string, EncodedResource>())].filter(([name]) => names.has(name)));
  return new Map([
    [TYPE.cluster, pick(TYPE.cluster, clusters)],
    [TYPE.endpoint, pick(TYPE.endpoint, clusters)],
    [TYPE.listener, pick(TYPE.listener, listeners)],
    [TYPE.route, pick(TYPE.route, listeners)],
  ]);
}
