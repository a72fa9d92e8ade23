import { applyDiscoveredOverrides, NO_OVERRIDES, type DiscoveredOverrides } from '../../catalog/discovered-overrides.js';
import type { Catalog } from '../../catalog/types.js';
import { mergeKubernetesClusters, type KubernetesContribution } from './mapping.js';

/**
 * The catalog with Kubernetes discovery added: discovered clusters join the others (a cluster
 * the config file or the API defines wins, see mergeKubernetesClusters), and a route to a
 * discovered cluster gets its `fulcrum.io/hash-header` as hash policy unless it has one already
 * (hashing is a route property in Envoy, so the annotation lands on the routes). The operators'
 * overrides (drains, disables, policy) apply to the discovered clusters first, so everything
 * downstream (EDS, the weight engine, /v1/weights) sees the same endpoint state.
 */
export function withKubernetes(catalog: Catalog, view: KubernetesContribution | undefined, overrides: DiscoveredOverrides = NO_OVERRIDES): Catalog {
  if (!view) return catalog;
  const { clusters } = mergeKubernetesClusters(catalog.clusters, applyDiscoveredOverrides(view.clusters, overrides));
  const listeners = catalog.listeners.map((l) => {
    const routes = l.routes.map((r) => {
      const hash = view.hashPolicies.get(r.cluster);
      return r.hashPolicy || !hash ? r : { ...r, hashPolicy: hash };
    });
    // Unchanged, the listener stays the same object: the translator keeps its resources unbuilt by identity.
    return routes.every((r, i) => r === l.routes[i]) ? l : { ...l, routes };
  });
  return { ...catalog, clusters, listeners: listeners.every((l, i) => l === catalog.listeners[i]) ? catalog.listeners : listeners };
}
