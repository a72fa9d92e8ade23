/**
 * How every room names one endpoint of a cluster: `address:port` (an IPv6 address is not
 * bracketed). Signals, the weight engine, the translator's overrides and the admin API all key
 * endpoints by it, so it is defined once, here.
 */
export function endpointKey(e: { readonly address: string; readonly port: number }): string {
  return `${e.address}:${e.port}`;
}

/** An endpoint's name as a resource of its own (store records, audit log, preconditions): `cluster/address:port`. */
export function endpointName(cluster: string, e: { readonly address: string; readonly port: number }): string {
  return `${cluster}/${endpointKey(e)}`;
}
