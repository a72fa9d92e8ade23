import { isIPv6 } from 'node:net';

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

/**
 * One spelling per IP address. Envoy compares parsed addresses: `::1`, `0::1` and
 * `0:0:0:0:0:0:0:1` are one listener address and one host to it, so the catalog must store and
 * key them as one. An IPv6 literal becomes RFC 5952's form (lower case, no leading zeros, the
 * longest run of zero groups as `::`, an IPv4-mapped address as `::ffff:a.b.c.d`); anything else
 * (IPv4, and what is no IP at all, for validation to report) is returned as given. Applied where
 * an address comes in (config file, admin API paths, Kubernetes, reports and LRS), so that
 * `endpointKey` can stay a plain concatenation on the hot paths.
 */
export function canonicalAddress(address: string): string {
  // No colon: IPv4 or not an IP. A zone id ('%eth0') is refused by validation and URL cannot parse it.
  if (!address.includes(':') || address.includes('%') || !isIPv6(address)) return address;
  // The WHATWG URL serializer writes an IPv6 host as RFC 5952 does, except an embedded IPv4 address (in hex).
  const host = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  return mapped ? `::ffff:${dottedQuad(mapped[1] as string, mapped[2] as string)}` : host;
}

/** Two 16-bit hex groups as a dotted quad: `c000`, `201` → `192.0.2.1`. */
function dottedQuad(high: string, low: string): string {
  const h = parseInt(high, 16);
  const l = parseInt(low, 16);
  return [h >> 8, h & 0xff, l >> 8, l & 0xff].join('.');
}
