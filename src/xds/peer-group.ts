import net from 'node:net';
import { comparableAddress } from '../catalog/address-spelling.js';

/**
 * The key a peer's connections, calls and subscription bytes are counted under for the per-peer
 * limits. An IPv4 address is its own key; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, how a
 * dual-stack listener sees an IPv4 client) is that IPv4 address. An IPv6 address is its prefix of
 * `prefixLength` bits, written `2001:db8:1:2::/64` (at 128, the address itself): an ordinary IPv6
 * host owns a whole /64 and can pick a new source address per connection, so where untrusted
 * clients connect, a prefix of 64 stops it stepping around every per-peer limit. Anything else (no address: 'unknown') is its own key.
 */
export function peerGroup(address: string, prefixLength: number): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1] && net.isIPv4(mapped[1])) return mapped[1];
  // A zone (fe80::1%eth0) is not part of the address's bits: it names the link, kept in the key.
  const [bare = address, zone] = address.split('%', 2);
  if (!net.isIPv6(bare) || prefixLength >= 128) return address;
  // Envoy's spelling (RFC 5952, an embedded IPv4 tail in hex) to read groups from, and to write the prefix in.
  const groups = truncate(hextets(comparableAddress(bare)), prefixLength);
  return `${comparableAddress(groups.map((g) => g.toString(16)).join(':'))}/${prefixLength}${zone === undefined ? '' : `%${zone}`}`;
}

/** The eight 16-bit groups of an IPv6 address in RFC 5952 form (comparableAddress: hex groups only). */
function hextets(address: string): number[] {
  const [head = '', tail] = address.split('::', 2);
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

function truncate(groups: number[], prefixLength: number): number[] {
  return groups.map((g, i) => {
    const keep = Math.min(16, Math.max(0, prefixLength - i * 16));
    return keep === 0 ? 0 : g & ~((1 << (16 - keep)) - 1) & 0xffff;
  });
}
