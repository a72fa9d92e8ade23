/**
 * The xDS port's limits on the real XdsServer (loopback, small limits): each refusal is a gRPC
 * status or a closed connection that names the limit, and is counted. Clients bind their own
 * 127.0.0.x source address so that per-peer limits can be told apart from totals.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { XdsCache } from '../../src/xds/cache.js';
import { envoyType } from '../../src/xds/envoy-api.js';
import type { LimitName, XdsLimits } from '../../src/xds/limits.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';
import { XdsServer } from '../../src/xds/server.js';
import { ADS_PATH, callEnd, connectH2, discoveryRequest, firstData, grpcFrame, hugeNameRequest, openCall } from '../support/raw-grpc.js';
import { waitFor } from '../support/wait.js';
import { base, groups, loopbackServerOptions } from './stream-fixture.js';

const EDS = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function serve(limits: Partial<XdsLimits>, credentials?: grpc.ServerCredentials, registry = new ProxyRegistry(), address = '127.0.0.1') {
  const cache = new XdsCache();
  cache.update(groups(base()));
  const hits: LimitName[] = [];
  const refused: string[] = [];
  const server = new XdsServer(
    {
      ...loopbackServerOptions('limits-test'),
      address,
      limits,
      ...(credentials ? { security: { credentials } } : {}),
      onLimit: (l) => hits.push(l),
      onRefused: (r) => refused.push(r),
    },
    cache,
    registry,
    pino({ level: 'silent' }),
  );
  const port = await server.start();
  cleanup.push(() => server.stop(1_000));
  return { port, hits, refused, server };
}

async function session(port: number, source: string): Promise<http2.ClientHttp2Session> {
  const s = await connectH2(port, source);
  cleanup.push(() => void s.destroy());
  return s;
}

function call(s: http2.ClientHttp2Session, request: Uint8Array) {
  const stream = openCall(s);
  const end = callEnd(stream);
  stream.write(grpcFrame(request));
  return { stream, end };
}

/** Resolves when the server closes a raw connection (or false after `ms`). */
function closedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function rawConnection(port: number, source: string): net.Socket {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: source });
  socket.on('error', () => undefined);
  socket.resume();
  cleanup.push(() => void socket.destroy());
  return socket;
}

describe('request limits', () => {
  test('a request over maxRequestBytes is refused from its length prefix, naming the limit', async () => {
    const { port, hits } = await serve({ maxRequestBytes: 65_536 });
    const s = await session(port, '127.0.0.2');
    const stream = openCall(s);
    const end = callEnd(stream);
    // Only the head of a 1 MB message: the server must answer before the rest arrives.
    stream.write(grpcFrame(hugeNameRequest(1_000_000)).subarray(0, 16_384));
    expect(await end).toMatchObject({ status: 8, message: 'request message of 1000070 bytes exceeds server.xds.limits.maxRequestBytes (65536)', bytes: 0 });
    expect(hits).toEqual(['maxRequestBytes']);
  });

  test('a long name is INVALID_ARGUMENT, too many name bytes RESOURCE_EXHAUSTED, both named; other streams go on', async () => {
    const { port, hits } = await serve({ maxNameBytes: 64, maxRequestNameBytes: 1_024 });
    const s = await session(port, '127.0.0.2');
    const long = call(s, discoveryRequest('n1', EDS, ['x'.repeat(65)]));
    expect(await long.end).toMatchObject({ status: 3, message: 'a resource name of 65 bytes exceeds server.xds.limits.maxNameBytes (64)' });
    const many = call(s, discoveryRequest('n2', EDS, Array.from({ length: 20 }, (_, i) => `${i}`.padStart(60, 'n'))));
    expect((await many.end).message).toMatch(/server\.xds\.limits\.maxRequestNameBytes \(1024\)/);
    const fine = call(s, discoveryRequest('n3', EDS, ['web']));
    expect(await firstData(fine.stream)).toBeDefined();
    expect(hits).toEqual(['maxNameBytes', 'maxRequestNameBytes']);
  });

  test('a node id or cluster over maxNameBytes is refused naming the limit; node metadata over maxNodeMetadataBytes is not kept, the stream served', async () => {
    const registry = new ProxyRegistry();
    const { port, hits } = await serve({ maxNameBytes: 64, maxNodeMetadataBytes: 1_024 }, undefined, registry);
    const s = await session(port, '127.0.0.2');
    const Req = envoyType('envoy.service.discovery.v3.DiscoveryRequest');
    const request = (node: Record<string, unknown>): Uint8Array => Req.encode(Req.fromObject({ node, type_url: EDS, resource_names: ['web'] })).finish();
    const longId = call(s, request({ id: 'n'.repeat(65) }));
    expect(await longId.end).toMatchObject({ status: 3, message: 'node.id of 65 bytes exceeds server.xds.limits.maxNameBytes (64)' });
    const longCluster = call(s, request({ id: 'n1', cluster: 'c'.repeat(65) }));
    expect((await longCluster.end).message).toBe('node.cluster of 65 bytes exceeds server.xds.limits.maxNameBytes (64)');
    const longAgent = call(s, request({ id: 'n2', user_agent_name: 'envoy', user_agent_version: 'v'.repeat(65) }));
    expect((await longAgent.end).message).toBe('node.user_agent_version of 65 bytes exceeds server.xds.limits.maxNameBytes (64)');
    const fields = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, { stringValue: 'v'.repeat(100) }]));
    const big = call(s, request({ id: 'big', metadata: { fields: fields(20) } }));
    expect(await firstData(big.stream)).toBeDefined();
    const small = call(s, request({ id: 'small', metadata: { fields: fields(2) } }));
    expect(await firstData(small.stream)).toBeDefined();
    const byId = new Map(registry.list().map((r) => [r.node.id, r.node]));
    expect(byId.get('big')).toMatchObject({ metadata: {}, metadataOmitted: true });
    expect(byId.get('small')).toMatchObject({ metadata: { k0: 'v'.repeat(100), k1: 'v'.repeat(100) } });
    expect(byId.get('small')?.metadataOmitted).toBeUndefined();
    expect(hits).toEqual(['maxNameBytes', 'maxNameBytes', 'maxNameBytes', 'maxNodeMetadataBytes']);
  });

  test("an ADS stream's subscriptions are bounded across types (maxSubscriptionNameBytes)", async () => {
    const { port, hits } = await serve({ maxSubscriptionNameBytes: 1_024 });
    const s = await session(port, '127.0.0.2');
    const names = (p: string) => Array.from({ length: 10 }, (_, i) => `${p}${i}`.padEnd(60, '-'));
    const ads = call(s, discoveryRequest('n1', EDS, names('a')));
    // 600 bytes of EDS names, then 600 of RDS names on the same stream: 1,200 > 1,024.
    ads.stream.write(grpcFrame(discoveryRequest('n1', 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration', names('r'))));
    expect(await ads.end).toMatchObject({ status: 8 });
    expect((await ads.end).message).toContain('server.xds.limits.maxSubscriptionNameBytes (1024)');
    expect(hits).toEqual(['maxSubscriptionNameBytes']);
  });
});

describe('call and connection limits', () => {
  test('calls per peer and in total: the one over is RESOURCE_EXHAUSTED naming the limit; an ended call frees its place', async () => {
    const { port, hits, server } = await serve({ maxStreamsPerPeer: 2, maxStreams: 3 });
    const a = await session(port, '127.0.0.2');
    const b = await session(port, '127.0.0.3');
    const a1 = call(a, discoveryRequest('a1'));
    const a2 = call(a, discoveryRequest('a2'));
    await Promise.all([firstData(a1.stream), firstData(a2.stream)]);
    expect(await call(a, discoveryRequest('a3')).end).toMatchObject({ status: 8, message: 'too many calls: server.xds.limits.maxStreamsPerPeer (2) reached' });
    const b1 = call(b, discoveryRequest('b1'));
    await firstData(b1.stream);
    expect(await call(b, discoveryRequest('b2')).end).toMatchObject({ status: 8, message: 'too many calls: server.xds.limits.maxStreams (3) reached' });
    expect(server.callCount).toBe(3);
    a1.stream.end();
    await a1.end;
    await waitFor(() => server.callCount === 2, { what: 'the ended call to be released' });
    const b3 = call(b, discoveryRequest('b3'));
    expect(await firstData(b3.stream)).toBeDefined();
    expect(hits).toEqual(['maxStreamsPerPeer', 'maxStreams']);
  });

  test('connections per peer: the one over is closed at accept; other peers still connect', async () => {
    const { port, hits, server } = await serve({ maxConnectionsPerPeer: 2 });
    await session(port, '127.0.0.2');
    await session(port, '127.0.0.2');
    await waitFor(() => server.connectionCount === 2, { what: 'two connections' });
    expect(await closedWithin(rawConnection(port, '127.0.0.2'), 5_000)).toBe(true);
    const other = await session(port, '127.0.0.3');
    expect(await firstData(call(other, discoveryRequest('n')).stream)).toBeDefined();
    expect(hits).toEqual(['maxConnectionsPerPeer']);
  });

  test('connections per peer on a dual-stack port: ::1 counts as its /64, an IPv4 client as its IPv4 address', async () => {
    const { port, hits, server } = await serve({ maxConnectionsPerPeer: 1 }, undefined, new ProxyRegistry(), '::');
    const v6 = await new Promise<http2.ClientHttp2Session>((resolve, reject) => {
      const s = http2.connect(`http://[::1]:${port}`).once('connect', () => resolve(s)).once('error', reject);
      s.on('error', () => undefined);
      cleanup.push(() => void s.destroy());
    });
    // Seen as ::ffff:127.0.0.2, inside ::/64 too, yet another peer: the IPv4 address it is.
    const v4 = await session(port, '127.0.0.2');
    await waitFor(() => server.connectionCount === 2, { what: 'both connections' });
    const again = net.connect({ host: '::1', port, localAddress: '::1' });
    again.on('error', () => undefined);
    again.resume();
    cleanup.push(() => void again.destroy());
    expect(await closedWithin(again, 5_000)).toBe(true);
    expect(await firstData(call(v6, discoveryRequest('v6')).stream)).toBeDefined();
    expect(await firstData(call(v4, discoveryRequest('v4')).stream)).toBeDefined();
    expect(hits).toEqual(['maxConnectionsPerPeer']);
  });

  test('HTTP/1.1 and garbage are closed on their first bytes; silence at the handshake deadline', async () => {
    const { port, hits, refused } = await serve({ handshakeTimeoutMs: 300 });
    const h1 = rawConnection(port, '127.0.0.2');
    h1.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const junk = rawConnection(port, '127.0.0.2');
    junk.write(Buffer.from([0x50, 0x52, 0x49, 0x20, 0x00, 0xff]));
    expect(await Promise.all([closedWithin(h1, 2_000), closedWithin(junk, 2_000)])).toEqual([true, true]);
    expect(refused).toEqual(['not-grpc', 'not-grpc']);
    const silent = rawConnection(port, '127.0.0.2');
    expect(await closedWithin(silent, 5_000)).toBe(true);
    expect(hits).toEqual(['handshakeTimeoutMs']);
  });
  test('a silent client that never reads does not hold a stop for its grace period', async () => {
    const { server } = await serve({});
    // Not rawConnection: this one never reads, so it never sees the server's graceful close.
    const silent = net.connect({ host: '127.0.0.1', port: server.port, localAddress: '127.0.0.2' });
    silent.on('error', () => undefined);
    cleanup.push(() => void silent.destroy());
    await waitFor(() => server.connectionCount === 1, { what: 'the silent connection accepted' });
    const started = performance.now();
    await server.stop(10_000);
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe('TLS through the connection gate', () => {
  test('grpc-js credentials still apply to injected connections; clear text on the TLS port is refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fulcrum-edge-tls-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-days', '1'], { stdio: 'ignore' });
    const pem = { private_key: readFileSync(key), cert_chain: readFileSync(cert) };
    const { port, refused } = await serve({}, grpc.ServerCredentials.createSsl(null, [pem], false));
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(pem.cert_chain), { 'grpc.ssl_target_name_override': 'localhost' });
    cleanup.push(() => client.close());
    const call = client.makeBidiStreamRequest(ADS_PATH, (b: Uint8Array) => Buffer.from(b), (b: Buffer) => b);
    const first = new Promise<Buffer>((resolve, reject) => {
      call.once('data', resolve);
      call.once('error', reject);
    });
    call.write(discoveryRequest('tls-node'));
    expect((await first).length).toBeGreaterThan(0);
    call.end();
    const clear = rawConnection(port, '127.0.0.2');
    clear.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    expect(await closedWithin(clear, 5_000)).toBe(true);
    expect(refused).toEqual(['not-grpc']);
  });
});
