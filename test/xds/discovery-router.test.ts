/**
 * The real XdsServer on loopback: which discovery streams it serves on their HTTP/2 streams
 * itself (discovery-router.ts, h2-discovery-call.ts) and which it leaves to grpc-js, and that a
 * taken stream keeps what grpc-js's call gave it: admission, the status at stop, the stream
 * gate's count, and grpc-js's idle timeout that counts open streams. The protocol suites
 * (protocol-*.test.ts, edge-limits, hostile, the e2e tests with a real Envoy and proxyless
 * clients) run over the same path.
 */
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http2 from 'node:http2';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { XdsAuthz } from '../../src/xds/authz.js';
import { XdsCache } from '../../src/xds/cache.js';
import { takeStreamsFirst } from '../../src/xds/discovery-router.js';
import type { XdsLimits } from '../../src/xds/limits.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';
import { MAX_WAITING_REQUESTS } from '../../src/xds/served-stream.js';
import { XdsServer, type XdsServerOptions } from '../../src/xds/server.js';
import { callEnd, connectH2, discoveryRequest, firstData, grpcFrame, openCall } from '../support/raw-grpc.js';
import { TlsSessions, type TlsHandshake } from '../../src/xds/tls-sessions.js';
import { ReloadingServerCredentials } from '../../src/xds/transport-security.js';
import { issue, makeCa, opensslFound, type CertFiles, type TestCa } from '../support/certs.js';
import { describeRequiring } from '../support/requires.js';
import { waitFor, scaled } from '../support/wait.js';
import {
  ADS,
  ADS_DELTA,
  CDS,
  decodeDiscoveryResponse,
  EDS,
  encodeDiscoveryRequest,
  SERVICE,
  SotwStream,
  XdsClient,
} from '../support/xds-client.js';
import { base, groups, loopbackServerOptions } from './stream-fixture.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function serve(options: { limits?: Partial<XdsLimits>; authz?: XdsAuthz; credentials?: grpc.ServerCredentials; sessions?: TlsSessions } = {}) {
  const cache = new XdsCache();
  cache.update(groups(base()));
  const refused: string[] = [];
  const opts: XdsServerOptions = {
    ...loopbackServerOptions('router-test'),
    ...(options.limits ? { limits: options.limits } : {}),
    security: {
      ...(options.authz ? { authz: options.authz } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
      ...(options.sessions ? { sessions: options.sessions } : {}),
    },
  };
  const server = new XdsServer(opts, cache, new ProxyRegistry(), pino({ level: 'silent' }));
  const port = await server.start();
  let stopped = false;
  cleanup.push(() => (stopped ? undefined : server.stop(1_000)));
  const client = XdsClient.forPort(port);
  cleanup.push(() => client.close());
  return { server, port, client, refused, stop: () => ((stopped = true), server.stop(5_000)) };
}

const node = { id: 'router-test', cluster: 'web' };

describe('discovery streams served on their HTTP/2 streams', () => {
  it('SotW and Delta, on ADS and per type: served and answered without grpc-js', async () => {
    const { server, client } = await serve();
    const ads = client.sotw(ADS);
    ads.request(CDS, [], { node });
    const perType = client.sotw(SERVICE.CDS.sotw);
    perType.request(CDS, [], { node });
    const delta = client.delta(ADS_DELTA);
    delta.send({ node, type_url: CDS, resource_names_subscribe: ['*'] });
    const eds = client.delta(SERVICE.EDS.delta);
    eds.send({ node, type_url: EDS, resource_names_subscribe: ['web'] });
    const answers = await Promise.all([ads.nextOf(CDS), perType.nextOf(CDS), delta.nextOf(CDS), eds.nextOf(EDS)]);
    expect(answers.map((a) => a.resources.length > 0)).toEqual([true, true, true, true]);
    expect(server.streamsServedDirectly).toBe(4);
    expect(server.streamCount).toBe(4);
  });

  it('a compressing client and one with a deadline are left to grpc-js, and served there', async () => {
    const { server, port } = await serve();
    const zipping = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });
    cleanup.push(() => zipping.close());
    const zipped = new SotwStream(zipping.makeBidiStreamRequest(ADS, encodeDiscoveryRequest, decodeDiscoveryResponse), 'zipped');
    zipped.request(CDS, [], { node });
    const plain = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    cleanup.push(() => plain.close());
    const deadline = { deadline: Date.now() + scaled(60_000) };
    const timed = new SotwStream(plain.makeBidiStreamRequest(ADS, encodeDiscoveryRequest, decodeDiscoveryResponse, new grpc.Metadata(), deadline), 'timed');
    timed.request(CDS, [], { node });
    const answers = await Promise.all([zipped.nextOf(CDS), timed.nextOf(CDS)]);
    expect(answers.map((a) => a.resources.length > 0)).toEqual([true, true]);
    expect(server.streamsServedDirectly).toBe(0);
    expect(server.streamCount).toBe(2);
    zipped.cancel();
    timed.cancel();
  });

  it('stop ends a served stream with OK after its responses', async () => {
    const { client, stop } = await serve();
    const ads = client.sotw();
    ads.request(CDS, [], { node });
    await ads.nextOf(CDS);
    await stop();
    expect(await ads.closed()).toMatchObject({ code: grpc.status.OK });
  });

  it('a stream the client resets frees its place in the stream gate and the server', async () => {
    const { server, client } = await serve();
    const ads = client.sotw();
    ads.request(CDS, [], { node });
    await ads.nextOf(CDS);
    expect(server.callCount).toBe(1);
    ads.cancel();
    await waitFor(() => server.callCount === 0 && server.streamCount === 0, { what: 'the reset stream released' });
  });

  it('authorization applies to a served stream: refused without a token (counted), served with a proxy token', async () => {
    const seen: string[] = [];
    const authz = new XdsAuthz({
      tokenRole: (t) => (t === 'prx' ? 'proxy' : undefined),
      configuredRoles: new Set(['proxy']),
      mutualTls: false,
      onRefused: (surface, reason) => seen.push(`${surface} ${reason}`),
    });
    const { server, port } = await serve({ authz });
    const withToken = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    cleanup.push(() => withToken.close());
    const open = (token?: string): SotwStream => {
      const metadata = new grpc.Metadata();
      if (token) metadata.set('authorization', `Bearer ${token}`);
      const s = new SotwStream(withToken.makeBidiStreamRequest(ADS, encodeDiscoveryRequest, decodeDiscoveryResponse, metadata), token ?? 'none');
      s.request(CDS, [], { node });
      return s;
    };
    const none = open();
    expect(await none.closed()).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: expect.stringMatching(/xDS discovery needs credentials/) as unknown });
    expect(await open('wrong').closed()).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'unknown bearer token' });
    const proxy = open('prx');
    expect((await proxy.nextOf(CDS)).resources.length).toBeGreaterThan(0);
    expect(seen).toEqual(['xds no_credentials', 'xds unknown_token']);
    expect(server.streamsServedDirectly).toBe(3);
    await waitFor(() => server.callCount === 1, { what: 'the refused calls released' });
    proxy.cancel();
  });

  it('a refused call gives its place back with its status, though its client keeps its side open', async () => {
    const { server, port } = await serve({ limits: { maxRequestBytes: 1_000 } });
    const session = await connectH2(port);
    cleanup.push(() => session.destroy());
    const stream = openCall(session);
    const end = callEnd(stream);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(1_000_000, 1);
    stream.write(head);
    expect(await end).toMatchObject({ status: grpc.status.RESOURCE_EXHAUSTED });
    await waitFor(() => server.callCount === 0, { what: 'the refused call released' });
    expect(stream.closed).toBe(false);
  });

  it(`more than ${MAX_WAITING_REQUESTS} requests before the first answer end the stream, which gives its places back`, async () => {
    const { server, port } = await serve();
    const session = await connectH2(port);
    cleanup.push(() => session.destroy());
    const stream = openCall(session);
    const end = callEnd(stream);
    const request = grpcFrame(encodeDiscoveryRequest({ node, type_url: CDS, resource_names: [] }));
    stream.write(Buffer.concat(Array.from({ length: MAX_WAITING_REQUESTS + 1 }, () => request)));
    expect(await end).toMatchObject({ status: grpc.status.RESOURCE_EXHAUSTED, message: `more than ${MAX_WAITING_REQUESTS} requests before the first response` });
    await waitFor(() => server.callCount === 0 && server.streamCount === 0, { what: 'the flooding stream released' });
  });

  it('a response over maxResponseBytes ends the stream and leaves nothing counted as queued or congested', async () => {
    const { server, client } = await serve({ limits: { maxResponseBytes: 50, maxQueuedBytesPerStream: 10 } });
    const ads = client.sotw();
    ads.request(CDS, [], { node });
    expect(await ads.closed()).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: expect.stringMatching(/^response message of \d+ bytes exceeds server\.xds\.limits\.maxResponseBytes \(50\)$/) as unknown });
    await waitFor(() => server.streamCount === 0 && server.callCount === 0, { what: 'the stream gone' });
    expect([server.queuedBytes, server.congestedStreams]).toEqual([0, 0]);
  });

  it("grpc-js's idle timeout counts a served stream as open, and closes the connection once it ended", async () => {
    // Scaled: grpc-js's idle clock starts with the session, before the stream's headers arrive.
    const idle = scaled(500);
    const { server, port } = await serve({ limits: { idleConnectionMs: idle } });
    const session = await connectH2(port);
    cleanup.push(() => session.destroy());
    let closedAt = 0;
    session.on('goaway', () => (closedAt ||= Date.now()));
    session.on('close', () => (closedAt ||= Date.now()));
    // A bare HTTP/2 session: no client reconnects behind the test's back to hide a close.
    const stream = session.request({ ':method': 'POST', ':path': ADS, 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => undefined);
    const request = encodeDiscoveryRequest({ node, type_url: CDS, resource_names: [] });
    const head = Buffer.alloc(5);
    head.writeUInt32BE(request.length, 1);
    stream.write(Buffer.concat([head, request]));
    expect(await firstData(stream)).toBeDefined();
    // Idle periods with the stream open (a bounded window: the property is that nothing happens;
    // grpc-js does not re-arm its idle timer while a stream is open, so two periods show it).
    await new Promise((resolve) => setTimeout(resolve, 2 * idle));
    expect(closedAt).toBe(0);
    expect(server.streamsServedDirectly).toBe(1);
    const ended = Date.now();
    stream.close();
    await waitFor(() => closedAt > 0, { what: 'the idle connection closed after its stream ended' });
    expect(closedAt - ended).toBeGreaterThanOrEqual(idle - 5);
  });

  it('leaves every stream to grpc-js when its server is not what the hand-over expects', () => {
    const take = (): boolean => true;
    expect(takeStreamsFirst({} as grpc.Server, take)).toBe(false);
    // With channelz on, grpc-js binds a handler this does not wrap.
    expect(takeStreamsFirst(new grpc.Server(), take)).toBe(false);
    expect(takeStreamsFirst(new grpc.Server({ 'grpc.enable_channelz': 0 }), take)).toBe(true);
  });
});

describeRequiring('openssl', opensslFound(), 'a served stream on a mutual-TLS port', () => {
  let dir: string;
  let ca: TestCa;
  let serverCert: CertFiles;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-router-tls-'));
    ca = await makeCa(dir, 'ca');
    serverCert = await issue(ca, 'server', ['DNS:localhost', 'IP:127.0.0.1']);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("reads the client certificate's identity: bound identities are admitted for their nodes only, unbound ones refused", async () => {
    const authz = new XdsAuthz({ tokenRole: () => undefined, configuredRoles: new Set(), mutualTls: true, identities: [{ match: 'spiffe://t/ns/a/sa/web', nodeId: 'web-*' }] });
    const credentials = grpc.ServerCredentials.createSsl(readFileSync(ca.cert), [{ cert_chain: readFileSync(serverCert.cert), private_key: readFileSync(serverCert.key) }], true);
    const { server, port } = await serve({ authz, credentials });
    const stream = async (sans: string, nodeId: string): Promise<SotwStream> => {
      const cert = await issue(ca, `client-${nodeId}`, [sans]);
      const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(readFileSync(ca.cert), readFileSync(cert.key), readFileSync(cert.cert)));
      cleanup.push(() => client.close());
      const s = new SotwStream(client.makeBidiStreamRequest(ADS, encodeDiscoveryRequest, decodeDiscoveryResponse), nodeId);
      s.request(CDS, [], { node: { id: nodeId, cluster: 'web' } });
      return s;
    };
    const web = await stream('URI:spiffe://t/ns/a/sa/web', 'web-1');
    expect((await web.nextOf(CDS)).resources.length).toBeGreaterThan(0);
    const claimsOther = await stream('URI:spiffe://t/ns/a/sa/web', 'api-1');
    expect(await claimsOther.closed()).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: expect.stringMatching(/may not claim this node/) as unknown });
    const unbound = await stream('URI:spiffe://t/ns/a/sa/other', 'web-2');
    expect(await unbound.closed()).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: expect.stringMatching(/matches no server\.xds\.identities entry/) as unknown });
    expect(server.streamsServedDirectly).toBe(3);
    web.cancel();
  });

  it('a resumed session is served; one whose certificate has expired since is closed at its first stream, before grpc-js or fulcrum serve it', async () => {
    const tickets = join(dir, 'tickets.key');
    await writeFile(tickets, Buffer.alloc(48, 9));
    const credentials = new ReloadingServerCredentials({ certFile: serverCert.cert, keyFile: serverCert.key, clientCaFile: ca.cert, sessionTicketKeyFile: tickets });
    const proxy = await issue(ca, 'proxy', ['URI:spiffe://t/ns/a/sa/web']);
    let now = Date.now();
    const seen: TlsHandshake[] = [];
    const sessions = new TlsSessions({ now: () => now, requireCert: true, onHandshake: (h) => seen.push(h) });
    const { server, port } = await serve({ credentials, sessions });
    /** One ADS call on a new connection offering `session`: whether CDS came back, and the ticket it got. */
    const call = (session?: Buffer): Promise<{ answered: boolean; ticket: Buffer | undefined }> =>
      new Promise((resolve) => {
        let ticket: Buffer | undefined;
        let answered = false;
        const conn = http2.connect(`https://localhost:${port}`, { ca: readFileSync(ca.cert), cert: readFileSync(proxy.cert), key: readFileSync(proxy.key), ...(session ? { session } : {}) });
        conn.on('error', () => undefined);
        conn.socket.on('session', (t: Buffer) => {
          ticket = t;
        });
        const stream = openCall(conn);
        stream.write(grpcFrame(discoveryRequest('web-1')));
        // The server holds the stream open: the connection is ended here once CDS came (the
        // ticket, sent right after the handshake, is in by then), or by the server.
        stream.on('data', () => {
          answered = true;
          conn.destroy();
        });
        stream.on('close', () => conn.destroy());
        conn.on('close', () => resolve({ answered, ticket }));
      });
    const first = await call();
    expect(first.answered).toBe(true);
    const resumed = await call(first.ticket);
    expect(resumed.answered).toBe(true);
    expect(seen).toEqual(['full', 'resumed']);
    const served = server.streamsServedDirectly;

    now = Date.parse(new X509Certificate(readFileSync(proxy.cert)).validTo) + 1_000;
    const expired = await call(resumed.ticket ?? first.ticket);
    expect(expired.answered).toBe(false);
    expect(seen).toEqual(['full', 'resumed', 'resumed_refused']);
    // Closed before the router took it: neither fulcrum nor grpc-js served the stream.
    expect(server.streamsServedDirectly).toBe(served);
  });
});
