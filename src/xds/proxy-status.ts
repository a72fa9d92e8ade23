import { worstState } from '../telemetry/operator-metrics.js';
import { PUSH_ORDER, SHORT_TYPE, type XdsTypeUrl } from './envoy-api.js';

/** What fulcrum knows about each connected proxy's sync state: the source for CSDS and /v1/proxies. */

export type SyncState = 'SYNCED' | 'STALE' | 'NACKED' | 'NOT_SENT';

export interface NodeInfo {
  readonly id: string;
  readonly cluster: string;
  readonly metadata: Record<string, unknown>;
  /** The proxy's metadata was over server.xds.limits.maxNodeMetadataBytes: `metadata` is empty. */
  readonly metadataOmitted?: boolean;
  readonly userAgent: string;
}

export interface NackInfo {
  readonly nonce: string;
  /** The version the proxy rejected. */
  readonly version: string;
  /** The version the proxy still runs (the request's version_info). */
  readonly keptVersion: string;
  readonly message: string;
  readonly at: number;
}

export interface TypeStatus {
  sentVersion?: string;
  sentNonce?: string;
  sentAt?: number;
  /** name → version of what the client was last sent (may be shared with the cache: never mutated). */
  sentResources: ReadonlyMap<string, string>;
  ackedVersion?: string;
  ackedNonce?: string;
  ackedAt?: number;
  lastNack?: NackInfo;
  /**
   * name → version of resources a NACKed response carried that the proxy refused and still does
   * not hold as sent (no later ACKed response carried them, and they were not removed). A later
   * ACK of other resources (Delta, or SotW's incremental EDS and RDS) does not make the proxy hold
   * these, so the type stays NACKED.
   */
  rejected?: Map<string, string>;
  /**
   * The nonce of the NACKed last response once the client dropped every resource it refused
   * (Delta unsubscribes them without a response): it holds the rest of that response as sent.
   */
  settledNack?: string;
  responses: number;
  nacks: number;
}

export interface ProxyRecord {
  readonly streamId: number;
  readonly node: NodeInfo;
  readonly protocol: 'sotw' | 'delta';
  readonly service: string;
  readonly peer: string;
  readonly connectedAt: number;
  readonly types: Map<XdsTypeUrl, TypeStatus>;
}

export function syncState(t: TypeStatus | undefined): SyncState {
  if (!t || t.sentNonce === undefined) return 'NOT_SENT';
  const settled = t.settledNack !== undefined && t.settledNack === t.sentNonce;
  if (t.lastNack && ((t.lastNack.nonce === t.sentNonce && !settled) || (t.rejected?.size ?? 0) > 0)) return 'NACKED';
  return t.ackedNonce === t.sentNonce || settled ? 'SYNCED' : 'STALE';
}

/** A stream's overall state, its worst type's (NACKED, else STALE, else SYNCED; NOT_SENT: nothing sent), as fulcrum_proxies counts it. */
export function streamState(r: ProxyRecord): SyncState {
  return worstState(PUSH_ORDER.map((url) => syncState(r.types.get(url)))) as SyncState;
}

/**
 * One resource's state. A NACK names the resources it refused (`rejected`), and the proxy took
 * the rest of that response: those read as the type would without the NACK. With none refused,
 * every resource shares its type's state.
 */
export function resourceSyncState(t: TypeStatus, name: string): SyncState {
  if (t.rejected === undefined || t.rejected.size === 0) return syncState(t);
  if (t.rejected.has(name)) return 'NACKED';
  if (t.sentNonce === undefined) return 'NOT_SENT';
  return t.ackedNonce === t.sentNonce || t.lastNack?.nonce === t.sentNonce ? 'SYNCED' : 'STALE';
}

/** What a NACKed response carried, and what of it the proxy refused (both name → version). */
export interface Refusal {
  readonly carried: ReadonlyMap<string, string>;
  readonly refused: ReadonlyMap<string, string>;
}

export interface StatusEvents {
  /** A response was sent on the stream (a push). */
  onSent?(record: ProxyRecord, type: XdsTypeUrl): void;
  onNack?(record: ProxyRecord, type: XdsTypeUrl, nack: NackInfo): void;
  onAck?(record: ProxyRecord, type: XdsTypeUrl, sentAt: number | undefined, at: number): void;
}

export class ProxyRegistry {
  /** Bumped by every change to a record (connect, disconnect, sent, ACK, NACK...): readers skip work while it stands. */
  private changes = 0;

  private readonly records = new Map<number, ProxyRecord>();
  /** The sent maps this registry made itself (and so may change in place), by type status. */
  private readonly mine = new WeakMap<TypeStatus, Map<string, string>>();

  constructor(
    private readonly clock: () => number = Date.now,
    private readonly events: StatusEvents = {},
  ) {}

  connect(streamId: number, node: NodeInfo, protocol: 'sotw' | 'delta', service: string, peer: string): ProxyRecord {
    this.changes++;
    const record: ProxyRecord = { streamId, node, protocol, service, peer, connectedAt: this.clock(), types: new Map() };
    this.records.set(streamId, record);
    return record;
  }

  disconnect(streamId: number): void {
    this.changes++;
    this.records.delete(streamId);
  }

  list(): ProxyRecord[] {
    return [...this.records.values()];
  }

  get size(): number {
    return this.records.size;
  }

  /** Changes since creation: equal values mean nothing in any record changed in between. */
  get version(): number {
    return this.changes;
  }

  private type(record: ProxyRecord, type: XdsTypeUrl): TypeStatus {
    let t = record.types.get(type);
    if (!t) {
      t = { sentResources: new Map(), responses: 0, nacks: 0 };
      record.types.set(type, t);
    }
    return t;
  }

  /**
   * `state` replaces what the client holds (SotW: the full state after this response, shared by
   * reference); `merge` adds to it (Delta).
   */
  sent(record: ProxyRecord, type: XdsTypeUrl, version: string, nonce: string, resources: ReadonlyMap<string, string>, mode: 'state' | 'merge'): void {
    this.changes++;
    const t = this.type(record, type);
    t.sentVersion = version;
    t.sentNonce = nonce;
    t.sentAt = this.clock();
    t.responses++;
    if (mode === 'state') {
      t.sentResources = resources;
      // A refused resource the client no longer holds (it was removed) is no longer refused.
      if (t.rejected) for (const name of t.rejected.keys()) if (!resources.has(name)) t.rejected.delete(name);
    } else {
      const merged = this.owned(t);
      for (const [name, v] of resources) merged.set(name, v);
    }
    this.events.onSent?.(record, type);
  }

  /**
   * The client reconnected holding exactly what it would be sent (it came from another replica,
   * or from this one before a restart), so nothing is sent and it is in sync as it stands. Marked
   * with the empty nonce no response carries; not counted as a push or an ACK.
   */
  resumed(record: ProxyRecord, type: XdsTypeUrl, version: string, resources: ReadonlyMap<string, string>): void {
    this.changes++;
    const t = this.type(record, type);
    const at = this.clock();
    Object.assign(t, { sentVersion: version, sentNonce: '', sentAt: at, ackedVersion: version, ackedNonce: '', ackedAt: at, sentResources: resources, rejected: undefined });
  }

  removed(record: ProxyRecord, type: XdsTypeUrl, names: Iterable<string>): void {
    // Nothing was ever sent of this type: nothing to remove, and no status to make for it.
    const t = record.types.get(type);
    if (t === undefined) return;
    this.changes++;
    const next = this.owned(t);
    const refused = t.rejected?.size ?? 0;
    for (const n of names) {
      next.delete(n);
      t.rejected?.delete(n);
    }
    if (refused > 0 && t.rejected?.size === 0 && t.lastNack?.nonce === t.sentNonce) t.settledNack = t.sentNonce;
  }

  /**
   * The type's sent map, made private to this record first if it is shared (SotW assigns the
   * stream's memoized, read-only map). Delta merges a few names per push into a map it owns
   * instead of copying every resource the proxy holds on every push.
   */
  private owned(t: TypeStatus): Map<string, string> {
    const mine = this.mine.get(t);
    if (mine && mine === t.sentResources) return mine;
    const copy = new Map(t.sentResources);
    this.mine.set(t, copy);
    t.sentResources = copy;
    return copy;
  }

  /** `carried`: what the ACKed response carried (by name), which the proxy now holds as sent. */
  acked(record: ProxyRecord, type: XdsTypeUrl, nonce: string, version: string, carried?: ReadonlyMap<string, string>): void {
    this.changes++;
    const t = this.type(record, type);
    // Read only while something is refused: an ACK of every stream on every push makes no iterator.
    if (t.rejected && carried) for (const name of carried.keys()) t.rejected.delete(name);
    const first = t.ackedNonce !== nonce;
    t.ackedVersion = version;
    t.ackedNonce = nonce;
    t.ackedAt = this.clock();
    if (first && nonce === t.sentNonce) this.events.onAck?.(record, type, t.sentAt, t.ackedAt);
  }

  /**
   * `refusal`: what the NACKed response carried, and of it (name → version) what the proxy refused
   * as far as known. The rest of what it carried the proxy took, so it is refused no longer.
   */
  nacked(record: ProxyRecord, type: XdsTypeUrl, nack: Omit<NackInfo, 'at'>, refusal?: Refusal): void {
    this.changes++;
    const t = this.type(record, type);
    t.lastNack = { ...nack, at: this.clock() };
    if (refusal) {
      if (t.rejected) for (const name of refusal.carried.keys()) if (!refusal.refused.has(name)) t.rejected.delete(name);
      for (const [name, version] of refusal.refused) (t.rejected ??= new Map()).set(name, version);
    }
    t.nacks++;
    this.events.onNack?.(record, type, t.lastNack);
  }
}

/** Names listed per type where a proxy's state is shown (a NACK of a large response may refuse thousands). */
export const MAX_REJECTED_LISTED = 100;

/** Where a proxy's state is shown: the refused resources' names, sorted, the first MAX_REJECTED_LISTED (no field when none). */
export function rejectedField(t: TypeStatus): { rejected?: string[] } {
  if (t.rejected === undefined || t.rejected.size === 0) return {};
  return { rejected: [...t.rejected.keys()].sort().slice(0, MAX_REJECTED_LISTED) };
}

/** A compact, JSON-friendly view of one proxy (for logs, tests and the admin API). */
export function describeProxy(r: ProxyRecord): Record<string, unknown> {
  const types: Record<string, unknown> = {};
  for (const [url, t] of r.types) {
    types[SHORT_TYPE[url]] = {
      state: syncState(t),
      sentVersion: t.sentVersion,
      ackedVersion: t.ackedVersion,
      resources: t.sentResources.size,
      ...(t.lastNack ? { lastNack: { version: t.lastNack.version, message: t.lastNack.message, at: new Date(t.lastNack.at).toISOString() } } : {}),
      ...rejectedField(t),
    };
  }
  return {
    nodeId: r.node.id,
    nodeCluster: r.node.cluster,
    metadata: r.node.metadata,
    userAgent: r.node.userAgent,
    protocol: r.protocol,
    service: r.service,
    peer: r.peer,
    connectedSince: new Date(r.connectedAt).toISOString(),
    types,
  };
}
