import { DEFAULT_GROUP } from './resource-set.js';

/**
 * Which form of the resources a client is sent: Envoy's, or proxyless gRPC's, whose endpoint
 * assignments differ (grpc-assignments.ts). Read from node.user_agent_name, which every gRPC xDS
 * client sets to "gRPC <language>" (grpc-go "gRPC Go", @grpc/grpc-js-xds "gRPC Node Pure JS",
 * grpc-java "gRPC Java") and Envoy to "envoy". Anything else gets Envoy's form.
 */
export type ClientForm = 'envoy' | 'grpc';

/** The form for a proxy whose user agent (NodeInfo.userAgent: `name/version`) is `userAgent`. */
export function clientFormOf(userAgent: string): ClientForm {
  return /^grpc[ /]/i.test(userAgent) ? 'grpc' : 'envoy';
}

/**
 * The cache key of a node group's snapshot in `form`. gRPC's snapshots sit beside Envoy's under
 * keys that start with a NUL, which no operator names a node group with, so the cache and the
 * stream index treat them as groups of their own. (A proxy whose node.cluster is such a key is
 * served the gRPC form of the same resources: nothing it could not be sent anyway.)
 */
export function formGroupKey(group: string, form: ClientForm): string {
  return form === 'envoy' ? group : `${GRPC_KEY_PREFIX}${group}`;
}

const GRPC_KEY_PREFIX = '\u0000grpc\u0000';

/** The node group and form a cache key (formGroupKey) stands for. */
export function groupOfKey(key: string): { group: string; form: ClientForm } {
  return key.startsWith(GRPC_KEY_PREFIX) ? { group: key.slice(GRPC_KEY_PREFIX.length), form: 'grpc' } : { group: key, form: 'envoy' };
}

/** The key of the default group's gRPC snapshot. */
export const DEFAULT_GRPC_GROUP = formGroupKey(DEFAULT_GROUP, 'grpc');
