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
}

/** The limits above, plus the older `server.xds.maxResourceNames` (a count of names per request). */
export type LimitName = keyof XdsLimits | 'maxResourceNames';

/**
 * Defaults sized for the shipped pod (512 MiB, V8 heap 384 MiB): a request of a few MiB holds
 * tens of thousands of names; ~250 MiB at rest plus ~45 KiB per synced stream (100 clusters,
 * measured by bench/reconnect-storm.ts) puts 5,000 streams near the pod's limit, so a bigger fleet
 * raises maxStreams/maxConnections with the memory; one address (a node, a NAT) may hold
 * hundreds of sidecars.
 */
export const DEFAULT_LIMITS: XdsLimits = {
  maxRequestBytes: 4 * 1024 * 1024,
  maxResponseBytes: 64 * 1024 * 1024,
  maxNameBytes: 1024,
  maxNodeMetadataBytes: 16 * 1024,
  maxRequestNameBytes: 2 * 1024 * 1024,
  maxSubscriptionNameBytes: 2 * 1024 * 1024,
  maxConcurrentStreamsPerConnection: 100,
  maxConnectionsPerPeer: 1_000,
  maxConnections: 5_000,
  maxStreamsPerPeer: 2_000,
  maxStreams: 5_000,
  handshakeTimeoutMs: 30_000,
  idleConnectionMs: 300_000,
  maxQueuedBytesPerStream: 64 * 1024,
};

/** The limits whose refusals are counted (the HTTP/2 stream cap and the idle timeout act inside the transport). */
export const COUNTED_LIMITS: readonly LimitName[] = [
  'maxRequestBytes',
  'maxResponseBytes',
  'maxNameBytes',
  'maxNodeMetadataBytes',
  'maxRequestNameBytes',
  'maxSubscriptionNameBytes',
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

/** The name bytes one stream holds per type; refuses a change that takes the total over the limit. */
export class SubscriptionBytes {
  private readonly perType = new Map<string, number>();
  private total = 0;

  constructor(private readonly limits: XdsLimits) {}

  /** Sets a type's subscribed bytes (SotW: the request names the whole set). */
  set(type: string, bytes: number): void {
    this.check(this.total - (this.perType.get(type) ?? 0) + bytes);
    this.total += bytes - (this.perType.get(type) ?? 0);
    this.perType.set(type, bytes);
  }

  /** Whether setting a type's bytes to `bytes` stays within the limit (`set` would not throw). */
  fits(type: string, bytes: number): boolean {
    return this.total - (this.perType.get(type) ?? 0) + bytes <= this.limits.maxSubscriptionNameBytes;
  }

  /** Adds (or with a negative count removes) names' bytes (Delta subscribe/unsubscribe). */
  add(type: string, bytes: number): void {
    this.set(type, Math.max(0, (this.perType.get(type) ?? 0) + bytes));
  }

  nameBytes(name: string): number {
    return utf8Bytes(name);
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

/** Fills unset limits with the defaults. */
export function withDefaults(partial: Partial<XdsLimits> | undefined): XdsLimits {
  return { ...DEFAULT_LIMITS, ...partial };
}
