import protobuf from 'protobufjs';
import { envoyType } from './envoy-api.js';
import type { NodeInfo } from './proxy-status.js';
import { deltaRequestSummaryType, nodeSummaryType } from './node-summary.js';
import { boundedNode, boundedStatus, checkDeltaRequest, type PartDecoder } from './request-entries.js';
import { decodeNames, decodeRequestFields } from './request-names.js';

/**
 * Requests are decoded into these plain shapes; responses are spliced from pre-encoded parts
 * (see cache.ts), so only the nonce and control-plane id are written per stream.
 */

export interface RpcStatus {
  readonly code: number;
  readonly message: string;
}

export interface RawNode {
  readonly id?: string;
  readonly cluster?: string;
  readonly metadata?: unknown;
  readonly user_agent_name?: string;
  readonly user_agent_version?: string;
  /** What Envoy sends instead of user_agent_version: { version: { major_number, minor_number, patch } }. */
  readonly user_agent_build_version?: unknown;
}

export interface DiscoveryRequest {
  readonly version_info: string;
  readonly node?: RawNode;
  readonly resource_names: string[];
  /** resource_names as they arrived, when the decoder kept them (request-names.ts). */
  readonly resource_names_bytes?: Uint8Array;
  readonly type_url: string;
  readonly response_nonce: string;
  readonly error_detail?: RpcStatus;
}

export interface DeltaDiscoveryRequest {
  readonly node?: RawNode;
  readonly type_url: string;
  readonly resource_names_subscribe: string[];
  readonly resource_names_unsubscribe: string[];
  readonly initial_resource_versions: Record<string, string>;
  readonly response_nonce: string;
  readonly error_detail?: RpcStatus;
}

/*
 * Requests are read straight off the decoded protobufjs message (no toObject copy): ACKs arrive
 * from every proxy on every push, so this is the server's hottest decode. Unset message fields
 * are null, repeated ones [], maps {}, scalars their proto3 default.
 */
let deltaRequestType: protobuf.Type | undefined;
let requestParts: { readonly node: PartDecoder; readonly status: PartDecoder } | undefined;

export function decodeDiscoveryRequest(buf: Buffer): DiscoveryRequest {
  requestParts ??= { node: boundedNode(nodeSummaryType()), status: boundedStatus(envoyType('google.rpc.Status')) };
  // The names are left encoded (request-names.ts): an ACK repeating them is recognised by bytes.
  const f = decodeRequestFields(buf, requestParts);
  const span = f.names;
  if (!span) {
    // Names with other fields between them (rare): decoded from their runs (request-names.ts).
    const names = decodeNames(buf, f.scattered ?? []);
    return { version_info: f.version_info, node: rawNode(f.node), resource_names: names, type_url: f.type_url, response_nonce: f.response_nonce, error_detail: status(f.error_detail) };
  }
  return new EncodedNamesRequest(f.version_info, rawNode(f.node), f.type_url, f.response_nonce, status(f.error_detail), buf, span);
}

const rawNode = (n: unknown): RawNode | undefined => (n ?? undefined) as RawNode | undefined;
const status = (s: unknown): RpcStatus | undefined => (s ?? undefined) as RpcStatus | undefined;

/**
 * A request whose names stay encoded until read. One class, so every ACK has the same shape: an
 * object literal with a getter, made per request, cost more than the decode itself (a profile of
 * a 10,000-stream push, bench/RESULTS.md) and left every field read on it slow.
 */
class EncodedNamesRequest implements DiscoveryRequest {
  readonly resource_names_bytes: Uint8Array;
  private names: string[] | undefined;

  constructor(
    readonly version_info: string,
    readonly node: RawNode | undefined,
    readonly type_url: string,
    readonly response_nonce: string,
    readonly error_detail: RpcStatus | undefined,
    private readonly buf: Uint8Array,
    private readonly span: readonly [number, number],
  ) {
    this.resource_names_bytes = buf.subarray(span[0], span[1]);
  }

  get resource_names(): string[] {
    return (this.names ??= decodeNames(this.buf, this.span));
  }
}

export function decodeDeltaDiscoveryRequest(buf: Buffer): DeltaDiscoveryRequest {
  deltaRequestType ??= deltaRequestSummaryType();
  checkDeltaRequest(buf);
  const m = deltaRequestType.decode(buf) as unknown as DeltaDiscoveryRequest & { node: RawNode | null; error_detail: RpcStatus | null };
  return {
    node: m.node ?? undefined,
    type_url: m.type_url,
    resource_names_subscribe: m.resource_names_subscribe,
    resource_names_unsubscribe: m.resource_names_unsubscribe,
    initial_resource_versions: m.initial_resource_versions,
    response_nonce: m.response_nonce,
    error_detail: m.error_detail ?? undefined,
  };
}

/** The per-stream tail of a SotW response: nonce (5) and control_plane (6). */
export function sotwTail(nonce: string, controlPlane: string): Uint8Array {
  const w = protobuf.Writer.create().uint32(42).string(nonce);
  w.uint32(50).fork().uint32(10).string(controlPlane).ldelim();
  return w.finish();
}

/** The per-stream tail of a Delta response: nonce (5) and control_plane (7); the rest is shared (delta-piece.ts). */
export function deltaTail(nonce: string, controlPlane: string): Uint8Array {
  const w = protobuf.Writer.create().uint32(42).string(nonce);
  w.uint32(58).fork().uint32(10).string(controlPlane).ldelim();
  return w.finish();
}

/**
 * google.protobuf.Struct (as protobufjs decodes it: the loaded google/protobuf types have
 * camelCase field names) → plain JSON, within a budget of about `maxBytes` bytes of JSON (keys,
 * strings, 8 per number or boolean): undefined when over it, or nested deeper than MAX_DEPTH.
 * A proxy's metadata is kept for as long as its stream, so a hostile one must not be able to
 * park megabytes per stream.
 */
export function structToJson(s: unknown, maxBytes = Number.POSITIVE_INFINITY): Record<string, unknown> | undefined {
  const budget = { left: maxBytes };
  try {
    return structValue(s, budget, 0);
  } catch (err) {
    if (err === OVER) return undefined;
    throw err;
  }
}

const MAX_DEPTH = 64;
const OVER = new Error('node metadata over its budget');

function structValue(s: unknown, budget: { left: number }, depth: number): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw OVER;
  // Every value is charged, empty ones too: a million empty structs is 4 MB on the wire and 64 MB kept.
  spend(budget, 2);
  const fields = (s as { fields?: Record<string, unknown> } | undefined)?.fields ?? {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    spend(budget, k.length + 4);
    // A key "__proto__" (protobufjs decodes it as an own key) is a property, not the prototype.
    Object.defineProperty(out, k, { value: valueToJson(v, budget, depth), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function spend(budget: { left: number }, bytes: number): void {
  budget.left -= bytes;
  if (budget.left < 0) throw OVER;
}

const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** Reads the set member of google.protobuf.Value's `kind` oneof (prototype defaults are not values). */
function valueToJson(v: unknown, budget: { left: number }, depth: number): unknown {
  const x = (v ?? {}) as Record<string, unknown>;
  if (own(x, 'structValue') && x.structValue) return structValue(x.structValue, budget, depth + 1);
  if (own(x, 'listValue') && x.listValue) {
    if (depth + 1 > MAX_DEPTH) throw OVER;
    spend(budget, 2);
    return ((x.listValue as { values?: unknown[] }).values ?? []).map((item) => (spend(budget, 1), valueToJson(item, budget, depth + 1)));
  }
  if (own(x, 'stringValue')) {
    spend(budget, (x.stringValue as string).length + 2);
    return x.stringValue;
  }
  spend(budget, 8);
  if (own(x, 'numberValue')) return x.numberValue;
  if (own(x, 'boolValue')) return x.boolValue;
  return null;
}

/**
 * The proxy's identity as the registry keeps it. Metadata over `maxMetadataBytes` is not kept:
 * `metadata` is then empty and `metadataOmitted` set.
 */
export function nodeInfo(n: RawNode, maxMetadataBytes = Number.POSITIVE_INFINITY): NodeInfo {
  const metadata = structToJson(n.metadata, maxMetadataBytes);
  return {
    id: n.id ?? '',
    cluster: n.cluster ?? '',
    metadata: metadata ?? {},
    ...(metadata === undefined ? { metadataOmitted: true } : {}),
    userAgent: [n.user_agent_name, n.user_agent_version || buildVersion(n.user_agent_build_version)].filter(Boolean).join('/'),
  };
}

/** "1.40.0" out of a BuildVersion (Envoy sends it instead of user_agent_version); '' without one. */
function buildVersion(b: unknown): string {
  const v = (b as { version?: { major_number?: number; minor_number?: number; patch?: number } | null } | null | undefined)?.version;
  return v ? `${v.major_number ?? 0}.${v.minor_number ?? 0}.${v.patch ?? 0}` : '';
}
