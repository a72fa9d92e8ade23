/**
 * Fan-out benchmark, one client worker: opens many ADS SotW streams (raw @grpc/grpc-js, several
 * HTTP/2 connections), subscribes each to CDS (wildcard) and then EDS for every cluster it got,
 * ACKs every response, and records when the watched endpoint weight arrives. Driven over the
 * fork IPC channel by bench/fanout.ts; not meant to be run by hand.
 *
 * Responses are not fully decoded: the DiscoveryResponse and its Any wrappers are walked with a
 * hand-written varint reader; only the ClusterLoadAssignment of the watched cluster is decoded
 * with protobufjs. That keeps the client CPU (which shares the machine's cores with the server)
 * small compared with Envoy's own parsing, which we are not simulating.
 */
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { envoyType, TYPE } from '../src/xds/envoy-api.js';
import { cpuMs, nowMs, send } from './fanout-child.js';

export type ClientCommand =
  | {
      cmd: 'open';
      address: string;
      streams: number;
      perChannel: number;
      worker: number;
      batch: number;
      batchPauseMs: number;
      window: number;
      protocol: 'sotw' | 'delta';
      /** Extensions each stream's Node lists, as an Envoy lists those compiled into it (1.40: 516, a 61 KB Node); 0 or absent: a bare node. */
      extensions?: number;
    }
  | { cmd: 'watch'; push: number; cluster: string; address: string; weight: number }
  | { cmd: 'collect'; push: number }
  | { cmd: 'stop' };

export interface PushSamples {
  push: number;
  /** hrtime ms at which each stream received the response carrying the new weight (NaN if never). */
  recv: number[];
  /** hrtime ms right after each stream's ACK was handed to grpc-js. */
  ack: number[];
  /** Responses per stream during this push that did not carry the new weight (should be 0). */
  extra: number;
  cpuMs: number;
  bytes: number;
}

const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
const ADS_DELTA = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';
const identity = (b: Buffer): Buffer => b;

// --- minimal protobuf reading --------------------------------------------------------------

interface Field {
  no: number;
  start: number;
  end: number;
}

/** Iterates the length-delimited fields of a message (other wire types are skipped). */
function* fields(buf: Uint8Array, start = 0, end = buf.length): Generator<Field> {
  let pos = start;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = buf[pos++] as number;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
      shift += 7;
    }
  };
  while (pos < end) {
    const key = varint();
    const wire = key & 7;
    const no = key >>> 3;
    if (wire === 2) {
      const len = varint();
      yield { no, start: pos, end: pos + len };
      pos += len;
    } else if (wire === 0) varint();
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

const utf8 = new TextDecoder();
const str = (buf: Uint8Array, f: Field): string => utf8.decode(buf.subarray(f.start, f.end));

interface Response {
  version: string;
  nonce: string;
  typeUrl: string;
  /** [start, end) of each Any's value. */
  values: Field[];
}

/**
 * SotW and Delta responses share field numbers for version (1), resources (2), type_url (4) and
 * nonce (5); a Delta resource wraps its Any in a discovery Resource (field 2 again).
 */
function parseResponse(buf: Uint8Array, delta: boolean): Response {
  const r: Response = { version: '', nonce: '', typeUrl: '', values: [] };
  const anyValue = (start: number, end: number): void => {
    for (const a of fields(buf, start, end)) if (a.no === 2) r.values.push(a);
  };
  for (const f of fields(buf)) {
    if (f.no === 1) r.version = str(buf, f);
    else if (f.no === 4) r.typeUrl = str(buf, f);
    else if (f.no === 5) r.nonce = str(buf, f);
    else if (f.no === 2 && !delta) anyValue(f.start, f.end);
    else if (f.no === 2) for (const res of fields(buf, f.start, f.end)) if (res.no === 2) anyValue(res.start, res.end);
  }
  return r;
}

/** field 1 (name / cluster_name) of an embedded Cluster or ClusterLoadAssignment. */
function firstName(buf: Uint8Array, v: Field): string {
  for (const f of fields(buf, v.start, v.end)) if (f.no === 1) return str(buf, f);
  return '';
}

// --- requests ------------------------------------------------------------------------------

const TYPE_CDS = TYPE.cluster;
const TYPE_EDS = TYPE.endpoint;

/** What follows id and cluster in every stream's Node (`envoyNodeTail`); empty: a bare node. */
let nodeTail: Uint8Array = new Uint8Array();

/** An Envoy 1.40's additions to its Node: user agent, build version and `extensions` entries of Envoy's size (~118 B each). */
function envoyNodeTail(extensions: number): Uint8Array {
  if (extensions === 0) return new Uint8Array();
  const node = envoyType('envoy.config.core.v3.Node');
  return node
    .encode(
      node.fromObject({
        user_agent_name: 'envoy',
        user_agent_build_version: { version: { major_number: 1, minor_number: 40 } },
        extensions: Array.from({ length: extensions }, (_, i) => ({
          name: `envoy.filters.http.extension_number_${i}`,
          category: 'envoy.filters.http',
          type_urls: [`type.googleapis.com/envoy.ext.filters.http.v3.Ext${i}`],
        })),
      }),
    )
    .finish();
}

/** A Node {id, cluster: fanout} followed by the tail (encoded messages concatenate as a merge). */
function nodeBytes(id: string): Uint8Array {
  const head = protobuf.Writer.create().uint32(10).string(id).uint32(18).string('fanout').finish();
  return Buffer.concat([head, nodeTail]);
}

function request(args: { node?: string; typeUrl: string; names?: readonly string[]; version?: string; nonce?: string }): Buffer {
  const w = protobuf.Writer.create();
  if (args.version) w.uint32(10).string(args.version);
  if (args.node) w.uint32(18).bytes(nodeBytes(args.node));
  for (const n of args.names ?? []) w.uint32(26).string(n);
  w.uint32(34).string(args.typeUrl);
  if (args.nonce) w.uint32(42).string(args.nonce);
  return Buffer.from(w.finish());
}

/** A DeltaDiscoveryRequest: node (1), type_url (2), subscribe (3), response_nonce (6). */
function deltaRequest(args: { node?: string; typeUrl: string; subscribe?: readonly string[]; nonce?: string }): Buffer {
  const w = protobuf.Writer.create();
  if (args.node) w.uint32(10).bytes(nodeBytes(args.node));
  w.uint32(18).string(args.typeUrl);
  for (const n of args.subscribe ?? []) w.uint32(26).string(n);
  if (args.nonce) w.uint32(50).string(args.nonce);
  return Buffer.from(w.finish());
}

/** What a stream writes: SotW echoes version and names in its ACKs, Delta only the nonce. */
interface Protocol {
  readonly path: string;
  readonly delta: boolean;
  first(node: string): Buffer;
  ack(r: Response, names: readonly string[]): Buffer;
  subscribeEds(names: readonly string[]): Buffer;
}

const PROTOCOLS: Record<'sotw' | 'delta', Protocol> = {
  sotw: {
    path: ADS,
    delta: false,
    first: (node) => request({ node, typeUrl: TYPE_CDS }),
    ack: (r, names) => request({ typeUrl: r.typeUrl, names, version: r.version, nonce: r.nonce }),
    subscribeEds: (names) => request({ typeUrl: TYPE_EDS, names }),
  },
  delta: {
    path: ADS_DELTA,
    delta: true,
    first: (node) => deltaRequest({ node, typeUrl: TYPE_CDS }),
    ack: (r) => deltaRequest({ typeUrl: r.typeUrl, nonce: r.nonce }),
    subscribeEds: (names) => deltaRequest({ typeUrl: TYPE_EDS, subscribe: names }),
  },
};

// --- streams -------------------------------------------------------------------------------

interface Watch {
  push: number;
  cluster: string;
  address: string;
  weight: number;
  recv: Float64Array;
  ack: Float64Array;
  extra: number;
  cpu0: number;
  bytes: number;
}

let watch: Watch | undefined;
let bytesTotal = 0;
const claType = envoyType('envoy.config.endpoint.v3.ClusterLoadAssignment');

function weightIn(buf: Uint8Array, r: Response, w: Watch): number | undefined {
  for (const v of r.values) {
    if (firstName(buf, v) !== w.cluster) continue;
    const cla = claType.toObject(claType.decode(buf.subarray(v.start, v.end)), { defaults: false }) as {
      endpoints?: { lb_endpoints?: { endpoint?: { address?: { socket_address?: { address?: string } } }; load_balancing_weight?: { value?: number } }[] }[];
    };
    for (const loc of cla.endpoints ?? []) {
      for (const lb of loc.lb_endpoints ?? []) {
        if (lb.endpoint?.address?.socket_address?.address === w.address) return lb.load_balancing_weight?.value;
      }
    }
  }
  return undefined;
}

const calls: grpc.ClientDuplexStream<Buffer, Buffer>[] = [];
const channels: grpc.Client[] = [];
let synced = 0;
let failed = 0;
/** The EDS subscription: every cluster the CDS response named (the same for every stream). */
let edsNames: string[] = [];

function openStream(client: grpc.Client, index: number, nodeId: string, p: Protocol): void {
  const call = client.makeBidiStreamRequest<Buffer, Buffer>(p.path, identity, identity, new grpc.Metadata());
  calls.push(call);
  let edsSubscribed = false;
  let edsSynced = false;
  call.on('data', (buf: Buffer) => {
    const t = nowMs();
    bytesTotal += buf.length;
    const r = parseResponse(buf, p.delta);
    if (r.typeUrl === TYPE_CDS) {
      call.write(p.ack(r, []));
      if (!edsSubscribed) {
        edsSubscribed = true;
        const names = r.values.map((v) => firstName(buf, v));
        call.write(p.subscribeEds(names));
        edsNames = names;
      }
      return;
    }
    if (r.typeUrl !== TYPE_EDS) return;
    const w = watch;
    let hit = false;
    if (w && Number.isNaN(w.recv[index])) {
      w.bytes += buf.length;
      hit = weightIn(buf, r, w) === w.weight;
      if (hit) w.recv[index] = t;
      else w.extra++;
    }
    // SotW ACK: echo the version and nonce, with the same subscription (Delta: the nonce).
    call.write(p.ack(r, edsNames));
    if (hit && w) w.ack[index] = nowMs();
    if (!edsSynced) {
      edsSynced = true;
      synced++;
    }
  });
  call.on('error', (err: grpc.ServiceError) => {
    if (err.code !== grpc.status.CANCELLED) {
      failed++;
      send({ type: 'log', msg: `stream ${nodeId}: ${err.code} ${err.details}` });
    }
  });
  call.write(p.first(nodeId));
}
async function open(c: Extract<ClientCommand, { cmd: 'open' }>): Promise<void> {
  const started = nowMs();
  for (let i = 0; i < c.streams; i++) {
    if (i % c.perChannel === 0) {
      // A local subchannel pool per channel: each channel gets its own HTTP/2 connection
      // (with the default global pool, identical channels would share one).
      channels.push(
        new grpc.Client(c.address, grpc.credentials.createInsecure(), {
          'grpc.use_local_subchannel_pool': 1,
          'grpc.max_receive_message_length': 64 * 1024 * 1024,
          // HTTP/2 stream and connection flow-control window (0: grpc-js/Node default, 64 KiB).
          ...(c.window > 0 ? { 'grpc-node.flow_control_window': c.window } : {}),
        }),
      );
    }
    openStream(channels[channels.length - 1] as grpc.Client, i, `fanout-w${c.worker}-s${i}`, PROTOCOLS[c.protocol]);
    if ((i + 1) % c.batch === 0) await new Promise((r) => setTimeout(r, c.batchPauseMs));
  }
  const deadline = started + 120_000;
  while (synced + failed < c.streams && nowMs() < deadline) await new Promise((r) => setTimeout(r, 20));
  send({ type: 'opened', synced, failed, channels: channels.length, ms: nowMs() - started, cpuMs: cpuMs() });
}

process.on('message', (msg: ClientCommand) => {
  if (msg.cmd === 'open') {
    nodeTail = envoyNodeTail(msg.extensions ?? 0);
    void open(msg);
  }
  else if (msg.cmd === 'watch') {
    watch = {
      push: msg.push,
      cluster: msg.cluster,
      address: msg.address,
      weight: msg.weight,
      recv: new Float64Array(calls.length).fill(NaN),
      ack: new Float64Array(calls.length).fill(NaN),
      extra: 0,
      cpu0: cpuMs(),
      bytes: 0,
    };
    send({ type: 'watching', push: msg.push });
  } else if (msg.cmd === 'collect') {
    const w = watch;
    watch = undefined;
    const samples: PushSamples = {
      push: msg.push,
      recv: w ? [...w.recv] : [],
      ack: w ? [...w.ack] : [],
      extra: w?.extra ?? 0,
      cpuMs: w ? cpuMs() - w.cpu0 : 0,
      bytes: w?.bytes ?? 0,
    };
    send({ type: 'samples', samples });
  } else if (msg.cmd === 'stop') {
    for (const call of calls) call.cancel();
    for (const ch of channels) ch.close();
    send({ type: 'stopped', bytesTotal });
    setTimeout(() => process.exit(0), 100).unref();
  }
});

send({ type: 'ready' });
