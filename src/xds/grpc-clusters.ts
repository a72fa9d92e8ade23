import type { Cluster } from '../catalog/types.js';

/**
 * The catalog cluster proxyless gRPC clients' Cluster resource is built from, when it differs from
 * Envoy's (the clients are told apart by client-form.ts).
 *
 * ROUND_ROBIN with Envoy's slow start: slow_start_config only rides in the typed RoundRobin policy,
 * and gRPC, handed a typed RoundRobin, builds round robin alone, which picks no locality by its
 * weight, so the per-endpoint localities that carry fulcrum's weights to gRPC (grpc-assignments.ts)
 * count for nothing: a 1:3 cluster split 50/50 in grpc-go and grpc-js-xds alike. gRPC has no slow
 * start to lose (grpc-go and grpc-js-xds 1.14 read none), so its clients are sent the cluster
 * without it: `lb_policy: ROUND_ROBIN`, which they build as wrr_locality around round robin.
 * Envoy cannot be sent that wrr_locality instead: it NACKs one around anything but client-side WRR.
 * The same object otherwise, so both forms share one encoding.
 */
export function grpcClusterSource(c: Cluster): Cluster {
  if (c.lbPolicy !== 'ROUND_ROBIN' || c.slowStart === undefined) return c;
  const { slowStart: _envoyOnly, ...rest } = c;
  return rest;
}
