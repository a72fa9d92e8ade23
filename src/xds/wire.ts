import protobuf from 'protobufjs';
import { envoyType } from './envoy-api.js';
import type { NodeInfo } from './proxy-status.js';

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
}

export interface DiscoveryRequest {
  readonly version_info: string;
  readonly node?: RawNode;
  readonly resource_names: string[];
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

const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, arrays: true, objects: true };

export function decodeDiscoveryRequest(buf: Buffer): DiscoveryRequest {
  const type = envoyType('envoy.service.discovery.v3.DiscoveryRequest');
  const o = type.toObject(type.decode(buf), TO_OBJECT) as Record<string, unknown>;
  return {
    version_info: o.version_info as string,
    node: o.node as RawNode | undefined,
    resource_names: o.resource_names as string[],
    type_url: o.type_url as string,
    response_nonce: o.response_nonce as string,
    error_detail: o.error_detail as RpcStatus | undefined,
  };
}

export function decodeDeltaDiscoveryRequest(buf: Buffer): DeltaDiscoveryRequest {
  const type = envoyType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
  const o = type.toObject(type.decode(buf), TO_OBJECT) as Record<string, unknown>;
  return {
    node: o.node as RawNode | undefined,
    type_url: o.type_url as string,
    resource_names_subscribe: o.resource_names_subscribe as string[],
    resource_names_unsubscribe: o.resource_names_unsubscribe as string[],
    initial_resource_versions: (o.initial_resource_versions ?? {}) as Record<string, string>,
    response_nonce: o.response_nonce as string,
    error_detail: o.error_detail as RpcStatus | undefined,
  };
}

/** The per-stream tail of a SotW response: nonce (5) and control_plane (6). */
export function sotwTail(nonce: string, controlPlane: string): Uint8Array {
  const w = protobuf.Writer.create().uint32(42).string(nonce);
  w.uint32(50).fork().uint32(10).string(controlPlane).ldelim();
  return w.finish();
}

export function encodeDeltaResponse(args: {
  systemVersion: string;
  typeUrl: string;
  nonce: string;
  resources: readonly Uint8Array[];
  removed: readonly string[];
  controlPlane: string;
}): Uint8Array {
  const w = protobuf.Writer.create().uint32(10).string(args.systemVersion);
  for (const r of args.resources) w.uint32(18).bytes(r);
  w.uint32(34).string(args.typeUrl);
  w.uint32(42).string(args.nonce);
  for (const n of args.removed) w.uint32(50).string(n);
  w.uint32(58).fork().uint32(10).string(args.controlPlane).ldelim();
  return w.finish();
}

/** google.protobuf.Struct (as protobufjs decodes it) → plain JSON. */
export function structToJson(s: unknown): Record<string, unknown> {
  const fields = (s as { fields?: Record<string, unknown> } | undefined)?.fields ?? {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = valueToJson(v);
  return out;
}

function valueToJson(v: unknown): unknown {
  const x = (v ?? {}) as Record<string, unknown>;
  if ('struct_value' in x && x.struct_value) return structToJson(x.struct_value);
  if ('list_value' in x && x.list_value) return ((x.list_value as { values?: unknown[] }).values ?? []).map(valueToJson);
  if ('string_value' in x && x.string_value !== undefined) return x.string_value;
  if ('number_value' in x && x.number_value !== undefined) return x.number_value;
  if ('bool_value' in x && x.bool_value !== undefined) return x.bool_value;
  return null;
}

export function nodeInfo(n: RawNode): NodeInfo {
  return {
    id: n.id ?? '',
    cluster: n.cluster ?? '',
    metadata: structToJson(n.metadata),
    userAgent: [n.user_agent_name, n.user_agent_version].filter(Boolean).join('/'),
  };
}
