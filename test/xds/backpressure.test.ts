import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { envoyType, TYPE } from '../../src/xds/envoy-api.js';
import { scaled, waitFor } from '../support/wait.js';

/**
 * A proxy that stops reading must not make fulcrum buffer every push for it: responses are held
 * while its stream is congested and coalesced into the latest state when it drains.
 *
 * The pushes change one endpoint's weight through the admin API: each is a new 60 KB EDS
 * resource, while re-parsing a 3,000-endpoint config file 80 times took most of two minutes on
 * a loaded machine.
 */

let dir: string | undefined;
let fulcrum: Fulcrum | undefined;
afterEach(async () => {
  await fulcrum?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const ENDPOINTS = 3000; // ~60 KB per ClusterLoadAssignment: a few fill the HTTP/2 window
const TOKEN = 'backpressure-admin';
const BIG = { name: 'big', endpoints: Array.from({ length: ENDPOINTS }, (_, i) => ({ address: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, port: 80, weight: 1 })) };

async function api(f: Fulcrum, method: string, path: string, body: unknown): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${f.adminPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

it('holds and coalesces pushes to a proxy that stops reading, then delivers the latest state', async () => {
  dir = await mkdtemp(join(tmpdir(), 'fulcrum-backpressure-'));
  const configPath = join(dir, 'fulcrum.yaml');
  await writeFile(configPath, YAML.stringify({ clusters: [] }));
  fulcrum = await startFulcrum({
    configPath,
    xdsPort: 0,
    xdsAddress: '127.0.0.1',
    adminPort: 0,
    auth: { adminTokens: [TOKEN], readTokens: [] },
    logger: pino({ level: 'silent' }),
    debounce: { quietMs: 0, maxMs: 0 },
  });
  const f = fulcrum;
  expect(await api(f, 'PUT', '/v1/clusters/big', BIG)).toBe(201);

  const Req = envoyType('envoy.service.discovery.v3.DiscoveryRequest');
  const Res = envoyType('envoy.service.discovery.v3.DiscoveryResponse');
  const Cla = envoyType('envoy.config.endpoint.v3.ClusterLoadAssignment');
  const client = new grpc.Client(`127.0.0.1:${f.xdsPort}`, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(
    '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
    (o: Record<string, unknown>) => Buffer.from(Req.encode(Req.fromObject(o)).finish()),
    (b: Buffer) => Res.toObject(Res.decode(b), { defaults: true }) as { nonce: string; version_info: string; type_url: string; resources: { value: Uint8Array }[] },
  );
  const received: { nonce: string; version_info: string; type_url: string; resources: { value: Uint8Array }[] }[] = [];
  call.on('data', (r: (typeof received)[number]) => received.push(r));
  call.on('error', () => undefined);
  call.write({ node: { id: 'slow' }, type_url: TYPE.endpoint, resource_names: ['big'] });
  await waitFor(() => received.length === 1, { what: 'first EDS response' });
  const first = received[0];
  call.write({ type_url: TYPE.endpoint, resource_names: ['big'], version_info: first?.version_info, response_nonce: first?.nonce });

  // Stop reading: grpc-js stops consuming the HTTP/2 stream, the window fills, the server's writes back up.
  call.pause();
  const eds = () => f.registry.list().find((r) => r.node.id === 'slow')?.types.get(TYPE.endpoint);
  const pushes = 80;
  for (let w = 2; w <= pushes + 1; w++) {
    const before = f.cache.snapshotFor('').seq;
    expect(await api(f, 'PUT', '/v1/clusters/big/endpoints/10.0.0.0/80', { weight: w })).toBe(200);
    await waitFor(() => f.cache.snapshotFor('').seq > before, { what: `push ${w} published` });
  }
  const sentWhilePaused = eds()?.responses ?? 0;
  // Buffers on both sides absorb a few dozen responses (16 messages per side plus the HTTP/2
  // window); after that nothing more is queued for the stalled proxy, whatever the pushes.
  expect(sentWhilePaused).toBeLessThan(pushes / 2 + 5);

  call.resume();
  const weightOf = (r: (typeof received)[number]): number => {
    const cla = Cla.toObject(Cla.decode(r.resources[0]?.value ?? new Uint8Array()), { defaults: true }) as {
      endpoints: { lb_endpoints: { load_balancing_weight: { value: number } }[] }[];
    };
    return cla.endpoints[0]?.lb_endpoints[0]?.load_balancing_weight.value ?? 0;
  };
  // Once it reads again it converges to the latest state.
  await waitFor(() => received.length > 1 && weightOf(received[received.length - 1] as (typeof received)[number]) === pushes + 1, {
    what: 'the latest weight delivered after the stall',
    timeoutMs: 20_000,
  });
  expect(received.length).toBeLessThan(pushes / 2 + 10);
  call.cancel();
  client.close();
}, scaled(120_000));
