import { subscription, type Subscription } from './cache.js';
import type { XdsTypeUrl } from './envoy-api.js';
import { InternTable } from './intern-table.js';

/**
 * SotW subscriptions shared between streams. A fleet's proxies ask for the same names in the same
 * order (every Envoy asks EDS for the clusters CDS named, in CDS order), and a SotW request
 * repeats the whole subscription on every ACK. Each stream kept its own set of the names, its own
 * sorted copy and its own memo key (a few KiB for 100 clusters, per stream, per type); now streams
 * that ask alike hold one entry by reference. Entries are immutable: a stream whose request
 * differs moves to another entry (copy-on-write by replacement).
 */
export interface SharedSubscription {
  readonly wildcard: boolean;
  /** The explicitly named resources ('*' excluded). */
  readonly names: ReadonlySet<string>;
  /** The same subscription sorted and keyed for the snapshot's memo. */
  readonly sub: Subscription;
  /** The names as the first client to ask listed them. */
  readonly listed: readonly string[];
}

/** Whether a request lists exactly what `held` was made from: the ACK of an unchanged subscription. */
export function asks(held: SharedSubscription, wildcard: boolean, names: readonly string[]): boolean {
  if (held.wildcard !== wildcard || held.listed.length !== names.length) return false;
  for (let i = 0; i < names.length; i++) if (held.listed[i] !== names[i]) return false;
  return true;
}

/** Bounded by key characters (intern-table.ts): past it, it starts over (held entries stay valid). */
const byRequest = new InternTable<SharedSubscription>();

/**
 * Entries already found for a frozen list (request-names.ts `namesOf`: one list per distinct
 * encoding, shared by every stream that sent it), by type and wildcard: the storm's 10,000 first
 * EDS requests then cost one key and one lookup in all, not one each.
 */
const byList = new WeakMap<readonly string[], Map<string, SharedSubscription>>();

/**
 * The entry for a request's names as the client listed them. Equal requests (same type, wildcard
 * and names in the same order) get the identical entry, so an unchanged subscription is one
 * string join and one lookup; callers check `asks` first, which needs neither.
 */
export function sharedSubscription(type: XdsTypeUrl, wildcard: boolean, names: readonly string[]): SharedSubscription {
  if (!Object.isFrozen(names)) return byKey(type, wildcard, names);
  let found = byList.get(names);
  if (found === undefined) byList.set(names, (found = new Map()));
  const kind = `${type}\n${wildcard ? '*' : ''}`;
  let entry = found.get(kind);
  if (entry === undefined) found.set(kind, (entry = byKey(type, wildcard, names)));
  return entry;
}

function byKey(type: XdsTypeUrl, wildcard: boolean, names: readonly string[]): SharedSubscription {
  // JSON-quoted: a name may hold any character, so a separator alone would make ["a\nb"] and ["a", "b"] one key.
  const key = `${type}\n${wildcard ? '*' : ''}\n${JSON.stringify(names)}`;
  return byRequest.get(key, () => ({ wildcard, names: new Set(names), sub: subscription(type, wildcard, names), listed: Object.isFrozen(names) ? names : [...names] }));
}
