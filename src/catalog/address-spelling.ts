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

type SocketAddress = { readonly address: string; readonly port: number };

/**
 * A test for the other spellings of `target`'s socket address (the same spelling is not a clash),
 * made to scan a big cluster: parsing every address costs ~0.8 µs (80 ms at 100k endpoints, inside
 * the write), so the target is parsed once and a candidate only when its last group, a number
 * whatever the spelling, is the target's.
 */
export function otherSpellingOf(target: SocketAddress): (e: SocketAddress) => boolean {
  const comparable = comparableAddress(target.address);
  // From the parsed form: a target written with an IPv4 tail (`::ffff:10.0.0.1`) still filters.
  const last = lastGroup(comparable);
  return (e) =>
    e.port === target.port &&
    e.address !== target.address &&
    e.address.includes(':') &&
    (last === undefined || (lastGroup(e.address) ?? last) === last) &&
    comparableAddress(e.address) === comparable;
}

/**
 * IPv6 socket addresses by comparable key, to find which of many others spell one of them another
 * way: a candidate is parsed only when its last group is one of theirs (as otherSpellingOf).
 */
export class SpellingIndex<T extends SocketAddress> {
  private readonly byKey = new Map<string, T>();
  /** The entries' last groups, read from their parsed forms; undefined when one cannot be read (no filter then). */
  private lasts: Set<number> | undefined = new Set();

  constructor(entries: Iterable<T>) {
    for (const e of entries) {
      if (!e.address.includes(':')) continue;
      const key = comparableKey(e);
      this.byKey.set(key, e);
      const last = lastGroup(key.slice(0, key.lastIndexOf(':')));
      if (last === undefined) this.lasts = undefined;
      else this.lasts?.add(last);
    }
  }

  /** The entry `e` spells another way, if any. */
  twinOf(e: SocketAddress): T | undefined {
    if (this.byKey.size === 0 || !e.address.includes(':')) return undefined;
    const last = lastGroup(e.address);
    if (last !== undefined && this.lasts?.has(last) === false) return undefined;
    const twin = this.byKey.get(comparableKey(e));
    return twin?.address === e.address ? undefined : twin;
  }
}

/**
 * The value of an IPv6 literal's last 16-bit group, read from the end without a copy; undefined
 * when it ends in an IPv4 address (`::ffff:1.2.3.4`) or is not hex.
 */
function lastGroup(address: string): number | undefined {
  let value = 0;
  for (let i = address.length - 1, shift = 0; i >= 0 && shift <= 12; i--, shift += 4) {
    const c = address.charCodeAt(i) | 0x20; // lower case; ':' (58) stays ':'
    if (c === 58) return value;
    const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
    if (digit < 0) return undefined;
    value += digit << shift;
  }
  const colon = address.length - 5;
  return address.charCodeAt(colon) === 58 ? value : undefined;
}

/** What a refusal says when two entries spell one address two ways. */
export function spelledTwice(address: string, other: string): string {
  return `"${address}" and "${other}" are one IPv6 address to Envoy; spell it one way`;
}
