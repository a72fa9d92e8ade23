import type { ClusterTick } from '../balancing/engine/types.js';
import { endpointKey } from '../catalog/endpoint-key.js';
import type { Cluster } from '../catalog/types.js';

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
}

/** Out of rotation as Envoy reads a published health: UNHEALTHY and TIMEOUT are unhealthy, DRAINING takes no new requests. */
export function inRotation(health: string | undefined): boolean {
  return health !== 'UNHEALTHY' && health !== 'TIMEOUT' && health !== 'DRAINING';
}

/**
 * A cluster's line, counted by the health proxies are sent (AdaptiveWeights.publishedHealth): an
 * endpoint declared out of rotation (`declaredOut`) stays out; the others have the health of the
 * last tick (`health`: the engine's, or the owner replica's). Before the first tick, the catalog's
 * declared health. Only map iteration: 100,000 endpoints count in a few milliseconds.
 */
export function clusterOverview(
  c: Cluster,
  tick: ClusterTick | undefined,
  health: ReadonlyMap<string, string> | undefined,
  declaredOut: ReadonlyMap<string, string>,
  missing: number,
): ClusterOverview {
  let endpoints = 0;
  let unhealthy = 0;
  let draining = 0;
  const count = (h: string | undefined): void => {
    endpoints++;
    if (h === 'DRAINING') draining++;
    else if (!inRotation(h)) unhealthy++;
  };
  if (tick) {
    const any = declaredOut.size > 0;
    for (const [key, h] of health ?? tick.health) count(any ? (declaredOut.get(key) ?? h) : h);
  } else {
    for (const e of c.endpoints) count(e.health);
  }
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
  };
}

/** A cluster's endpoints declared out of rotation, by key: what no tick lifts (publishedEndpoint). */
export function declaredOutOfRotation(c: Cluster): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of c.endpoints) if (!inRotation(e.health)) out.set(endpointKey(e), e.health);
  return out;
}
