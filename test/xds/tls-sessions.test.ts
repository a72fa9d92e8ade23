import { once } from 'node:events';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import http2, { type ServerHttp2Stream } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SESSION_LIFETIME_S, ReloadingServerCredentials, ticketKeyOf, type VerifyPolicy, type XdsTlsSettings } from '../../src/xds/transport-security.js';
import { TlsSessions, withinValidity, type TlsHandshake } from '../../src/xds/tls-sessions.js';
import { issue, makeCa, opensslFound, type CertFiles, type TestCa } from '../support/certs.js';
import { describeRequiring } from '../support/requires.js';

/**
 * TLS session resumption on the xDS port, over real TLS 1.3 on loopback: a ticket issued by one
 * server resumes against another built from the same files (a restart, another replica) only
 * when they share a ticket-key file and the client CA; a resumed session whose client certificate
 * has expired since is closed at its first stream.
 */

/** What grpc-js hands node's secure server (server.js createHttp2Server), from the credentials. */
function serverOptions(c: ReloadingServerCredentials): tls.TlsOptions {
  return { ...c._getConstructorOptions(), ...c._getSecureContextOptions(), ALPNProtocols: ['h2'] };
}

interface Served {
  readonly port: number;
  readonly close: () => Promise<void>;
}

/** A TLS server with the credentials' options that answers every connection with "ok". */
async function tlsServer(c: ReloadingServerCredentials): Promise<Served> {
  const server = tls.createServer(serverOptions(c), (socket) => socket.end('ok'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { port: address.port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

interface Outcome {
  readonly reused: boolean;
  /** The handshake completed (a server that requires a certificate refuses one without). */
  readonly connected: boolean;
  /** The session to offer next time (TLS 1.3 tickets arrive after the handshake). */
  readonly session: Buffer | undefined;
}

type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

interface Connect {
  readonly ca: string;
  /** The proxy's certificate (mTLS); none: a client without one. */
  readonly client?: CertFiles;
  readonly session?: Buffer | undefined;
  /** The highest version offered (Envoy offers 1.2 upstream by default, grpc-go and node 1.3). */
  readonly version?: TlsVersion;
}

/** One connection as a proxy makes it. */
function connectOnce(port: number, c: Connect): Promise<Outcome> {
  return new Promise((resolve) => {
    let ticket: Buffer | undefined;
    let reused = false;
    let connected = false;
    const identity = c.client ? { cert: readFileSync(c.client.cert), key: readFileSync(c.client.key) } : {};
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(c.ca), ALPNProtocols: ['h2'], maxVersion: c.version ?? 'TLSv1.3', ...identity, ...(c.session ? { session: c.session } : {}) });
    // Read at the handshake: a closed socket no longer knows.
    socket.on('secureConnect', () => {
      reused = socket.isSessionReused();
    });
    socket.on('session', (s: Buffer) => {
      ticket = s;
    });
    // The server's "ok" is what says it accepted the connection (a TLS 1.3 client completes its
    // handshake before it learns that the server refused its certificate).
    socket.on('data', () => {
      connected = true;
    });
    socket.on('error', () => undefined);
    socket.on('end', () => socket.end());
    socket.on('close', () => resolve({ reused, connected, session: ticket }));
  });
}

describe('withinValidity', () => {
  it('reads OpenSSL dates and refuses what it cannot read', () => {
    const from = 'Dec  4 21:40:00 2026 GMT';
    const to = 'Dec  6 21:40:00 2026 GMT';
    expect(withinValidity(from, to, Date.UTC(2026, 11, 5))).toBe(true);
    expect(withinValidity(from, to, Date.UTC(2026, 11, 6, 21, 40, 1))).toBe(false);
    expect(withinValidity(from, to, Date.UTC(2026, 11, 4, 21, 39, 59))).toBe(false);
    expect(withinValidity('garbage', to, Date.UTC(2026, 11, 5))).toBe(false);
  });
});

describe('ticketKeyOf', () => {
  const secret = Buffer.alloc(48, 1);
  const required: VerifyPolicy = { requestCert: true, requireCert: true };
  it('gives the same 48-byte key for the same secret, CA and policy, another for another of any', () => {
    const key = ticketKeyOf(secret, Buffer.from('ca one'), required);
    expect(key).toHaveLength(48);
    expect(ticketKeyOf(Buffer.alloc(48, 1), Buffer.from('ca one'), { requestCert: true, requireCert: true }).equals(key)).toBe(true);
    expect(ticketKeyOf(secret, Buffer.from('ca two'), required).equals(key)).toBe(false);
    expect(ticketKeyOf(Buffer.alloc(48, 2), Buffer.from('ca one'), required).equals(key)).toBe(false);
    expect(ticketKeyOf(secret, undefined, required).equals(key)).toBe(false);
    expect(ticketKeyOf(secret, Buffer.from('ca one'), { requestCert: true, requireCert: false }).equals(key)).toBe(false);
  });
});

describeRequiring('openssl', opensslFound(), 'TLS sessions on the xDS port', () => {
  let dir: string;
  let ca: TestCa;
  let otherCa: TestCa;
  let server: CertFiles;
  let client: CertFiles;
  let secret: string;
  const open: Served[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-tls-sessions-'));
    ca = await makeCa(dir, 'ca');
    otherCa = await makeCa(dir, 'other-ca');
    server = await issue(ca, 'server', ['DNS:localhost']);
    client = await issue(ca, 'proxy', ['URI:spiffe://fulcrum.test/proxy']);
    secret = join(dir, 'tickets.key');
    await writeFile(secret, Buffer.alloc(48, 7));
  });

  afterAll(async () => {
    await Promise.all(open.map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
  });

  const settings = (extra: Partial<XdsTlsSettings> = {}): XdsTlsSettings => ({ certFile: server.cert, keyFile: server.key, clientCaFile: ca.cert, ...extra });

  async function started(s: XdsTlsSettings): Promise<Served> {
    const served = await tlsServer(new ReloadingServerCredentials(s));
    open.push(served);
    return served;
  }

  /** A session from `first`, then offered to `second`: how that went. */
  async function acrossServers(first: XdsTlsSettings, second: XdsTlsSettings, c: Omit<Connect, 'ca' | 'session'>): Promise<Outcome> {
    const a = await started(first);
    const made = await connectOnce(a.port, { ca: ca.cert, ...c });
    expect(made.reused).toBe(false);
    expect(made.connected).toBe(true);
    expect(made.session).toBeDefined();
    const b = await started(second);
    return connectOnce(b.port, { ca: ca.cert, ...c, session: made.session });
  }

  describe.each(['TLSv1.2', 'TLSv1.3'] as const)('over %s', (version) => {
    it('a ticket resumes against another server from the same files when they share a ticket-key file', async () => {
      const out = await acrossServers(settings({ sessionTicketKeyFile: secret }), settings({ sessionTicketKeyFile: secret }), { client, version });
      expect(out).toMatchObject({ reused: true, connected: true });
    });

    it('without a ticket-key file each server has its own key: no resumption across a restart', async () => {
      expect(await acrossServers(settings(), settings(), { client, version })).toMatchObject({ reused: false, connected: true });
    });

    it('another client CA voids the tickets made under the first', async () => {
      // The proxy's certificate chains to `ca`: the second server trusts both CAs, so only the ticket's binding differs.
      const both = join(dir, 'both.pem');
      await writeFile(both, Buffer.concat([readFileSync(ca.cert), readFileSync(otherCa.cert)]));
      const out = await acrossServers(settings({ sessionTicketKeyFile: secret }), settings({ sessionTicketKeyFile: secret, clientCaFile: both }), { client, version });
      expect(out).toMatchObject({ reused: false, connected: true });
    });

    it('a session made without a certificate where one was optional does not resume where one is required', async () => {
      const optional = settings({ sessionTicketKeyFile: secret, requireClientCert: false });
      const out = await acrossServers(optional, settings({ sessionTicketKeyFile: secret }), { version });
      expect(out).toMatchObject({ reused: false, connected: false });
    });
  });

  it('the session context is the same for the same settings and differs with the policy; the lifetime is long only with a ticket-key file', () => {
    const ctx = (s: XdsTlsSettings) => new ReloadingServerCredentials(s)._getSecureContextOptions()?.sessionIdContext;
    expect(ctx(settings())).toBe(ctx(settings()));
    expect(ctx(settings({ requireClientCert: false }))).not.toBe(ctx(settings()));
    expect(ctx({ certFile: server.cert, keyFile: server.key })).not.toBe(ctx(settings()));
    const lifetime = (s: XdsTlsSettings) => new ReloadingServerCredentials(s)._getSecureContextOptions()?.sessionTimeout;
    expect(lifetime(settings())).toBeUndefined();
    expect(lifetime(settings({ sessionTicketKeyFile: secret }))).toBe(DEFAULT_SESSION_LIFETIME_S);
    expect(lifetime(settings({ sessionLifetimeSeconds: 600 }))).toBe(600);
  });

  it('a resumed session keeps its verified client certificate', async () => {
    const s = settings({ sessionTicketKeyFile: secret });
    const a = await started(s);
    const made = await connectOnce(a.port, { ca: ca.cert, client });
    const creds = new ReloadingServerCredentials(s);
    const seen: { reused: boolean; authorized: boolean; subjectaltname: string | undefined }[] = [];
    const b = tls.createServer(serverOptions(creds), (socket) => {
      seen.push({ reused: socket.isSessionReused(), authorized: socket.authorized, subjectaltname: socket.getPeerCertificate().subjectaltname });
      socket.end('ok');
    });
    b.listen(0, '127.0.0.1');
    await once(b, 'listening');
    const port = (b.address() as { port: number }).port;
    open.push({ port, close: () => new Promise((resolve) => b.close(() => resolve())) });
    expect((await connectOnce(port, { ca: ca.cert, client, session: made.session })).reused).toBe(true);
    expect(seen).toEqual([{ reused: true, authorized: true, subjectaltname: 'URI:spiffe://fulcrum.test/proxy' }]);
  });

  it('refuse a ticket-key file that is too short or too large, naming the setting', async () => {
    const short = join(dir, 'short.key');
    await writeFile(short, Buffer.alloc(31, 1));
    expect(() => new ReloadingServerCredentials(settings({ sessionTicketKeyFile: short }))).toThrow(/server\.xds\.tls\.sessionTicketKeyFile: .*short\.key holds 31 bytes; it must hold 32 to 65536/);
    const large = join(dir, 'large.key');
    await writeFile(large, Buffer.alloc(65_537, 1));
    expect(() => new ReloadingServerCredentials(settings({ sessionTicketKeyFile: large }))).toThrow(/holds 65537 bytes/);
    expect(() => new ReloadingServerCredentials(settings({ sessionTicketKeyFile: join(dir, 'missing.key') }))).toThrow(/sessionTicketKeyFile: cannot read/);
  });

  it('a new ticket-key file voids the old tickets at the next poll; a bad one keeps the key and does not hold back a certificate rotation', async () => {
    const live = { tickets: join(dir, 'live-tickets.key'), cert: join(dir, 'live-server.pem'), key: join(dir, 'live-server.key') };
    const rotated = await issue(ca, 'server-rotated', ['DNS:localhost']);
    await writeFile(live.tickets, Buffer.alloc(48, 3));
    await copyFile(server.cert, live.cert);
    await copyFile(server.key, live.key);
    const creds = new ReloadingServerCredentials({ ...settings({ sessionTicketKeyFile: live.tickets }), certFile: live.cert, keyFile: live.key });
    // What grpc-js does with the credentials' updates: node's setSecureContext on its server.
    const tlsServerOf = tls.createServer(serverOptions(creds), (socket) => socket.end('ok'));
    creds._addWatcher((options) => options && tlsServerOf.setSecureContext(options));
    tlsServerOf.listen(0, '127.0.0.1');
    await once(tlsServerOf, 'listening');
    const port = (tlsServerOf.address() as { port: number }).port;
    open.push({ port, close: () => new Promise((resolve) => tlsServerOf.close(() => resolve())) });
    const connect = (session?: Buffer) => connectOnce(port, { ca: ca.cert, client, session });

    const first = await connect();
    expect((await connect(first.session)).reused).toBe(true);
    await writeFile(live.tickets, Buffer.alloc(48, 4));
    expect(creds.reload()).toMatchObject({ result: 'reloaded', ticketKeyChanged: true });
    const afterNewKey = await connect(first.session);
    expect(afterNewKey).toMatchObject({ reused: false, connected: true });

    await writeFile(live.tickets, Buffer.alloc(5, 4));
    expect(creds.reload()).toMatchObject({ result: 'failed', error: expect.stringMatching(/holds 5 bytes.*previous session-ticket key stays/) as unknown });
    expect(creds.reload()).toEqual({ result: 'unchanged' });
    expect((await connect(afterNewKey.session)).reused).toBe(true);

    await copyFile(rotated.key, live.key);
    await copyFile(rotated.cert, live.cert);
    expect(creds.reload()).toMatchObject({ result: 'reloaded', ticketKeyChanged: false });
    expect((await connect(afterNewKey.session)).reused).toBe(true);
  });

  describe('TlsSessions at the first stream', () => {
    /** An HTTP/2 server as the xDS port's, whose streams go through `sessions` first. */
    async function h2Server(s: XdsTlsSettings, sessions: TlsSessions): Promise<Served> {
      const h2 = http2.createSecureServer(serverOptions(new ReloadingServerCredentials(s)));
      h2.on('stream', (stream: ServerHttp2Stream) => {
        if (!sessions.admit(stream)) return;
        stream.respond({ ':status': 200 });
        stream.end('ok');
      });
      h2.listen(0, '127.0.0.1');
      await once(h2, 'listening');
      const port = (h2.address() as { port: number }).port;
      const served = { port, close: () => new Promise<void>((resolve) => h2.close(() => resolve())) };
      open.push(served);
      return served;
    }

    /** One request on a new connection offering `session` (with the proxy's certificate unless `anonymous`): the status, or the error that ended it; and the ticket it got. */
    function request(port: number, session?: Buffer, anonymous = false): Promise<{ status: number | string; ticket: Buffer | undefined }> {
      return new Promise((resolve) => {
        let ticket: Buffer | undefined;
        const conn = http2.connect(`https://localhost:${port}`, {
          ca: readFileSync(ca.cert),
          ...(anonymous ? {} : { cert: readFileSync(client.cert), key: readFileSync(client.key) }),
          ...(session ? { session } : {}),
        });
        conn.socket.on('session', (t: Buffer) => {
          ticket = t;
        });
        conn.on('error', () => undefined);
        const req = conn.request({ ':path': '/' });
        let status: number | string = 'no response';
        req.on('response', (h) => {
          status = h[':status'] ?? 'no status';
        });
        req.on('error', (err: Error) => {
          status = err.message;
        });
        req.resume();
        req.on('close', () => {
          conn.close();
          // The ticket may land after the response; wait for the connection to end.
          if (conn.closed) resolve({ status, ticket });
          else conn.on('close', () => resolve({ status, ticket }));
        });
      });
    }

    it('count each connection once by its handshake, and close a resumed one whose certificate has expired since', async () => {
      const seen: TlsHandshake[] = [];
      const validTo = Date.parse(new (await import('node:crypto')).X509Certificate(readFileSync(client.cert)).validTo);
      let now = Date.now();
      const sessions = new TlsSessions({ now: () => now, requireCert: true, onHandshake: (h) => seen.push(h) });
      const s = settings({ sessionTicketKeyFile: secret });
      const a = await h2Server(s, sessions);
      const first = await request(a.port);
      expect(first.status).toBe(200);
      expect(first.ticket).toBeDefined();
      expect(seen).toEqual(['full']);

      const b = await h2Server(s, sessions);
      const resumed = await request(b.port, first.ticket);
      expect(resumed.status).toBe(200);
      expect(seen).toEqual(['full', 'resumed']);

      now = validTo + 1_000;
      const expired = await request(b.port, resumed.ticket ?? first.ticket);
      expect(expired.status).not.toBe(200);
      expect(seen).toEqual(['full', 'resumed', 'resumed_refused']);
    });

    it('close a resumed session without a certificate where one is required, even if the ticket was accepted', async () => {
      const seen: TlsHandshake[] = [];
      // The TLS layer asks for no certificate here; the check alone stands for the requirement.
      const sessions = new TlsSessions({ now: Date.now, requireCert: true, onHandshake: (h) => seen.push(h) });
      const a = await h2Server(settings({ sessionTicketKeyFile: secret, requireClientCert: false }), sessions);
      const first = await request(a.port, undefined, true);
      expect(first.status).toBe(200);
      const again = await request(a.port, first.ticket, true);
      expect(again.status).not.toBe(200);
      expect(seen).toEqual(['full', 'resumed_refused']);
    });
  });
});
