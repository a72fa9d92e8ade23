/**
 * A request's Node is decoded with only what fulcrum reads of it: Envoy's first request lists
 * every extension compiled into it (516 in 1.40, 61 KB), which is skipped undecoded.
 */
import { describe, expect, it } from 'vitest';
import { envoyType } from '../../src/xds/envoy-api.js';
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest, nodeInfo, structToJson, type RawNode } from '../../src/xds/wire.js';

const TYPE_URL = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

/** A Node as Envoy 1.40 sends it: identity, metadata, build version and hundreds of extensions. */
function envoyNode(metadata: Record<string, unknown>): Record<string, unknown> {
  return {
    id: 'sidecar~10.0.0.1~web-0.default',
    cluster: 'web',
    metadata,
    user_agent_name: 'envoy',
    user_agent_build_version: { version: { major_number: 1, minor_number: 40, patch: 0 } },
    extensions: Array.from({ length: 516 }, (_, i) => ({ name: `envoy.filters.ext_${i}`, category: 'envoy.filters.http', type_urls: [`type.googleapis.com/ext.v3.Ext${i}`] })),
    client_features: ['envoy.lb.does_not_support_overprovisioning'],
  };
}

const METADATA = {
  fields: {
    zone: { stringValue: 'z1' },
    replicas: { numberValue: 3 },
    canary: { boolValue: true },
    nothing: { nullValue: 'NULL_VALUE' },
    labels: { structValue: { fields: { app: { stringValue: 'web' } } } },
    ports: { listValue: { values: [{ numberValue: 80 }, { stringValue: 'http' }] } },
  },
};
const AS_JSON = { zone: 'z1', replicas: 3, canary: true, nothing: null, labels: { app: 'web' }, ports: [80, 'http'] };

function encoded(typeName: string, value: Record<string, unknown>): Buffer {
  const type = envoyType(typeName);
  return Buffer.from(type.encode(type.fromObject(value)).finish());
}

describe('a request\'s node', () => {
  it('a metadata key "__proto__" is a key like any other, not the prototype', () => {
    const struct = envoyType('google.protobuf.Struct');
    // JSON.parse makes "__proto__" an own key (an object literal would set the prototype instead).
    const input = JSON.parse('{"fields":{"__proto__":{"structValue":{"fields":{"isAdmin":{"boolValue":true}}}},"ok":{"stringValue":"x"}}}') as Record<string, unknown>;
    const decoded = struct.decode(struct.encode(struct.fromObject(input)).finish());
    const json = structToJson(decoded) as Record<string, unknown>;
    expect(Object.getPrototypeOf(json)).toBe(Object.prototype);
    expect((json as { isAdmin?: unknown }).isAdmin).toBeUndefined();
    expect(JSON.parse(JSON.stringify(json))).toEqual(JSON.parse('{"__proto__":{"isAdmin":true},"ok":"x"}'));
  });

  it('SotW: keeps the identity, metadata and user agent, and skips the extensions undecoded', () => {
    const req = decodeDiscoveryRequest(encoded('envoy.service.discovery.v3.DiscoveryRequest', { node: envoyNode(METADATA), type_url: TYPE_URL }));
    expect(req.type_url).toBe(TYPE_URL);
    expect(Object.keys(req.node ?? {})).not.toContain('extensions');
    expect(nodeInfo(req.node as RawNode)).toEqual({ id: 'sidecar~10.0.0.1~web-0.default', cluster: 'web', metadata: AS_JSON, userAgent: 'envoy/1.40.0' });
  });

  it('Delta: the same', () => {
    const req = decodeDeltaDiscoveryRequest(
      encoded('envoy.service.discovery.v3.DeltaDiscoveryRequest', { node: envoyNode(METADATA), type_url: TYPE_URL, resource_names_subscribe: ['a'], initial_resource_versions: { a: 'v1' } }),
    );
    expect([req.type_url, req.resource_names_subscribe, req.initial_resource_versions]).toEqual([TYPE_URL, ['a'], { a: 'v1' }]);
    expect(Object.keys(req.node ?? {})).not.toContain('extensions');
    expect(nodeInfo(req.node as RawNode)).toMatchObject({ id: 'sidecar~10.0.0.1~web-0.default', metadata: AS_JSON, userAgent: 'envoy/1.40.0' });
  });

  it('user_agent_version is taken as it is when given', () => {
    const req = decodeDiscoveryRequest(encoded('envoy.service.discovery.v3.DiscoveryRequest', { node: { id: 'g', user_agent_name: 'grpc-go', user_agent_version: '1.85.0' }, type_url: TYPE_URL }));
    expect(nodeInfo(req.node as RawNode).userAgent).toBe('grpc-go/1.85.0');
  });

  it('metadata over its budget, or nested past 64 levels, is not kept', () => {
    const struct = envoyType('google.protobuf.Struct');
    const decoded = (value: Record<string, unknown>): unknown => struct.decode(struct.encode(struct.fromObject(value)).finish());
    const big = decoded({ fields: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, { stringValue: 'v'.repeat(100) }])) });
    expect(Object.keys(structToJson(big, 20_000) ?? {})).toHaveLength(100);
    expect(structToJson(big, 5_000)).toBeUndefined();
    // protobufjs refuses to decode past 100 message levels (50 of Struct); the converter stops at 64 of its own.
    let deep: Record<string, unknown> = { fields: { leaf: { stringValue: 'x' } } };
    for (let i = 0; i < 40; i++) deep = { fields: { d: { structValue: deep } } };
    expect(JSON.stringify(structToJson(decoded(deep), 1_000_000))).toContain('"leaf":"x"');
    for (let i = 0; i < 30; i++) deep = { fields: { d: { structValue: deep } } };
    expect(structToJson(deep, 1_000_000)).toBeUndefined();
    // Empty containers are charged too: a long list of them is not free.
    for (const empty of [{ listValue: {} }, { structValue: {} }, { nullValue: 'NULL_VALUE' }]) {
      const list = decoded({ fields: { l: { listValue: { values: Array.from({ length: 10_000 }, () => empty) } } } });
      expect(structToJson(list, 16_384), JSON.stringify(empty)).toBeUndefined();
    }
    const node = { id: 'n', metadata: big } as RawNode;
    expect(nodeInfo(node, 5_000)).toEqual({ id: 'n', cluster: '', metadata: {}, metadataOmitted: true, userAgent: '' });
  });
});
