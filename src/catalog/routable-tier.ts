/**
 * Which endpoints of a cluster proxies route to, by the health each is published with. One rule,
 * read by the translator (what EDS sends) and by the admin views (what an operator is told), so
 * the two cannot disagree.
 *
 * Proxyless gRPC routes only to HEALTHY and UNKNOWN (gRFC A27) and has no panic mode; when a
 * cluster has no such endpoint, the translator sends the best tier there is as UNKNOWN: DEGRADED,
 * else DRAINING (a terminating pod still serving, say), else every endpoint.
 */

/** Health Envoy sends no requests to but counts against its panic threshold: left out of EDS. */
export const leftOut = (health: string | undefined): boolean => health === 'UNHEALTHY' || health === 'TIMEOUT';

/** The tier of endpoints left out (leftOut): the last resort, every endpoint of the cluster. */
export const LEFT_OUT = 3;

/** How far a published health is from one every client routes to: 0 routable, 1 DEGRADED, 2 DRAINING, 3 left out. */
export function routableTier(health: string | undefined): number {
  if (leftOut(health)) return LEFT_OUT;
  if (health === 'DEGRADED') return 1;
  return health === 'DRAINING' ? 2 : 0;
}

/** What proxies are sent as UNKNOWN when no endpoint is routable: those published DEGRADED, else DRAINING, else ALL. */
export const LAST_RESORTS = ['DEGRADED', 'DRAINING', 'ALL'] as const;
export type LastResort = (typeof LAST_RESORTS)[number];

/** The last resort for a cluster whose best endpoint is of tier `best` (undefined: something is routable, or no endpoint). */
export function lastResortOf(best: number): LastResort | undefined {
  return best > 0 && best <= LEFT_OUT ? LAST_RESORTS[best - 1] : undefined;
}

/** The best tier of the published healths given (LEFT_OUT + 1 when there are none); stops at the first routable one. */
export function bestTier(healths: Iterable<string | undefined>): number {
  let best = LEFT_OUT + 1;
  for (const h of healths) {
    best = Math.min(best, routableTier(h));
    if (best === 0) break;
  }
  return best;
}

/** bestTier of `keys`' healths, each read with `healthOf` only until a routable one is found. */
export function bestTierOf<K>(keys: Iterable<K>, healthOf: (key: K) => string | undefined): number {
  return bestTier(
    (function* () {
      for (const k of keys) yield healthOf(k);
    })(),
  );
}

/**
 * Whether proxies send an endpoint published with `health` traffic, given the cluster's last
 * resort: normally when it is in rotation (neither left out nor DRAINING); in the last resort,
 * when it is of the tier sent as UNKNOWN.
 */
export function receivesTraffic(health: string | undefined, lastResort: LastResort | undefined): boolean {
  const tier = routableTier(health);
  if (lastResort === undefined) return tier < 2;
  return tier === LAST_RESORTS.indexOf(lastResort) + 1;
}
