/**
 * CPU of one push through the stream state machines alone, SotW against Delta, in one process:
 * N streams (CDS wildcard + EDS for every cluster, everything ACKed) on an in-memory cache, one
 * endpoint weight changed per push; measured is cache.update + every stream's onCacheChange +
 * every stream's ACK of what it was sent. No gRPC, no sockets: the writes go to a counting fake,
 * so this isolates what issue 13 names (per-stream scans and encodes), not the transport.
 *
 *   npx tsx bench/stream-push.ts [--streams 5000] [--clusters 100] [--endpoints 20] [--pushes 7]
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { XdsCache } from '../src/xds/cache.js';
import { DeltaStream } from '../src/xds/delta-stream.js';
import { TYPE } from '../src/xds/envoy-api.js';
import { ProxyRegistry } from '../src/xds/proxy-status.js';
import { encodeResource, type EncodedResource } from '../src/xds/resource.js';
import { DEFAULT_GROUP, type ResourceSet } from '../src/xds/resource-set.js';
import { SotwStream } from '../src/xds/sotw-stream.js';
import type { StreamDeps, StreamIo } from '../src/xds/stream-common.js';
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
  readonly ack: () => void;
  readonly stream: { onCacheChange(): void };
}

function open(protocol: 'sotw' | 'delta', deps: StreamDeps, i: number): Bench {
  const io = new HoldingIo();
  const node = { id: `n${i}`, cluster: 'bench' };
  if (protocol === 'sotw') {
    const stream = new SotwStream(deps, io, 'ads');
    const ack = (): void => {
      for (const b of io.pending.splice(0)) {
        const r = decodeDiscoveryResponse(b);
        const subscribed = r.type_url === TYPE.endpoint ? names : [];
        stream.onRequest({ version_info: r.version_info, resource_names: subscribed, type_url: r.type_url, response_nonce: r.nonce });
      }
    };
    stream.onRequest({ version_info: '', node, resource_names: [], type_url: TYPE.cluster, response_nonce: '' });
    stream.onRequest({ version_info: '', resource_names: names, type_url: TYPE.endpoint, response_nonce: '' });
    ack();
    return { ack, stream };
  }
  const stream = new DeltaStream(deps, io, 'ads-delta');
  const empty = { resource_names_subscribe: [], resource_names_unsubscribe: [], initial_resource_versions: {} };
  const ack = (): void => {
    for (const b of io.pending.splice(0)) {
      const r = decodeDeltaDiscoveryResponse(b);
      stream.onRequest({ ...empty, type_url: r.type_url, response_nonce: r.nonce });
    }
  };
  stream.onRequest({ ...empty, node, type_url: TYPE.cluster, resource_names_subscribe: ['*'], response_nonce: '' });
  stream.onRequest({ ...empty, type_url: TYPE.endpoint, resource_names_subscribe: names, response_nonce: '' });
  ack();
  return { ack, stream };
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
    for (const s of streams) s.ack();
    push.push(b - a);
    ack.push(cpu() - b);
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
