import { describe, expect, it } from 'vitest';
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest } from '../../src/xds/wire.js';
import { MAX_REQUEST_ENTRIES } from '../../src/xds/request-entries.js';
import { field } from '../support/protobuf-bytes.js';

/** `n` empty entries of a length-delimited field, two bytes each. */
const empties = (tag: number, n: number): Buffer => Buffer.from(Array.from({ length: 2 * n }, (_, i) => (i % 2 === 0 ? tag : 0)));

/** Struct { fields: { a: Value { list_value: ListValue { values: [n empty] } } } }. */
const struct = (n: number): Buffer => field(0x0a, Buffer.concat([field(0x0a, Buffer.from('a')), field(0x12, field(0x32, empties(0x0a, n)))]));
/** Node { id, user_agent_build_version (8): BuildVersion { metadata (2): struct } }. */
const buildVersionNode = (n: number): Buffer => Buffer.concat([field(0x0a, Buffer.from('n1')), field(0x42, field(0x12, struct(n)))]);
const CDS = Buffer.from('type.googleapis.com/envoy.config.cluster.v3.Cluster');

describe('discovery request entry bound', () => {
  it('counts the values of the node build version\'s metadata (SotW and Delta)', () => {
    const over = buildVersionNode(MAX_REQUEST_ENTRIES);
    expect(() => decodeDiscoveryRequest(Buffer.concat([field(0x12, over), field(0x22, CDS)]))).toThrow(/more than 10000 entries/);
    expect(() => decodeDeltaDiscoveryRequest(Buffer.concat([field(0x0a, over), field(0x12, CDS)]))).toThrow(/more than 10000 entries/);
    // Small metadata there is decoded as before.
    expect(decodeDiscoveryRequest(Buffer.concat([field(0x12, buildVersionNode(3)), field(0x22, CDS)])).node?.id).toBe('n1');
  });

  it('counts a Delta request\'s resource locators', () => {
    const request = (n: number): Buffer => Buffer.concat([field(0x0a, field(0x0a, Buffer.from('n1'))), field(0x12, CDS), empties(0x42, n)]);
    expect(() => decodeDeltaDiscoveryRequest(request(MAX_REQUEST_ENTRIES + 1))).toThrow(/more than 10000 entries/);
    expect(decodeDeltaDiscoveryRequest(request(3)).node?.id).toBe('n1');
  });
});
