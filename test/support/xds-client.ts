/**
 * A small scripted xDS client for protocol tests: a raw @grpc/grpc-js bidi stream whose requests are
 * plain objects (keepCase field names) encoded with Envoy's own protobuf types, and whose responses
 * are queued, decoded, and handed out in arrival order by `next()`.
 *
 * No sleeps: `next()` resolves as soon as a matching response is queued; `expectNone()` is the one
 * bounded wait (a short window in which nothing matching may arrive).
 */
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { envoyType, TYPE } from '../../src/xds/envoy-api.js';
import { scaled } from './timing.js';

export { TYPE };

// ── paths ────────────────────────────────────────────────────────────────────────────────────────

export const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
export const ADS_DELTA = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';
export const CSDS_FETCH = '/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus';

export interface ServicePaths {
  readonly sotw: string;
  readonly delta: string;
  readonly fetch: string;
}

const perType = (pkg: string, service: string, noun: string): ServicePaths => ({
  sotw: `/${pkg}.${service}/Stream${noun}`,
  delta: `/${pkg}.${service}/Delta${noun}`,
  fetch: `/${pkg}.${service}/Fetch${noun}`,
});

/** Per-type (non-aggregated) discovery services, by short type name. */
export const SERVICE = {
  CDS: perType('envoy.service.cluster.v3', 'ClusterDiscoveryService', 'Clusters'),
  EDS: perType('envoy.service.endpoint.v3', 'EndpointDiscoveryService', 'Endpoints'),
  LDS: perType('envoy.service.listener.v3', 'ListenerDiscoveryService', 'Listeners'),
  RDS: perType('envoy.service.route.v3', 'RouteDiscoveryService', 'Routes'),
} as const;

export const CDS = TYPE.cluster;
export const EDS = TYPE.endpoint;
export const LDS = TYPE.listener;
export const RDS = TYPE.route;

export const SHORT: Record<string, string> = { [CDS]: 'CDS', [EDS]: 'EDS', [LDS]: 'LDS', [RDS]: 'RDS' };

// ── messages ─────────────────────────────────────────────────────────────────────────────────────

export interface NodeInit {
  id?: string;
  cluster?: string;
  user_agent_name?: string;
}

export interface Status {
  code: number;
  message: string;
}

export interface DiscoveryRequestInit {
  version_info?: string;
  node?: NodeInit;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: Status;
}

export interface DeltaDiscoveryRequestInit {
  node?: NodeInit;
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: Status;
}

export interface AnyMessage {
  type_url: string;
  value: Uint8Array;
}

export interface DiscoveryResponse {
  version_info: string;
  resources: AnyMessage[];
  type_url: string;
  nonce: string;
  control_plane: { identifier?: string } | null;
}

export interface DeltaResource {
  name: string;
  version: string;
  resource: AnyMessage | null;
}

export interface DeltaDiscoveryResponse {
  system_version_info: string;
  resources: DeltaResource[];
  type_url: string;
  removed_resources: string[];
  nonce: string;
  control_plane: { identifier?: string } | null;
}

/** A resource out of a response: its name, its version (Delta only), and the decoded message. */
export interface DecodedResource {
  name: string;
  version?: string;
  message: Record<string, unknown>;
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, arrays: true, objects: true };

function encoder(typeName: string): (value: object) => Buffer {
  return (value) => {
    const type = envoyType(typeName);
    const err = type.verify(value);
    if (err) throw new Error(`${typeName}: ${err}`);
    return Buffer.from(type.encode(type.fromObject(value as Record<string, unknown>)).finish());
  };
}

function decoder<T>(typeName: string): (bytes: Buffer) => T {
  return (bytes) => {
    const type = envoyType(typeName);
    return type.toObject(type.decode(bytes), TO_OBJECT) as T;
  };
}

export const encodeDiscoveryRequest = encoder('envoy.service.discovery.v3.DiscoveryRequest');
export const encodeDeltaDiscoveryRequest = encoder('envoy.service.discovery.v3.DeltaDiscoveryRequest');
export const decodeDiscoveryResponse = decoder<DiscoveryResponse>('envoy.service.discovery.v3.DiscoveryResponse');
export const decodeDeltaDiscoveryResponse = decoder<DeltaDiscoveryResponse>('envoy.service.discovery.v3.DeltaDiscoveryResponse');

/** Decodes a google.protobuf.Any holding one of the four xDS resource types. */
export function decodeAny(any: AnyMessage): Record<string, unknown> {
  const prefix = 'type.googleapis.com/';
  if (!any.type_url.startsWith(prefix)) throw new Error(`unexpected Any type_url ${any.type_url}`);
  const type = envoyType(any.type_url.slice(prefix.length));
  return type.toObject(type.decode(any.value), TO_OBJECT) as Record<string, unknown>;
}

function nameOf(message: Record<string, unknown>): string {
  return String(message.name ?? message.cluster_name ?? '');
}

/** The resources a SotW or Delta response carries, decoded. */
export function decodeResources(resp: DiscoveryResponse | DeltaDiscoveryResponse): DecodedResource[] {
  if ('system_version_info' in resp) {
    return resp.resources.map((r) => {
      if (!r.resource) return { name: r.name, version: r.version, message: {} };
      return { name: r.name, version: r.version, message: decodeAny(r.resource) };
    });
  }
  return resp.resources.map((any) => {
    const message = decodeAny(any);
    return { name: nameOf(message), message };
  });
}

/** Sorted names of the resources a response carries. */
export function namesOf(resp: DiscoveryResponse | DeltaDiscoveryResponse): string[] {
  return decodeResources(resp)
    .map((r) => r.name)
    .sort();
}

/** name → version for a Delta response. */
export function versionsOf(resp: DeltaDiscoveryResponse): Record<string, string> {
  return Object.fromEntries(resp.resources.map((r) => [r.name, r.version]));
}

// ── streams ──────────────────────────────────────────────────────────────────────────────────────

export interface StreamStatus {
  code: number;
  details: string;
}

type Waiter<T> = {
  predicate: (r: T) => boolean;
  resolve: (r: T) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
};

/**
 * One bidi stream: typed send, a queue of received messages, and the final status.
 * Received messages stay queued until a `next()` whose predicate matches takes them.
 */
export class XdsStream<Req, Resp> {
  private readonly queue: Resp[] = [];
  private readonly waiters: Waiter<Resp>[] = [];
  private status: StreamStatus | undefined;
  private readonly statusPromise: Promise<StreamStatus>;
  /** Every message received, in order (including those already taken by next()). */
  readonly received: Resp[] = [];

  constructor(
    protected readonly call: grpc.ClientDuplexStream<Req, Resp>,
    readonly label: string,
  ) {
    this.statusPromise = new Promise((resolve) => {
      call.on('status', (s: grpc.StatusObject) => {
        this.status = { code: s.code, details: s.details };
        for (const w of this.waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error(`${label}: stream ended with ${grpc.status[s.code]} (${s.details}) while waiting for a response`));
        }
        resolve(this.status);
      });
    });
    // A non-OK status is also emitted as 'error'; the status promise is where tests look at it.
    call.on('error', () => undefined);
    call.on('data', (msg: Resp) => {
      this.received.push(msg);
      const i = this.waiters.findIndex((w) => w.predicate(msg));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        clearTimeout(w!.timer);
        w!.resolve(msg);
      } else {
        this.queue.push(msg);
      }
    });
  }

  send(req: Req): void {
    this.call.write(req);
  }

  /** The next received message (matching `predicate`, if given); queued ones first, in arrival order. */
  next(predicate: (r: Resp) => boolean = () => true, baseTimeoutMs = 5_000): Promise<Resp> {
    const timeoutMs = scaled(baseTimeoutMs);
    const i = this.queue.findIndex(predicate);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]!);
    if (this.status) {
      return Promise.reject(new Error(`${this.label}: stream already ended with ${grpc.status[this.status.code]} (${this.status.details})`));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter<Resp> = {
        predicate,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(new Error(`${this.label}: no matching response within ${timeoutMs} ms; queued: ${this.describeQueue()}`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /**
   * Asserts that no message matching `predicate` is queued or arrives within `ms` (≤ 300).
   * The one place a bounded wait is legitimate: proving an absence.
   */
  async expectNone(ms = 200, predicate: (r: Resp) => boolean = () => true): Promise<void> {
    if (ms > 300) throw new Error('expectNone windows are kept ≤ 300 ms');
    const check = () => {
      const hit = this.queue.find(predicate);
      if (hit) throw new Error(`${this.label}: expected no response, got ${this.describe(hit)}`);
    };
    check();
    await new Promise((resolve) => setTimeout(resolve, ms));
    check();
  }

  /** Takes every queued message. */
  drain(): Resp[] {
    return this.queue.splice(0);
  }

  /** Resolves with the stream's final gRPC status (immediately if it already ended). */
  closed(baseTimeoutMs = 5_000): Promise<StreamStatus> {
    const timeoutMs = scaled(baseTimeoutMs);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.label}: stream did not end within ${timeoutMs} ms`)), timeoutMs);
      void this.statusPromise.then((s) => {
        clearTimeout(timer);
        resolve(s);
      });
    });
  }

  get ended(): StreamStatus | undefined {
    return this.status;
  }

  /** Half-closes (the server is expected to end the stream). */
  end(): void {
    this.call.end();
  }

  /** Cancels the stream, as a proxy that goes away would. */
  cancel(): void {
    this.call.cancel();
  }

  protected describe(r: Resp): string {
    return JSON.stringify(r, (_k, v: unknown) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v)).slice(0, 400);
  }

  private describeQueue(): string {
    return this.queue.length === 0 ? '(none)' : this.queue.map((r) => this.describe(r)).join('; ');
  }
}

export const isType =
  (typeUrl: string) =>
  (r: { type_url: string }): boolean =>
    r.type_url === typeUrl;

/** A State-of-the-World stream: remembers, per type, the names last requested and the version last ACKed. */
export class SotwStream extends XdsStream<DiscoveryRequestInit, DiscoveryResponse> {
  private readonly names = new Map<string, string[]>();
  private readonly accepted = new Map<string, string>();
  private readonly lastNonce = new Map<string, string>();

  override send(req: DiscoveryRequestInit): void {
    if (req.type_url !== undefined && req.resource_names !== undefined) this.names.set(req.type_url, req.resource_names);
    super.send(req);
  }

  /** Subscribes (or re-subscribes) `type` to `names`, carrying the last nonce seen for the type unless told otherwise. */
  request(type: string, names: string[], extra: Partial<DiscoveryRequestInit> = {}): void {
    this.send({
      type_url: type,
      resource_names: names,
      version_info: this.accepted.get(type) ?? '',
      response_nonce: this.lastNonce.get(type) ?? '',
      ...extra,
    });
  }

  /** The next response of one type. */
  nextOf(type: string, timeoutMs?: number): Promise<DiscoveryResponse> {
    return this.next(isType(type), timeoutMs);
  }

  /** As XdsStream.next, remembering the nonce of each response taken (what the client has "processed"). */
  override next(predicate?: (r: DiscoveryResponse) => boolean, timeoutMs?: number): Promise<DiscoveryResponse> {
    return super.next(predicate, timeoutMs).then((r) => {
      this.lastNonce.set(r.type_url, r.nonce);
      return r;
    });
  }

  /** ACKs a response: its version and nonce, with the names currently subscribed for its type. */
  ack(resp: DiscoveryResponse, extra: Partial<DiscoveryRequestInit> = {}): void {
    this.accepted.set(resp.type_url, resp.version_info);
    this.send({
      type_url: resp.type_url,
      version_info: resp.version_info,
      response_nonce: resp.nonce,
      resource_names: this.names.get(resp.type_url) ?? [],
      ...extra,
    });
  }

  /** NACKs a response: the last accepted version, the response's nonce, and an error_detail. */
  nack(resp: DiscoveryResponse, message: string, extra: Partial<DiscoveryRequestInit> = {}): void {
    this.send({
      type_url: resp.type_url,
      version_info: this.accepted.get(resp.type_url) ?? '',
      response_nonce: resp.nonce,
      resource_names: this.names.get(resp.type_url) ?? [],
      error_detail: { code: grpc.status.INVALID_ARGUMENT, message },
      ...extra,
    });
  }
}

/** An incremental (Delta) stream. */
export class DeltaStream extends XdsStream<DeltaDiscoveryRequestInit, DeltaDiscoveryResponse> {
  nextOf(type: string, timeoutMs?: number): Promise<DeltaDiscoveryResponse> {
    return this.next(isType(type), timeoutMs);
  }

  ack(resp: DeltaDiscoveryResponse, extra: Partial<DeltaDiscoveryRequestInit> = {}): void {
    this.send({ type_url: resp.type_url, response_nonce: resp.nonce, ...extra });
  }

  nack(resp: DeltaDiscoveryResponse, message: string, extra: Partial<DeltaDiscoveryRequestInit> = {}): void {
    this.send({
      type_url: resp.type_url,
      response_nonce: resp.nonce,
      error_detail: { code: grpc.status.INVALID_ARGUMENT, message },
      ...extra,
    });
  }
}

/** A stream that sends and receives raw bytes (for malformed input). */
export class RawStream extends XdsStream<Buffer, Buffer> {}

// ── CSDS ─────────────────────────────────────────────────────────────────────────────────────────

export interface GenericXdsConfig {
  type_url: string;
  name: string;
  version_info: string;
  config_status: string;
  client_status: string;
  error_state: { details: string; version_info: string } | null;
}

export interface ClientStatusResponse {
  config: { node: { id: string; cluster: string } | null; generic_xds_configs: GenericXdsConfig[]; client_scope: string }[];
}

const encodeClientStatusRequest = encoder('envoy.service.status.v3.ClientStatusRequest');
const decodeClientStatusResponse = decoder<ClientStatusResponse>('envoy.service.status.v3.ClientStatusResponse');

// ── connection ───────────────────────────────────────────────────────────────────────────────────

const identity = (b: Buffer): Buffer => b;

/** One gRPC channel to an xDS server; open any number of streams on it. */
export class XdsClient {
  readonly grpc: grpc.Client;
  private readonly streams: { readonly ended: StreamStatus | undefined; cancel(): void }[] = [];

  constructor(readonly address: string) {
    this.grpc = new grpc.Client(address, grpc.credentials.createInsecure(), {
      // Each test's client gets its own connection: no subchannel sharing across tests.
      'grpc.use_local_subchannel_pool': 1,
    });
  }

  static forPort(port: number): XdsClient {
    return new XdsClient(`127.0.0.1:${port}`);
  }

  /** A SotW stream on ADS (default) or on a per-type service path. */
  sotw(path = ADS): SotwStream {
    const call = this.grpc.makeBidiStreamRequest(path, encodeDiscoveryRequest, decodeDiscoveryResponse);
    return this.track(new SotwStream(call, `sotw ${path.split('/').pop()}`));
  }

  delta(path = ADS_DELTA): DeltaStream {
    const call = this.grpc.makeBidiStreamRequest(path, encodeDeltaDiscoveryRequest, decodeDeltaDiscoveryResponse);
    return this.track(new DeltaStream(call, `delta ${path.split('/').pop()}`));
  }

  /** Bytes in, bytes out: for sending what no encoder would produce. */
  raw(path: string): RawStream {
    const call = this.grpc.makeBidiStreamRequest(path, identity, identity);
    return this.track(new RawStream(call, `raw ${path.split('/').pop()}`));
  }

  /** A unary Fetch* call; rejects with the grpc ServiceError (code, details) on a non-OK status. */
  fetch(path: string, req: DiscoveryRequestInit, timeoutMs = 5_000): Promise<DiscoveryResponse> {
    return new Promise((resolve, reject) => {
      this.grpc.makeUnaryRequest(
        path,
        encodeDiscoveryRequest,
        decodeDiscoveryResponse,
        req,
        { deadline: Date.now() + scaled(timeoutMs) },
        (err, resp) => (err ? reject(err) : resolve(resp as DiscoveryResponse)),
      );
    });
  }

  /** CSDS FetchClientStatus, optionally for one node id. */
  clientStatus(nodeId?: string, timeoutMs = 5_000): Promise<ClientStatusResponse> {
    const req = nodeId === undefined ? {} : { node_matchers: [{ node_id: { exact: nodeId } }] };
    return new Promise((resolve, reject) => {
      this.grpc.makeUnaryRequest(
        CSDS_FETCH,
        encodeClientStatusRequest,
        decodeClientStatusResponse,
        req,
        { deadline: Date.now() + scaled(timeoutMs) },
        (err, resp) => (err ? reject(err) : resolve(resp as ClientStatusResponse)),
      );
    });
  }

  /** Cancels every stream still open and closes the channel. */
  close(): void {
    for (const s of this.streams) if (!s.ended) s.cancel();
    this.grpc.close();
  }

  private track<S extends { readonly ended: StreamStatus | undefined; cancel(): void }>(s: S): S {
    this.streams.push(s);
    return s;
  }
}

/** The gRPC status code name, for readable assertions (`expect(codeName(s.code)).toBe('INVALID_ARGUMENT')`). */
export function codeName(code: number): string {
  return grpc.status[code] ?? String(code);
}
