/**
 * In-memory setup for unit tests of the stream state machines (and the server's fan-out): hand-made
 * resources in an XdsCache, a fake StreamIo that records what would go on the wire. No gRPC
 * transport, no YAML, no SQLite, no startFulcrum — the go-control-plane way of testing a server
 * against its cache alone.
 */
import { pino } from 'pino';
import { XdsCache } from '../../src/xds/cache.js';
import { DeltaStream } from '../../src/xds/delta-stream.js';
import type { SubscriptionBudget, XdsLimits } from '../../src/xds/limits.js';
import { TYPE, type XdsTypeUrl } from '../../src/xds/envoy-api.js';
import { describeProxy, ProxyRegistry } from '../../src/xds/proxy-status.js';
import { encodeResource, type EncodedResource } from '../../src/xds/resource.js';
import { DEFAULT_GROUP, type ResourceSet } from '../../src/xds/resource-set.js';
import type { XdsServerOptions } from '../../src/xds/server.js';
import { SotwStream } from '../../src/xds/sotw-stream.js';
import type { StreamDeps, StreamIo } from '../../src/xds/stream-common.js';
import type { DeltaDiscoveryRequest, DiscoveryRequest } from '../../src/xds/wire.js';
import {
  decodeDeltaDiscoveryResponse, decodeDiscoveryResponse, SHORT, type DeltaDiscoveryResponse, type DiscoveryResponse,
} from '../support/xds-client.js';

/** An XdsServer on loopback, on a port the OS picks, with the sizes the server tests share. */
export function loopbackServerOptions(controlPlaneId: string): XdsServerOptions {
  return { address: '127.0.0.1', port: 0, maxMessageBytes: 4 << 20, keepaliveTimeMs: 60_000, keepaliveTimeoutMs: 20_000, maxResourceNames: 100, controlPlaneId };
}

export const NODE = { id: 'node-1', cluster: 'default' } as const;

// ── resources ────────────────────────────────────────────────────────────────────────────────────

export const cluster = (name: string, lbPolicy = 'ROUND_ROBIN'): EncodedResource =>
  encodeResource(TYPE.cluster, name, { name, type: 'EDS', lb_policy: lbPolicy });

export const endpoints = (name: string, port = 8080): EncodedResource =>
  encodeResource(TYPE.endpoint, name, {
    cluster_name: name,
    endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: port } } } }] }],
  });

export const listener = (name: string, port = 10000): EncodedResource =>
  encodeResource(TYPE.listener, name, { name, address: { socket_address: { address: '127.0.0.1', port_value: port } } });

export const routes = (name: string, ...clusters: string[]): EncodedResource =>
  encodeResource(TYPE.route, name, {
    name,
    virtual_hosts: [{ name: 'any', domains: ['*'], routes: clusters.map((c) => ({ match: { prefix: `/${c}` }, route: { cluster: c } })) }],
  });

/** A cluster with its endpoints (the usual pair). */
export const clusterWithEndpoints = (name: string, port = 8080, lbPolicy = 'ROUND_ROBIN'): EncodedResource[] => [
  cluster(name, lbPolicy),
  endpoints(name, port),
];

/** Resources (or whole sets, merged; later ones win) → one resource set. */
export function resourceSet(...parts: (EncodedResource | EncodedResource[] | ResourceSet)[]): ResourceSet {
  const out = new Map<XdsTypeUrl, Map<string, EncodedResource>>(Object.values(TYPE).map((t) => [t, new Map()]));
  for (const part of parts) {
    const list = part instanceof Map ? [...part.values()].flatMap((byName) => [...byName.values()]) : [part].flat();
    for (const r of list) out.get(r.typeUrl)?.set(r.name, r);
  }
  return out;
}

/** Node groups → resource sets; a bare resource set is the default group alone. */
export function groups(spec: ResourceSet | Record<string, ResourceSet>): Map<string, ResourceSet> {
  if (spec instanceof Map) return new Map([[DEFAULT_GROUP, spec]]);
  return new Map(Object.entries(spec));
}

/** Two clusters (api, web) with endpoints, one listener `ingress` routing to both. */
export function base(): ResourceSet {
  return resourceSet(clusterWithEndpoints('api', 8080), clusterWithEndpoints('web', 8081), listener('ingress'), routes('ingress', 'api', 'web'));
}

/** The default group holds base(); NODE's own group (its node.cluster) holds one cluster, `edge`. */
export function nodeGroupOfNode(): Map<string, ResourceSet> {
  return groups({ [DEFAULT_GROUP]: base(), [NODE.cluster]: resourceSet(clusterWithEndpoints('edge', 1)) });
}

// ── a fake wire ──────────────────────────────────────────────────────────────────────────────────

export class FakeIo implements StreamIo {
  constructor(readonly peer = 'fake:1') {}

  readonly sent: Buffer[] = [];
  failure: { code: number; message: string } | undefined;
  full = false;

  send(parts: readonly Uint8Array[]): void {
    this.sent.push(Buffer.concat(parts));
  }

  congested(): boolean {
    return this.full;
  }

  fail(code: number, message: string): void {
    this.failure = { code, message };
  }
}

interface Rig<Req, Resp> {
  readonly cache: XdsCache;
  readonly registry: ProxyRegistry;
  readonly io: FakeIo;
  readonly stream: { onRequest(req: Req): void; onCacheChange(): void; close(): void };
  /** Decodes and removes everything sent since the last call. */
  take(): Resp[];
  /** Publishes new content and wakes the stream, as the server would. */
  publish(next: Map<string, ResourceSet> | ResourceSet): void;
}

function rig<Req, Resp>(
  initial: Map<string, ResourceSet> | ResourceSet,
  make: (deps: StreamDeps, io: FakeIo) => Rig<Req, Resp>['stream'],
  decode: (b: Buffer) => Resp,
  opts: RigOptions,
): Rig<Req, Resp> {
  const cache = new XdsCache();
  cache.update(isResourceSet(initial) ? groups(initial) : initial);
  const registry = new ProxyRegistry(() => 0);
  const io = new FakeIo(opts.peer);
  const deps: StreamDeps = { cache, registry, log: pino({ level: 'silent' }), maxResourceNames: opts.maxResourceNames ?? 100, controlPlaneId: 'unit-test', limits: opts.limits, budget: opts.budget };
  const stream = make(deps, io);
  return {
    cache,
    registry,
    io,
    stream,
    take: () => io.sent.splice(0).map(decode),
    publish(next) {
      cache.update(isResourceSet(next) ? groups(next) : next);
      stream.onCacheChange();
    },
  };
}

/** A ResourceSet is keyed by type URLs; a group map by group names. */
function isResourceSet(m: Map<string, unknown> | ResourceSet): m is ResourceSet {
  for (const k of m.keys()) return k.startsWith('type.googleapis.com/');
  return false;
}

export type SotwRig = Rig<DiscoveryRequest, DiscoveryResponse>;
export type DeltaRig = Rig<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

/** A rig's stream options: its service's type, and the limits and subscription budget it runs under. */
export interface RigOptions {
  readonly fixedType?: XdsTypeUrl;
  readonly maxResourceNames?: number;
  readonly limits?: XdsLimits;
  readonly budget?: SubscriptionBudget;
  /** The peer ("address:port") the stream's calls come from. */
  readonly peer?: string;
}

export function sotwRig(initial: Map<string, ResourceSet> | ResourceSet = base(), opts: RigOptions = {}): SotwRig {
  return rig(initial, (deps, io) => new SotwStream(deps, io, 'ads', opts.fixedType), decodeDiscoveryResponse, opts);
}

export function deltaRig(initial: Map<string, ResourceSet> | ResourceSet = base(), opts: RigOptions = {}): DeltaRig {
  return rig(initial, (deps, io) => new DeltaStream(deps, io, 'ads-delta', opts.fixedType), decodeDeltaDiscoveryResponse, opts);
}

/** A SotW request; fields default to an initial request for `type`. */
export function sotwReq(type: string, names: string[], extra: Partial<DiscoveryRequest> = {}): DiscoveryRequest {
  return { version_info: '', resource_names: names, type_url: type, response_nonce: '', ...extra };
}

/** The ACK of a SotW response (same names unless given). */
export function sotwAck(resp: DiscoveryResponse, names: string[], extra: Partial<DiscoveryRequest> = {}): DiscoveryRequest {
  return sotwReq(resp.type_url, names, { version_info: resp.version_info, response_nonce: resp.nonce, ...extra });
}

export function deltaReq(type: string, extra: Partial<DeltaDiscoveryRequest> = {}): DeltaDiscoveryRequest {
  return { type_url: type, resource_names_subscribe: [], resource_names_unsubscribe: [], initial_resource_versions: {}, response_nonce: '', ...extra };
}

export function deltaAck(resp: DeltaDiscoveryResponse, extra: Partial<DeltaDiscoveryRequest> = {}): DeltaDiscoveryRequest {
  return deltaReq(resp.type_url, { response_nonce: resp.nonce, ...extra });
}

/** The one response sent since the last take (fails, listing them, if there were none or several). */
export function takeOne<Resp extends { type_url: string }>(r: { take(): Resp[] }): Resp {
  const got = r.take();
  const [one] = got;
  if (!one || got.length > 1) throw new Error(`expected one response, got ${got.length}: ${got.map((x) => SHORT[x.type_url]).join(' ')}`);
  return one;
}

/** The registry's view (sync state, last NACK) of one type for the rig's one proxy. */
export function typeState(registry: ProxyRegistry, type: string): { state: string; lastNack?: { message: string } } | undefined {
  const record = registry.list()[0];
  if (!record) throw new Error('no proxy registered');
  const types = describeProxy(record).types as Record<string, { state: string; lastNack?: { message: string } }>;
  return types[SHORT[type] ?? ''];
}
