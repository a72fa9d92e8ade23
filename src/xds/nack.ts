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

/**
 * The resources of a NACKed response (Delta or SotW) the client refused. Envoy applies the valid
 * resources of a response and names the invalid ones in its error ("Error adding/updating
 * cluster(s) web: …"), so those it names are the refused ones; when the error names none, every
 * resource the response carried may have been refused. Only the kept (bounded) text is searched.
 */
export function rejectedResources(message: string, carried: ReadonlyMap<string, string>): ReadonlyMap<string, string> {
  const named = new Map<string, string>();
  for (const [name, version] of carried) if (names(message, name)) named.set(name, version);
  return named.size > 0 ? named : carried;
}
