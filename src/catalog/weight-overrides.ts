/** What the weight engine publishes for one endpoint instead of the operator's static values. */
export interface EndpointOverride {
  readonly weight?: number;
  /** Only ever UNHEALTHY (probes failed); an operator's DRAINING or UNHEALTHY is never lifted. */
  readonly health?: 'UNHEALTHY';
}

/** Per cluster, per endpoint key (`address:port`, see endpoint-key.ts): the overrides in force. */
export type WeightOverrides = ReadonlyMap<string, ReadonlyMap<string, EndpointOverride>>;
