import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { subscription, type XdsCache } from './cache.js';
import { csdsHandlers, CSDS_DEFINITION } from './csds.js';
import { DeltaStream } from './delta-stream.js';
import type { ProxyRecord, ProxyRegistry } from './proxy-status.js';
import { DISCOVERY_SERVICES, type DiscoveryServiceShape, type ResponseParts } from './services.js';
import { SotwStream } from './sotw-stream.js';
import type { XdsAuthz } from './authz.js';
import { StreamGroups } from './stream-groups.js';
import { checkNameCount, checkTypeUrl, StreamError, WILDCARD_TYPES, type StreamDeps, type StreamIo, type XdsStream } from './stream-common.js';
import { sotwTail, type DeltaDiscoveryRequest, type DiscoveryRequest, type RawNode } from './wire.js';

/** What the server holds of a SotW or Delta stream. */
interface ServedStream {
  readonly proxy: ProxyRecord | undefined;
  onCacheChange(): void;
  close(): void;
}

export interface XdsServerOptions {
  readonly address: string;
  readonly port: number;
  readonly maxMessageBytes: number;
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly maxResourceNames: number;
  readonly controlPlaneId: string;
  /** TLS credentials (transport-security.ts) and who may call what (authz.ts); default plaintext, open. */
  readonly security?: { readonly credentials?: grpc.ServerCredentials; readonly authz?: XdsAuthz };
}

/** Serves ADS and the per-type discovery services (SotW and Delta), plus CSDS, on one gRPC port. */
export class XdsServer {
  private readonly server: grpc.Server;
  private readonly streams = new Set<ServedStream>();
  /** The identified streams by node.cluster: a cache change wakes only those whose group changed. */
  private readonly groups = new StreamGroups<ServedStream>();
  private readonly calls = new Set<grpc.ServerDuplexStream<unknown, ResponseParts>>();
  private readonly deps: StreamDeps;
  private readonly cache: XdsCache;
  private unsubscribe: (() => void) | undefined;
  private boundPort = 0;

  constructor(
    private readonly options: XdsServerOptions,
    cache: XdsCache,
    registry: ProxyRegistry,
    private readonly log: Logger,
    /** More gRPC services on the same port (metric reports, load reporting). */
    extraServices: readonly { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation }[] = [],
  ) {
    this.cache = cache;
    this.deps = { cache, registry, log, maxResourceNames: options.maxResourceNames, controlPlaneId: options.controlPlaneId };
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': options.maxMessageBytes,
      'grpc.max_send_message_length': options.maxMessageBytes,
      'grpc.keepalive_time_ms': options.keepaliveTimeMs,
      'grpc.keepalive_timeout_ms': options.keepaliveTimeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
      // Envoy's and grpc's clients ping to keep ADS alive through idle NATs; do not punish them for it.
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
      interceptors: options.security?.authz ? [options.security.authz.interceptor] : [],
    });
    for (const svc of DISCOVERY_SERVICES) this.server.addService(svc.definition, this.handlers(svc));
    this.server.addService(CSDS_DEFINITION, csdsHandlers(registry));
    for (const svc of extraServices) this.server.addService(svc.definition, svc.implementation);
  }

  get port(): number {
    return this.boundPort;
  }

  get streamCount(): number {
    return this.streams.size;
  }

  async start(): Promise<number> {
    this.boundPort = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(`${this.options.address}:${this.options.port}`, this.options.security?.credentials ?? grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      );
    });
    this.unsubscribe = this.cache.subscribe((changed) => {
      for (const s of this.groups.affected(changed, (nodeCluster) => this.cache.hasGroup(nodeCluster))) s.onCacheChange();
    });
    this.log.info({ address: this.options.address, port: this.boundPort }, 'xDS server listening');
    return this.boundPort;
  }

  /** Stops accepting, ends every open stream (clients reconnect elsewhere), then waits for the transport to drain. */
  async stop(graceMs = 5_000): Promise<void> {
    this.unsubscribe?.();
    const drained = new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    for (const call of this.calls) call.end();
    for (const s of this.streams) s.close();
    const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
    if ((await Promise.race([drained, timer])) === 'timeout') {
      this.log.warn('xDS server did not drain in time; forcing shutdown');
      this.server.forceShutdown();
    }
  }

  private handlers(svc: DiscoveryServiceShape): grpc.UntypedServiceImplementation {
    const impl: grpc.UntypedServiceImplementation = {
      [svc.sotw]: (call: grpc.ServerDuplexStream<DiscoveryRequest, ResponseParts>) =>
        this.serve(call, new SotwStream(this.deps, this.io(call), svc.name, svc.type)),
      [svc.delta]: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, ResponseParts>) =>
        this.serve(call, new DeltaStream(this.deps, this.io(call), svc.name, svc.type)),
    };
    if (svc.fetch) {
      impl[svc.fetch] = (call: grpc.ServerUnaryCall<DiscoveryRequest, ResponseParts>, cb: grpc.sendUnaryData<ResponseParts>) =>
        this.fetch(svc, call, cb);
    }
    return impl;
  }

  private io(call: grpc.ServerDuplexStream<unknown, ResponseParts>): StreamIo {
    let congested = false;
    // A proxy that stops reading must not make the server buffer every push for it: once the
    // stream's buffer is full, responses wait, and on 'drain' the stream sends only what its
    // subscriptions resolve to then (the state machines coalesce; nothing is lost).
    call.on('drain', () => {
      congested = false;
    });
    const authz = this.options.security?.authz;
    return {
      peer: call.getPeer(),
      ...(authz ? { admit: (node) => authz.admitNode(call.getAuthContext(), node, call.getPeer()) } : {}),
      send: (parts) => {
        if (!call.write(parts)) congested = true;
      },
      congested: () => congested,
      fail: (code, message) => {
        call.emit('error', { code, details: message });
      },
    };
  }

  private serve<Req extends { readonly node?: RawNode }>(call: grpc.ServerDuplexStream<Req, ResponseParts>, stream: XdsStream<Req>): void {
    this.streams.add(stream);
    this.calls.add(call as grpc.ServerDuplexStream<unknown, ResponseParts>);
    const done = () => {
      this.streams.delete(stream);
      this.groups.delete(stream);
      this.calls.delete(call as grpc.ServerDuplexStream<unknown, ResponseParts>);
      stream.close();
    };
    call.on('data', (req: Req) => {
      try {
        stream.onRequest(req);
        // The first request names the proxy and so its group; a stream that failed is gone already.
        if (stream.proxy && this.streams.has(stream)) this.groups.add(stream, stream.proxy.node.cluster);
      } catch (err) {
        // A bug must cost one stream, never the process.
        this.log.error({ err, stream: stream.id }, 'xds stream failed');
        call.emit('error', { code: grpc.status.INTERNAL, details: 'internal error' });
        done();
      }
    });
    call.on('drain', () => stream.onCacheChange());
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('close', done);
    call.on('cancelled', done);
  }

  private fetch(svc: DiscoveryServiceShape, call: grpc.ServerUnaryCall<DiscoveryRequest, ResponseParts>, cb: grpc.sendUnaryData<ResponseParts>): void {
    const req = call.request;
    try {
      this.options.security?.authz?.admitNode(call.getAuthContext(), { id: req.node?.id ?? '', cluster: req.node?.cluster ?? '' }, call.getPeer());
      const type = checkTypeUrl(req.type_url, svc.type);
      checkNameCount(req.resource_names.length, this.deps.maxResourceNames);
      const names = req.resource_names.filter((n) => n !== '*');
      const all = req.resource_names.includes('*') || (names.length === 0 && WILDCARD_TYPES.has(type));
      const body = this.cache.snapshotFor(req.node?.cluster ?? '').sotwBody(type, subscription(type, all, names));
      cb(null, [body.bytes, sotwTail('', this.options.controlPlaneId)]);
    } catch (err) {
      if (err instanceof StreamError) cb({ code: err.code, details: err.message });
      else cb({ code: grpc.status.INTERNAL, details: 'internal error' });
    }
  }
}
