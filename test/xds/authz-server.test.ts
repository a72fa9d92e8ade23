import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { REPORT_METHOD_PATH } from '../../src/signals/report-grpc.js';
import { opensslFound, refusedCalls, serverPki } from '../support/certs.js';
import { describeRequiring } from '../support/requires.js';

/**
 * The interceptor on a running fulcrum (plaintext, tokens only), through unary calls: Fetch
 * (xDS), CSDS (status) and Report. Streams are covered with a real Envoy in test/e2e/xds-*.
 */

let dir: string;
let fulcrum: Fulcrum;
let client: grpc.Client;

const FETCH_CLUSTERS = '/envoy.service.cluster.v3.ClusterDiscoveryService/FetchClusters';
const CSDS_FETCH = '/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus';

/** A unary call with an empty (all-default) request; resolves to the status code. */
function call(path: string, token?: string): Promise<{ code: grpc.status; details: string }> {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  return new Promise((resolve) =>
    client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), metadata, (err) =>
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' }),
    ),
  );
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fulcrum-authz-'));
  await writeFile(join(dir, 'fulcrum.yaml'), 'clusters:\n  - name: web\n    endpoints: [{ address: 127.0.0.1, port: 9 }]\n');
  fulcrum = await startFulcrum({
    configPath: join(dir, 'fulcrum.yaml'),
    xdsPort: 0,
    xdsAddress: '127.0.0.1',
    logger: pino({ level: 'silent' }),
    auth: { adminTokens: ['adm'], readTokens: ['rd'], reportTokens: ['rep'], proxyTokens: ['prx'] },
  });
  client = new grpc.Client(`127.0.0.1:${fulcrum.xdsPort}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await fulcrum?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('authorization on the xDS port, per surface', () => {
  it('Fetch needs a proxy or admin token', async () => {
    expect(await call(FETCH_CLUSTERS)).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: expect.stringMatching(/xDS discovery needs credentials/) as unknown });
    expect((await call(FETCH_CLUSTERS, 'rd')).code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await call(FETCH_CLUSTERS, 'prx')).code).toBe(grpc.status.OK);
    expect((await call(FETCH_CLUSTERS, 'adm')).code).toBe(grpc.status.OK);
  });

  it('CSDS needs an admin or read token; a proxy token is not one', async () => {
    expect((await call(CSDS_FETCH)).code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await call(CSDS_FETCH, 'prx')).code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await call(CSDS_FETCH, 'rd')).code).toBe(grpc.status.OK);
  });

  it('Report needs a report or admin token, and every refusal is counted by reason', async () => {
    const before = await refusedCalls(fulcrum, 'report', 'unknown_token');
    expect((await call(REPORT_METHOD_PATH, 'wrong')).code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await call(REPORT_METHOD_PATH, 'prx')).code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await call(REPORT_METHOD_PATH, 'rep')).code).toBe(grpc.status.OK);
    expect(await refusedCalls(fulcrum, 'report', 'unknown_token')).toBe(before + 1);
    expect(await refusedCalls(fulcrum, 'report', 'wrong_role')).toBeGreaterThanOrEqual(1);
  });
});

describe('with only report tokens configured', () => {
  let reportOnly: Fulcrum;
  let reportClient: grpc.Client;

  beforeAll(async () => {
    reportOnly = await startFulcrum({
      configPath: join(dir, 'fulcrum.yaml'),
      xdsPort: 0,
      adminPort: 0,
      xdsAddress: '127.0.0.1',
      adminAddress: '127.0.0.1',
      dataDir: join(dir, 'report-only'),
      logger: pino({ level: 'silent' }),
      auth: { adminTokens: [], readTokens: [], reportTokens: ['rep'] },
    });
    reportClient = new grpc.Client(`127.0.0.1:${reportOnly.xdsPort}`, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    reportClient?.close();
    await reportOnly?.stop();
  });

  it('CSDS is closed as the admin API\'s config dump is: no one reads every proxy\'s config without a token', async () => {
    // The admin API has a token, so its view of every proxy's config needs one.
    const dump = await fetch(`http://127.0.0.1:${reportOnly.adminPort}/v1/config_dump`);
    expect(dump.status).toBe(401);
    const csds = await new Promise<grpc.status>((resolve) =>
      reportClient.makeUnaryRequest(CSDS_FETCH, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), new grpc.Metadata(), (err) => resolve(err ? err.code : grpc.status.OK)),
    );
    expect(csds).toBe(grpc.status.UNAUTHENTICATED);
  });
});

describeRequiring('openssl', opensslFound(), 'identities with an optional client certificate', () => {
  /** The warnings a fulcrum logs at start with mTLS, identities and `requireClientCert`. */
  async function startWarnings(requireClientCert: boolean, proxyTokens: string[]): Promise<string[]> {
    const pki = await serverPki(await mkdtemp(join(dir, 'pki-')));
    const config = join(dir, `mtls-${String(requireClientCert)}-${proxyTokens.length}.yaml`);
    await writeFile(
      config,
      [
        'server:',
        '  xds:',
        `    tls: { certFile: ${pki.server.cert}, keyFile: ${pki.server.key}, clientCaFile: ${pki.ca.cert}, requireClientCert: ${String(requireClientCert)} }`,
        '    identities: [{ match: "spiffe://t/ns/*/sa/web", nodeCluster: web }]',
        'clusters:\n  - name: web\n    endpoints: [{ address: 127.0.0.1, port: 9 }]',
      ].join('\n'),
    );
    const lines: string[] = [];
    const f = await startFulcrum({
      configPath: config,
      xdsPort: 0,
      adminPort: 0,
      xdsAddress: '127.0.0.1',
      adminAddress: '127.0.0.1',
      dataDir: join(dir, `mtls-data-${String(requireClientCert)}-${proxyTokens.length}`),
      logger: pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) }),
      auth: { adminTokens: ['adm'], readTokens: [], proxyTokens },
    });
    await f.stop();
    return lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
  }

  it('warns at start that a client without a certificate is served any node group, unless certificates or proxy tokens are required', async () => {
    const warning = expect.stringMatching(/^server\.xds\.identities bind client certificates to node groups, but with server\.xds\.tls\.requireClientCert: false/) as unknown;
    expect(await startWarnings(false, [])).toContainEqual(warning);
    expect(await startWarnings(true, [])).not.toContainEqual(warning);
    expect(await startWarnings(false, ['prx'])).not.toContainEqual(warning);
  });
});

describe('proxy tokens on a clear-text xDS port', () => {
  /** The warnings a fulcrum without xDS TLS logs at start, listening on `xdsAddress`. */
  async function startWarnings(xdsAddress: string, proxyTokens: string[]): Promise<string[]> {
    const lines: string[] = [];
    const f = await startFulcrum({
      configPath: join(dir, 'fulcrum.yaml'),
      xdsPort: 0,
      adminPort: 0,
      xdsAddress,
      adminAddress: '127.0.0.1',
      dataDir: await mkdtemp(join(dir, 'clear-data-')),
      logger: pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) }),
      auth: { adminTokens: ['adm'], readTokens: [], proxyTokens },
    });
    await f.stop();
    return lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
  }

  it('warns at start that they cross the network in clear text, naming server.xds.tls, unless the port listens on loopback only', async () => {
    const warning = (address: string): unknown =>
      `proxy tokens (FULCRUM_PROXY_TOKEN, tokenFiles.proxy) are accepted on the xDS port at ${address} without TLS, so they cross the network in clear text: ` +
      'set server.xds.tls (certFile, keyFile), or listen on loopback only (server.xds.address)';
    expect(await startWarnings('0.0.0.0', ['prx'])).toContainEqual(warning('0.0.0.0'));
    const loopback = await startWarnings('127.0.0.1', ['prx']);
    expect(loopback.filter((m) => m.startsWith('proxy tokens'))).toEqual([]);
    expect((await startWarnings('0.0.0.0', [])).filter((m) => m.startsWith('proxy tokens'))).toEqual([]);
  });
});
