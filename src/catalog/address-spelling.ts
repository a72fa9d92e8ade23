/**
 * One IP address, several spellings: `::1`, `0::1` and `0:0:0:0:0:0:0:1` are one address to
 * Envoy, which compares parsed addresses. Two endpoints spelled so are one host to it (one weight
 * lost) and two listeners spelled so make it NACK the listeners. The catalog stores and keys
 * addresses as they were given (data stored under one spelling must stay reachable under it), so
 * these helpers only *compare*: every source refuses a write that would hold one address twice.
 * Nothing here may be used to store or key an endpoint.
 */

/**
 * The address as Envoy would print it, for comparison only: an IPv6 literal in RFC 5952's form
 * (lower case, no leading zeros, the longest zero run as `::`; an IPv4-mapped address in hex),
 * anything else (IPv4, which has one spelling Envoy accepts, or what is no IP) as given.
 */
export function comparableAddress(address: string): string {
  // No colon: IPv4 or not an IP at all; a zone id ('%eth0') is refused by validation and URL cannot parse it.
  if (!address.includes(':') || address.includes('%')) return address;
  try {
    // The WHATWG URL serializer writes an IPv6 host as RFC 5952 does (bar an embedded IPv4 address, in hex).
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address;
  }
}

/** `address:port` with the address comparable: equal for two spellings of one socket address. */
export function comparableKey(e: { readonly address: string; readonly port: number }): string {
  return `${comparableAddress(e.address)}:${e.port}`;
}

/** Whether `a` and `b` are one socket address spelled two ways (the same spelling is not a clash). */
export function otherSpelling(a: { readonly address: string; readonly port: number }, b: { readonly address: string; readonly port: number }): boolean {
  return a.port === b.port && a.address !== b.address && comparableAddress(a.address) === comparableAddress(b.address);
}

/** What a refusal says when two entries spell one address two ways. */
export function spelledTwice(address: string, other: string): string {
  return `"${address}" and "${other}" are one IPv6 address to Envoy; spell it one way`;
}
