/**
 * A ClusterLoadAssignment written straight from its layout to bytes: the same bytes as protobufjs
 * encoding loadAssignmentResource's object (test/xds/assignment-encoding.test.ts compares them),
 * without that object and protobufjs' per-field operations.
 *
 * Every endpoint write and every weight publication re-encodes its clusters' assignments. Through
 * protobufjs a 100-endpoint assignment allocated ~230 KB (five objects per endpoint, their
 * fromObject copies and an operation record per field) and was most of a write's translation.
 * Here the sizes are summed first and the message is written once into a buffer of that size; a
 * big assignment can be written a piece at a time, with the event loop turning between pieces.
 *
 * Field numbers come from the loaded Envoy protos, not from constants. Fields are written in
 * field-number order and explicitly set defaults are written, as protobufjs does.
 */
import protobuf from 'protobufjs';
import type { Endpoint, HealthStatus } from '../catalog/types.js';
import { envoyRoot, envoyType, TYPE } from './envoy-api.js';
import { delimited, ResourceEnvelope, varintSize, type EncodedResource } from './resource.js';
import type { AssignmentGroup, AssignmentLayout } from './translate-clusters.js';

const WIRE_VARINT = 0;
const WIRE_DELIMITED = 2;

/** The tags (field number and wire type, as one varint < 128) the encoder writes. */
interface Tags {
  readonly clusterName: number;
  readonly endpoints: number;
  readonly locality: number;
  readonly region: number;
  readonly zone: number;
  readonly subZone: number;
  readonly lbEndpoints: number;
  readonly localityWeight: number;
  readonly priority: number;
  readonly endpoint: number;
  readonly health: number;
  readonly endpointWeight: number;
  readonly address: number;
  readonly socketAddress: number;
  readonly socketHost: number;
  readonly portValue: number;
  readonly value: number;
  readonly healthValues: ReadonlyMap<string, number>;
}

let tags: Tags | undefined;

function tag(typeName: string, field: string, wire: number): number {
  const f = envoyType(typeName).fields[field];
  if (f === undefined) throw new Error(`assignment encoding: ${typeName} has no field ${field}`);
  const t = (f.id << 3) | wire;
  if (t >= 0x80) throw new Error(`assignment encoding: the tag of ${typeName}.${field} takes more than a byte`);
  return t;
}

function loadTags(): Tags {
  const e = 'envoy.config.endpoint.v3.';
  return {
    clusterName: tag(`${e}ClusterLoadAssignment`, 'cluster_name', WIRE_DELIMITED),
    endpoints: tag(`${e}ClusterLoadAssignment`, 'endpoints', WIRE_DELIMITED),
    locality: tag(`${e}LocalityLbEndpoints`, 'locality', WIRE_DELIMITED),
    region: tag('envoy.config.core.v3.Locality', 'region', WIRE_DELIMITED),
    zone: tag('envoy.config.core.v3.Locality', 'zone', WIRE_DELIMITED),
    subZone: tag('envoy.config.core.v3.Locality', 'sub_zone', WIRE_DELIMITED),
    lbEndpoints: tag(`${e}LocalityLbEndpoints`, 'lb_endpoints', WIRE_DELIMITED),
    localityWeight: tag(`${e}LocalityLbEndpoints`, 'load_balancing_weight', WIRE_DELIMITED),
    priority: tag(`${e}LocalityLbEndpoints`, 'priority', WIRE_VARINT),
    endpoint: tag(`${e}LbEndpoint`, 'endpoint', WIRE_DELIMITED),
    health: tag(`${e}LbEndpoint`, 'health_status', WIRE_VARINT),
    endpointWeight: tag(`${e}LbEndpoint`, 'load_balancing_weight', WIRE_DELIMITED),
    address: tag(`${e}Endpoint`, 'address', WIRE_DELIMITED),
    socketAddress: tag('envoy.config.core.v3.Address', 'socket_address', WIRE_DELIMITED),
    socketHost: tag('envoy.config.core.v3.SocketAddress', 'address', WIRE_DELIMITED),
    portValue: tag('envoy.config.core.v3.SocketAddress', 'port_value', WIRE_VARINT),
    value: tag('google.protobuf.UInt32Value', 'value', WIRE_VARINT),
    healthValues: new Map(Object.entries(envoyRoot().lookupEnum('envoy.config.core.v3.HealthStatus').values)),
  };
}

/** UTF-8 length: ASCII counted here, anything else as protobufjs counts it (Buffer.byteLength). */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s);
  return s.length;
}

/** What a UInt32Value wrapper holding `v` takes (an unset value is an empty message, as protobufjs writes it). */
const wrapperSize = (v: number | undefined): number => delimited(v === undefined ? 0 : 1 + varintSize(v >>> 0));

/**
 * Per endpoint, what the writing pass needs from the sizing pass: its address's UTF-8 length, the
 * sizes of its SocketAddress, Address, Endpoint and LbEndpoint, and its health status's number.
 */
const SLOTS = 6;

/** Kept between one-go encodes (which do not yield) for up to 3,276 endpoints (~77 KB). */
const KEPT_SLOTS = SLOTS * 3_276;
let kept = new Int32Array(0);

/** A scratch array for `endpoints` endpoints: the kept one for a one-go encode that fits, else its own. */
function scratchFor(endpoints: number, own: boolean): Int32Array {
  const n = endpoints * SLOTS;
  if (own || n > KEPT_SLOTS) return new Int32Array(n);
  if (kept.length === 0) kept = new Int32Array(KEPT_SLOTS);
  return kept;
}

/** Sizes endpoint `i` of a group into slot `i` of `s`; returns its LbEndpoint's size. */
function measure(s: Int32Array, i: number, e: Endpoint, weight: number | undefined, t: Tags): number {
  const at = i * SLOTS;
  const host = utf8Length(e.address);
  const socket = delimited(host) + 1 + varintSize(e.port >>> 0);
  const address = delimited(socket);
  const endpoint = delimited(address);
  const health = healthValue(e.health, t);
  const lb = delimited(endpoint) + 1 + varintSize(health) + wrapperSize(weight);
  s[at] = host;
  s[at + 1] = socket;
  s[at + 2] = address;
  s[at + 3] = endpoint;
  s[at + 4] = lb;
  s[at + 5] = health;
  return lb;
}

function healthValue(h: HealthStatus, t: Tags): number {
  const v = t.healthValues.get(h);
  if (v === undefined) throw new Error(`assignment encoding: unknown health status ${h}`);
  return v;
}

function localitySize(g: AssignmentGroup): number {
  const l = g.locality;
  return (l.region ? delimited(utf8Length(l.region)) : 0) + (l.zone ? delimited(utf8Length(l.zone)) : 0) + (l.subZone ? delimited(utf8Length(l.subZone)) : 0);
}

/** The writing half: a buffer of the summed size and a position. */
class Out {
  constructor(
    readonly buf: Buffer,
    public pos: number,
  ) {}

  varint(v: number): void {
    let x = v >>> 0;
    while (x > 0x7f) {
      this.buf[this.pos++] = (x & 0x7f) | 0x80;
      x >>>= 7;
    }
    this.buf[this.pos++] = x;
  }

  /** A tag and a length prefix. */
  open(tag: number, length: number): void {
    this.buf[this.pos++] = tag;
    this.varint(length);
  }

  /** A string field; `n`: its UTF-8 length when known. */
  string(tag: number, s: string, n = utf8Length(s)): void {
    this.open(tag, n);
    if (n === s.length) {
      for (let i = 0; i < n; i++) this.buf[this.pos++] = s.charCodeAt(i);
      return;
    }
    // Beyond ASCII, written the way protobufjs writes it (its own UTF-8 below 40 characters).
    if (s.length < 40) protobuf.util.utf8.write(s, this.buf, this.pos);
    else this.buf.write(s, this.pos);
    this.pos += n;
  }

  wrapper(tag: number, v: number | undefined, t: Tags): void {
    if (v === undefined) return this.open(tag, 0);
    this.open(tag, 1 + varintSize(v >>> 0));
    this.buf[this.pos++] = t.value;
    this.varint(v);
  }
}

/** Endpoints written per piece of a sliced encode (~1 ms each on a quiet machine). */
export const ELEMENTS_PER_PIECE = 1_000;

/** Called between pieces: resolves when the caller is ready for the next one (e.g. after a turn of the event loop). */
export type Turn = () => Promise<void>;

/** One assignment's encoding: sized whole first, then written, optionally a piece at a time. */
class AssignmentWriter {
  private readonly t = (tags ??= loadTags());
  private readonly bodies: number[] = [];
  private readonly total: number;

  constructor(
    private readonly layout: AssignmentLayout,
    private readonly sizes: Int32Array,
  ) {
    let total = delimited(utf8Length(layout.clusterName));
    let first = 0;
    for (const g of layout.groups) {
      const body = this.groupBodySize(g, first);
      this.bodies.push(body);
      total += delimited(body);
      first += g.endpoints.length;
    }
    this.total = total;
  }

  /** The message's size in bytes. */
  get size(): number {
    return this.total;
  }

  /** Writes the message into `buf` from `at` (`size` bytes), yielding after every `every` endpoints. */
  *write(every: number, buf: Buffer, at: number): Generator<void, void, void> {
    const t = this.t;
    const out = new Out(buf, at);
    out.string(t.clusterName, this.layout.clusterName);
    let first = 0;
    let sinceYield = 0;
    for (const [gi, g] of this.layout.groups.entries()) {
      this.openGroup(out, g, this.bodies[gi] as number);
      for (let i = 0; i < g.endpoints.length; i++) {
        this.writeEndpoint(out, first + i, g.endpoints[i] as Endpoint, g.weights[i]);
        if (++sinceYield >= every) {
          sinceYield = 0;
          yield;
        }
      }
      this.closeGroup(out, g);
      first += g.endpoints.length;
    }
    if (out.pos - at !== this.total) throw new Error(`assignment encoding: wrote ${out.pos - at} bytes of ${this.total}`);
  }

  /** Sizes a group's endpoints into slots `first`… of the scratch array and returns the group's size. */
  private groupBodySize(g: AssignmentGroup, first: number): number {
    let n = delimited(localitySize(g));
    for (let i = 0; i < g.endpoints.length; i++) n += delimited(measure(this.sizes, first + i, g.endpoints[i] as Endpoint, g.weights[i], this.t));
    n += wrapperSize(g.weight);
    if (g.priority > 0) n += 1 + varintSize(g.priority);
    return n;
  }

  /** A group's tag and length, and its fields before the endpoints. */
  private openGroup(out: Out, g: AssignmentGroup, body: number): void {
    const t = this.t;
    out.open(t.endpoints, body);
    const l = g.locality;
    out.open(t.locality, localitySize(g));
    if (l.region) out.string(t.region, l.region);
    if (l.zone) out.string(t.zone, l.zone);
    if (l.subZone) out.string(t.subZone, l.subZone);
  }

  /** A group's fields after the endpoints (numbered above lb_endpoints). */
  private closeGroup(out: Out, g: AssignmentGroup): void {
    out.wrapper(this.t.localityWeight, g.weight, this.t);
    if (g.priority > 0) {
      out.buf[out.pos++] = this.t.priority;
      out.varint(g.priority);
    }
  }

  private writeEndpoint(out: Out, i: number, e: Endpoint, weight: number | undefined): void {
    const [t, s, at] = [this.t, this.sizes, i * SLOTS];
    out.open(t.lbEndpoints, s[at + 4] as number);
    out.open(t.endpoint, s[at + 3] as number);
    out.open(t.address, s[at + 2] as number);
    out.open(t.socketAddress, s[at + 1] as number);
    out.string(t.socketHost, e.address, s[at]);
    out.buf[out.pos++] = t.portValue;
    out.varint(e.port);
    out.buf[out.pos++] = t.health;
    out.varint(s[at + 5] as number);
    out.wrapper(t.endpointWeight, weight, t);
  }
}

const endpointCount = (layout: AssignmentLayout): number => layout.groups.reduce((n, g) => n + g.endpoints.length, 0);

/** The layout's ClusterLoadAssignment message bytes, in one go. */
export function encodeAssignment(layout: AssignmentLayout): Buffer {
  const writer = new AssignmentWriter(layout, scratchFor(endpointCount(layout), false));
  const buf = Buffer.allocUnsafe(writer.size);
  drain(writer.write(Number.POSITIVE_INFINITY, buf, 0));
  return buf;
}

/** The layout's assignment as the resource `name`, written straight into its envelope (resource.ts). */
export function assignmentResource(name: string, layout: AssignmentLayout): EncodedResource {
  const writer = new AssignmentWriter(layout, scratchFor(endpointCount(layout), false));
  const envelope = new ResourceEnvelope(TYPE.endpoint, name, writer.size);
  drain(writer.write(Number.POSITIVE_INFINITY, envelope.buffer, envelope.valueAt));
  return envelope.seal();
}

function drain(steps: Generator<void, void, void>): void {
  while (steps.next().done !== true);
}

/**
 * The same written ELEMENTS_PER_PIECE endpoints at a time, `turn` awaited between pieces: a
 * 20k-endpoint assignment otherwise holds the event loop for its whole encode. The scratch array
 * is its own, as one-go encodes may run between the pieces.
 */
export async function assignmentResourceSliced(name: string, layout: AssignmentLayout, turn: Turn): Promise<EncodedResource> {
  const writer = new AssignmentWriter(layout, scratchFor(endpointCount(layout), true));
  const envelope = new ResourceEnvelope(TYPE.endpoint, name, writer.size);
  const steps = writer.write(ELEMENTS_PER_PIECE, envelope.buffer, envelope.valueAt);
  while (steps.next().done !== true) await turn();
  return envelope.seal();
}
