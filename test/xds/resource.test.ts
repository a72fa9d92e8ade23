import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeMessage, TYPE } from '../../src/xds/envoy-api.js';
import { encodeResource, resourceOfBytes } from '../../src/xds/resource.js';

const RESOURCE = 'envoy.service.discovery.v3.Resource';

/** The envelopes as protobufjs encodes them from objects: what the one-buffer layout must equal byte for byte. */
function expected(typeUrl: string, name: string, bytes: Uint8Array): { any: Buffer; delta: Buffer; hash: string } {
  const hash = createHash('sha256').update(bytes).digest('base64url').slice(0, 16);
  const any = { type_url: typeUrl, value: bytes };
  return {
    any: Buffer.from(encodeMessage('google.protobuf.Any', any)),
    delta: Buffer.from(encodeMessage(RESOURCE, { version: hash, resource: any, name })),
    hash,
  };
}

describe('resource envelopes', () => {
  it('lays the message, its Any and its Delta Resource out in one buffer, as protobufjs encodes them', () => {
    // Message sizes whose length prefixes take 1, 2 and 3 bytes; names beyond ASCII and long.
    for (const size of [0, 1, 127, 128, 300, 16_383, 16_384, 70_000]) {
      for (const name of ['c', 'zoné-✓-😀', 'n'.repeat(200)]) {
        const bytes = Uint8Array.from({ length: size }, (_, i) => (i * 31 + size) & 255);
        const r = resourceOfBytes(TYPE.endpoint, name, bytes);
        const want = expected(TYPE.endpoint, name, bytes);
        expect(Buffer.from(r.bytes).equals(Buffer.from(bytes))).toBe(true);
        expect(Buffer.from(r.anyBytes).equals(want.any), `${size} ${name}`).toBe(true);
        expect(Buffer.from(r.deltaBytes).equals(want.delta), `${size} ${name}`).toBe(true);
        expect(r.hash).toBe(want.hash);
        expect(r.name).toBe(name);
        // Views of one buffer, not copies.
        expect(r.bytes.buffer).toBe(r.deltaBytes.buffer);
        expect(r.anyBytes.buffer).toBe(r.deltaBytes.buffer);
      }
    }
  });

  it('encodes objects the same way', () => {
    const value = { name: 'web', connect_timeout: { seconds: 5 } };
    const r = encodeResource(TYPE.cluster, 'web', value);
    const want = expected(TYPE.cluster, 'web', encodeMessage('envoy.config.cluster.v3.Cluster', value));
    expect(Buffer.from(r.deltaBytes).equals(want.delta)).toBe(true);
    expect(r.hash).toBe(want.hash);
  });
});
