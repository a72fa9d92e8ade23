/**
 * The seed article's decision table: service traits → Envoy LB policy + weighting policy.
 *
 *   trait                     → choice
 *   session affinity          → RING_HASH on the header or cookie (MAGLEV from LOCALITY_TIER_THRESHOLD endpoints)
 *   heterogeneous capacity    → PID-weighted (LEAST_REQUEST with weights, setpoint = cluster mean)
 *   long-lived connections    → LEAST_REQUEST
 *   latency-sensitive         → PID on cpu + latency excess (the seed said EWMA; see 3.)
 *   1000+ endpoints           → locality-tiered
 *
 * Precedence when several apply (the traits decide different things, so most combine):
 *  1. Session affinity wins the LB policy outright and forces **static** weights: hashing is
 *     a correctness property (the same key must reach the same backend), and every adaptive
 *     weight change would remap part of the key space. Heterogeneous capacity is then best
 *     expressed in the operator's static weights, which ring hash and Maglev honor.
 *     Large clusters (>= LOCALITY_TIER_THRESHOLD endpoints) get MAGLEV instead of RING_HASH:
 *     a fixed 65537-entry table with O(1) lookups, where a ring with enough virtual nodes per
 *     host to stay balanced grows into millions of entries. A header key beats a cookie when
 *     both are given (no Set-Cookie round trip before affinity holds).
 *  2. Long-lived connections choose LEAST_REQUEST over ROUND_ROBIN: a round-robin choice made
 *     once per long connection piles streams onto whichever hosts were picked early, while
 *     least-request (power of two choices) balances the active requests it can see.
 *  3. Weighting, orthogonal to 2: heterogeneous capacity, latency sensitivity or both → PID
 *     with the cpu-latency metric: it equalizes CPU and counts an endpoint slower than its
 *     peers as busier, so a backend slowed by a dependency loses traffic. The seed's EWMA (and
 *     a 50/50 blend) were measured worse: EWMA alone balances utilization poorly (max/avg
 *     ~1.2) and in a blend the PID part pushed back what the EWMA part took away
 *     (bench/RESULTS.md). Errors count against an endpoint under every adaptive policy.
 *     Adaptive weights go with LEAST_REQUEST: Envoy then picks by weight ÷ requests in flight,
 *     the fleet-wide weights setting the shares and each Envoy's own count correcting every pick
 *     between two load reports. Measured against the same weights under ROUND_ROBIN and against
 *     least request alone, it had the best p99 in six of eight failure scenarios and was within
 *     3% in the other two; its cost is a dead backend taking its full share of in-flight requests
 *     with it (bench/RESULTS.md, "lr14"). Proxyless gRPC clients take round robin (grpc-js) or
 *     unweighted least request (grpc-go) from the same Cluster (xds/translate-protection.ts).
 *  4. Locality tiering is independent of everything else: at 1000+ endpoints a flat
 *     endpoint list costs every proxy memory and every EDS push bandwidth, and cross-zone
 *     traffic dominates; tiering keeps traffic zone-local first.
 *  5. No trait: ROUND_ROBIN with static weights.
 */
import type { WeightingPolicy } from './policy.js';

export const LOCALITY_TIER_THRESHOLD = 1000;

export interface ServiceTraits {
  readonly sessionAffinity?: { readonly header?: string; readonly cookie?: string };
  readonly heterogeneousCapacity?: boolean;
  readonly longLivedConnections?: boolean;
  readonly latencySensitive?: boolean;
  readonly endpointCount: number;
}

export type AutoLbPolicy = 'RING_HASH' | 'MAGLEV' | 'LEAST_REQUEST' | 'ROUND_ROBIN';

export type HashKey = { readonly header: string } | { readonly cookie: string };

export interface AutoPolicy {
  readonly lbPolicy: AutoLbPolicy;
  readonly weighting: WeightingPolicy;
  readonly localityTiered: boolean;
  /** The hash key for RING_HASH / MAGLEV. */
  readonly hashKey?: HashKey;
  readonly reason: string;
}

export function choosePolicy(traits: ServiceTraits): AutoPolicy {
  const { endpointCount } = traits;
  if (!Number.isInteger(endpointCount) || endpointCount < 0) {
    throw new RangeError(`endpointCount must be an integer >= 0, got ${endpointCount}`);
  }
  const localityTiered = endpointCount >= LOCALITY_TIER_THRESHOLD;
  const tierReason = localityTiered ? `; ${endpointCount} endpoints (>= ${LOCALITY_TIER_THRESHOLD}): locality-tiered` : '';

  if (traits.sessionAffinity !== undefined) {
    const { header, cookie } = traits.sessionAffinity;
    const hashKey: HashKey | undefined = nonEmpty(header) ? { header } : nonEmpty(cookie) ? { cookie } : undefined;
    if (hashKey === undefined) throw new RangeError('sessionAffinity needs a header or a cookie name');
    const lbPolicy: AutoLbPolicy = localityTiered ? 'MAGLEV' : 'RING_HASH';
    const key = 'header' in hashKey ? `header ${hashKey.header}` : `cookie ${hashKey.cookie}`;
    const ignored = [
      traits.heterogeneousCapacity ? 'heterogeneous capacity (set static weights instead)' : undefined,
      traits.longLivedConnections ? 'long-lived connections' : undefined,
      traits.latencySensitive ? 'latency sensitivity' : undefined,
    ].filter((x): x is string => x !== undefined);
    return {
      lbPolicy,
      weighting: { kind: 'static' },
      localityTiered,
      hashKey,
      reason:
        `session affinity: ${lbPolicy} on ${key} with static weights (adaptive weights would remap keys)` +
        (ignored.length > 0 ? `; affinity takes precedence over ${ignored.join(', ')}` : '') +
        tierReason,
    };
  }

  const adaptive = traits.heterogeneousCapacity === true || traits.latencySensitive === true;
  const lbPolicy: AutoLbPolicy = traits.longLivedConnections || adaptive ? 'LEAST_REQUEST' : 'ROUND_ROBIN';
  const parts: string[] = [
    traits.longLivedConnections ? 'long-lived connections: LEAST_REQUEST' : adaptive ? 'LEAST_REQUEST (weights ÷ requests in flight)' : 'ROUND_ROBIN',
  ];
  let weighting: WeightingPolicy;
  if (adaptive) {
    weighting = { kind: 'pid', setpoint: 'mean', metric: 'cpu-latency' };
    const why = [traits.heterogeneousCapacity ? 'heterogeneous capacity' : '', traits.latencySensitive ? 'latency-sensitive' : ''].filter((x) => x !== '');
    parts.push(`${why.join(' and ')}: PID weights equalizing cpu, with latency above the cluster median counted as load`);
  } else {
    weighting = { kind: 'static' };
    parts.push('static weights');
  }
  return { lbPolicy, weighting, localityTiered, reason: parts.join('; ') + tierReason };
}

function nonEmpty(s: string | undefined): s is string {
  return typeof s === 'string' && s.length > 0;
}
