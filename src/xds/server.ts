import * as grpc from '@grpc/grpc-js';
import type { ServerHttp2Stream } from 'node:http2';
import type { Logger } from 'pino';
import { subscription, type XdsCache } from './cache.js';
import { ConnectionGate, type Refusal } from './connection-gate.js';
import { csdsHandlers, CSDS_DEFINITION } from './csds.js';
import { DeltaStream } from './delta-stream.js';
import { InitialSyncQueue } from './initial-sync-queue.js';
import { HeldAnswers } from './held-answers.js';
import { grpcDiscoveryCall, type DiscoveryCall } from './discovery-call.js';
import { discoveryRoute, DiscoveryRouter, takeStreamsFirst, type DiscoveryRoute } from './discovery-router.js';
import { checkRequestNames, LimitError, SubscriptionBudget, withDefaults, type LimitHit, type XdsLimits } from './limits.js';
import type { ProxyRegistry } from './proxy-status.js';
import { DISCOVERY_SERVICES, type DiscoveryServiceShape, type ResponseParts } from './services.js';
import { SotwStream } from './sotw-stream.js';
import type { XdsAuthz } from './authz.js';
import { StreamGroups } from './stream-groups.js';
import { ServedStream, type ServedStreamView, type ServingContext } from './served-stream.js';
import { StreamGate } from './stream-gate.js';
import type { TlsSessions } from './tls-sessions.js';
import { checkNameCount, checkTypeUrl, isRefusal, WILDCARD_TYPES, type StreamDeps, type StreamIo, type XdsStream } from './stream-common.js';
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest, sotwTail, type DeltaDiscoveryRequest, type DiscoveryRequest, type RawNode } from './wire.js';
import { clientFormOf, DEFAULT_GRPC_GROUP, type ClientForm } from './client-form.js';
import { GrpcFormGate } from './grpc-form-gate.js';

export interface XdsServerOptions {
  readonly address: string;
  readonly port: number;
  /** The largest response; `limits.maxResponseBytes` wins when both are set. */
  readonly maxMessageBytes: number;
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly maxResourceNames: number;
  readonly controlPlaneId: string;
  /**
   * TLS credentials (transport-security.ts), who may call what (authz.ts), and with TLS what each
   * connection's session is let do (tls-sessions.ts); default plaintext, open.
   */
  readonly security?: { readonly credentials?: grpc.ServerCredentials; readonly authz?: XdsAuthz; readonly sessions?: TlsSessions };
  /** Memory bounds against hostile or broken clients (defaults in limits.ts). */
  readonly limits?: Partial<XdsLimits>;
  /** Listen backlog: connections the kernel queues before fulcrum accepts them (default 4096). */
  readonly listenBacklog?: number;
  /** Counts refusals by limit, and connections that were not gRPC. */
  readonly onLimit?: LimitHit;
  /** New streams' first requests are answered only once this settles (held-answers.ts); default at once. */
  readonly answerAfter?: Promise<void>;
  readonly onRefused?: (reason: Refusal) => void;
  /** A proxy that is not an Envoy identified itself: its form must be published (Publisher.serveGrpcForm). */
  readonly onClientForm?: (form: ClientForm) => void;
}

const DEFAULT_BACKLOG = 4096;

/** Serves ADS and the per-type discovery services (SotW and Delta), plus CSDS, on one gRPC port. */
export class XdsServer {
  private readonly server: grpc.Server;
  private readonly streams = new Set<ServedStreamView>();
  /** The identified streams by node.cluster: a cache change wakes only those whose group changed. */
  private readonly groups = new StreamGroups<ServedStreamView>();
  /** What every served stream shares of the server (served-stream.ts). */
  private readonly serving: ServingContext;
  private readonly deps: StreamDeps;
  private readonly cache: XdsCache;
  private unsubscribe: (() => void) | undefined;
  private boundPort = 0;
  private readonly limits: XdsLimits;
  private readonly streamGate: StreamGate;
  /** Plain discovery streams served on their HTTP/2 streams, without grpc-js's call (h2-discovery-call.ts). */
  private readonly router: DiscoveryRouter;
  private gate: ConnectionGate | undefined;
  /** New connections' setup and new streams' first requests, a slice of the event loop at a time (accepts go first). */
  private readonly initialSyncs = new InitialSyncQueue();
  /** New streams' first answers, held until options.answerAfter settles (held-answers.ts). */
  private readonly held: HeldAnswers;
  /** A gRPC client's first answer, held until gRPC's form is published (grpc-form-gate.ts). */
  private readonly formGate: GrpcFormGate;
  /** Response bytes written to streams but not yet flushed, and the streams at their mark. */
  private readonly queue = { bytes: 0, congested: 0 };

  constructor(
    private readonly options: XdsServerOptions,
    cache: XdsCache,
    registry: ProxyRegistry,
    private readonly log: Logger,
    /** More gRPC services on the same port (metric reports, load reporting). */
    extraServices: readonly { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation }[] = [],
  ) {
    this.cache = cache;
    this.held = new HeldAnswers(this.initialSyncs, options.answerAfter);
    // Without onClientForm nothing publishes gRPC's form: no gRPC client waits for it.
    const onClientForm = options.onClientForm;
    this.formGate = new GrpcFormGate(this.held, () => onClientForm === undefined || cache.hasGroup(DEFAULT_GRPC_GROUP), () => onClientForm?.('grpc'));
    this.limits = withDefaults({ maxResponseBytes: options.maxMessageBytes, ...options.limits });
    const onLimit = options.onLimit ?? (() => undefined);
    this.deps = { cache, registry, log, maxResourceNames: options.maxResourceNames, controlPlaneId: options.controlPlaneId, limits: this.limits, onLimit, budget: new SubscriptionBudget(this.limits), ...(options.onClientForm ? { onClientForm: options.onClientForm } : {}) };
    this.streamGate = new StreamGate(this.limits, onLimit);
    const authz = options.security?.authz && !options.security.authz.refusesNothing ? options.security.authz : undefined;
    this.server = new grpc.Server({
      // Requests are small (subscriptions, ACKs); refusing a large one from its length prefix
      // keeps a hostile client from making the server buffer it.
      'grpc.max_receive_message_length': this.limits.maxRequestBytes,
      'grpc.max_send_message_length': this.limits.maxResponseBytes,
      'grpc.max_concurrent_streams': this.limits.maxConcurrentStreamsPerConnection,
      'grpc.max_connection_idle_ms': this.limits.idleConnectionMs,
      'grpc.keepalive_time_ms': options.keepaliveTimeMs,
      'grpc.keepalive_timeout_ms': options.keepaliveTimeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
      // Envoy's and grpc's clients ping to keep ADS alive through idle NATs; do not punish them for it.
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
      // channelz bookkeeping (per connection and per call, in process-wide registries) is memory and
      // work no one reads here: fulcrum has its own metrics, and a reconnect storm pays it 10,000 times.
      'grpc.enable_channelz': 0,
      interceptors: [this.streamGate.interceptor, ...(authz ? [authz.interceptor] : [])],
    });
    this.serving = {
      log,
      queue: this.queue,
      maxQueuedBytesPerStream: this.limits.maxQueuedBytesPerStream,
      initialSyncs: this.formGate,
      authz: options.security?.authz?.checksNodes ? options.security.authz : undefined,
      opened: (s) => this.streams.add(s),
      grouped: (s, nodeCluster, form) => this.groups.add(s, nodeCluster, form),
      closed: (s) => {
        this.streams.delete(s);
        this.groups.delete(s);
      },
      isOpen: (s) => this.streams.has(s),
    };
    const onError = (err: unknown): void => log.error({ err }, 'taking an xds stream failed');
    this.router = new DiscoveryRouter({ routes: this.routes(), gate: this.streamGate, authz, limits: this.limits, onError });
    const sessions = options.security?.sessions;
    const screen = sessions ? (stream: ServerHttp2Stream): boolean => sessions.admit(stream) : undefined;
    if (!takeStreamsFirst(this.server, (stream, headers) => this.router.take(stream, headers), screen)) {
      // Fail closed: without the hook a resumed session's expired client certificate would go unseen.
      if (sessions) throw new Error("grpc-js's server is not what fulcrum expects: TLS sessions cannot be checked at their first stream");
      log.warn("grpc-js's server is not what fulcrum expects: discovery streams are served through grpc-js's calls (more memory per proxy)");
    }
    for (const svc of DISCOVERY_SERVICES) this.server.addService(svc.definition, this.handlers(svc));
    this.server.addService(CSDS_DEFINITION, csdsHandlers(registry, (message) => log.warn(message)));
    for (const svc of extraServices) this.server.addService(svc.definition, svc.implementation);
  }

  get port(): number {
    return this.boundPort;
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** Discovery streams taken from grpc-js's call so far (served, or refused at admission). */
  get streamsServedDirectly(): number {
    return this.router.taken;
  }

  /** Open gRPC calls of every service on the port. */
  get callCount(): number {
    return this.streamGate.streams;
  }

  /** Response bytes written to streams and not yet flushed (proxies not reading, or slow). */
  get queuedBytes(): number {
    return this.queue.bytes;
  }

  /** Streams holding responses back because their queue reached `maxQueuedBytesPerStream`. */
  get congestedStreams(): number {
    return this.queue.congested;
  }

  /** Streams whose first answer is held (held-answers.ts; a gRPC client's also by grpc-form-gate.ts). */
  get heldAnswers(): number {
    return this.held.size + this.formGate.size;
  }

  /** Open connections on the port. */
  get connectionCount(): number {
    return this.gate?.connections ?? 0;
  }

  async start(): Promise<number> {
    const credentials = this.options.security?.credentials ?? grpc.ServerCredentials.createInsecure();
    // fulcrum owns the listening socket (backlog, per-peer limits, protocol sniffing) and hands
    // each accepted connection to grpc-js, which runs HTTP/2 (and TLS, from the credentials) on it.
    const injector = this.server.createConnectionInjector(credentials);
    this.gate = new ConnectionGate({
      limits: this.limits,
      backlog: this.options.listenBacklog ?? DEFAULT_BACKLOG,
      expect: credentials._isSecure() ? 'tls' : 'h2',
      onLimit: this.options.onLimit ?? (() => undefined),
      onRefused: this.options.onRefused ?? (() => undefined),
      inject: (socket) => injector.injectConnection(socket),
      // Connection setup and first answers share one queue, oldest first, a slice per loop turn.
      defer: (task) => this.initialSyncs.push(task),
    });
    this.boundPort = await this.gate.listen(this.options.address, this.options.port);
    this.unsubscribe = this.cache.subscribe((changed) => {
      this.formGate.check();
      for (const s of this.groups.affected(changed, (nodeCluster) => this.cache.hasGroup(nodeCluster))) s.onCacheChange();
    });
    this.log.info({ address: this.options.address, port: this.boundPort }, 'xDS server listening');
    return this.boundPort;
  }

  /** Stops accepting, ends every open stream (clients reconnect elsewhere), then waits for the transport to drain. */
  async stop(graceMs = 5_000): Promise<void> {
    this.unsubscribe?.();
    this.formGate.close();
    const closed = this.gate?.close();
    this.gate?.destroyUnready();
    const drained = new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    for (const s of this.streams) s.finish();
    const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
    if ((await Promise.race([drained, timer])) === 'timeout') {
      this.log.warn('xDS server did not drain in time; forcing shutdown');
      this.server.forceShutdown();
    }
    this.gate?.destroyAll();
    await closed;
  }

  private handlers(svc: DiscoveryServiceShape): grpc.UntypedServiceImplementation {
    const max = this.limits.maxResponseBytes;
    const sotw = this.sotw(svc);
    const delta = this.delta(svc);
    const impl: grpc.UntypedServiceImplementation = {
      [svc.sotw]: (call: grpc.ServerDuplexStream<DiscoveryRequest, ResponseParts>) => this.serve(grpcDiscoveryCall(call, max), sotw),
      [svc.delta]: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, ResponseParts>) => this.serve(grpcDiscoveryCall(call, max), delta),
    };
    if (svc.fetch) {
      impl[svc.fetch] = (call: grpc.ServerUnaryCall<DiscoveryRequest, ResponseParts>, cb: grpc.sendUnaryData<ResponseParts>) =>
        this.fetch(svc, call, cb);
    }
    return impl;
  }

  /** The state machine maker of a service's SotW streams (made once per service, not per stream). */
  private sotw(svc: DiscoveryServiceShape): (io: StreamIo) => XdsStream<DiscoveryRequest> {
    return (io) => new SotwStream(this.deps, io, svc.name, svc.type);
  }

  private delta(svc: DiscoveryServiceShape): (io: StreamIo) => XdsStream<DeltaDiscoveryRequest> {
    return (io) => new DeltaStream(this.deps, io, svc.name, svc.type);
  }

  /** The SotW and Delta methods by path, for the streams the router serves itself. */
  private routes(): Map<string, DiscoveryRoute> {
    const routes = new Map<string, DiscoveryRoute>();
    const path = (svc: DiscoveryServiceShape, method: string): string => {
      const def = svc.definition[method];
      if (!def) throw new Error(`${svc.name} has no method ${method}`);
      return def.path;
    };
    for (const svc of DISCOVERY_SERVICES) {
      const sotw = this.sotw(svc);
      const delta = this.delta(svc);
      routes.set(path(svc, svc.sotw), discoveryRoute(decodeDiscoveryRequest, (call) => this.serve(call, sotw)));
      routes.set(path(svc, svc.delta), discoveryRoute(decodeDeltaDiscoveryRequest, (call) => this.serve(call, delta)));
    }
    return routes;
  }

  private serve<Req extends { readonly node?: RawNode }>(call: DiscoveryCall<Req>, make: (io: StreamIo) => XdsStream<Req>): void {
    new ServedStream(this.serving, call, make);
  }

  private fetch(svc: DiscoveryServiceShape, call: grpc.ServerUnaryCall<DiscoveryRequest, ResponseParts>, cb: grpc.sendUnaryData<ResponseParts>): void {
    const req = call.request;
    try {
      this.options.security?.authz?.admitNode(call.getAuthContext(), { id: req.node?.id ?? '', cluster: req.node?.cluster ?? '' }, call.getPeer());
      const type = checkTypeUrl(req.type_url, svc.type);
      checkNameCount(req.resource_names.length, this.deps.maxResourceNames);
      checkRequestNames(req.resource_names, this.limits);
      const names = req.resource_names.filter((n) => n !== '*');
      const all = req.resource_names.includes('*') || (names.length === 0 && WILDCARD_TYPES.has(type));
      const form = clientFormOf(req.node?.user_agent_name ?? '');
      if (form !== 'envoy') this.options.onClientForm?.(form);
      const body = this.cache.snapshotFor(req.node?.cluster ?? '', form).sotwBody(type, subscription(type, all, names));
      cb(null, [body.bytes, sotwTail('', this.options.controlPlaneId)]);
    } catch (err) {
      if (err instanceof LimitError) this.deps.onLimit?.(err.limit);
      if (isRefusal(err)) cb({ code: err.code, details: err.message });
      else cb({ code: grpc.status.INTERNAL, details: 'internal error' });
    }
  }
}
