import { deltaSubscriptionKey, type DeltaPiece, type DeltaView } from './delta-piece.js';
import { InternTable } from './intern-table.js';

const NO_NAMES: ReadonlySet<string> = new Set();
const NOTHING_KNOWN: ReadonlyMap<string, string> = new Map();

/**
 * The named subscriptions streams hold alike, one read-only set per sorted key: a fleet's Delta
 * EDS streams all name the same clusters, so they hold one set instead of a copy each.
 */
const sharedNames = new InternTable<ReadonlySet<string>>();

/** A first subscription as listed: the shared set it makes, that set's key, and its names' bytes. */
export interface ListedSubscription {
  readonly names: ReadonlySet<string>;
  readonly key: string;
  readonly bytes: number;
}

/**
 * First subscriptions by their list exactly as sent (JSON-quoted, in order): in a reconnect storm
 * every proxy's first EDS request names the same clusters, so the set, its sorted key and its byte
 * count are made once, not per stream.
 */
const listed = new InternTable<ListedSubscription>();

/** What subscribing a fresh state to `names` (no '*') makes, shared by every list sent alike. */
export function listedSubscription(names: readonly string[], bytesOf: (name: string) => number): ListedSubscription {
  return listed.get(JSON.stringify(names), () => {
    const set = new Set(names);
    const key = deltaSubscriptionKey({ wildcard: false, names: set });
    const shared = sharedNames.get(key, () => set);
    let bytes = 0;
    for (const name of set) bytes += bytesOf(name);
    return { names: shared === set || sameNames(shared, set) ? shared : set, key, bytes };
  });
}

/** Checked before sharing, so no key collision can ever hand a stream another subscription. */
function sameNames(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const name of a) if (!b.has(name)) return false;
  return true;
}

/**
 * One type's state on a Delta stream. The two large parts, the subscribed names and the versions
 * the client holds, are copy-on-write: a stream in sync holds the read-only collections every
 * stream in the same state shares (a heap snapshot of 500 streams showed these two private
 * copies as the largest part of a stream's own heap, ~10 KiB with 100 clusters), and makes a
 * private copy only when it must differ from them.
 */
export class DeltaTypeState implements DeltaView {
  wildcard = false;
  requested = false;
  /**
   * The version of this type's content (Snapshot.typeVersion) whose resources, for this
   * subscription, the client holds exactly, if it does: then its next update is the piece every
   * stream in the same state shares.
   */
  synced?: string;
  /**
   * Responses not yet ACKed or NACKed, by nonce (several may be in flight in Delta): the piece each
   * carried (shared by the streams sent it, so no object per response).
   */
  readonly inflight = new Map<string, DeltaPiece>();
  /**
   * An answer is owed even if it carries nothing (a new wildcard client's first: Envoy's
   * initialization waits for it) but the stream was congested: it is sent once the stream drains.
   */
  owed = false;
  private nameSet = NO_NAMES;
  /** The name set when this stream owns it (may change it in place); undefined while shared. */
  private ownedNames?: Set<string>;
  private knownMap = NOTHING_KNOWN;
  /** The known map when this stream owns it; undefined while shared. */
  private ownedKnown?: Map<string, string>;
  private key?: string;

  get names(): ReadonlySet<string> {
    return this.nameSet;
  }

  /** name → version the client holds (told by initial_resource_versions, or sent by us). */
  get known(): ReadonlyMap<string, string> {
    return this.knownMap;
  }

  /** The subscription as a memo key; recomputed only after the subscription changed. */
  get subKey(): string {
    return (this.key ??= deltaSubscriptionKey(this));
  }

  /** Adds a name; false when it was subscribed already. */
  subscribe(name: string): boolean {
    if (this.nameSet.has(name)) return false;
    this.ownNames().add(name);
    return true;
  }

  /** Removes a name; false when it was not subscribed. */
  unsubscribe(name: string): boolean {
    return this.nameSet.has(name) && this.ownNames().delete(name);
  }

  /** The subscription changed: it is keyed again, and shares the set of streams that name the same. */
  subscriptionChanged(): void {
    this.synced = undefined;
    this.key = undefined;
    const own = this.ownedNames;
    if (this.wildcard || !own) return;
    // From here the set may be the one other streams share: it is never changed in place again.
    const shared = sharedNames.get(this.subKey, () => own);
    if (shared !== own && !sameNames(shared, own)) return;
    this.nameSet = shared;
    this.ownedNames = undefined;
  }

  /**
   * A state that holds no names takes `sub` as its whole subscription (read-only and shared, as
   * `subscriptionChanged` would have made it): the same names, key and sync state as subscribing
   * each name and then calling `subscriptionChanged`.
   */
  subscribeListed(sub: ListedSubscription): void {
    if (this.nameSet.size > 0 || this.wildcard) throw new Error('subscribeListed: the state already holds a subscription');
    this.synced = undefined;
    this.nameSet = sub.names;
    this.ownedNames = undefined;
    this.key = sub.key;
  }

  hold(name: string, version: string): void {
    if (this.knownMap.get(name) !== version) this.ownKnown().set(name, version);
  }

  /** Forgets every held name not in `names` (versions a client reports for names it does not subscribe to). */
  keepOnly(names: ReadonlySet<string>): void {
    for (const name of [...this.knownMap.keys()]) if (!names.has(name)) this.forget(name);
  }

  forget(name: string): void {
    if (this.knownMap.has(name)) this.ownKnown().delete(name);
  }

  /**
   * A response went out: the client holds what it carried. `after`, when known, is the shared map
   * that holds exactly the result (then the stream's own map is neither changed nor copied).
   */
  apply(piece: Pick<DeltaPiece, 'sent' | 'removed'>, after?: ReadonlyMap<string, string>): void {
    if (after) return this.holdShared(after);
    for (const [name, version] of piece.sent) this.hold(name, version);
    for (const name of piece.removed) this.forget(name);
  }

  /**
   * The client holds exactly `shared` (a read-only map equal to its own, shared by every stream
   * in sync with the same content): its own copy is dropped.
   */
  holdShared(shared: ReadonlyMap<string, string>): void {
    this.knownMap = shared;
    this.ownedKnown = undefined;
  }

  private ownNames(): Set<string> {
    if (this.ownedNames) return this.ownedNames;
    const own = new Set(this.nameSet);
    this.nameSet = this.ownedNames = own;
    return own;
  }

  private ownKnown(): Map<string, string> {
    if (this.ownedKnown) return this.ownedKnown;
    const own = new Map(this.knownMap);
    this.knownMap = this.ownedKnown = own;
    return own;
  }
}
