import { sameItems } from '../../catalog/changed-clusters.js';
import { applyDiscoveredOverrides, NO_OVERRIDES, type DiscoveredOverrides } from '../../catalog/discovered-overrides.js';
import type { Catalog, HashPolicy, Listener } from '../../catalog/types.js';
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
  return { ...catalog, clusters, listeners: annotatedListeners(catalog.listeners, view.hashPolicies) };
}

/**
 * The listeners with the hash annotations on their routes. The same inputs give the very same
 * objects (a listener no annotation changes is itself; an annotated one is the one made last
 * time while its listener and policies are the same), and the same list while every listener
 * is: the translator keeps a listener's resources, and a node group its selection, by identity,
 * and a new object on every catalog rebuilt them all on every publish.
 */
function annotatedListeners(listeners: readonly Listener[], hashPolicies: ReadonlyMap<string, HashPolicy>): readonly Listener[] {
  const out = listeners.map((l) => annotated(l, hashPolicies));
  if (sameItems(out, listeners)) return listeners;
  const last = lastAnnotated.get(listeners);
  if (last !== undefined && sameItems(out, last)) return last;
  lastAnnotated.set(listeners, out);
  return out;
}

/** Per input list, the annotated list made last for it. */
const lastAnnotated = new WeakMap<readonly Listener[], readonly Listener[]>();
/** Per input listener, the annotated one made last, with the policies its routes got. */
const annotatedByListener = new WeakMap<Listener, { readonly policies: readonly (HashPolicy | undefined)[]; readonly listener: Listener }>();

function annotated(l: Listener, hashPolicies: ReadonlyMap<string, HashPolicy>): Listener {
  // A route with a hash policy of its own keeps it; the others take their cluster's annotation.
  const policies = l.routes.map((r) => (r.hashPolicy ? undefined : hashPolicies.get(r.cluster)));
  if (policies.every((p) => p === undefined)) return l;
  const last = annotatedByListener.get(l);
  if (last !== undefined && last.policies.every((p, i) => p === policies[i])) return last.listener;
  const listener = { ...l, routes: l.routes.map((r, i) => (policies[i] === undefined ? r : { ...r, hashPolicy: policies[i] })) };
  annotatedByListener.set(l, { policies, listener });
  return listener;
}
