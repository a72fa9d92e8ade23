import { endpointKey } from './endpoint-key.js';
import type { Endpoint, Locality } from './types.js';

/**
 * Proxyless gRPC clients balance localities by their weight and ignore endpoint weights inside one
 * (gRFC A27, A52: round robin within a locality), so they are sent each endpoint as a locality of
 * its own (src/xds/grpc-assignments.ts). Its sub-zone keeps the real one and names the endpoint
 * after a separator that no endpoint key holds: `<sub_zone>@<address>:<port>`. gRPC's load reports
 * (LRS) name that locality back, which is how they are attributed to the one endpoint exactly.
 */
const SEPARATOR = '@';

/** The sub-zone of `e`'s own locality. */
export function endpointSubZone(e: Pick<Endpoint, 'address' | 'port' | 'locality'>): string {
  return `${e.locality.subZone}${SEPARATOR}${endpointKey(e)}`;
}

/** The real locality and the endpoint key a sub-zone written by endpointSubZone holds; undefined for any other sub-zone. */
export function endpointOfLocality(l: Locality): { locality: Locality; key: string } | undefined {
  const at = l.subZone.lastIndexOf(SEPARATOR);
  if (at < 0) return undefined;
  const key = l.subZone.slice(at + 1);
  if (!/:\d+$/.test(key)) return undefined;
  return { locality: { region: l.region, zone: l.zone, subZone: l.subZone.slice(0, at) }, key };
}
