import type protobuf from 'protobufjs';
import { trimmedNodeType, withNodeType } from './envoy-api.js';

/**
 * Message types for decoding requests with only the parts of the Node fulcrum reads. The first
 * request of an Envoy 1.40 stream carries its Node with the 516 extensions compiled into it:
 * 61 KB, which protobufjs decoded into thousands of objects (~180 µs per stream, ~1.8 s of CPU
 * for a 10,000-proxy reconnect storm) only to drop them. A type without those fields makes
 * protobufjs skip their bytes without decoding them. The field numbers and types are the Node's
 * own, taken from the loaded descriptor.
 */

/** What fulcrum reads of a Node: its identity, its metadata (shown in /v1/proxies) and its user agent. */
const NODE_FIELDS: ReadonlySet<string> = new Set(['id', 'cluster', 'metadata', 'user_agent_name', 'user_agent_version', 'user_agent_build_version']);

let types: { readonly node: protobuf.Type; readonly delta: protobuf.Type } | undefined;

/** envoy.config.core.v3.Node with only NODE_FIELDS. */
export function nodeSummaryType(): protobuf.Type {
  return summaries().node;
}

/** envoy.service.discovery.v3.DeltaDiscoveryRequest whose node is a node summary. */
export function deltaRequestSummaryType(): protobuf.Type {
  return summaries().delta;
}

function summaries(): { readonly node: protobuf.Type; readonly delta: protobuf.Type } {
  if (types !== undefined) return types;
  const node = trimmedNodeType('NodeSummary', NODE_FIELDS);
  const delta = withNodeType('envoy.service.discovery.v3.DeltaDiscoveryRequest', 'DeltaRequestSummary', node);
  types = { node, delta };
  return types;
}
