/**
 * One endpoint changed in a list kept in the store's order (address, then port), without reading
 * the cluster again: after an endpoint write, the kept cluster record and the catalog view's
 * cluster are patched, so that a drain on a 20k-endpoint cluster costs one list copy, not 20k
 * rows read and rebuilt twice. Pure.
 */

interface Keyed {
  readonly address: string;
  readonly port: number;
}

/** SQLite orders `address` by bytes (BINARY); JS compares UTF-16 units: the same for ASCII only. */
const ASCII = /^[\x20-\x7e]*$/;

/**
 * `list` with the endpoint at (address, port) replaced by `next`, inserted in order, or removed
 * (`next` undefined); undefined when the order cannot be kept by JS comparison (non-ASCII address).
 */
export function withEndpoint<T extends Keyed>(list: readonly T[], address: string, port: number, next: T | undefined): T[] | undefined {
  if (!ASCII.test(address)) return undefined;
  const at = list.findIndex((e) => e.address === address && e.port === port);
  if (at >= 0) return next ? [...list.slice(0, at), next, ...list.slice(at + 1)] : [...list.slice(0, at), ...list.slice(at + 1)];
  if (!next) return [...list];
  const after = list.findIndex((e) => e.address > address || (e.address === address && e.port > port));
  const cut = after < 0 ? list.length : after;
  return [...list.slice(0, cut), next, ...list.slice(cut)];
}
