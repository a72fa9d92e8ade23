/**
 * A ClusterLoadAssignment written straight from its layout to bytes: the same bytes as protobufjs
 * encoding loadAssignmentResource's object (test/xds/assignment-encoding.test.ts compares them),
 * without that object and protobufjs' per-field operations.
 *
 * Every endpoint write and every weight publication re-encodes its clusters' assignments. Through
 * protobufjs a 100-endpoint assignment allocated ~230 KB (five objects per endpoint, their
 * fromObject copies and an operation record per field) and was most of a write's translation.
 * Here the sizes are summed first and the message is written once into a buffer of that size.
 *
 * Field numbers come from the loaded Envoy protos, not from constants. Fields are written in
 * field-number order and explicitly set defaults are written, as protobufjs does.
 */
import protobuf from 'protobufjs';
import type { Endpoint, HealthStatus } from '../catalog/types.js';
import { envoyRoot, envoyType } from './envoy-api.js';
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

function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** A length-delimited field's size around a body of `n` bytes (one-byte tag). */
const delimited = (n: number): number => 1 + varintSize(n) + n;

/** UTF-8 length: ASCII counted here, anything else as protobufjs counts it (Buffer.byteLength). */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s);
  return s.length;
}

/** What a UInt32Value wrapper holding `v` takes (an unset value is an empty message, as protobufjs writes it). */
const wrapperSize = (v: number | undefined): number => delimited(v === undefined ? 0 : 1 + varintSize(v >>> 0));

/**
 * Per endpoint, the sizes the writing pass needs, from the sizing pass: its address's UTF-8
 * length, and the sizes of its SocketAddress, Address, Endpoint and LbEndpoint. One array reused
 * by every encode (encodeAssignment does not yield).
 */
const SLOTS = 5;
let sizes = new Int32Array(0);

/** Kept between encodes up to this many endpoints (64 KB); a bigger assignment's array is its own. */
const KEPT_SLOTS = SLOTS * 3_276;

/** Makes the scratch array hold `endpoints` endpoints' sizes. */
function sizesFor(endpoints: number): void {
  const n = endpoints * SLOTS;
  if (n > KEPT_SLOTS) sizes = new Int32Array(n);
  else if (sizes.length < n || sizes.length > KEPT_SLOTS) sizes = new Int32Array(KEPT_SLOTS);
}

/** Sizes endpoint `i` of a group into slot `i` of `s`; returns its LbEndpoint's size. */
function measure(s: Int32Array, i: number, e: Endpoint, weight: number | undefined, t: Tags): number {
  const at = i * SLOTS;
  const host = utf8Length(e.address);
  const socket = delimited(host) + 1 + varintSize(e.port >>> 0);
  const address = delimited(socket);
  const endpoint = delimited(address);
  const lb = delimited(endpoint) + 1 + varintSize(healthValue(e.health, t)) + wrapperSize(weight);
  s[at] = host;
  s[at + 1] = socket;
  s[at + 2] = address;
  s[at + 3] = endpoint;
  s[at + 4] = lb;
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
  pos = 0;
  constructor(readonly buf: Buffer) {}

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

/** Sizes a group's endpoints into slots `first`… of the scratch array and returns the group's size. */
function groupBodySize(g: AssignmentGroup, first: number, t: Tags): number {
  let n = delimited(localitySize(g));
  for (let i = 0; i < g.endpoints.length; i++) n += delimited(measure(sizes, first + i, g.endpoints[i] as Endpoint, g.weights[i], t));
  n += wrapperSize(g.weight);
  if (g.priority > 0) n += 1 + varintSize(g.priority);
  return n;
}

function writeEndpoint(out: Out, s: Int32Array, i: number, e: Endpoint, weight: number | undefined, t: Tags): void {
  const at = i * SLOTS;
  out.open(t.lbEndpoints, s[at + 4] as number);
  out.open(t.endpoint, s[at + 3] as number);
  out.open(t.address, s[at + 2] as number);
  out.open(t.socketAddress, s[at + 1] as number);
  out.string(t.socketHost, e.address, s[at]);
  out.buf[out.pos++] = t.portValue;
  out.varint(e.port);
  out.buf[out.pos++] = t.health;
  out.varint(healthValue(e.health, t));
  out.wrapper(t.endpointWeight, weight, t);
}

function writeGroup(out: Out, g: AssignmentGroup, body: number, first: number, t: Tags): void {
  out.open(t.endpoints, body);
  const l = g.locality;
  out.open(t.locality, localitySize(g));
  if (l.region) out.string(t.region, l.region);
  if (l.zone) out.string(t.zone, l.zone);
  if (l.subZone) out.string(t.subZone, l.subZone);
  for (let i = 0; i < g.endpoints.length; i++) writeEndpoint(out, sizes, first + i, g.endpoints[i] as Endpoint, g.weights[i], t);
  out.wrapper(t.localityWeight, g.weight, t);
  if (g.priority > 0) {
    out.buf[out.pos++] = t.priority;
    out.varint(g.priority);
  }
}

/** The layout's ClusterLoadAssignment message bytes. */
export function encodeAssignment(layout: AssignmentLayout): Buffer {
  const t = (tags ??= loadTags());
  let endpoints = 0;
  for (const g of layout.groups) endpoints += g.endpoints.length;
  sizesFor(endpoints);
  const bodies: number[] = [];
  let total = delimited(utf8Length(layout.clusterName));
  for (let i = 0, first = 0; i < layout.groups.length; first += (layout.groups[i++] as AssignmentGroup).endpoints.length) {
    const body = groupBodySize(layout.groups[i] as AssignmentGroup, first, t);
    bodies.push(body);
    total += delimited(body);
  }
  const out = new Out(Buffer.allocUnsafe(total));
  out.string(t.clusterName, layout.clusterName);
  for (let i = 0, first = 0; i < layout.groups.length; first += (layout.groups[i++] as AssignmentGroup).endpoints.length) {
    writeGroup(out, layout.groups[i] as AssignmentGroup, bodies[i] as number, first, t);
  }
  if (out.pos !== total) throw new Error(`assignment encoding: wrote ${out.pos} bytes of ${total}`);
  return out.buf;
}
