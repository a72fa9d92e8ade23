import { createHash } from 'node:crypto';
import protobuf from 'protobufjs';
import { encodeMessage, type XdsTypeUrl } from './envoy-api.js';

/**
 * A resource encoded once and shared by every stream: the message bytes, and the two wire
 * envelopes streams splice into responses (an Any for SotW, a discovery Resource for Delta).
 */
export interface EncodedResource {
  readonly typeUrl: XdsTypeUrl;
  readonly name: string;
  /** Hash of the bytes: equal content, equal version, whatever produced it. */
  readonly hash: string;
  readonly bytes: Uint8Array;
  readonly anyBytes: Uint8Array;
}

export const MESSAGE_OF: Record<XdsTypeUrl, string> = {
  'type.googleapis.com/envoy.config.cluster.v3.Cluster': 'envoy.config.cluster.v3.Cluster',
  'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment': 'envoy.config.endpoint.v3.ClusterLoadAssignment',
  'type.googleapis.com/envoy.config.listener.v3.Listener': 'envoy.config.listener.v3.Listener',
  'type.googleapis.com/envoy.config.route.v3.RouteConfiguration': 'envoy.config.route.v3.RouteConfiguration',
};

export function encodeAny(typeUrl: string, bytes: Uint8Array): Uint8Array {
  return protobuf.Writer.create().uint32(10).string(typeUrl).uint32(18).bytes(bytes).finish();
}

export function encodeResource(typeUrl: XdsTypeUrl, name: string, value: Record<string, unknown>): EncodedResource {
  return resourceOfBytes(typeUrl, name, encodeMessage(MESSAGE_OF[typeUrl], value));
}

/** A resource whose message is already encoded (e.g. by assignment-encoding.ts). */
export function resourceOfBytes(typeUrl: XdsTypeUrl, name: string, bytes: Uint8Array): EncodedResource {
  const hash = createHash('sha256').update(bytes).digest('base64url').slice(0, 16);
  return { typeUrl, name, hash, bytes, anyBytes: encodeAny(typeUrl, bytes) };
}
