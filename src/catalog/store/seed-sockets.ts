import { comparableKey } from '../address-spelling.js';
import type { Listener } from '../types.js';
import type { ListenerRecord, SeedConflict } from './records.js';

/**
 * The file's socket listeners a seed must skip because a listener another source owns (the API)
 * already binds their socket, however its IPv6 address is spelled. Envoy NACKs a listener set
 * with two listeners on one socket, and a NACK refuses the whole update on every proxy. The API
 * refuses its listener when the file's was stored first (listeners.ts assertAddressFree); this is
 * the other order: the file edited to bind a socket the API's listener holds. The file's listener
 * is reported as a conflict and not applied, as a name another source owns is.
 * Keyed by the file listener's name.
 */
export function socketClashes(file: readonly Listener[], stored: readonly ListenerRecord[]): Map<string, SeedConflict> {
  const others = new Map<string, ListenerRecord>();
  for (const l of stored) if (l.owner !== 'file' && l.kind === 'socket') others.set(comparableKey(l), l);
  const clashes = new Map<string, SeedConflict>();
  if (others.size === 0) return clashes;
  for (const l of file) {
    const other = l.kind === 'socket' ? others.get(comparableKey(l)) : undefined;
    if (other && other.name !== l.name) clashes.set(l.name, { kind: 'listener', name: l.name, owner: other.owner, boundBy: other.name });
  }
  return clashes;
}
