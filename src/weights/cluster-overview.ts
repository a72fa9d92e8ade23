import { isOperatorDisabled } from '../balancing/engine/stages.js';
import type { ClusterTick, OperatorHealth } from '../balancing/engine/types.js';
import { endpointKey } from '../catalog/endpoint-key.js';
import type { Cluster } from '../catalog/types.js';
import { LEFT_OUT, lastResortOf, routableTier, type LastResort } from '../catalog/routable-tier.js';
import { probesDecide } from '../catalog/weight-overrides.js';

/**
 * One line per cluster (GET /v1/weights, the dashboard's cluster list): what an operator scans a
 * thousand clusters for, counted, without every endpoint's weight and explanation. At 1,000
 * clusters of 100 endpoints the dashboard read those (7 MB) every second just to list them.
 */
export interface ClusterOverview {
  readonly cluster: string;
  readonly lbPolicy: string;
  /** The weighting policy (static, pid, ewma, blend...). */
  readonly policy: string;
  readonly endpoints: number;
  /** Published neither UNHEALTHY, TIMEOUT nor DRAINING: what proxies send traffic to. */
  readonly inRotation: number;
  /** Published UNHEALTHY or TIMEOUT (Envoy treats TIMEOUT as unhealthy). */
  readonly unhealthy: number;
  readonly draining: number;
  /** False until the engine has ticked for the cluster. */
  readonly computed: boolean;
  readonly failStatic: boolean;
  /** Endpoints that never sent a signal the policy steers on (held static). */
  readonly missingSignals: number;
  /**
   * Present when no endpoint is published HEALTHY or UNKNOWN: which endpoints proxies are sent as
   * UNKNOWN instead, and route to (catalog/routable-tier.ts).
   */
  readonly lastResort?: LastResort;
}

/** An endpoint's live health (the engine's or the owner replica's): a map by key, or read by key; undefined: none. */
export type LiveHealth = ReadonlyMap<string, string> | ((key: string) => string | undefined) | undefined;

/** In rotation as Envoy reads a published health: UNHEALTHY and TIMEOUT are unhealthy, DRAINING takes no new requests. */
export function inRotation(health: string | undefined): boolean {
  return !isOperatorDisabled(health as OperatorHealth | undefined);
}

/**
 * A cluster's line, counted by the health proxies are sent (AdaptiveWeights.publishedHealthOf):
 * publishedOf a health declared other than HEALTHY or UNKNOWN (`special`) and `live`'s (the
 * engine's health map, or the owner replica's by key; undefined counts as in rotation). Over the
 * endpoints of its last tick, the set /v1/weights/{cluster} lists; before the first, the catalog's
 * (by their declared health, or the live health when it is read by key). When `live` is the
 * tick's own health map it is walked, not searched: 100,000 endpoints count in a few milliseconds.
 */
export function clusterOverview(
  c: Cluster,
  tick: ClusterTick | undefined,
  special: ReadonlyMap<string, string>,
  live: LiveHealth,
  missing: number,
): ClusterOverview {
  let endpoints = 0;
  let unhealthy = 0;
  let draining = 0;
  let best = LEFT_OUT + 1;
  const count = (h: string | undefined): void => {
    endpoints++;
    best = Math.min(best, routableTier(h));
    if (h === 'DRAINING') draining++;
    else if (!inRotation(h)) unhealthy++;
  };
  const any = special.size > 0;
  if (tick !== undefined && live === tick.health) {
    for (const [key, h] of tick.health) count(any ? publishedOf(special.get(key), h) : h);
  } else if (tick !== undefined) {
    const read = readerOf(live);
    for (const key of tick.weights.keys()) count(publishedOf(special.get(key), read(key)));
  } else if (typeof live === 'function') {
    // Not ticked here, published from elsewhere (another replica owns it).
    for (const e of c.endpoints) {
      const key = endpointKey(e);
      count(publishedOf(special.get(key), live(key)) ?? e.health);
    }
  } else {
    for (const e of c.endpoints) count(e.health);
  }
  const lastResort = lastResortOf(best);
  return {
    cluster: c.name,
    lbPolicy: c.lbPolicy,
    policy: c.weighting.kind,
    endpoints,
    inRotation: endpoints - unhealthy - draining,
    unhealthy,
    draining,
    computed: tick !== undefined,
    failStatic: tick?.failStatic ?? false,
    missingSignals: missing,
    ...(lastResort !== undefined ? { lastResort } : {}),
  };
}

/**
 * The health published for an endpoint declared `special` (other than HEALTHY or UNKNOWN; undefined
 * if not) whose live health (the engine's or the owner's) is `live`: the live one over what probes
 * decide (probesDecide: a DEGRADED one the probes fail is UNHEALTHY), else as declared.
 */
export function publishedOf(special: string | undefined, live: string | undefined): string | undefined {
  if (special === undefined) return live;
  return live === 'UNHEALTHY' && probesDecide(special) ? live : special;
}

/** Live health as given (a map, or already read by key) as a reader by key. */
export function readerOf(live: LiveHealth): (key: string) => string | undefined {
  return typeof live === 'function' ? live : (key) => live?.get(key);
}

/** A cluster's endpoints declared other than HEALTHY or UNKNOWN, by key (publishedOf's `special`). */
export function declaredSpecialHealth(c: Cluster): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of c.endpoints) if (e.health !== 'HEALTHY' && e.health !== 'UNKNOWN') out.set(endpointKey(e), e.health);
  return out;
}
