import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { encodingOnly } from './encoding-descriptor.js';

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
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.proto',
  'envoy/extensions/load_balancing_policies/random/v3/random.proto',
  'envoy/extensions/load_balancing_policies/maglev/v3/maglev.proto',
  'envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto',
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
  cached ??= prebuiltRoot() ?? parseEnvoyProtos();
  return cached;
}

/** Parses the .proto files: the source of truth, and what `npm run build` turns into envoy-api.json. */
export function parseEnvoyProtos(): protobuf.Root {
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
  return root;
}

/** Which .proto tree and parser a prebuilt descriptor came from; any difference and it is ignored. */
export function descriptorStamp(): string {
  const version = (pkg: string) => (require(`${pkg}/package.json`) as { version: string }).version;
  return JSON.stringify({ xds: version('@grpc/grpc-js-xds'), protobufjs: version('protobufjs'), files: PROTO_FILES, content: 'encoding-only' });
}

export const PREBUILT_DESCRIPTOR = 'envoy-api.json';

/**
 * The same types from a JSON descriptor written next to this module at build time (dist/xds/),
 * without the annotations (encoding-descriptor.ts): reading it takes a fraction of parsing the
 * .proto files, the largest part of a cold start. (Root.fromJSON resolves every type, which is
 * most of the remaining time, but a type's fields must not be resolved lazily: that skips
 * protobufjs' resolution of edition features, and repeated scalars then encode unpacked.)
 * Absent (running from src/) or stale, the .proto files are parsed.
 */
function prebuiltRoot(file = fileURLToPath(new URL(`./${PREBUILT_DESCRIPTOR}`, import.meta.url))): protobuf.Root | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const { stamp, root } = JSON.parse(readFileSync(file, 'utf8')) as { stamp?: string; root?: protobuf.INamespace };
    if (stamp !== descriptorStamp() || !root) return undefined;
    return protobuf.Root.fromJSON(root);
  } catch {
    return undefined;
  }
}

/** The descriptor `prebuiltRoot` reads: written by scripts/envoy-descriptor.ts after tsc. */
export function envoyDescriptor(): string {
  return JSON.stringify({ stamp: descriptorStamp(), root: encodingOnly(parseEnvoyProtos().toJSON()) });
}

/** For tests: the root a descriptor file yields (undefined when absent, stale or unreadable). */
export const rootFromDescriptor = (file: string): protobuf.Root | undefined => prebuiltRoot(file);

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

/** The namespace of the types fulcrum derives from Envoy's (trimmedType). */
const NAMESPACE = 'fulcrum.wire';

/** The field's type as an absolute name (messages and enums), or its scalar type. */
export function fieldTypeName(f: protobuf.Field): string {
  f.resolve();
  return f.resolvedType !== null ? f.resolvedType.fullName : f.type;
}

/**
 * A copy of `full` named `name` in fulcrum's namespace, with only the fields `typed` gives a type
 * for, each of that type (their numbers as in `full`). Decoding with it skips the bytes of every
 * other field without building them (src/xds/node-summary.ts, src/signals/lrs-codec.ts).
 */
export function trimmedType(full: protobuf.Type, name: string, typed: (f: protobuf.Field) => string | undefined): protobuf.Type {
  const t = new protobuf.Type(name);
  for (const f of full.fieldsArray) {
    const type = typed(f);
    if (type === undefined) continue;
    t.add(f.map ? new protobuf.MapField(f.name, f.id, (f as unknown as protobuf.MapField).keyType, type) : new protobuf.Field(f.name, f.id, type, f.repeated ? 'repeated' : undefined));
  }
  const root = full.root;
  const ns = (root.lookup(NAMESPACE) as protobuf.Namespace | null) ?? root.define(NAMESPACE);
  // Built once per root; a second build (another copy of this module on the same root) reuses it.
  const existing = ns.get(name);
  if (existing instanceof protobuf.Type) return existing;
  ns.add(t);
  t.resolveAll();
  return t;
}

const NODE = 'envoy.config.core.v3.Node';

/**
 * envoy.config.core.v3.Node with only `fields`, as `name` (trimmedType). Throws when the API has
 * no such field: one renamed in a newer Envoy API would otherwise vanish unnoticed.
 */
export function trimmedNodeType(name: string, fields: ReadonlySet<string>): protobuf.Type {
  const node = trimmedType(envoyType(NODE), name, (f) => (fields.has(f.name) ? fieldTypeName(f) : undefined));
  const missing = [...fields].filter((field) => node.fields[field] === undefined);
  if (missing.length > 0) throw new Error(`${NODE} has no field ${missing.join(', ')}`);
  return node;
}

/** The message `typeName` as `name`, its Node field of type `node` (trimmedNodeType), every other field as it is. */
export function withNodeType(typeName: string, name: string, node: protobuf.Type): protobuf.Type {
  const full = envoyType(NODE).fullName;
  return trimmedType(envoyType(typeName), name, (f) => (fieldTypeName(f) === full ? node.fullName : fieldTypeName(f)));
}
