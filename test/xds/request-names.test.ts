import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { envoyType } from '../../src/xds/envoy-api.js';
import { decodeNames, decodeRequestFields, internNames, sameBytes } from '../../src/xds/request-names.js';
import { decodeDiscoveryRequest, nodeInfo, type RawNode } from '../../src/xds/wire.js';

const TYPE_URL = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
const namesSpan = (buf: Uint8Array): readonly [number, number] | undefined =>
  decodeRequestFields(buf, { node: envoyType('envoy.config.core.v3.Node'), status: envoyType('google.rpc.Status') }).names;

function encode(names: string[], nonce: string, extra: Record<string, unknown> = {}): Buffer {
  const t = envoyType('envoy.service.discovery.v3.DiscoveryRequest');
  const msg = t.fromObject({ version_info: 'v1', node: { id: 'n1', cluster: 'c1' }, resource_names: names, type_url: TYPE_URL, response_nonce: nonce, ...extra });
  return Buffer.from(t.encode(msg).finish());
}

describe('SotW request names kept encoded', () => {
  it('decodes every field as before, the names only when read, and keeps their bytes', () => {
    const names = ['svc-a', 'svc-b', 'svc-ç'];
    const req = decodeDiscoveryRequest(encode(names, '7'));
    expect(req.version_info).toBe('v1');
    expect(req.node?.id).toBe('n1');
    expect(req.type_url).toBe(TYPE_URL);
    expect(req.response_nonce).toBe('7');
    expect(req.error_detail).toBeUndefined();
    expect(req.resource_names).toEqual(names);
    expect(req.resource_names_bytes).toBeDefined();
    const again = decodeDiscoveryRequest(encode(names, '8'));
    // Same names, another nonce: equal name bytes; other names: not.
    expect(sameBytes(req.resource_names_bytes ?? new Uint8Array(), again.resource_names_bytes ?? new Uint8Array(1))).toBe(true);
    const other = decodeDiscoveryRequest(encode(['svc-a', 'svc-c', 'svc-ç'], '8'));
    expect(sameBytes(req.resource_names_bytes ?? new Uint8Array(), other.resource_names_bytes ?? new Uint8Array())).toBe(false);
  });

  it('decodes a NACK\'s error_detail and the node\'s metadata as protobufjs does', () => {
    const buf = encode(['a'], '3', {
      error_detail: { code: 3, message: 'bad cluster' },
      node: { id: 'n1', cluster: 'c1', metadata: { fields: { zone: { stringValue: 'z1' } } } },
    });
    const full = envoyType('envoy.service.discovery.v3.DiscoveryRequest').decode(buf) as unknown as { node: unknown; error_detail: unknown };
    const req = decodeDiscoveryRequest(buf);
    expect(req.error_detail).toEqual(full.error_detail);
    expect(req.error_detail?.message).toBe('bad cluster');
    // The node as its summary type decodes it (node-summary.ts): the fields fulcrum reads, as protobufjs reads them.
    const { id, cluster, metadata } = full.node as { id: string; cluster: string; metadata: unknown };
    expect({ ...req.node }).toEqual({ id, cluster, metadata });
    expect(nodeInfo(req.node as RawNode).metadata).toEqual({ zone: 'z1' });
  });

  it('a request without names has an empty span and names []', () => {
    const req = decodeDiscoveryRequest(encode([], ''));
    expect(req.resource_names).toEqual([]);
    expect(req.resource_names_bytes?.byteLength).toBe(0);
  });

  it('names interleaved with other fields are decoded the usual way', () => {
    // resource_names (3) "a", type_url (4), resource_names (3) "b", "c", response_nonce (5),
    // resource_names "d": legal, if no encoder does it.
    const w = protobuf.Writer.create().uint32(26).string('a').uint32(34).string(TYPE_URL).uint32(26).string('b').uint32(26).string('c');
    const buf = Buffer.from(w.uint32(42).string('n1').uint32(26).string('d').finish());
    expect(namesSpan(buf)).toBeUndefined();
    const req = decodeDiscoveryRequest(buf);
    expect(req.resource_names).toEqual(['a', 'b', 'c', 'd']);
    expect(req.resource_names).toEqual((envoyType('envoy.service.discovery.v3.DiscoveryRequest').decode(buf) as unknown as { resource_names: string[] }).resource_names);
    expect(req.type_url).toBe(TYPE_URL);
    expect(req.response_nonce).toBe('n1');
    expect(req.resource_names_bytes).toBeUndefined();
    // Both readings (by hand, protobufjs's reader) locate the same runs of names.
    const parts = { node: envoyType('envoy.config.core.v3.Node'), status: envoyType('google.rpc.Status') };
    expect(decodeRequestFields(buf, parts)).toEqual(decodeRequestFields(new Uint8Array(buf), parts));
  });

  it('reads the usual ACK by hand exactly as protobufjs reads it, and leaves the rest to protobufjs', () => {
    const parts = { node: envoyType('envoy.config.core.v3.Node'), status: envoyType('google.rpc.Status') };
    const long = 'n'.repeat(300); // a two-byte length
    const bufs = [
      encode(Array.from({ length: 100 }, (_, i) => `svc-${i}`), '1f'),
      encode([long, 'ç'], 'x', { version_info: long, error_detail: { code: 3, message: 'bad' } }),
      encode([], ''),
      // An unknown field (7, varint) and a non-minimal length varint: protobufjs's reader takes these.
      Buffer.concat([encode(['a'], '2'), Buffer.from([7 << 3, 1])]),
      Buffer.from(protobuf.Writer.create().uint32(26).uint32(0x81).bytes(new Uint8Array(0)).finish()).subarray(0, 1),
      Buffer.from([(5 << 3) | 2, 0x80, 0x00]),
    ];
    for (const buf of bufs) {
      const byReader = (() => {
        try {
          return { ok: decodeRequestFields(new Uint8Array(buf), parts) };
        } catch (err) {
          return { err: String(err) };
        }
      })();
      const scanned = (() => {
        try {
          return { ok: decodeRequestFields(buf, parts) };
        } catch (err) {
          return { err: String(err) };
        }
      })();
      expect(scanned).toEqual(byReader);
    }
    // The served type URLs come back as the literals themselves.
    expect(decodeRequestFields(encode(['a'], '1'), parts).type_url).toBe(TYPE_URL);
  });

  it('interning gives equal encodings one shared copy', () => {
    const a = encode(['x', 'y'], '1');
    const b = encode(['x', 'y'], '2');
    const spanA = namesSpan(a);
    const spanB = namesSpan(b);
    if (!spanA || !spanB) throw new Error('contiguous names expected');
    const ia = internNames(a.subarray(spanA[0], spanA[1]));
    expect(internNames(b.subarray(spanB[0], spanB[1]))).toBe(ia);
    expect(decodeNames(ia, [0, ia.byteLength])).toEqual(['x', 'y']);
  });
});
