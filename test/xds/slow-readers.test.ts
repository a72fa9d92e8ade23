/**
 * Streams whose proxies never read are bounded in bytes (server.xds.limits.maxQueuedBytesPerStream):
 * the server stops queueing for them at the mark, whatever the number of pushes, while a proxy
 * that reads keeps receiving every change. The real XdsServer on loopback, fed hand-made
 * resources (no config, no startFulcrum); the stalled proxies are raw HTTP/2 clients that never
 * consume a byte, so their HTTP/2 window (64 KiB) fills and the server's writes stay unflushed.
 */
import type http2 from 'node:http2';
import { pino } from 'pino';
import { afterEach, expect, test } from 'vitest';
import { XdsCache } from '../../src/xds/cache.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';
import { encodeResource, type EncodedResource } from '../../src/xds/resource.js';
import { XdsServer } from '../../src/xds/server.js';
import { connectH2, discoveryRequest, grpcFrame, openCall } from '../support/raw-grpc.js';
import { scaled, waitFor } from '../support/wait.js';
import { ADS_DELTA, decodeResources, encodeDeltaDiscoveryRequest, XdsClient } from '../support/xds-client.js';
import { groups, loopbackServerOptions, resourceSet } from './stream-fixture.js';

const MARK = 64 * 1024;
const STALLED = 12;
const PUSHES = 30;
const ENDPOINTS = 3000; // ~60 KB per ClusterLoadAssignment

const big = (weight: number): EncodedResource =>
  encodeResource(TYPE.endpoint, 'big', {
    cluster_name: 'big',
    endpoints: [
      {
        lb_endpoints: Array.from({ length: ENDPOINTS }, (_, i) => ({
          endpoint: { address: { socket_address: { address: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, port_value: 80 } } },
          load_balancing_weight: { value: i === 0 ? weight : 1 },
        })),
      },
    ],
  });

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

test('never-reading SotW and Delta streams hold at most the mark plus one response; a reading proxy gets every change', async () => {
  const cache = new XdsCache();
  cache.update(groups(resourceSet(big(1))));
  const registry = new ProxyRegistry();
  const server = new XdsServer(
    { ...loopbackServerOptions('slow-readers-test'), limits: { maxQueuedBytesPerStream: MARK } },
    cache,
    registry,
    pino({ level: 'silent' }),
  );
  const port = await server.start();
  const sessions: http2.ClientHttp2Session[] = [];
  const client = XdsClient.forPort(port);
  cleanup = async () => {
    client.close();
    for (const s of sessions) s.destroy();
    await server.stop(1_000);
  };

  // Half SotW, half Delta; one connection each, as Envoys connect. None of them ever reads.
  for (let i = 0; i < STALLED; i++) {
    const session = await connectH2(port);
    sessions.push(session);
    const delta = i % 2 === 1;
    const call = openCall(session, delta ? ADS_DELTA : undefined);
    const request = delta
      ? encodeDeltaDiscoveryRequest({ node: { id: `stalled-${i}`, cluster: 'x' }, type_url: TYPE.endpoint, resource_names_subscribe: ['big'] })
      : discoveryRequest(`stalled-${i}`, TYPE.endpoint, ['big']);
    call.write(grpcFrame(request));
  }
  const live = client.sotw();
  live.request(TYPE.endpoint, ['big'], { node: { id: 'live', cluster: 'x' } });
  live.ack(await live.nextOf(TYPE.endpoint));
  await waitFor(() => registry.size === STALLED + 1, { what: 'every proxy connected', timeoutMs: scaled(20_000) });

  const weightOf = (r: Parameters<typeof decodeResources>[0]): number => {
    const cla = decodeResources(r)[0]?.message as { endpoints?: { lb_endpoints?: { load_balancing_weight?: { value?: number } }[] }[] } | undefined;
    return cla?.endpoints?.[0]?.lb_endpoints?.[0]?.load_balancing_weight?.value ?? 0;
  };
  for (let w = 2; w <= PUSHES + 1; w++) {
    cache.update(groups(resourceSet(big(w))));
    const got = await live.next((r) => weightOf(r) === w, scaled(10_000));
    live.ack(got);
  }

  // Every stalled stream is at its mark, and holds no more than the mark plus one response.
  const response = big(PUSHES + 1).anyBytes.length + 1024;
  await waitFor(() => server.congestedStreams === STALLED, { what: 'every stalled stream congested', timeoutMs: scaled(20_000) });
  expect(server.queuedBytes).toBeGreaterThanOrEqual(STALLED * MARK);
  expect(server.queuedBytes).toBeLessThanOrEqual(STALLED * (MARK + response));
  for (const record of registry.list()) {
    const sent = record.types.get(TYPE.endpoint)?.responses ?? 0;
    if (record.node.id === 'live') expect(sent).toBe(PUSHES + 1);
    // The first response fills the 64 KiB window, the next one or two reach the mark; then nothing.
    else expect(sent).toBeLessThanOrEqual(4);
  }

  // What they held goes with them.
  for (const s of sessions) s.destroy();
  await waitFor(() => server.queuedBytes === 0 && server.congestedStreams === 0 && registry.size === 1, {
    what: 'queued bytes released with the stalled streams',
    timeoutMs: scaled(20_000),
  });
}, scaled(120_000));
