import { MAX_LOCALITY_WEIGHT_SUM } from '../balancing/integer-weights.js';
import type { Endpoint } from '../catalog/types.js';

/**
 * Ring hash (and Maglev) across several localities: the three clients fulcrum serves combine a locality's
 * weight LW_a with an endpoint's weight w_i in different ways.
 *  - grpc-go ≥ 1.79 (gRPC A113): share ∝ LW_a × w_i / S_a, S_a the locality's endpoint-weight sum;
 *  - @grpc/grpc-js-xds 1.14 (pre-A113): share ∝ LW_a × w_i;
 *  - Envoy with `locality_weighted_lb_config` (its thread-aware LBs, thread_aware_lb_impl.cc
 *    normalizeLocalityWeights): share ∝ LW_a / ΣLW × w_i / S_a, like A113; without it, ∝ w_i.
 * Sending LW_a = S_a and endpoint weights rescaled so that every locality of the priority sums to
 * one common K (w'_i ≈ w_i × K / S_a) gives ∝ w_i in all three: A113 and Envoy divide the K back
 * out, grpc-js gets S_a × w_i × K / S_a = K × w_i. See loadAssignmentResource.
 */

/** Grouping key of an endpoint's locality within its priority (EDS LocalityLbEndpoints). */
export function localityGroupKey(e: Pick<Endpoint, 'priority' | 'locality'>): string {
  return JSON.stringify([e.priority, e.locality.region, e.locality.zone, e.locality.subZone]);
}

/** Whether some priority of these endpoints spans more than one locality. */
export function spansLocalities(endpoints: readonly Endpoint[]): boolean {
  const seen = new Map<number, string>();
  for (const e of endpoints) {
    const key = localityGroupKey(e);
    const first = seen.get(e.priority);
    if (first === undefined) seen.set(e.priority, key);
    else if (first !== key) return true;
  }
  return false;
}

/**
 * The translator rescales RING_HASH and MAGLEV clusters: gRPC clients take a MAGLEV cluster's
 * ring-hash fallback (translate-protection.ts maglevPolicy), and Envoy's Maglev, given locality
 * weighting, normalises like its ring hash (the same thread-aware balancer code).
 */
export function rescalesLocalities(c: { readonly lbPolicy: string; readonly endpoints: readonly Endpoint[] }): boolean {
  return (c.lbPolicy === 'RING_HASH' || c.lbPolicy === 'MAGLEV') && spansLocalities(c.endpoints);
}

/** Smallest integer each locality's rescaled weights aim at, so that rounding moves a ratio by ≲ 1e-5. */
const RESOLUTION = 100_000;

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** lcm of the sums, or undefined once it passes `limit` (then no exact common sum fits). */
function exactCommonSum(sums: readonly number[], limit: number): number | undefined {
  let l = 1;
  for (const s of sums) {
    l = (l / gcd(l, s)) * s;
    if (l > limit) return undefined;
  }
  return l;
}

/**
 * The common sum K: the lcm of the locality sums when it fits (integer multiples, exact ratios),
 * else large enough that each locality's smallest weight maps to ≥ RESOLUTION. Capped so that the
 * whole priority (every locality's rounded sum, ≤ K + its endpoint count) stays within 2^32 − 1:
 * Envoy rejects an assignment whose endpoint weights in one priority sum past that.
 */
export function commonLocalitySum(groups: readonly (readonly number[])[]): number {
  const sums = groups.map((g) => g.reduce((a, b) => a + b, 0));
  const endpoints = groups.reduce((n, g) => n + g.length, 0);
  const limit = Math.max(1, Math.floor((MAX_LOCALITY_WEIGHT_SUM - endpoints) / Math.max(1, groups.length)));
  const exact = exactCommonSum(sums, limit);
  if (exact !== undefined) return exact;
  const wanted = Math.max(...groups.map((g, i) => Math.ceil((RESOLUTION * (sums[i] ?? 1)) / Math.max(1, Math.min(...g)))));
  return Math.min(wanted, limit);
}

/**
 * One priority's localities (integer endpoint weights ≥ 1, each locality summing ≤ 2^32 − 1) →
 * weights rescaled to the common sum K: w'_i = max(1, round(w_i × K / S_a)). Ratios inside a
 * locality are kept (exactly when K is the lcm), and every locality now weighs the same in the
 * endpoint weights, so the locality weights alone carry the split between localities.
 */
export function rescaleToCommonSum(groups: readonly (readonly number[])[]): number[][] {
  const k = commonLocalitySum(groups);
  return groups.map((g) => {
    const s = g.reduce((a, b) => a + b, 0);
    if (k % s === 0) return g.map((w) => w * (k / s));
    return g.map((w) => Math.max(1, Math.round((w * k) / s)));
  });
}
