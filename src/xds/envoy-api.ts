import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';

/**
 * Envoy's v3 API, loaded at start from the .proto tree that the pinned @grpc/grpc-js-xds ships
 * (never copied into this repo). One Root for the process: types are looked up, not regenerated.
 */

const require = createRequire(import.meta.url);

export const TYPE = {
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
} as const;
export type XdsTypeUrl = (typeof TYPE)[keyof typeof TYPE];
/** Make-before-break: clusters and their endpoints exist before the listeners and routes that use them. */
export const PUSH_ORDER: readonly XdsTypeUrl[] = [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route];
export const SHORT_TYPE: Record<XdsTypeUrl, string> = {
  [TYPE.cluster]: 'CDS',
  [TYPE.endpoint]: 'EDS',
  [TYPE.listener]: 'LDS',
  [TYPE.route]: 'RDS',
};

export function isXdsTypeUrl(url: string): url is XdsTypeUrl {
  return url in SHORT_TYPE;
}

const PROTO_FILES = [
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3/client_side_weighted_round_robin.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
  'envoy/service/status/v3/csds.proto',
  'envoy/service/load_stats/v3/lrs.proto',
];

function protoRoots(): string[] {
  const xdsPackage = dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  const deps = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(xdsPackage, 'deps', d));
  // protobufjs carries google/protobuf/descriptor.proto, which the validate annotations import.
  return [...deps, dirname(require.resolve('protobufjs/package.json'))];
}

let cached: protobuf.Root | undefined;

export function envoyRoot(): protobuf.Root {
  if (cached) return cached;
  const roots = protoRoots();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const r of roots) {
      const candidate = join(r, target);
      if (existsSync(candidate)) return candidate;
    }
    return target;
  };
  root.loadSync(PROTO_FILES, { keepCase: true });
  root.resolveAll();
  cached = root;
  return root;
}

export function envoyType(name: string): protobuf.Type {
  return envoyRoot().lookupType(name);
}

/**
 * Encodes a plain object (enums as names) as the named message. fromObject drops unknown keys,
 * so the translator's unit tests decode what it emits and compare field by field.
 */
export function encodeMessage(typeName: string, value: Record<string, unknown>): Uint8Array {
  const type = envoyType(typeName);
  return type.encode(type.fromObject(value)).finish();
}

/** A google.protobuf.Any holding an encoded message, as protobufjs' fromObject expects it. */
export function anyOf(typeName: string, value: Record<string, unknown>): { type_url: string; value: Uint8Array } {
  return { type_url: `type.googleapis.com/${typeName}`, value: encodeMessage(typeName, value) };
}
