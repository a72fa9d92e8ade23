import type { Logger } from 'pino';
import type { Snapshot, SnapshotSource } from './cache.js';
import { isXdsTypeUrl, SHORT_TYPE, TYPE, type XdsTypeUrl } from './envoy-api.js';
import { peerGroup } from './peer-group.js';
import { DEFAULT_LIMITS, describeLimit, LimitError, limitKey, peerAddress, SubscriptionBytes, type LimitHit, type SubscriptionBudget, type XdsLimits } from './limits.js';
import { nackMessage, rejectedResources } from './nack.js';
import type { ProxyRecord, ProxyRegistry, TypeStatus } from './proxy-status.js';
import { nodeInfo, type RawNode, type RpcStatus } from './wire.js';
import { clientFormOf, type ClientForm } from './client-form.js';

/** What both stream kinds (SotW, Delta) need from the rest of the server. */
export interface StreamDeps {
  readonly cache: SnapshotSource;
  readonly registry: ProxyRegistry;
  readonly log: Logger;
  readonly maxResourceNames: number;
  readonly controlPlaneId: string;
  /** Name-byte limits (defaults when omitted). */
  readonly limits?: XdsLimits;
  /** Counts a request refused by a limit. */
  readonly onLimit?: LimitHit;
  /** Subscription bytes per peer and in all (the server's; none: only the per-stream limit). */
  readonly budget?: SubscriptionBudget;
  /** A proxy that is not an Envoy identified itself, before its first request is answered (XdsServerOptions.onClientForm). */
  readonly onClientForm?: (form: ClientForm) => void;
}

/** The gRPC side of one stream, as the state machines see it. */
export interface StreamIo {
  /** Writes one response, given as parts that are concatenated once, on serialization. */
  send(parts: readonly Uint8Array[]): void;
  /** The outgoing buffer is full: hold responses until it drains (then onCacheChange runs). */
  congested?(): boolean;
  /** Ends the stream with a gRPC status code and a message for the client. */
  fail(code: number, message: string): void;
  readonly peer: string;
  /** Throws a StreamError when this connection's credentials may not claim `node` (authz.ts). */
  admit?(node: { readonly id: string; readonly cluster: string }): void;
}

export class StreamError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** gRPC status codes used here (kept local so the state machines do not import grpc-js). */
export const CODE = { INVALID_ARGUMENT: 3, RESOURCE_EXHAUSTED: 8 } as const;

/** LDS and CDS treat an empty first subscription as "everything" (legacy wildcard). */
export const WILDCARD_TYPES: ReadonlySet<XdsTypeUrl> = new Set([TYPE.cluster, TYPE.listener]);

export function checkTypeUrl(typeUrl: string, fixed: XdsTypeUrl | undefined): XdsTypeUrl {
  const effective = typeUrl === '' && fixed ? fixed : typeUrl;
  if (!isXdsTypeUrl(effective)) {
    throw new StreamError(CODE.INVALID_ARGUMENT, effective === '' ? 'request has no type_url' : `unknown type URL "${effective}"`);
  }
  if (fixed && effective !== fixed) {
    throw new StreamError(CODE.INVALID_ARGUMENT, `this service serves ${fixed}, not ${effective}`);
  }
  return effective;
}

/** A type URL as protobuf's Any names a message: the well-formed kind ADS ignores when it does not serve the type. */
const TYPE_URL = /^type\.googleapis\.com\/[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$/;
const MAX_TYPE_URL = 256;

/**
 * The request's type, or undefined for a well-formed type an ADS stream does not serve (a Secret,
 * a Runtime layer): its requests are left unanswered and the stream kept, as go-control-plane
 * does. Ending the stream for it (INVALID_ARGUMENT, as before) cut an Envoy that points SDS or RTDS
 * at ADS off its clusters, endpoints, listeners and routes too, again at every reconnect. A
 * per-type service, an empty type URL and one that is not a type URL are refused as checkTypeUrl does.
 */
export function servedType(typeUrl: string, fixed: XdsTypeUrl | undefined): XdsTypeUrl | undefined {
  if (fixed === undefined && !isXdsTypeUrl(typeUrl) && typeUrl.length <= MAX_TYPE_URL && TYPE_URL.test(typeUrl)) return undefined;
  return checkTypeUrl(typeUrl, fixed);
}

export function checkNameCount(count: number, limit: number): void {
  if (count > limit) {
    throw new LimitError(CODE.RESOURCE_EXHAUSTED, 'maxResourceNames', `request names ${count} resources; the limit is ${limit} (${limitKey('maxResourceNames')})`);
  }
}

/** node.id, node.cluster and the user agent are names: kept for the stream's life and written into logs and status. */
function checkNodeNames(node: RawNode, limits: XdsLimits): void {
  const names = [['node.id', node.id], ['node.cluster', node.cluster], ['node.user_agent_name', node.user_agent_name], ['node.user_agent_version', node.user_agent_version]] as const;
  for (const [field, value] of names) {
    const bytes = Buffer.byteLength(value ?? '', 'utf8');
    if (bytes > limits.maxNameBytes) throw new LimitError(CODE.INVALID_ARGUMENT, 'maxNameBytes', `${field} of ${bytes} bytes exceeds ${describeLimit(limits, 'maxNameBytes')}`);
  }
}

/** An error that becomes the stream's (or call's) gRPC status rather than a crash. */
export const isRefusal = (err: unknown): err is StreamError | LimitError => err instanceof StreamError || err instanceof LimitError;

/** Distinct unserved types a stream logs: a client cycling through made-up ones is not a log flood. */
const MAX_UNSERVED_LOGGED = 4;

let streamSeq = 0;
export const nextStreamId = (): number => ++streamSeq;

/**
 * What SotW and Delta streams share: the proxy's identity from the first request, the
 * registry entry, the nonce counter, turning a StreamError into a gRPC status, and closing.
 */
export abstract class XdsStream<Req extends { readonly node?: RawNode }> {
  readonly id = nextStreamId();
  protected record: ProxyRecord | undefined;
  /** The form of the resources this proxy is sent (client-form.ts), known from its first request. */
  private form_: ClientForm = 'envoy';
  protected closed = false;
  /** Bytes of the names this stream is subscribed to, bounded by maxSubscriptionNameBytes. */
  protected readonly subscribed: SubscriptionBytes;
  private nonceSeq = 0;
  /** The unserved types logged on this stream (unserved()). */
  private unservedTypes: Set<string> | undefined;

  constructor(
    protected readonly deps: StreamDeps,
    protected readonly io: StreamIo,
    protected readonly service: string,
    private readonly protocol: 'sotw' | 'delta',
    protected readonly fixedType?: XdsTypeUrl,
  ) {
    this.subscribed = new SubscriptionBytes(this.limits, deps.budget, peerGroup(peerAddress(io.peer), this.limits.ipv6PeerPrefixLength));
  }

  protected get limits(): XdsLimits {
    return this.deps.limits ?? DEFAULT_LIMITS;
  }

  get proxy(): ProxyRecord | undefined {
    return this.record;
  }

  get form(): ClientForm {
    return this.form_;
  }

  onRequest(req: Req): void {
    if (this.closed) return;
    try {
      this.handle(req, this.identify(req));
    } catch (err) {
      if (!isRefusal(err)) throw err;
      if (err instanceof LimitError) this.deps.onLimit?.(err.limit);
      this.deps.log.warn({ node: this.record?.node.id, peer: this.io.peer, err: err.message }, 'xds request rejected');
      this.io.fail(err.code, err.message);
      this.close();
    }
  }

  /** The cache changed: push what this proxy's subscriptions now resolve to. */
  abstract onCacheChange(): void;

  /** A request for a type the stream does not serve (servedType): logged the first time per type, a few types per stream at most. */
  protected unserved(typeUrl: string): void {
    this.unservedTypes ??= new Set();
    if (this.unservedTypes.has(typeUrl) || this.unservedTypes.size >= MAX_UNSERVED_LOGGED) return;
    this.unservedTypes.add(typeUrl);
    this.deps.log.warn({ node: this.record?.node.id, peer: this.io.peer, type: typeUrl }, 'xds request for a type fulcrum does not serve: left unanswered, the stream kept');
  }

  protected abstract handle(req: Req, record: ProxyRecord): void;

  /** Drops every type's state (the stream is closed). */
  protected abstract forget(): void;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.subscribed.release();
    // A refused stream's HTTP/2 stream (and this machine) lives on until its client closes its
    // side: what it held goes now, or 100 refused 2 MB subscriptions kept 160 MiB (review).
    this.forget();
    if (this.record) {
      this.deps.registry.disconnect(this.id);
      this.deps.log.info({ node: this.record.node.id, stream: this.id, service: this.service }, 'proxy disconnected');
    }
  }

  protected snapshot(): Snapshot {
    return this.deps.cache.snapshotFor(this.record?.node.cluster ?? '', this.form_);
  }

  /** While the client is not reading, responses are held back and coalesced (see served-stream.ts). */
  protected get congested(): boolean {
    return this.io.congested?.() ?? false;
  }

  /**
   * The client's ACK (`detail` unset) or NACK of the response with `nonce`, which took it to
   * `version` carrying `carried` (name → version). `clientVersion`: what the client says it holds
   * (SotW's version_info; Delta has none, so an ACK holds the response's version). Arguments, not
   * an object: every stream answers every push.
   */
  protected answered(record: ProxyRecord, type: XdsTypeUrl, detail: RpcStatus | undefined, nonce: string, version: string, carried: ReadonlyMap<string, string>, clientVersion?: string): void {
    if (detail === undefined) {
      // After a NACK, Envoy's later requests name the refused response's nonce without the error
      // (it sends that once) and the version it kept: not an ACK of the response it refused.
      if (clientVersion !== undefined && clientVersion !== version && record.types.get(type)?.lastNack?.nonce === nonce) return;
      this.deps.registry.acked(record, type, nonce, clientVersion ?? version, carried);
      return;
    }
    const message = nackMessage(detail);
    const refused = rejectedResources(message, carried);
    const repeated = repeatsLastNack(record.types.get(type), message);
    this.deps.registry.nacked(record, type, { nonce, version, keptVersion: clientVersion ?? '', message }, { carried, refused });
    // A proxy that refuses every new version (weights change every tick) says the same again and
    // again: logged once until it accepts something or says something else; /v1/proxies keeps the latest.
    const fields = { node: record.node.id, type: SHORT_TYPE[type], version, rejected: [...refused.keys()].slice(0, 10), error: message, nacks: record.types.get(type)?.nacks };
    if (repeated) this.deps.log.debug(fields, 'NACK repeated');
    else this.deps.log.warn(fields, 'NACK');
  }

  protected nextNonce(): string {
    return (++this.nonceSeq).toString(36);
  }

  /** The first request names the proxy; later ones may omit node (set_node_on_first_message_only). */
  private identify(req: Req): ProxyRecord {
    if (this.record) return this.record;
    if (!req.node || !req.node.id) throw new StreamError(CODE.INVALID_ARGUMENT, 'the first request on a stream must carry node.id');
    checkNodeNames(req.node, this.limits);
    const node = nodeInfo(req.node, this.limits.maxNodeMetadataBytes);
    if (node.metadataOmitted) {
      this.deps.onLimit?.('maxNodeMetadataBytes');
      this.deps.log.warn({ node: node.id, peer: this.io.peer, limit: describeLimit(this.limits, 'maxNodeMetadataBytes') }, 'node metadata over its limit: not kept');
    }
    this.io.admit?.(node);
    this.form_ = clientFormOf(node.userAgent);
    if (this.form_ !== 'envoy') this.deps.onClientForm?.(this.form_);
    this.record = this.deps.registry.connect(this.id, node, this.protocol, this.service, this.io.peer);
    this.deps.log.info({ node: node.id, cluster: node.cluster, peer: this.io.peer, stream: this.id, service: this.service }, 'proxy connected');
    return this.record;
  }
}

/** Whether a NACK saying `message` repeats the type's last one, with no ACK since. */
function repeatsLastNack(t: TypeStatus | undefined, message: string): boolean {
  const last = t?.lastNack;
  if (last === undefined || last.message !== message) return false;
  return t?.ackedAt === undefined || t.ackedAt < last.at;
}
