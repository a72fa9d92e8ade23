import { touches, type SotwBody, type Snapshot } from './cache.js';
import { PUSH_ORDER, SHORT_TYPE, TYPE, type XdsTypeUrl } from './envoy-api.js';
import type { ProxyRecord } from './proxy-status.js';
import { joinResponse } from './joined-responses.js';
import { checkRequestNames, type XdsLimits } from './limits.js';
import { asks, sharedSubscription, type SharedSubscription } from './shared-subscriptions.js';
import { checkNameCount, servedType, WILDCARD_TYPES, XdsStream, type StreamDeps, type StreamIo } from './stream-common.js';
import { internNames, namesOf, sameBytes } from './request-names.js';
import { sotwTail, type DiscoveryRequest } from './wire.js';

interface TypeState {
  /** The first request was empty on LDS/CDS: wildcard until the client names something. */
  legacyWildcard: boolean;
  /** What the client subscribes to: shared with every stream that asked alike (shared-subscriptions.ts). */
  subscription: SharedSubscription;
  requested: boolean;
  nonce?: string;
  /** What the client was last sent: absence from a later LDS/CDS response means deletion. */
  sent?: SotwBody;
  /** What the last response carried (all of `sent`, or EDS/RDS changes only): what its ACK or NACK is about. */
  wire?: SotwBody;
  /** The response before it (nonce, what it carried), whose ACK or NACK may arrive after the last was sent. */
  previousNonce?: string;
  previousWire?: SotwBody;
  /** Resend even if unchanged: a resubscribe, or cluster/listener warming after a CDS/LDS push. */
  force: boolean;
  /**
   * The names of the last request that changed the subscription, as sent (ACKs repeat them):
   * their encoding, shared by streams that sent the same (request-names.ts), or the decoded list.
   */
  requestNames?: Uint8Array | readonly string[];
  /**
   * The content (Snapshot.contentToken) this type was last answered against in full: the client
   * holds, or was sent, everything the subscription resolves to there, so responding to it again
   * would send nothing. Cleared by every request that changes the subscription and by every
   * response sent (a push's final answer sets it again; a stream that stops reading after the
   * first of a make-before-break pair holds the merged body, not this content).
   */
  settledAt?: object;
  /**
   * After a make-before-break response (CDS/LDS kept what is about to go): the state it was merged
   * from, so the final response, which is that state, is known to drop resources only.
   */
  keptFor?: SotwBody;
}

const NO_NAMES: readonly string[] = Object.freeze([]);

/** Shared name lists (request-names.ts `namesOf`) already checked against a server's limits, and their bytes. */
const checkedNames = new WeakMap<readonly string[], { readonly limits: XdsLimits; readonly bytes: number }>();

/** Whether `req` names exactly what `last` did, in the same order (compared encoded when it can). */
function sameNames(req: DiscoveryRequest, last: Uint8Array | readonly string[] | undefined): boolean {
  if (last instanceof Uint8Array) return req.resource_names_bytes !== undefined && sameBytes(req.resource_names_bytes, last);
  const names = req.resource_names;
  if (!last || names.length !== last.length) return false;
  for (let i = 0; i < names.length; i++) if (names[i] !== last[i]) return false;
  return true;
}

/**
 * One State-of-the-World stream (ADS, or a single-type service when `fixedType` is set).
 * Request-driven for subscriptions and ACK/NACK; cache-driven for pushes.
 */
export class SotwStream extends XdsStream<DiscoveryRequest> {
  constructor(deps: StreamDeps, io: StreamIo, service: string, fixedType?: XdsTypeUrl) {
    super(deps, io, service, 'sotw', fixedType);
  }

  private readonly types = new Map<XdsTypeUrl, TypeState>();

  /** The cache changed: push what this proxy's subscriptions now resolve to, make-before-break. */
  override onCacheChange(): void {
    if (this.closed || !this.record) return;
    const snapshot = this.snapshot();
    // Additions and updates go out CDS → EDS → LDS → RDS; a CDS/LDS response that would drop
    // something first keeps it, and the dropping response follows once routes moved away.
    let deferred: XdsTypeUrl[] | undefined;
    for (const type of PUSH_ORDER) {
      if (this.respond(type, snapshot, 'keep-removed')) (deferred ??= []).unshift(type);
      else this.respond(type, snapshot, 'final');
    }
    for (const type of deferred ?? []) this.respond(type, snapshot, 'final');
  }

  protected handle(req: DiscoveryRequest, record: ProxyRecord): void {
    const type = servedType(req.type_url, this.fixedType);
    if (type === undefined) return this.unserved(req.type_url);
    const st = this.state(type);
    // An ACK repeats the names of the request before it (Envoy's EDS ACKs name every cluster):
    // those were checked and applied already, so they are neither re-checked nor re-indexed.
    const repeated = st.requested && sameNames(req, st.requestNames);
    // A new list: interned with its decoded names, so streams that send the same bytes share both.
    const encoded = repeated || !req.resource_names_bytes ? undefined : internNames(req.resource_names_bytes);
    const names = repeated ? NO_NAMES : encoded ? namesOf(encoded) : req.resource_names;
    const nameBytes = repeated ? 0 : this.checkNames(names);

    if (req.response_nonce !== '' && st.nonce !== undefined && req.response_nonce !== st.nonce) {
      // Stale: the client has not yet seen our latest response of this type; it will answer that
      // one. What it says of the one before is kept (a push overtook a NACK), nothing is sent.
      if (req.response_nonce === st.previousNonce && st.previousWire) this.answered(record, type, req.error_detail, req.response_nonce, st.previousWire.version, st.previousWire.versions, req.version_info);
      this.deps.log.debug({ node: record.node.id, type: SHORT_TYPE[type], nonce: req.response_nonce }, 'stale nonce ignored');
      return;
    }
    if (req.response_nonce !== '' && req.response_nonce === st.nonce && st.wire) this.answered(record, type, req.error_detail, st.nonce, st.wire.version, st.wire.versions, req.version_info);

    const first = !st.requested;
    st.requested = true;
    if (repeated) {
      this.respond(type, this.snapshot(), 'final');
      return;
    }
    st.requestNames = encoded ?? names;
    st.settledAt = undefined;
    const star = names.includes('*');
    // Without '*' the list itself (frozen when shared: sharedSubscription then finds it by identity).
    const explicit = star ? names.filter((n) => n !== '*') : names;
    if (first && WILDCARD_TYPES.has(type) && names.length === 0) st.legacyWildcard = true;
    if (explicit.length > 0 || star) st.legacyWildcard = st.legacyWildcard && names.length === 0;
    const wildcard = star || (st.legacyWildcard && names.length === 0);
    const held = st.subscription;
    const next = asks(held, wildcard, explicit) ? held : sharedSubscription(type, wildcard, explicit);
    // A name the client did not hold before must be answered even if nothing changed (resubscribe).
    const added = next !== held && ((wildcard && !held.wildcard) || explicit.some((n) => !held.names.has(n)));
    // SotW requests carry the whole subscription of their type, held in `next` (shared by the
    // streams that ask alike: charged to the peer and the process once).
    this.subscribed.set(type, nameBytes, names.length, next);
    st.subscription = next;
    if ((added || first) && !(first && this.resume(type, st, req, record))) st.force = true;
    this.respond(type, this.snapshot(), 'final');
  }

  protected forget(): void {
    this.types.clear();
  }

  private checkNames(names: readonly string[]): number {
    checkNameCount(names.length, this.deps.maxResourceNames);
    // A shared (frozen) list that passed these limits before passes again: its byte count is kept.
    const known = checkedNames.get(names);
    if (known?.limits === this.limits) return known.bytes;
    const bytes = checkRequestNames(names, this.limits);
    if (Object.isFrozen(names)) checkedNames.set(names, { limits: this.limits, bytes });
    return bytes;
  }

  /**
   * A new stream's first request names the version the client accepted last (on this replica or
   * another: versions are content hashes, equal on all). If that is exactly what its subscription
   * resolves to now, it holds everything already and is sent nothing. A version in the form
   * earlier releases gave (a proxy reconnecting after an upgrade) is recognized too.
   *
   * Only for a wildcard CDS or LDS subscription, where the protocol calls this safe: the version
   * of an EDS or RDS list does not say which names the client still holds. A client that dropped a
   * name was sent nothing (nothing it holds changed), so it kept announcing the larger list's
   * version; asking for that name again on a new stream, it was sent nothing, and the cluster
   * came up without endpoints (a review's finding; go-control-plane answers there too).
   */
  private resume(type: XdsTypeUrl, st: TypeState, req: DiscoveryRequest, record: ProxyRecord): boolean {
    if (!WILDCARD_TYPES.has(type) || !st.subscription.wildcard) return false;
    if (req.version_info === '' || req.response_nonce !== '') return false;
    const body = this.snapshot().sotwBody(type, st.subscription.sub);
    if (body.names.length === 0 || (body.version !== req.version_info && body.legacyVersion !== req.version_info)) return false;
    st.sent = body;
    this.deps.registry.resumed(record, type, body.version, body.versions);
    return true;
  }

  private state(type: XdsTypeUrl): TypeState {
    let st = this.types.get(type);
    if (!st) {
      st = { legacyWildcard: false, subscription: sharedSubscription(type, false, NO_NAMES), requested: false, force: false };
      this.types.set(type, st);
    }
    return st;
  }

  /**
   * Sends what the subscription now resolves to, if the client does not hold it yet. In the
   * 'keep-removed' phase (CDS/LDS only) resources about to disappear are kept for one more
   * response; returns true when that happened, so the caller sends the final state later.
   */
  private respond(type: XdsTypeUrl, snapshot: Snapshot, phase: 'keep-removed' | 'final'): boolean {
    const st = this.types.get(type);
    if (!st?.requested || !this.record || this.congested) return false;
    if (phase === 'keep-removed' && (!WILDCARD_TYPES.has(type) || !st.sent)) return false;
    if (this.settled(type, st, snapshot)) return false;
    const kept = this.answer(type, st, snapshot, phase);
    if (phase === 'final') st.settledAt = snapshot.contentToken(type);
    return kept;
  }

  /**
   * Whether answering this type now would send nothing, told without resolving the subscription:
   * it was answered in full against this content, or against the content just before and none of
   * its names changed since (then that holds for this content too). A wildcard subscription is
   * touched by any change; a forced answer is always made.
   */
  private settled(type: XdsTypeUrl, st: TypeState, snapshot: Snapshot): boolean {
    if (st.settledAt === undefined || st.force) return false;
    const token = snapshot.contentToken(type);
    if (st.settledAt === token) return true;
    const change = snapshot.changeOf(type);
    if (change === undefined || change.from !== st.settledAt || st.subscription.wildcard || touches(change.names, st.subscription.names)) return false;
    st.settledAt = token;
    return true;
  }

  /** respond's work once the type is known to need a look: what it sends, if anything. */
  private answer(type: XdsTypeUrl, st: TypeState, snapshot: Snapshot, phase: 'keep-removed' | 'final'): boolean {
    // respond let 'keep-removed' through only for a full-state type already sent.
    const fullState = WILDCARD_TYPES.has(type);
    let body = snapshot.sotwBody(type, st.subscription.sub);
    let keptFor: SotwBody | undefined;
    if (phase === 'keep-removed' && st.sent) {
      const merged = snapshot.keepRemoved(type, st.sent, body);
      if (!merged) return false;
      keptFor = body;
      body = merged;
    }
    const unchanged = st.sent?.version === body.version;
    if (unchanged && !st.force) {
      // The client holds the merged state already (nothing else changed): the final response is still one that drops only.
      if (phase === 'keep-removed') st.keptFor = keptFor;
      return phase === 'keep-removed';
    }
    // EDS and RDS are answered only for names that exist: absence there is not deletion.
    if (!fullState && body.names.length === 0) return false;
    if (!fullState && !st.force && st.sent) {
      // Incremental types: a push carries only what changed since the client's last response.
      const update = snapshot.sotwUpdate(type, st.sent, body);
      if (update) this.send(type, st, body, update);
      else if (this.droppedRefused(type, body)) this.send(type, st, body, body);
      else st.sent = body;
      return false;
    }
    this.send(type, st, body, body, keptFor);
    return phase === 'keep-removed';
  }

  /**
   * `state` is what the client holds afterwards; `wire` what this response carries (all of it, or
   * the changes); `keptFor`: a make-before-break response's final state (TypeState.keptFor).
   */
  private send(type: XdsTypeUrl, st: TypeState, state: SotwBody, wire: SotwBody, keptFor?: SotwBody): void {
    if (!this.record) return;
    const dropsOnly = st.keptFor === state;
    st.keptFor = keptFor;
    const nonce = this.nextNonce();
    // Two fields, not an object: a push sends to every stream.
    st.previousNonce = st.nonce;
    st.previousWire = st.wire;
    st.nonce = nonce;
    st.sent = state;
    st.settledAt = undefined;
    st.wire = wire;
    st.force = false;
    this.io.send([joinResponse(wire.bytes, nonce, this.deps.controlPlaneId, sotwTail)]);
    this.deps.registry.sent(this.record, type, state.version, nonce, state.versions, 'state');
    // Warming: Envoy re-creates an updated cluster (listener) and waits for its EDS (RDS) answer,
    // asking with the same names it already holds; that request must be answered. Not after a
    // response that only drops what the one before kept: nothing warms, and the forced answer to
    // Envoy's next EDS request (it shrank) resent every assignment, unchanged, on each removal.
    if (dropsOnly) return;
    if (type === TYPE.cluster) this.markForce(TYPE.endpoint);
    if (type === TYPE.listener) this.markForce(TYPE.route);
  }

  /**
   * Whether the client dropped a name it refused (a NACK's) from its subscription. A SotW NACK
   * refuses the whole response, and one that names no resource counts all it carried as refused;
   * a client that then drops the culprit (its listener deleted) is sent nothing for the rest
   * (nothing changed), so they stayed NACKED in /v1/proxies and CSDS for good. It is then answered
   * with what it holds, once: its ACK says it holds that. Each such answer follows one of the
   * client's own requests, so a refusal cannot become a resend loop.
   */
  private droppedRefused(type: XdsTypeUrl, next: SotwBody): boolean {
    const rejected = this.record?.types.get(type)?.rejected;
    if (rejected === undefined || rejected.size === 0) return false;
    for (const name of rejected.keys()) if (!next.versions.has(name)) return true;
    return false;
  }

  private markForce(type: XdsTypeUrl): void {
    const st = this.types.get(type);
    if (st) st.force = true;
  }
}
