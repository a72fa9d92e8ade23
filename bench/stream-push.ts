/**
 * CPU of one push through the stream state machines alone, SotW against Delta, in one process:
 * N streams (CDS wildcard + EDS for every cluster, everything ACKed) on an in-memory cache, one
 * endpoint weight changed per push; measured is cache.update + every stream's onCacheChange +
 * every stream's ACK of what it was sent (decoded from the bytes a proxy sends, as the server
 * receives it; building those bytes is not measured). No gRPC, no sockets: the writes go to a counting fake,
 * so this isolates what issue 13 names (per-stream scans and encodes), not the transport.
 *
 *   npx tsx bench/stream-push.ts [--streams 5000] [--clusters 100] [--endpoints 20] [--pushes 7]
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { XdsCache } from '../src/xds/cache.js';
import { DeltaStream } from '../src/xds/delta-stream.js';
import type protobuf from 'protobufjs';
import { envoyType, TYPE } from '../src/xds/envoy-api.js';
import { ProxyRegistry } from '../src/xds/proxy-status.js';
import { encodeResource, type EncodedResource } from '../src/xds/resource.js';
import { DEFAULT_GROUP, type ResourceSet } from '../src/xds/resource-set.js';
import { SotwStream } from '../src/xds/sotw-stream.js';
import type { StreamDeps, StreamIo } from '../src/xds/stream-common.js';
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest } from '../src/xds/wire.js';
import { decodeDeltaDiscoveryResponse, decodeDiscoveryResponse } from '../test/support/xds-client.js';

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '5000' },
    clusters: { type: 'string', default: '100' },
    endpoints: { type: 'string', default: '20' },
    pushes: { type: 'string', default: '7' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write('usage: npx tsx bench/stream-push.ts [--streams N] [--clusters N] [--endpoints N] [--pushes N]\n');
  process.exit(0);
}
const N = Number(values.streams);
const C = Number(values.clusters);
const E = Number(values.endpoints);
const P = Number(values.pushes);
const names = Array.from({ length: C }, (_, c) => `svc-${c}`);

function catalog(weights: ReadonlyMap<string, number>): Map<string, ResourceSet> {
  const clusters = new Map<string, EncodedResource>();
  const assignments = new Map<string, EncodedResource>();
  for (const [c, name] of names.entries()) {
    clusters.set(name, encodeResource(TYPE.cluster, name, { name, type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } } }));
    const lb = Array.from({ length: E }, (_, e) => ({
      endpoint: { address: { socket_address: { address: `10.0.${c % 256}.${e + 1}`, port_value: 8080 } } },
      load_balancing_weight: { value: weights.get(`${c}/${e}`) ?? 1 },
    }));
    assignments.set(name, encodeResource(TYPE.endpoint, name, { cluster_name: name, endpoints: [{ lb_endpoints: lb }] }));
  }
  return new Map([[DEFAULT_GROUP, new Map([[TYPE.cluster, clusters], [TYPE.endpoint, assignments]])]]);
}

/** Keeps the last response of each stream so it can be ACKed (what a proxy does). */
class HoldingIo implements StreamIo {
  readonly peer = 'bench';
  pending: Buffer[] = [];
  bytes = 0;
  send(parts: readonly Uint8Array[]): void {
    const b = Buffer.concat(parts);
    this.bytes += b.length;
    this.pending.push(b);
  }
  fail(code: number, message: string): void {
    throw new Error(`stream failed: ${code} ${message}`);
  }
}

interface Bench {
  /** The client's side of ACKing what the stream was sent: the requests, encoded as they go on the wire. */
  readonly acks: () => Buffer[];
  /** The server's side: each ACK decoded as grpc-js hands it over, then handled. */
  readonly handle: (acks: readonly Buffer[]) => void;
  readonly stream: { onCacheChange(): void };
}

const sotwRequest = envoyType('envoy.service.discovery.v3.DiscoveryRequest');
const deltaRequest = envoyType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
const encodeAs = (t: protobuf.Type, m: Record<string, unknown>): Buffer => Buffer.from(t.encode(t.fromObject(m)).finish());

function open(protocol: 'sotw' | 'delta', deps: StreamDeps, i: number): Bench {
  const io = new HoldingIo();
  const node = { id: `n${i}`, cluster: 'bench' };
  if (protocol === 'sotw') {
    const stream = new SotwStream(deps, io, 'ads');
    // Envoy's EDS ACKs name every cluster again; CDS (wildcard) ACKs name nothing.
    const acks = (): Buffer[] =>
      io.pending.splice(0).map((b) => {
        const r = decodeDiscoveryResponse(b);
        return encodeAs(sotwRequest, { version_info: r.version_info, resource_names: r.type_url === TYPE.endpoint ? names : [], type_url: r.type_url, response_nonce: r.nonce });
      });
    const handle = (bufs: readonly Buffer[]): void => {
      for (const b of bufs) stream.onRequest(decodeDiscoveryRequest(b));
    };
    handle([
      encodeAs(sotwRequest, { version_info: '', node, resource_names: [], type_url: TYPE.cluster, response_nonce: '' }),
      encodeAs(sotwRequest, { version_info: '', resource_names: names, type_url: TYPE.endpoint, response_nonce: '' }),
    ]);
    handle(acks());
    return { acks, handle, stream };
  }
  const stream = new DeltaStream(deps, io, 'ads-delta');
  const empty = { resource_names_subscribe: [], resource_names_unsubscribe: [], initial_resource_versions: {} };
  const acks = (): Buffer[] =>
    io.pending.splice(0).map((b) => {
      const r = decodeDeltaDiscoveryResponse(b);
      return encodeAs(deltaRequest, { type_url: r.type_url, response_nonce: r.nonce });
    });
  const handle = (bufs: readonly Buffer[]): void => {
    for (const b of bufs) stream.onRequest(decodeDeltaDiscoveryRequest(b));
  };
  stream.onRequest({ ...empty, node, type_url: TYPE.cluster, resource_names_subscribe: ['*'], response_nonce: '' });
  stream.onRequest({ ...empty, type_url: TYPE.endpoint, resource_names_subscribe: names, response_nonce: '' });
  handle(acks());
  return { acks, handle, stream };
}

const cpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function run(protocol: 'sotw' | 'delta'): { pushMs: number; ackMs: number; openMs: number } {
  const weights = new Map<string, number>();
  const cache = new XdsCache();
  cache.update(catalog(weights));
  const deps: StreamDeps = { cache, registry: new ProxyRegistry(), log: pino({ level: 'silent' }), maxResourceNames: 20_000, controlPlaneId: 'bench' };
  const t0 = cpu();
  const streams = Array.from({ length: N }, (_, i) => open(protocol, deps, i));
  const openMs = cpu() - t0;
  const push: number[] = [];
  const ack: number[] = [];
  for (let p = 1; p <= P; p++) {
    weights.set(`${(p * 37) % C}/${p % E}`, p + 1);
    const next = catalog(weights); // translation is not what this measures
    const a = cpu();
    cache.update(next);
    for (const s of streams) s.stream.onCacheChange();
    const b = cpu();
    const acks = streams.map((s) => s.acks()); // the proxies' side: not measured
    const c = cpu();
    streams.forEach((s, i) => s.handle(acks[i] ?? []));
    push.push(b - a);
    ack.push(cpu() - c);
  }
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? NaN;
  return { pushMs: Math.round(median(push)), ackMs: Math.round(median(ack)), openMs: Math.round(openMs) };
}

const sotw = run('sotw');
const delta = run('delta');
const ratio = (d: number, s: number): number => Math.round((d / s) * 100) / 100;
process.stdout.write(
  `${JSON.stringify({ bench: 'stream-push', streams: N, clusters: C, endpoints: E, pushes: P, sotw, delta, deltaToSotw: { push: ratio(delta.pushMs, sotw.pushMs), ack: ratio(delta.ackMs, sotw.ackMs), open: ratio(delta.openMs, sotw.openMs) } })}\n`,
);
