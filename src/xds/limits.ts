/**
 * The bounds that keep the xDS port's memory finite whatever a client sends: message sizes,
 * resource-name bytes, and how many connections and streams one peer (and everyone) may hold.
 * Each is configured under `server.xds.limits`; what exceeds one is refused with a gRPC status
 * naming the limit and its value, and counted (`fulcrum_xds_limit_exceeded_total{limit}`).
 */

export interface XdsLimits {
  /** Largest request message accepted (grpc-js refuses it from the length prefix, before buffering it). */
  readonly maxRequestBytes: number;
  /** Largest response message sent (a full CDS/EDS state of a large catalog). */
  readonly maxResponseBytes: number;
  /** Longest single resource name, in UTF-8 bytes. */
  readonly maxNameBytes: number;
  /**
   * Node metadata kept per stream (as JSON, about): a proxy's metadata over it is not kept (its
   * stream is served; /v1/proxies shows `metadataOmitted`). Istio's sidecars send a few KiB.
   */
  readonly maxNodeMetadataBytes: number;
  /** Total UTF-8 bytes of the resource names in one request. */
  readonly maxRequestNameBytes: number;
  /** Total UTF-8 bytes of the names one stream is subscribed to, all types together. */
  readonly maxSubscriptionNameBytes: number;
  /**
   * Subscription bytes held for one peer IP address, all its streams together, each distinct
   * subscription once (streams that name the same list share one copy): UTF-8 bytes plus
   * SUBSCRIPTION_BYTES_PER_NAME per name (see SubscriptionBudget).
   */
  readonly maxSubscriptionNameBytesPerPeer: number;
  /** The same, for everyone: what subscriptions may hold of the heap in all. */
  readonly maxSubscriptionNameBytesTotal: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS announced on every connection. */
  readonly maxConcurrentStreamsPerConnection: number;
  /** Open connections from one peer IP address. */
  readonly maxConnectionsPerPeer: number;
  /** Open connections from everyone. */
  readonly maxConnections: number;
  /** Open gRPC calls (any service) from one peer IP address. */
  readonly maxStreamsPerPeer: number;
  /** Open gRPC calls from everyone. */
  readonly maxStreams: number;
  /**
   * What one peer is, for the per-peer limits, when it connects over IPv6: the first this many bits
   * of its address (peer-group.ts). An IPv6 host owns a /64 and may use any address in it, but
   * many Envoys share one /64 (a cloud subnet, a node's pod range): 128 by default, each address its
   * own peer, and 64 where untrusted clients reach the port.
   */
  readonly ipv6PeerPrefixLength: number;
  /** A new connection must start TLS or HTTP/2 (and finish the preface) within this time. */
  readonly handshakeTimeoutMs: number;
  /** A connection without any call for this long is closed (grpc.max_connection_idle_ms). */
  readonly idleConnectionMs: number;
  /**
   * Response bytes one stream may have written but not yet flushed (its peer is not reading).
   * At or over it nothing more is queued; once it drains the stream is sent its latest state, so
   * a stalled proxy holds at most this plus one response, and converges when it reads again.
   */
  readonly maxQueuedBytesPerStream: number;
  /**
   * Report samples one peer may send per second, `POST /v1/reports` (admin port) and gRPC
   * ReportService together (src/signals/report-budget.ts); over it: HTTP 429, RESOURCE_EXHAUSTED.
   */
  readonly reportSamplesPerSecondPerPeer: number;
  /** The most a peer may send at once after a quiet spell: at least one full batch (10,000). */
  readonly reportBurstSamplesPerPeer: number;
  /** Load reports (LRS) one stream may send ahead of the interval it was asked for (src/signals/lrs-service.ts). */
  readonly loadReportBurst: number;
}

/** The limits above, plus the older `server.xds.maxResourceNames` (a count of names per request). */
export type LimitName = keyof XdsLimits | 'maxResourceNames';

/**
 * Defaults sized for the shipped pod (512 MiB, V8 heap 384 MiB): a request of a few MiB holds
 * tens of thousands of names; ~250 MiB at rest plus ~45 KiB per synced stream (100 clusters,
 * measured by bench/reconnect-storm.ts) puts 5,000 streams near the pod's limit, so a bigger fleet
 * raises maxStreams/maxConnections with the memory; one address (a node, a NAT) may hold
 * hundreds of sidecars.
 *
 * Subscription budgets: the per-stream limits alone let one connection (100 streams × 2 MiB of
 * names, held ~2.1× in the heap) take 426 MiB and kill the process (review, "oom-one-connection").
 * A charged byte costs at most ~2.1 bytes of heap (measured: 2,000 names of 1,000 bytes held
 * 4.26 MiB: the decoded strings and the keys a list is found by) and ~1 byte beside it (SotW's
 * interned request bytes), so the 48 MiB process-wide budget holds at most ~100 MiB of the
 * 384 MiB heap, leaving the rest for ~60 MiB at rest and 5,000 streams at ~40 KiB, and ~48 MiB of
 * native memory in the 512 MiB pod (one connection of 100 such streams: 250-275 MiB RSS at its
 * peak, subscription-budget-process.test.ts). Per peer 8 MiB: one address fills a sixth of it. Legitimate fleets: 10,000
 * Envoys each naming the same 1,000 clusters of ~30 bytes share one list, charged once:
 * 1,000 × (30 + 32) = 62 KB (nominally 10,000 × 62 KB = 620 MB, were every list distinct, which
 * no heap of this size could hold anyway); 100 node groups with their own lists, 6.2 MB.
 * 10,000 proxyless clients each naming their own 50 of 1,000 clusters ("subs34"):
 * 10,000 × 50 × 62 = 31 MB (29.6 MiB), inside the 48 MiB; 2,000 of them behind one address
 * (maxStreamsPerPeer): 6.2 MB, inside the 8 MiB per peer.
 */
export const DEFAULT_LIMITS: XdsLimits = {
  maxRequestBytes: 4 * 1024 * 1024,
  maxResponseBytes: 64 * 1024 * 1024,
  maxNameBytes: 1024,
  maxNodeMetadataBytes: 16 * 1024,
  maxRequestNameBytes: 2 * 1024 * 1024,
  maxSubscriptionNameBytes: 2 * 1024 * 1024,
  maxSubscriptionNameBytesPerPeer: 8 * 1024 * 1024,
  maxSubscriptionNameBytesTotal: 48 * 1024 * 1024,
  maxConcurrentStreamsPerConnection: 100,
  maxConnectionsPerPeer: 1_000,
  maxConnections: 5_000,
  maxStreamsPerPeer: 2_000,
  maxStreams: 5_000,
  ipv6PeerPrefixLength: 128,
  handshakeTimeoutMs: 30_000,
  idleConnectionMs: 300_000,
  maxQueuedBytesPerStream: 64 * 1024,
  // ~12 % of a core per peer at the HTTP path's ~165,000 samples/s (bench/RESULTS.md "Report
  // ingestion rate"): an agent reporting 20,000 endpoints every second, two full batches at once.
  reportSamplesPerSecondPerPeer: 20_000,
  reportBurstSamplesPerPeer: 20_000,
  loadReportBurst: 5,
};

/** The limits whose refusals are counted (the HTTP/2 stream cap and the idle timeout act inside the transport). */
export const COUNTED_LIMITS: readonly LimitName[] = [
  'maxRequestBytes',
  'maxResponseBytes',
  'maxNameBytes',
  'maxNodeMetadataBytes',
  'maxRequestNameBytes',
  'maxSubscriptionNameBytes',
  'maxSubscriptionNameBytesPerPeer',
  'maxSubscriptionNameBytesTotal',
  'maxResourceNames',
  'maxConnectionsPerPeer',
  'maxConnections',
  'maxStreamsPerPeer',
  'maxStreams',
  'handshakeTimeoutMs',
];

/** Called once per refusal, with the limit that refused. */
export type LimitHit = (limit: LimitName) => void;

/** The configured text of a limit, as an operator finds it in the config file. */
export const limitKey = (limit: LimitName): string => (limit === 'maxResourceNames' ? 'server.xds.maxResourceNames' : `server.xds.limits.${limit}`);

export const describeLimit = (limits: XdsLimits, limit: keyof XdsLimits): string => `${limitKey(limit)} (${limits[limit]})`;

/** gRPC status codes used here (kept local so the pure parts do not import grpc-js). */
export const LIMIT_CODE = { INVALID_ARGUMENT: 3, RESOURCE_EXHAUSTED: 8 } as const;

/** A request or stream refused by a limit: carries the limit's name for the metric. */
export class LimitError extends Error {
  constructor(
    readonly code: number,
    readonly limit: LimitName,
    message: string,
  ) {
    super(message);
  }
}

const utf8Bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Checks each name's length and the request's total; returns the total bytes. */
export function checkRequestNames(names: Iterable<string>, limits: XdsLimits): number {
  let total = 0;
  for (const name of names) {
    const bytes = utf8Bytes(name);
    if (bytes > limits.maxNameBytes) {
      throw new LimitError(LIMIT_CODE.INVALID_ARGUMENT, 'maxNameBytes', `a resource name of ${bytes} bytes exceeds ${describeLimit(limits, 'maxNameBytes')}`);
    }
    total += bytes;
    if (total > limits.maxRequestNameBytes) {
      throw new LimitError(
        LIMIT_CODE.RESOURCE_EXHAUSTED,
        'maxRequestNameBytes',
        `the request's resource names exceed ${describeLimit(limits, 'maxRequestNameBytes')} bytes`,
      );
    }
  }
  return total;
}

/**
 * Charged per name on top of its UTF-8 bytes: the string header, set entry and list slots that
 * hold a name (~50 bytes on V8 for a SotW list; 32 keeps 10,000 distinct proxyless lists inside
 * the total, limits above). Without it 20,000 three-byte names would cost 60 KB of budget and
 * over a MiB of heap.
 */
export const SUBSCRIPTION_BYTES_PER_NAME = 32;

/** What one stream's type holds in a SubscriptionBudget: the (possibly shared) holding and its cost. */
export interface BudgetCharge {
  readonly holding: object;
  readonly cost: number;
}

interface Holding {
  cost: number;
  refs: number;
}

interface PeerHoldings {
  cost: number;
  readonly refs: Map<object, number>;
}

/**
 * Subscription bytes held per peer address and in all, each distinct holding once. A holding is
 * the object a stream's subscription of one type is kept in (shared-subscriptions.ts, a Delta
 * name set): streams that name the same list hold one object and cost it once, as in the heap,
 * while distinct lists (one hostile client's, or proxyless clients' own) cost each. The
 * per-stream limit alone let one connection hold 100 × 2 MiB (review, "oom-one-connection").
 * Charged on requests only, released when a stream closes.
 */
export class SubscriptionBudget {
  private total = 0;
  private readonly holdings = new Map<object, Holding>();
  private readonly peers = new Map<string, PeerHoldings>();

  constructor(private readonly limits: XdsLimits) {}

  /** Bytes charged in all. */
  get bytes(): number {
    return this.total;
  }

  /** Bytes charged to one peer (its address, or its IPv6 prefix: peer-group.ts). */
  peerBytes(peer: string): number {
    return this.peers.get(peer)?.cost ?? 0;
  }

  /**
   * Moves a stream type's charge from `from` (if any) to `holding`, costing `cost` unless it is
   * held already (then it costs what it cost its first holder). Throws, changing nothing, when
   * that would take the peer or the process over its budget; giving bytes back never throws.
   */
  move(peer: string, from: BudgetCharge | undefined, holding: object, cost: number): BudgetCharge {
    if (from?.holding === holding) return this.resize(peer, from, cost);
    const mine = this.peers.get(peer);
    const held = this.holdings.get(holding);
    const freed = from && this.holdings.get(from.holding)?.refs === 1 ? from.cost : 0;
    const peerFreed = from && mine?.refs.get(from.holding) === 1 ? from.cost : 0;
    this.check(peer, held ? 0 : cost, freed, mine?.refs.has(holding) ? 0 : (held?.cost ?? cost), peerFreed);
    if (from) this.release(peer, from);
    return this.acquire(peer, holding, held?.cost ?? cost);
  }

  /** Gives a charge back (its stream closed, or no longer holds it). */
  release(peer: string, charge: BudgetCharge): void {
    const held = this.holdings.get(charge.holding);
    if (held && --held.refs === 0) {
      this.holdings.delete(charge.holding);
      this.total -= held.cost;
    }
    const mine = this.peers.get(peer);
    const refs = mine?.refs.get(charge.holding);
    if (!mine || refs === undefined) return;
    if (refs > 1) return void mine.refs.set(charge.holding, refs - 1);
    mine.refs.delete(charge.holding);
    mine.cost -= held?.cost ?? charge.cost;
    if (mine.refs.size === 0) this.peers.delete(peer);
  }

  /** A holding changed in place (a Delta stream's own name set): only one no one else holds does. */
  private resize(peer: string, from: BudgetCharge, cost: number): BudgetCharge {
    const held = this.holdings.get(from.holding);
    const mine = this.peers.get(peer);
    if (!held || !mine || held.refs > 1) return from;
    this.check(peer, cost, held.cost, cost, held.cost);
    this.total += cost - held.cost;
    mine.cost += cost - held.cost;
    held.cost = cost;
    return { holding: from.holding, cost };
  }

  private acquire(peer: string, holding: object, cost: number): BudgetCharge {
    const held = this.holdings.get(holding);
    if (held) held.refs++;
    else {
      this.holdings.set(holding, { cost, refs: 1 });
      this.total += cost;
    }
    let mine = this.peers.get(peer);
    if (!mine) this.peers.set(peer, (mine = { cost: 0, refs: new Map() }));
    const refs = mine.refs.get(holding) ?? 0;
    if (refs === 0) mine.cost += cost;
    mine.refs.set(holding, refs + 1);
    return { holding, cost };
  }

  /** Refuses growth over either budget (a change that gives bytes back always passes). */
  private check(peer: string, added: number, freed: number, peerAdded: number, peerFreed: number): void {
    const total = this.total + added - freed;
    if (added > freed && total > this.limits.maxSubscriptionNameBytesTotal) {
      throw new LimitError(
        LIMIT_CODE.RESOURCE_EXHAUSTED,
        'maxSubscriptionNameBytesTotal',
        `the server's subscribed resource names would total ${total} bytes, over ${describeLimit(this.limits, 'maxSubscriptionNameBytesTotal')}`,
      );
    }
    const mine = this.peerBytes(peer) + peerAdded - peerFreed;
    if (peerAdded > peerFreed && mine > this.limits.maxSubscriptionNameBytesPerPeer) {
      throw new LimitError(
        LIMIT_CODE.RESOURCE_EXHAUSTED,
        'maxSubscriptionNameBytesPerPeer',
        `the subscribed resource names of ${peer}'s streams would total ${mine} bytes, over ${describeLimit(this.limits, 'maxSubscriptionNameBytesPerPeer')}`,
      );
    }
  }
}

/**
 * The address of a stream's peer as its calls report it ("address:port", "[v6]:port"): budgets
 * are per address, as the stream and connection limits are.
 */
export function peerAddress(peer: string): string {
  return peer.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
}

interface TypeBytes {
  bytes: number;
  names: number;
  charge?: BudgetCharge;
}

/**
 * The name bytes one stream holds per type; refuses a change that takes the total over the
 * limit. With a budget, each type's holding is charged to the stream's peer and the process too.
 */
export class SubscriptionBytes {
  private readonly perType = new Map<string, TypeBytes>();
  private total = 0;

  constructor(
    private readonly limits: XdsLimits,
    private readonly budget?: SubscriptionBudget,
    private readonly peer = '',
  ) {}

  /**
   * Sets a type's subscribed bytes and name count (SotW: the request names the whole set), held
   * in `holding` (shared by the streams that subscribe alike); refused over any limit, then unchanged.
   */
  set(type: string, bytes: number, names = 0, holding?: object): void {
    const t = this.entry(type);
    this.check(this.total - t.bytes + bytes);
    if (holding) t.charge = this.budget?.move(this.peer, t.charge, holding, cost(bytes, names));
    this.total += bytes - t.bytes;
    t.bytes = bytes;
    t.names = names;
  }

  /** Whether setting a type's bytes to `bytes` stays within the per-stream limit. */
  fits(type: string, bytes: number): boolean {
    return this.total - (this.perType.get(type)?.bytes ?? 0) + bytes <= this.limits.maxSubscriptionNameBytes;
  }

  /**
   * Adds (or with negative counts removes) names' bytes (Delta subscribe/unsubscribe), checked
   * against the per-stream limit; `hold` charges the budget once the request's names are in.
   */
  add(type: string, bytes: number, names = 0): void {
    const t = this.entry(type);
    const next = Math.max(0, t.bytes + bytes);
    this.check(this.total - t.bytes + next);
    this.total += next - t.bytes;
    t.bytes = next;
    t.names = Math.max(0, t.names + names);
  }

  /** Charges the budget for a type's bytes as they are now, held in `holding`. */
  hold(type: string, holding: object): void {
    const t = this.entry(type);
    if (this.budget) t.charge = this.budget.move(this.peer, t.charge, holding, cost(t.bytes, t.names));
  }

  /** Gives back everything a type held (per stream and in the budget). */
  drop(type: string): void {
    const t = this.perType.get(type);
    if (!t) return;
    this.perType.delete(type);
    this.total -= t.bytes;
    if (t.charge) this.budget?.release(this.peer, t.charge);
  }

  /** The stream closed: its budget charges are given back. */
  release(): void {
    for (const type of [...this.perType.keys()]) this.drop(type);
  }

  nameBytes(name: string): number {
    return utf8Bytes(name);
  }

  private entry(type: string): TypeBytes {
    let t = this.perType.get(type);
    if (!t) this.perType.set(type, (t = { bytes: 0, names: 0 }));
    return t;
  }

  private check(next: number): void {
    if (next > this.limits.maxSubscriptionNameBytes) {
      throw new LimitError(
        LIMIT_CODE.RESOURCE_EXHAUSTED,
        'maxSubscriptionNameBytes',
        `the stream's subscribed resource names would total ${next} bytes, over ${describeLimit(this.limits, 'maxSubscriptionNameBytes')}`,
      );
    }
  }
}

const cost = (bytes: number, names: number): number => bytes + names * SUBSCRIPTION_BYTES_PER_NAME;

/** Fills unset limits with the defaults. */
export function withDefaults(partial: Partial<XdsLimits> | undefined): XdsLimits {
  return { ...DEFAULT_LIMITS, ...partial };
}
