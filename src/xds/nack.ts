import type { RpcStatus } from './wire.js';

/**
 * What fulcrum keeps of a NACK. The error text is the client's: a hostile one may send megabytes
 * of it with every NACK, and it is stored per stream and type and logged.
 */
export const MAX_NACK_MESSAGE_CHARS = 4096;

/** The NACK's error text, bounded, in a string of its own (a slice would keep the whole request's text alive). */
export function nackMessage(detail: RpcStatus): string {
  const text = detail.message || `code ${detail.code}`;
  if (text.length <= MAX_NACK_MESSAGE_CHARS) return text;
  return Buffer.from(`${text.slice(0, MAX_NACK_MESSAGE_CHARS)}…`, 'utf8').toString('utf8');
}

const NAME_CHAR = /[A-Za-z0-9_.-]/;

/** True when `name` occurs in `text` as a whole word (not inside a longer name). */
function names(text: string, name: string): boolean {
  if (name === '') return false;
  for (let at = text.indexOf(name); at >= 0; at = text.indexOf(name, at + 1)) {
    const before = at === 0 ? '' : text[at - 1]!;
    const after = text[at + name.length] ?? '';
    if (!NAME_CHAR.test(before) && !NAME_CHAR.test(after)) return true;
  }
  return false;
}

/** gRPC-js's words for the n-th resource of the response ("resource index 2: …"). */
const RESOURCE_INDEX = /resource index (\d+)/g;

/** The positions (0-based, in the response's order) the error text points at. */
function indices(text: string): Set<number> {
  const at = new Set<number>();
  for (const m of text.matchAll(RESOURCE_INDEX)) at.add(Number(m[1]));
  return at;
}

/**
 * The resources of a NACKed response (Delta or SotW) the client refused. Envoy applies the valid
 * resources of a response and names the invalid ones in its error ("Error adding/updating
 * cluster(s) web: …"); gRPC-js points at them by position ("resource index 1: …"). Those are the
 * refused ones; when the error points at none, every resource the response carried may have been
 * refused. `carried` is in the response's order. Only the kept (bounded) text is searched.
 */
export function rejectedResources(message: string, carried: ReadonlyMap<string, string>): ReadonlyMap<string, string> {
  const named = new Map<string, string>();
  const at = indices(message);
  let i = 0;
  for (const [name, version] of carried) {
    if (at.has(i++) || names(message, name)) named.set(name, version);
  }
  return named.size > 0 ? named : carried;
}
