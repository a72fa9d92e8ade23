/**
 * Discovery requests that protobufjs would turn into millions of objects, within every size
 * limit, against a real fulcrum under the shipped heap cap (--max-old-space-size=384, a 512 MiB
 * pod), on the xDS port as it ships (no proxy token: anyone who reaches it): twenty connections
 * each sending one 4 MiB request whose node metadata is a list of two million empty values, or
 * whose error_detail carries two million empty details. Each took the process past the pod's
 * memory limit; now each stream is ended before its request is decoded, and the process stays
 * up and under the limit.
 */
import { expect, test } from 'vitest';
import { cappedFulcrumForFile, type FulcrumProcess } from '../support/fulcrum-process.js';
import { ADS_PATH, callEnd, connectH2, grpcFrame, openCall, type CallEnd } from '../support/raw-grpc.js';
import { ADS_DELTA } from '../support/xds-client.js';
import { scaled } from '../support/wait.js';
import { field } from '../support/protobuf-bytes.js';

const MiB = 1024 * 1024;
const INTERNAL = 13;
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
/** The connections of the attack: well within maxConnectionsPerPeer (1000). */
const CONNECTIONS = 20;

const fulcrum = cappedFulcrumForFile('fulcrum-request-memory-');

/** Repeated empty entries of one length-delimited field, two bytes each, `bytes` in all. */
function empties(tag: number, bytes: number): Buffer {
  const out = Buffer.alloc(bytes - (bytes % 2));
  for (let i = 0; i < out.length; i += 2) out[i] = tag;
  return out;
}

const BODY = 4 * MiB - 256;

/** Struct { fields: { a: Value { list_value: ListValue { values: [2M empty] } } } }. */
function hugeStruct(): Buffer {
  const list = field(0x32, empties(0x0a, BODY));
  const entry = Buffer.concat([field(0x0a, Buffer.from('a')), field(0x12, list)]);
  return field(0x0a, entry);
}

/** Node { id, metadata: hugeStruct }. */
const hugeMetadataNode = (): Buffer => Buffer.concat([field(0x0a, Buffer.from('n1')), field(0x1a, hugeStruct())]);
/** Node { id, user_agent_build_version (8): BuildVersion { metadata (2): hugeStruct } }. */
const hugeBuildVersionNode = (): Buffer => Buffer.concat([field(0x0a, Buffer.from('n1')), field(0x42, field(0x12, hugeStruct()))]);

/** A SotW DiscoveryRequest: node (2), type_url (4), error_detail (6). */
const sotw = (node: Buffer, status?: Buffer): Buffer => Buffer.concat([field(0x12, node), field(0x22, Buffer.from(CDS)), ...(status ? [field(0x32, status)] : [])]);
/** A DeltaDiscoveryRequest: node (1), type_url (2), error_detail (7). */
const delta = (node: Buffer, status?: Buffer): Buffer => Buffer.concat([field(0x0a, node), field(0x12, Buffer.from(CDS)), ...(status ? [field(0x3a, status)] : [])]);

/** Sends `message` on one stream of `path` per connection, all at once; how each ended, with the process's peak RSS. */
async function attack(f: FulcrumProcess, path: string, message: Buffer): Promise<CallEnd[]> {
  const sessions = await Promise.all(Array.from({ length: CONNECTIONS }, () => connectH2(f.xdsPort)));
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, f.rss())), 50);
  try {
    return await Promise.all(
      sessions.map((s) => {
        const call = openCall(s, path);
        call.on('data', () => undefined);
        const end = callEnd(call);
        call.write(grpcFrame(message));
        return end;
      }),
    );
  } finally {
    clearInterval(sampler);
    peak = Math.max(peak, f.rss());
    for (const s of sessions) s.destroy();
    expect(f.proc.exit, f.proc.tail().slice(-1500)).toBeUndefined();
    expect(peak).toBeLessThan(512 * MiB);
  }
}

const node = Buffer.concat([field(0x0a, Buffer.from('n1'))]);
/** google.rpc.Status { details: [2M empty Any] }. */
const hugeDetails = (): Buffer => empties(0x1a, BODY);

test.each([
  ['SotW, node metadata', ADS_PATH, () => sotw(hugeMetadataNode())],
  ['SotW, error_detail', ADS_PATH, () => sotw(node, hugeDetails())],
  ['Delta, node metadata', ADS_DELTA, () => delta(hugeMetadataNode())],
  ['Delta, error_detail', ADS_DELTA, () => delta(node, hugeDetails())],
  ['SotW, node build-version metadata', ADS_PATH, () => sotw(hugeBuildVersionNode())],
  ['Delta, node build-version metadata', ADS_DELTA, () => delta(hugeBuildVersionNode())],
  // resource_locators_subscribe (8): two million empty ResourceLocators.
  ['Delta, resource locators', ADS_DELTA, () => Buffer.concat([delta(node), empties(0x42, BODY)])],
])('%s: twenty 4 MiB requests of empty entries end their streams undecoded; fulcrum lives', async (_name, path, message) => {
  const f = fulcrum();
  const bytes = message();
  expect(bytes.length).toBeLessThan(4 * MiB);
  for (const end of await attack(f, path, bytes)) expect(end.status, JSON.stringify(end)).toBe(INTERNAL);
}, scaled(180_000));
