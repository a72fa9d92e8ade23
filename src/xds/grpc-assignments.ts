import { endpointSubZone } from '../catalog/endpoint-localities.js';
import type { Cluster, LbPolicy } from '../catalog/types.js';
import type { AssignmentGroup, AssignmentLayout } from './translate-clusters.js';

/**
 * The ClusterLoadAssignment form proxyless gRPC clients are sent. gRPC picks a locality by its
 * load_balancing_weight and then an endpoint inside it by round robin (or least request), ignoring
 * endpoint weights (gRFC A27, A52): sent the Envoy form, a gRPC client spread a 1:3 cluster 50/50
 * and none of fulcrum's weights reached it. So each endpoint goes as a locality of its own, whose
 * weight is the endpoint's (fitted within its priority as Envoy's are, so the sum stays a uint32)
 * and whose sub-zone names the endpoint (catalog/endpoint-localities.ts): the client's locality
 * pick is then the weighted pick. The region and zone stay; priorities stay as they are.
 *
 * The split is decided by the cluster's configuration only, never by its current weights: a
 * locality that appears or goes makes gRPC build or drop a child balancer with its own connection,
 * so the form must not flip as weights move. Clusters left in the Envoy form: ring hash and Maglev
 * (gRPC reads endpoint weights on its ring already), client-side WRR (the client weighs endpoints
 * itself from ORCA), and static clusters whose endpoints all weigh the same (nothing to carry, and
 * round robin or least request inside one locality balances better than a weighted pick).
 */
const OWN_ENDPOINT_WEIGHING: ReadonlySet<LbPolicy> = new Set<LbPolicy>(['RING_HASH', 'MAGLEV', 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN']);

/** Whether gRPC clients are sent `c`'s endpoints as localities of their own. */
export function splitsForGrpc(c: Cluster): boolean {
  if (OWN_ENDPOINT_WEIGHING.has(c.lbPolicy)) return false;
  if (c.weighting.kind !== 'static') return true;
  const first = c.endpoints[0]?.weight;
  return c.endpoints.some((e) => e.weight !== first);
}

/**
 * The most one priority's locality weights may sum to in gRPC's form. @grpc/grpc-js-xds 1.14
 * picks a locality with `(Math.random() * total) | 0`, which wraps negative past 2^31 − 1 and
 * then always takes the first: Envoy's limit (2^32 − 1, which the layout is fitted to) would skew
 * a big cluster toward its first endpoint.
 */
export const GRPC_MAX_LOCALITY_WEIGHT_SUM = 2 ** 31 - 1;

/** `layout` with every endpoint in a locality of its own, weighted as the endpoint, in the same order. */
export function perEndpointLayout(layout: AssignmentLayout): AssignmentLayout {
  const groups: AssignmentGroup[] = [];
  const sums = new Map<number, number>();
  for (const g of layout.groups) {
    g.endpoints.forEach((e, i) => {
      const weight = Math.max(1, g.weights[i] ?? 1);
      sums.set(g.priority, (sums.get(g.priority) ?? 0) + weight);
      groups.push({ locality: { ...g.locality, subZone: endpointSubZone(e) }, priority: g.priority, endpoints: [e], weights: [weight], weight });
    });
  }
  for (const g of groups) {
    const sum = sums.get(g.priority) ?? 0;
    if (sum <= GRPC_MAX_LOCALITY_WEIGHT_SUM) continue;
    // Scaled down with room for the floor of 1 each (as translate-clusters' fitWeights does).
    g.weight = Math.max(1, Math.floor((g.weight * (GRPC_MAX_LOCALITY_WEIGHT_SUM - groups.length)) / sum));
    g.weights = [g.weight];
  }
  return { clusterName: layout.clusterName, groups };
}
