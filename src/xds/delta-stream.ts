import { touches, type Snapshot } from './cache.js';
import { PUSH_ORDER, TYPE, type XdsTypeUrl } from './envoy-api.js';
import type { ProxyRecord } from './proxy-status.js';
import { buildDeltaPiece, buildDeltaPieceFromChanges, type DeltaPhase, type DeltaPiece } from './delta-piece.js';
import { DeltaTypeState as TypeState, listedSubscription } from './delta-type-state.js';
import { joinResponse } from './joined-responses.js';
import { checkRequestNames } from './limits.js';
import { checkNameCount, servedType, WILDCARD_TYPES, XdsStream, type StreamDeps, type StreamIo } from './stream-common.js';
import { deltaTail, type DeltaDiscoveryRequest } from './wire.js';

const MAX_INFLIGHT = 32;

/**
 * The longest version kept from initial_resource_versions. fulcrum's own are 16 characters
 * (resource.ts) and go-control-plane's hashes 64; a longer one cannot be one this server sent, so
 * it is held as no version (the resource is sent again, as it would be anyway) instead of kept:
 * 2,000 versions of 900 bytes were 1.8 MB per type per stream (review, "oom-one-connection").
 */
export const MAX_HELD_VERSION_BYTES = 256;

const heldVersion = (version: string): string => (Buffer.byteLength(version, 'utf8') > MAX_HELD_VERSION_BYTES ? '' : version);

const NO_BYTES = new Uint8Array(0);

/** What an ACK or NACK of `piece` is matched with: its version and what it carried. */
const ackView = (piece: DeltaPiece): DeltaPiece => ({ version: piece.version, head: NO_BYTES, sent: piece.sent, removed: [], resolved: piece.resolved });

/** The key a type's initial_resource_versions are charged under, apart from its subscription. */
const initialKey = (type: XdsTypeUrl): string => `${type} initial`;

/**
 * One incremental (Delta) xDS stream. Subscription changes are honored whatever the nonce;
 * only changed resources are sent, and deletions travel as `removed_resources`.
 */
export class DeltaStream extends XdsStream<DeltaDiscoveryRequest> {
  private readonly types = new Map<XdsTypeUrl, TypeState>();
  /** Types whose initial_resource_versions are charged until they are answered (chargeInitial). */
  private initialHeld?: Set<XdsTypeUrl>;

  constructor(deps: StreamDeps, io: StreamIo, service: string, fixedType?: XdsTypeUrl) {
    super(deps, io, service, 'delta', fixedType);
  }

  override onCacheChange(): void {
    if (this.closed || !this.record) return;
    const snapshot = this.snapshot();
    // Make-before-break: additions and updates in CDS → EDS → LDS → RDS order, removals after, in
    // reverse. One pass when nothing is removed (a weight change): each type's whole difference
    // goes out at once; only types that also remove something get a second, removals-only response.
    let removals: XdsTypeUrl[] | undefined;
    for (const type of PUSH_ORDER) {
      if (this.push(type, snapshot)) (removals ??= []).unshift(type);
    }
    for (const type of removals ?? []) this.respond(type, snapshot, 'removals', false);
  }

  /** The push's first pass for one type; true when removals are left for the second pass. */
  private push(type: XdsTypeUrl, snapshot: Snapshot): boolean {
    const st = this.types.get(type);
    if (st && !this.congested) this.catchUp(type, st, snapshot);
    if (!st?.requested || !this.record || this.congested || st.synced === snapshot.typeVersion(type)) {
      this.respond(type, snapshot, 'all', false);
      return false;
    }
    const removes = this.piece(type, st, snapshot, 'all').removed.length > 0;
    this.respond(type, snapshot, removes ? 'updates' : 'all', false);
    return removes;
  }

  /**
   * A stream in sync with the type's content just before this one, none of whose names changed
   * since, is in sync with this one too: told from the few changed names, without resolving its
   * subscription (a wildcard one is touched by any change).
   */
  private catchUp(type: XdsTypeUrl, st: TypeState, snapshot: Snapshot): void {
    if (st.synced === undefined || st.wildcard) return;
    const change = snapshot.changeOf(type);
    if (change === undefined || change.fromVersion !== st.synced || touches(change.names, st.names)) return;
    st.synced = snapshot.typeVersion(type);
  }

  protected handle(req: DeltaDiscoveryRequest, record: ProxyRecord): void {
    const type = servedType(req.type_url, this.fixedType);
    if (type === undefined) return this.unserved(req.type_url);
    const initial = Object.entries(req.initial_resource_versions);
    checkNameCount(req.resource_names_subscribe.length + req.resource_names_unsubscribe.length, this.deps.maxResourceNames);
    // A wildcard client legitimately reports every resource it holds when it reconnects.
    checkNameCount(initial.length, this.deps.maxResourceNames + this.snapshot().resources(type).size);
    checkRequestNames([...req.resource_names_subscribe, ...req.resource_names_unsubscribe, ...initial.map(([name]) => name)], this.limits);
    const st = this.state(type);
    const first = !st.requested;
    st.requested = true;

    if (req.response_nonce !== '') {
      const answered = st.inflight.get(req.response_nonce);
      if (answered !== undefined) {
        st.inflight.delete(req.response_nonce);
        // A NACK is parked: the known versions stay as sent, so the same content is not resent in a loop.
        this.answered(record, type, req.error_detail, req.response_nonce, answered.version, answered.sent);
      }
    }

    if (first) {
      for (const [name, version] of initial) st.hold(name, heldVersion(version));
      if (WILDCARD_TYPES.has(type) && req.resource_names_subscribe.length === 0) st.wildcard = true;
    }
    // The usual first EDS request takes the subscription streams that listed the same names share.
    if (!(first && this.subscribeListed(type, st, req, initial.length))) this.applySubscription(type, st, req, first);
    // The limit bounds what a stream may hold, not only what one request may name.
    checkNameCount(st.names.size, this.deps.maxResourceNames);
    if (first && initial.length > 0) {
      this.chargeInitial(type, st);
      // A client that reconnects (from another replica, or to this one restarted) holds what it
      // says it holds: versions are content hashes, equal everywhere. Only the difference is sent.
      this.deps.registry.resumed(record, type, this.snapshot().version, new Map(st.known));
    }
    if (req.resource_names_subscribe.length > 0 || (st.wildcard && req.resource_names_unsubscribe.length > 0)) this.markMissing(type, st, req);
    // A new wildcard client's first request is answered even if there is nothing to send (Envoy's
    // initialization waits for it). One that reconnects holding resources has initialized: when
    // it holds everything (it moved here from another replica), it is sent nothing at all.
    this.respond(type, this.snapshot(), 'all', first && st.wildcard && initial.length === 0);
    if (type === TYPE.cluster) this.respond(TYPE.endpoint, this.snapshot(), 'all', false);
    if (this.initialHeld) this.releaseAnswered();
  }

  /**
   * "When a resource subscribed to by a client does not exist, the server will send a
   * DeltaDiscoveryResponse ... that contains that resource's name in the removed_resources field"
   * (xds_protocol), and a name unsubscribed from a wildcard that does not hold it is removed too.
   * Such a name is held under no version, so the answer removes it, once: after that the client
   * holds nothing of it, and is sent it when it appears. Only names this request names: pushes
   * and ACKs do no such work.
   */
  private markMissing(type: XdsTypeUrl, st: TypeState, req: DeltaDiscoveryRequest): void {
    const pool = this.snapshot().resources(type);
    const mark = (name: string): void => {
      if (name !== '*' && !pool.has(name) && !st.known.has(name)) st.hold(name, '');
    };
    for (const name of req.resource_names_subscribe) if (st.names.has(name)) mark(name);
    if (st.wildcard) for (const name of req.resource_names_unsubscribe) mark(name);
  }

  /**
   * What the client says it holds is kept until it is answered (a stream that does not read keeps
   * it longer), so it is charged like a subscription: each version's bytes, and the names a
   * subscription does not charge already (a wildcard's). A named type keeps only the names it
   * subscribes to, as go-control-plane does: versions of others were kept forever, 12 MiB per
   * stream against a 2 MiB limit (review, "oom-one-connection").
   */
  private chargeInitial(type: XdsTypeUrl, st: TypeState): void {
    if (!st.wildcard) st.keepOnly(st.names);
    let bytes = 0;
    for (const [name, version] of st.known) bytes += this.subscribed.nameBytes(version) + (st.names.has(name) ? 0 : this.subscribed.nameBytes(name));
    this.subscribed.set(initialKey(type), bytes, st.known.size, {});
    (this.initialHeld ??= new Set()).add(type);
  }

  /**
   * A type answered in full (in sync) holds only what it was sent or what the snapshot has at the
   * client's versions: its reported versions are no longer the client's to grow, their charge goes.
   */
  private releaseAnswered(): void {
    for (const type of this.initialHeld ?? []) {
      if (this.types.get(type)?.synced === undefined) continue;
      this.subscribed.drop(initialKey(type));
      this.initialHeld?.delete(type);
    }
  }

  /**
   * A fresh first request naming only explicit resources: the stream takes the shared subscription
   * for that list whole. False (nothing changed) for any other request, or when the names would
   * exceed the subscription limit (the per-name path then refuses them, as it always did).
   */
  private subscribeListed(type: XdsTypeUrl, st: TypeState, req: DeltaDiscoveryRequest, initial: number): boolean {
    const subscribe = req.resource_names_subscribe;
    if (initial > 0 || st.wildcard || subscribe.length === 0 || req.resource_names_unsubscribe.length > 0 || subscribe.includes('*')) return false;
    const sub = listedSubscription(subscribe, (name) => this.subscribed.nameBytes(name));
    if (!this.subscribed.fits(type, sub.bytes)) return false;
    this.subscribed.set(type, sub.bytes, sub.names.size, sub.names);
    st.subscribeListed(sub);
    return true;
  }

  /** Applies a request's subscribe and unsubscribe lists name by name. */
  private applySubscription(type: XdsTypeUrl, st: TypeState, req: DeltaDiscoveryRequest, first: boolean): void {
    const wasWildcard = st.wildcard;
    const dropped: string[] = [];
    for (const name of req.resource_names_subscribe) {
      if (name === '*') {
        st.wildcard = true;
        continue;
      }
      // A (re)subscription outside the first request means the client may not hold the resource
      // (go-control-plane #583): held under no version, it is sent again, or its removal if it is
      // gone meanwhile (forgotten, a client that kept it through a wildcard was never told).
      if (!first && st.known.has(name)) st.hold(name, '');
      if (st.subscribe(name)) this.subscribed.add(type, this.subscribed.nameBytes(name), 1);
    }
    for (const name of req.resource_names_unsubscribe) {
      if (name === '*') {
        st.wildcard = false;
        continue;
      }
      if (st.unsubscribe(name)) this.subscribed.add(type, -this.subscribed.nameBytes(name), -1);
      // A wildcard client keeps a resource it stops naming (it still wants every one): held under
      // no version, it is sent again or its removal told, as go-control-plane does.
      if (st.wildcard && st.known.has(name)) st.hold(name, '');
      else dropped.push(name);
    }
    // Leaving the wildcard, the client drops what it held only through it: subscribing to '*'
    // again must send those again (go-control-plane #583 is the named case, handled above).
    if (wasWildcard && !st.wildcard) for (const name of st.known.keys()) if (!st.names.has(name)) dropped.push(name);
    for (const name of dropped) st.forget(name);
    if (dropped.length > 0 && this.record) this.deps.registry.removed(this.record, type, dropped);
    if (!(first || req.resource_names_subscribe.length > 0 || req.resource_names_unsubscribe.length > 0)) return;
    st.subscriptionChanged();
    // Charged to the peer and the process in the set it is now held in (shared, or the stream's own).
    this.subscribed.hold(type, st.names);
  }

  protected forget(): void {
    this.types.clear();
    this.initialHeld = undefined;
  }

  private state(type: XdsTypeUrl): TypeState {
    let st = this.types.get(type);
    if (!st) {
      st = new TypeState();
      this.types.set(type, st);
    }
    return st;
  }

  private respond(type: XdsTypeUrl, snapshot: Snapshot, what: DeltaPhase, answerEmpty: boolean): void {
    const st = this.types.get(type);
    if (!st?.requested || !this.record) return;
    if (this.congested) {
      // Nothing is queued for a client that does not read; it is sent the difference once it
      // drains, and an answer it is owed even if empty (a new wildcard client's first) then too.
      st.synced = undefined;
      if (answerEmpty) st.owed = true;
      return;
    }
    // In sync with this type's content already: nothing to send (the common case for every type
    // a push did not touch, and for every ACK).
    if (!answerEmpty && st.synced !== undefined && st.synced === snapshot.typeVersion(type)) return;
    // Built from the stream's own known versions (what a client reported): not shared, see below.
    const own = st.synced === undefined && st.known.size > 0;
    const piece = this.piece(type, st, snapshot, what);
    if (piece.sent.size === 0 && piece.removed.length === 0 && !answerEmpty && !st.owed) {
      this.settle(type, st, snapshot, what, piece);
      return;
    }
    const nonce = this.nextNonce();
    this.io.send([joinResponse(piece.head, nonce, this.deps.controlPlaneId, deltaTail)]);
    st.owed = false;
    // A client that held nothing holds exactly the piece: the registry may keep the shared map.
    const mode = st.known.size === 0 && piece.removed.length === 0 ? 'state' : 'merge';
    // In sync before and sent the whole difference: the client now holds exactly what every stream
    // in sync with this snapshot holds; once that shared map exists, no private copy is made.
    // A client that held nothing holds exactly what the (shared, read-only) piece carried.
    const after = what === 'all' && st.synced !== undefined ? snapshot.heldVersionsMade(type, st.subKey) : mode === 'state' ? piece.sent : undefined;
    st.apply(piece, after);
    this.settle(type, st, snapshot, what, piece);
    // Its ACK needs the version and what it carried, not its bytes or removed names: a piece of
    // this stream's own (removing 2,000 reported names of 1,000 bytes: 4 MB) is not kept for it.
    st.inflight.set(nonce, own ? ackView(piece) : piece);
    if (st.inflight.size > MAX_INFLIGHT) st.inflight.delete(st.inflight.keys().next().value as string);
    this.tellRegistry(type, st, snapshot, nonce, piece, mode);

    // Warming: an updated cluster is re-created by Envoy and waits for its endpoints again. Held
    // under no version, its assignment is sent again, or its removal if it is gone (forgotten, a
    // cluster whose assignment was deleted in the same change warmed until Envoy's fetch timeout).
    if (type === TYPE.cluster && piece.sent.size > 0) {
      const eds = this.types.get(TYPE.endpoint);
      if (eds) {
        for (const name of piece.sent.keys()) if (eds.known.has(name)) eds.hold(name, '');
        eds.synced = undefined;
      }
    }
  }

  /**
   * Tells the registry what the client holds now. In sync (the common case after a push), that
   * is the snapshot's shared map for this subscription; otherwise the piece merged into its own.
   */
  private tellRegistry(type: XdsTypeUrl, st: TypeState, snapshot: Snapshot, nonce: string, piece: DeltaPiece, mode: 'state' | 'merge'): void {
    if (!this.record) return;
    // In sync with this snapshot (not merely with an older one, as after an 'updates' response).
    if (st.synced !== undefined && st.synced === snapshot.typeVersion(type)) {
      const held = snapshot.heldVersions(type, st.subKey, st.known);
      // What the client holds is exactly the shared map: the stream drops its own copy too.
      st.holdShared(held);
      this.deps.registry.sent(this.record, type, snapshot.version, nonce, held, 'state');
      return;
    }
    this.deps.registry.sent(this.record, type, snapshot.version, nonce, piece.sent, mode);
    if (piece.removed.length > 0) this.deps.registry.removed(this.record, type, piece.removed);
  }

  /**
   * What to send: shared with every stream in the same state when this one is in sync with a
   * known version (or holds nothing yet), computed from its own known versions otherwise.
   */
  private piece(type: XdsTypeUrl, st: TypeState, snapshot: Snapshot, what: DeltaPhase): DeltaPiece {
    const from = st.synced ?? (st.known.size === 0 ? '' : undefined);
    if (from === undefined) return buildDeltaPiece(snapshot.version, type, snapshot.resources(type), st, what);
    const sub = st.subKey;
    return snapshot.deltaPiece(type, what, from, sub) ?? snapshot.rememberDeltaPiece(type, what, from, sub, this.buildPiece(type, st, snapshot, what, from));
  }

  /** A piece for a stream in sync with `from` ('' when it holds nothing): from the changed names when `from` is the content just before. */
  private buildPiece(type: XdsTypeUrl, st: TypeState, snapshot: Snapshot, what: DeltaPhase, from: string): DeltaPiece {
    const change = snapshot.changeOf(type);
    if (from !== '' && change?.fromVersion === from) return buildDeltaPieceFromChanges(snapshot.version, type, snapshot.resources(type), st, what, change.names);
    return buildDeltaPiece(snapshot.version, type, snapshot.resources(type), st, what);
  }

  /**
   * After the updates phase the removals of the same change follow from the same starting state,
   * so `synced` stays; after a complete answer the client holds exactly what the subscription
   * resolves to (or not, e.g. it reported versions of names it is not subscribed to).
   */
  private settle(type: XdsTypeUrl, st: TypeState, snapshot: Snapshot, what: DeltaPhase, piece: DeltaPiece): void {
    if (what === 'updates') return;
    st.synced = st.known.size === piece.resolved ? snapshot.typeVersion(type) : undefined;
  }
}
