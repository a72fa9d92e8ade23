/** What the weight engine publishes for one endpoint instead of the operator's static values. */
export interface EndpointOverride {
  readonly weight?: number;
  /** Only ever UNHEALTHY (probes failed); applied where probesDecide, never over an operator's DRAINING, UNHEALTHY or TIMEOUT. */
  readonly health?: 'UNHEALTHY';
}

/**
 * Whether a probe's UNHEALTHY replaces an endpoint's declared health: over HEALTHY, UNKNOWN and
 * DEGRADED (Envoy still sends a degraded host traffic when too few are healthy: a failing one must
 * not get it), never over what an operator set to take the endpoint out. The one rule the
 * translator (publishedEndpoint) and every view of published health apply.
 */
export function probesDecide(declared: string): boolean {
  return declared === 'HEALTHY' || declared === 'UNKNOWN' || declared === 'DEGRADED';
}

/** Per cluster, per endpoint key (`address:port`, see endpoint-key.ts): the overrides in force. */
export type WeightOverrides = ReadonlyMap<string, ReadonlyMap<string, EndpointOverride>>;
