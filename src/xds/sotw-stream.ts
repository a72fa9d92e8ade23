import { buildSotwBody, type SotwBody, type Snapshot, type VersionedResource } from './cache.js';
import { PUSH_ORDER, SHORT_TYPE, TYPE, type XdsTypeUrl } from './envoy-api.js';
import type { ProxyRecord } from './proxy-status.js';
import {
  checkNameCount, checkTypeUrl, CODE, nextStreamId, StreamError, WILDCARD_TYPES,
  type StreamDeps, type StreamIo,
} from './stream-common.js';
import { nodeInfo, sotwTail, type DiscoveryRequest } from './wire.js';

interface TypeState {
  wildcard: boolean;
  /** The first request was empty on LDS/CDS: wildcard until the client names something. */
  legacyWildcard: boolean;
  names: Set<string>;
  requested: boolean;
  nonce?: string;
  /** What the client was last sent: absence from a later LDS/CDS response means deletion. */
  sent?: SotwBody;
  /** Resend even if unchanged: a resubscribe, or cluster/listener warming after a CDS/LDS push. */
  force: boolean;
}

/**
 * One State-of-the-World stream (ADS, or a single-type service when `fixedType` is set).
 * Request-driven for subscriptions and ACK/NACK; cache-driven for pushes.
 */
export class SotwStream {
  readonly id = nextStreamId();
  private record: ProxyRecord | undefined;
  private readonly types = new Map<XdsTypeUrl, TypeState>();
  private nonceSeq = 0;
  private closed = false;

  constructor(
    private readonly deps: StreamDeps,
    private readonly io: StreamIo,
    private readonly service: string,
    private readonly fixedType?: XdsTypeUrl,
  ) {}

  get proxy(): ProxyRecord | undefined {
    return this.record;
  }

  onRequest(req: DiscoveryRequest): void {
    if (this.closed) return;
    try {
      this.handle(req);
    } catch (err) {
      if (!(err instanceof StreamError)) throw err;
      this.deps.log.warn({ node: this.record?.node.id, peer: this.io.peer, err: err.message }, 'xds request rejected');
      this.io.fail(err.code, err.message);
      this.close();
    }
  }

  /** The cache changed: push what this proxy's subscriptions now resolve to, make-before-break. */
  onCacheChange(): void {
    if (this.closed || !this.record) return;
    const snapshot = this.snapshot();
    for (const type of PUSH_ORDER) this.respond(type, snapshot, 'keep-removed');
    for (const type of [...PUSH_ORDER].reverse()) this.respond(type, snapshot, 'final');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.record) {
      this.deps.registry.disconnect(this.id);
      this.deps.log.info({ node: this.record.node.id, stream: this.id, service: this.service }, 'proxy disconnected');
    }
  }

  private snapshot(): Snapshot {
    return this.deps.cache.snapshotFor(this.record?.node.cluster ?? '');
  }

  private handle(req: DiscoveryRequest): void {
    if (!this.record) {
      if (!req.node || !req.node.id) throw new StreamError(CODE.INVALID_ARGUMENT, 'the first request on a stream must carry node.id');
      const node = nodeInfo(req.node);
      this.record = this.deps.registry.connect(this.id, node, 'sotw', this.service, this.io.peer);
      this.deps.log.info({ node: node.id, cluster: node.cluster, peer: this.io.peer, stream: this.id, service: this.service }, 'proxy connected');
    }
    const type = checkTypeUrl(req.type_url, this.fixedType);
    checkNameCount(req.resource_names.length, this.deps.maxResourceNames);
    const st = this.state(type);

    if (req.response_nonce !== '' && st.nonce !== undefined && req.response_nonce !== st.nonce) {
      // Stale: the client has not yet seen our latest response of this type; it will answer that one.
      this.deps.log.debug({ node: this.record.node.id, type: SHORT_TYPE[type], nonce: req.response_nonce }, 'stale nonce ignored');
      return;
    }
    if (req.response_nonce !== '' && req.response_nonce === st.nonce) {
      if (req.error_detail) {
        const message = req.error_detail.message || `code ${req.error_detail.code}`;
        this.deps.registry.nacked(this.record, type, { nonce: st.nonce, version: st.sent?.version ?? '', keptVersion: req.version_info, message });
        this.deps.log.warn({ node: this.record.node.id, type: SHORT_TYPE[type], version: st.sent?.version, error: message }, 'NACK');
      } else {
        this.deps.registry.acked(this.record, type, st.nonce, req.version_info);
      }
    }

    const first = !st.requested;
    st.requested = true;
    const explicit = req.resource_names.filter((n) => n !== '*');
    if (first && WILDCARD_TYPES.has(type) && req.resource_names.length === 0) st.legacyWildcard = true;
    if (explicit.length > 0 || req.resource_names.includes('*')) st.legacyWildcard = st.legacyWildcard && req.resource_names.length === 0;
    const wildcard = req.resource_names.includes('*') || (st.legacyWildcard && req.resource_names.length === 0);
    const next = new Set(explicit);
    // A name the client did not hold before must be answered even if nothing changed (resubscribe).
    let added = wildcard && !st.wildcard;
    for (const n of next) if (!st.names.has(n)) added = true;
    st.wildcard = wildcard;
    st.names = next;
    if (added || first) st.force = true;
    this.respond(type, this.snapshot(), 'final');
  }

  private state(type: XdsTypeUrl): TypeState {
    let st = this.types.get(type);
    if (!st) {
      st = { wildcard: false, legacyWildcard: false, names: new Set(), requested: false, force: false };
      this.types.set(type, st);
    }
    return st;
  }

  private respond(type: XdsTypeUrl, snapshot: Snapshot, phase: 'keep-removed' | 'final'): void {
    const st = this.types.get(type);
    if (!st?.requested || !this.record) return;
    let body = snapshot.sotwBody(type, st.wildcard ? 'all' : [...st.names]);
    const fullState = WILDCARD_TYPES.has(type);
    if (phase === 'keep-removed') {
      if (!fullState || !st.sent) return;
      // Make-before-break: keep removed clusters/listeners until routes stop using them.
      const keep = st.sent.resources.filter((r) => !body.names.includes(r.name));
      if (keep.length === 0) return;
      const merged: VersionedResource[] = [...body.resources, ...keep].sort((a, b) => (a.name < b.name ? -1 : 1));
      body = buildSotwBody(this.deps.cache.versionPrefix, type, merged);
    }
    const unchanged = st.sent?.version === body.version;
    if (unchanged && !st.force) return;
    // EDS and RDS are answered only for names that exist: absence there is not deletion.
    if (!fullState && body.names.length === 0) return;
    this.send(type, st, body);
  }

  private send(type: XdsTypeUrl, st: TypeState, body: SotwBody): void {
    if (!this.record) return;
    const nonce = (++this.nonceSeq).toString(36);
    const tail = sotwTail(nonce, this.deps.controlPlaneId);
    const bytes = new Uint8Array(body.bytes.length + tail.length);
    bytes.set(body.bytes, 0);
    bytes.set(tail, body.bytes.length);
    st.nonce = nonce;
    st.sent = body;
    st.force = false;
    this.io.send(bytes);
    this.deps.registry.sent(this.record, type, body.version, nonce, body.resources.map((r) => [r.name, r.version]), true);
    // Warming: Envoy re-creates an updated cluster (listener) and waits for its EDS (RDS) answer,
    // asking with the same names it already holds; that request must be answered.
    if (type === TYPE.cluster) this.markForce(TYPE.endpoint);
    if (type === TYPE.listener) this.markForce(TYPE.route);
  }

  private markForce(type: XdsTypeUrl): void {
    const st = this.types.get(type);
    if (st) st.force = true;
  }
}
