/**
 * Shared responses carry gRPC's message prefix, and grpc-js sends that very buffer on every
 * stream instead of copying it into a framed one per stream (framed-send.ts).
 */
import { BaseServerInterceptingCall } from '@grpc/grpc-js/build/src/server-interceptors.js';
import { pino } from 'pino';
import { afterEach, expect, test } from 'vitest';
import { XdsCache } from '../../src/xds/cache.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { framedBuffer, messageOf, sendFramedUncopied } from '../../src/xds/framed-send.js';
import { joinResponse } from '../../src/xds/joined-responses.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';
import { XdsServer } from '../../src/xds/server.js';
import { decodeResources, XdsClient } from '../support/xds-client.js';
import { clusterWithEndpoints, groups, resourceSet } from './stream-fixture.js';

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

test('a framed buffer holds the prefix (flag 0, big-endian length) and then the message', () => {
  const out = framedBuffer(300);
  out.fill(7, 5);
  expect([...out.subarray(0, 5)]).toEqual([0, 0, 0, 1, 44]);
  expect(messageOf(out)).toEqual(Buffer.alloc(300, 7));
  const plain = Buffer.from('plain');
  expect(messageOf(plain)).toBe(plain);
});

test('joined responses are framed: head and tail follow the prefix', () => {
  const head = Uint8Array.from([1, 2, 3]);
  const joined = joinResponse(head, 'n1', () => Uint8Array.from([9]));
  expect([...joined]).toEqual([0, 0, 0, 0, 4, 1, 2, 3, 9]);
  expect([...messageOf(joined)]).toEqual([1, 2, 3, 9]);
});

test("the transport call's framing returns a framed response itself and frames anything else as before", () => {
  class Transport {
    serializeMessage(value: unknown): string {
      return `framed by grpc-js: ${String(value)}`;
    }
  }
  const call = new Transport();
  sendFramedUncopied(call);
  sendFramedUncopied(new Transport()); // once per class: a second call changes nothing
  const shared = framedBuffer(2);
  expect(call.serializeMessage([shared])).toBe(shared);
  expect(call.serializeMessage(['x'])).toBe('framed by grpc-js: x');
  expect(call.serializeMessage([shared, shared])).toBe(`framed by grpc-js: ${String([shared, shared])}`);
});

test('over a real grpc-js server, proxies receive the shared response and grpc-js sends it uncopied', async () => {
  const cache = new XdsCache();
  cache.update(groups(resourceSet(...clusterWithEndpoints('a'), ...clusterWithEndpoints('b'))));
  const server = new XdsServer(
    { address: '127.0.0.1', port: 0, maxMessageBytes: 4 << 20, keepaliveTimeMs: 60_000, keepaliveTimeoutMs: 20_000, maxResourceNames: 100, controlPlaneId: 'framed-test' },
    cache,
    new ProxyRegistry(),
    pino({ level: 'silent' }),
  );
  const port = await server.start();
  const clients = [XdsClient.forPort(port), XdsClient.forPort(port)];
  cleanup = async () => {
    for (const c of clients) c.close();
    await server.stop(1_000);
  };
  for (const [i, client] of clients.entries()) {
    const ads = client.sotw();
    ads.request(TYPE.cluster, [], { node: { id: `framed-${i}`, cluster: 'x' } });
    const cds = await ads.nextOf(TYPE.cluster);
    expect(decodeResources(cds).map((r) => r.name).sort()).toEqual(['a', 'b']);
    expect(cds.nonce).toBe('1');
  }
  // grpc-js's own transport call class now passes a framed response through by identity.
  const shared = framedBuffer(1);
  const serialize = Reflect.get(BaseServerInterceptingCall.prototype, 'serializeMessage') as (value: unknown) => unknown;
  expect(serialize.call(Object.create(BaseServerInterceptingCall.prototype), [shared])).toBe(shared);
});
