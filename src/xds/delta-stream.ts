import type { Snapshot } from './cache.js';
import { PUSH_ORDER, SHORT_TYPE, TYPE, type XdsTypeUrl } from './envoy-api.js';
import type { ProxyRecord } from './proxy-status.js';
import { checkRequestNames } from './limits.js';
import { checkNameCount, checkTypeUrl, WILDCARD_TYPES, XdsStream, type StreamDeps, type StreamIo } from './stream-common.js';
import { encodeDeltaResponse, type DeltaDiscoveryRequest } from './wire.js';

interface TypeState {
  wildcard: boolean;
  names: Set<string>;
  requested: boolean;
  /** name → version the client holds (told by initial_resource_versions, or sent by us). */
  known: Map<string, string>;
  /** Responses not yet ACKed or NACKed, by nonce (several may be in flight in Delta). */
  inflight: Map<string, { version: string }>;
}

const MAX_INFLIGHT = 32;

/**
 * One incremental (Delta) xDS stream. Subscription changes are honored whatever the nonce;
 * only changed resources are sent, and deletions travel as `removed_resources`.
 */
export class DeltaStream extends XdsStream<DeltaDiscoveryRequest> {
  private readonly types = new Map<XdsTypeUrl, TypeState>();

  constructor(deps: StreamDeps, io: StreamIo, service: string, fixedType?: XdsTypeUrl) {
    super(deps, io, service, 'delta', fixedType);
  }

  override onCacheChange(): void {
    if (this.closed || !this.record) return;
    const snapshot = this.snapshot();
    // Make-before-break: additions and updates in CDS → EDS → LDS → RDS order, removals after, in reverse.
    for (const type of PUSH_ORDER) this.respond(type, snapshot, 'updates', false);
    for (const type of [...PUSH_ORDER].reverse()) this.respond(type, snapshot, 'removals', false);
  }

  protected handle(req: DeltaDiscoveryRequest, record: ProxyRecord): void {
    const type = checkTypeUrl(req.type_url, this.fixedType);
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
      if (answered) {
        st.inflight.delete(req.response_nonce);
        if (req.error_detail) {
          const message = req.error_detail.message || `code ${req.error_detail.code}`;
          this.deps.registry.nacked(record, type, { nonce: req.response_nonce, version: answered.version, keptVersion: '', message });
          this.deps.log.warn({ node: record.node.id, type: SHORT_TYPE[type], error: message }, 'NACK');
          // Parked: the known versions stay as sent, so the same content is not resent in a loop.
        } else {
          this.deps.registry.acked(record, type, req.response_nonce, answered.version);
        }
      }
    }

    if (first) {
      for (const [name, version] of initial) st.known.set(name, version);
      if (WILDCARD_TYPES.has(type) && req.resource_names_subscribe.length === 0) st.wildcard = true;
    }
    for (const name of req.resource_names_subscribe) {
      if (name === '*') {
        st.wildcard = true;
        continue;
      }
      // A (re)subscription outside the first request means the client does not hold the resource.
      if (!first || !req.initial_resource_versions[name]) st.known.delete(name);
      if (!st.names.has(name)) this.subscribed.add(type, this.subscribed.nameBytes(name));
      st.names.add(name);
    }
    for (const name of req.resource_names_unsubscribe) {
      if (name === '*') {
        st.wildcard = false;
        continue;
      }
      if (st.names.delete(name)) this.subscribed.add(type, -this.subscribed.nameBytes(name));
      st.known.delete(name);
    }
    // The limit bounds what a stream may hold, not only what one request may name.
    checkNameCount(st.names.size, this.deps.maxResourceNames);
    // A client that reconnects (from another replica, or to this one restarted) holds what it
    // says it holds: versions are content hashes, equal everywhere. Only the difference is sent.
    if (first && initial.length > 0) this.deps.registry.resumed(record, type, this.snapshot().version, new Map(st.known));
    // A new wildcard client's first request is answered even if there is nothing to send (Envoy's
    // initialization waits for it). One that reconnects holding resources has initialized: when
    // it holds everything (it moved here from another replica), it is sent nothing at all.
    this.respond(type, this.snapshot(), 'all', first && st.wildcard && initial.length === 0);
    if (type === TYPE.cluster) this.respond(TYPE.endpoint, this.snapshot(), 'all', false);
  }

  private state(type: XdsTypeUrl): TypeState {
    let st = this.types.get(type);
    if (!st) {
      st = { wildcard: false, names: new Set(), requested: false, known: new Map(), inflight: new Map() };
      this.types.set(type, st);
    }
    return st;
  }

  private respond(type: XdsTypeUrl, snapshot: Snapshot, what: 'updates' | 'removals' | 'all', answerEmpty: boolean): void {
    const st = this.types.get(type);
    if (!st?.requested || !this.record || this.congested) return;
    const pool = snapshot.resources(type);
    const resources: Uint8Array[] = [];
    const sent: [string, string][] = [];
    if (what !== 'removals') {
      const candidates = st.wildcard ? pool.keys() : st.names.values();
      for (const name of candidates) {
        const r = pool.get(name);
        if (r && st.known.get(name) !== r.version) {
          resources.push(r.deltaBytes);
          sent.push([name, r.version]);
        }
      }
    }
    const removed: string[] = [];
    if (what !== 'updates') {
      for (const name of st.known.keys()) {
        if (!pool.has(name) && (st.wildcard || st.names.has(name))) removed.push(name);
      }
    }
    if (resources.length === 0 && removed.length === 0 && !answerEmpty) return;

    const nonce = this.nextNonce();
    const systemVersion = snapshot.version;
    this.io.send([encodeDeltaResponse({ systemVersion, typeUrl: type, nonce, resources, removed, controlPlane: this.deps.controlPlaneId })]);
    for (const [name, version] of sent) st.known.set(name, version);
    for (const name of removed) st.known.delete(name);
    st.inflight.set(nonce, { version: systemVersion });
    if (st.inflight.size > MAX_INFLIGHT) st.inflight.delete(st.inflight.keys().next().value as string);
    this.deps.registry.sent(this.record, type, systemVersion, nonce, new Map(sent), 'merge');
    if (removed.length > 0) this.deps.registry.removed(this.record, type, removed);

    // Warming: an updated cluster is re-created by Envoy and waits for its endpoints again.
    if (type === TYPE.cluster && sent.length > 0) {
      const eds = this.types.get(TYPE.endpoint);
      if (eds) for (const [name] of sent) eds.known.delete(name);
    }
  }
}
