import { isIP } from 'node:net';

/**
 * The rules Envoy applies to what fulcrum emits that a JSON Schema cannot say: checks in Envoy's
 * own code (a prime Maglev table, case-insensitive domain uniqueness, wildcard placement,
 * addresses a listener can bind) and the `validate.rules` of its API where they are patterns
 * (HTTP header names and values). One rule set for the config file and the admin API (which
 * validates request bodies with the config file's parser), so fulcrum refuses up front what
 * every proxy would NACK. Pure: no I/O.
 */

export interface RuleProblem {
  /** JSON pointer into the document. */
  readonly path: string;
  readonly message: string;
}

/** Envoy's upper bound for `maglev_lb_config.table_size` (a prime itself). */
export const MAGLEV_MAX_TABLE_SIZE = 5_000_011;
/** Envoy's upper bound for `ring_hash_lb_config.{minimum,maximum}_ring_size`. */
export const RING_HASH_MAX_SIZE = 8_388_608;
/**
 * The longest duration Envoy accepts, in seconds: it checks every Duration it loads against
 * int64 nanoseconds with room for the nanos field, (2^63 − 1 − 999,999,999) / 10^9 s (about 292 years), well below protobuf's own 10,000 years (which it NACKs).
 */
export const MAX_DURATION_SECONDS = 9_223_372_035;

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** The nearest primes below and above `n`, for an error message that says what would do. */
function primesAround(n: number): string {
  let below = Math.max(2, Math.floor(n));
  while (below > 2 && !isPrime(below)) below--;
  let above = Math.max(2, Math.ceil(n));
  while (!isPrime(above)) above++;
  return below === above || below > n ? `${above}` : `${below} or ${above}`;
}

/** Maglev builds its lookup table by stepping through it with strides coprime to its size. */
export function maglevTableSizeProblem(tableSize: number): string | undefined {
  if (isPrime(tableSize)) return undefined;
  return `must be a prime number (Envoy's Maglev table); e.g. ${primesAround(tableSize)}`;
}

// RFC 7230 §3.2.6 tchar; a token is one or more of them. RFC 6265 cookie names are tokens too.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A control character (C0 or DEL): Envoy's header-value rules refuse them, and a log line must not carry them raw. */
export const hasControl = (s: string): boolean => [...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);

/**
 * A request header name (hash policies): an RFC 7230 token, or an HTTP/2 pseudo-header such as
 * `:authority`. Envoy matches header names case-insensitively, so upper case is allowed.
 */
export function headerNameProblem(name: string): string | undefined {
  const bare = name.startsWith(':') ? name.slice(1) : name;
  if (TOKEN.test(bare)) return undefined;
  return `"${printable(name)}" is not an HTTP header name (RFC 7230 token: letters, digits and !#$%&'*+-.^_\`|~; no spaces, CR or LF)`;
}

export function cookieNameProblem(name: string): string | undefined {
  if (TOKEN.test(name)) return undefined;
  return `"${printable(name)}" is not a cookie name (RFC 6265 token: letters, digits and !#$%&'*+-.^_\`|~; no spaces, '=', ';', CR or LF)`;
}

/**
 * A virtual host domain as Envoy reads it: `*` alone, or a host (with an optional port) that may
 * start with `*` (suffix wildcard) or end with `*` (prefix wildcard), never both and nowhere else.
 */
export function domainProblem(domain: string): string | undefined {
  if (hasControl(domain) || /\s/.test(domain)) return `"${printable(domain)}" contains a space or a control character (CR, LF, ...)`;
  if (domain === '*') return undefined;
  const stars = [...domain].filter((c) => c === '*').length;
  const wildcardAtEnd = domain.startsWith('*') || domain.endsWith('*');
  if (stars > 1 || (stars === 1 && !wildcardAtEnd))
    return `"${domain}": a '*' wildcard is only allowed once, as the first or the last character (or "*" alone)`;
  return undefined;
}

/** Lower case for A–Z only, as Envoy folds domains (absl::AsciiStrToLower): JavaScript's Unicode folding made the Kelvin sign a "k". */
const asciiLower = (s: string): string => s.replace(/[A-Z]+/g, (run) => run.toLowerCase());

/**
 * Envoy keys virtual hosts by their lower-cased domains and refuses a route configuration in
 * which two virtual hosts share one. fulcrum makes one virtual host per distinct domain string,
 * so two spellings of one domain (`A.example`, `a.example`) would be two virtual hosts.
 */
export function domainClashes(domains: readonly string[], at: (index: number) => string): RuleProblem[] {
  const first = new Map<string, { spelling: string; index: number }>();
  const problems: RuleProblem[] = [];
  domains.forEach((domain, i) => {
    const key = asciiLower(domain);
    const seen = first.get(key);
    if (!seen) first.set(key, { spelling: domain, index: i });
    else if (seen.spelling !== domain)
      problems.push({ path: at(i), message: `"${domain}" and "${seen.spelling}" (routes/${seen.index}) are the same domain to Envoy (domains are case-insensitive); spell them alike` });
  });
  return problems;
}

/** An IP literal Envoy parses (no IPv6 zone id such as `%eth0`, which it does not accept). */
export function ipAddressProblem(address: string): string | undefined {
  if (isIP(address) === 0) return `"${address}" is not an IP address`;
  if (address.includes('%')) return `"${address}": an IPv6 zone id ('%...') is not accepted by Envoy`;
  return undefined;
}

/**
 * An address a listener can bind. Envoy's IPv6 listeners are IPv6-only unless asked otherwise,
 * so an IPv4-mapped address (`::ffff:127.0.0.1`) cannot be bound; nor can a multicast or the
 * broadcast address take TCP connections. Whether a unicast address is local to the proxy's
 * host only the proxy can know.
 */
export function listenerAddressProblem(address: string): string | undefined {
  const ip = ipAddressProblem(address);
  if (ip !== undefined) return ip;
  if (isIP(address) === 6) {
    const g = ipv6Groups(address);
    const embedsV4 = g.slice(0, 5).every((x) => x === 0) && (g[5] === 0xffff || (g[5] === 0 && (g[6] ?? 0) !== 0));
    if (embedsV4)
      return `"${address}" is an IPv4-mapped (or -compatible) IPv6 address, which an Envoy listener cannot bind; write the IPv4 address`;
    if (g[0] !== undefined && g[0] >= 0xff00) return `"${address}" is a multicast address; a listener binds a unicast or wildcard address`;
    return undefined;
  }
  const first = Number(address.split('.')[0]);
  if (first >= 224 && first <= 239) return `"${address}" is a multicast address; a listener binds a unicast or wildcard address`;
  if (address === '255.255.255.255') return `"${address}" is the broadcast address; a listener binds a unicast or wildcard address`;
  return undefined;
}

/** The eight 16-bit groups of a valid IPv6 literal (an embedded dotted quad becomes the last two). */
function ipv6Groups(address: string): number[] {
  let text = address;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const part = (s: string) => (s === '' ? [] : s.split(':').map((x) => parseInt(x, 16)));
  const left = part(head);
  const right = tail === undefined ? [] : part(tail);
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** Control characters shown escaped, so a message never carries a raw CR/LF. */
function printable(s: string): string {
  return JSON.stringify(s).slice(1, -1);
}
