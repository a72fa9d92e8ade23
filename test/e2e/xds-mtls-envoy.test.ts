import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { envoyXdsTls, issue, makeCa, refusedCalls, serverPki, type CertFiles, type TestCa } from '../support/certs.js';
import { describeEnvoy, dumpListenerNames, dumpClusterNames, type EnvoyHandle } from '../support/envoy.js';
import { sendRequests } from '../support/backends.js';
import { startOrcaBackends, type OrcaBackends } from '../support/orca-backends.js';
import { freePort } from '../support/ports.js';
import { startRig, type Rig } from '../support/rig.js';
import { scaled, waitFor } from '../support/wait.js';
import { syncState } from '../../src/xds/proxy-status.js';

const CLUSTER_TYPE = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const CSDS_FETCH = '/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus';

/**
 * mTLS on the xDS port with a real Envoy 1.40: certificates made here by openssl, identities
 * (SPIFFE URI SANs) bound to the node ids and node groups they may claim, LRS over mTLS from an
 * identity allowed to report and one that is not, a proxy without a client certificate, TLS
 * sessions resumed across a restart, and a server certificate rotated on disk.
 */

const WEB_ID = 'spiffe://fulcrum.test/ns/shop/sa/web';
const EDGE_ID = 'spiffe://fulcrum.test/ns/shop/sa/edge';

interface Pki {
  dir: string;
  ca: TestCa;
  server: CertFiles;
  web: CertFiles;
  edge: CertFiles;
  /** A second CA: the rotated server certificate chains to it. */
  ca2: TestCa;
  /** The session-ticket secret every fulcrum of this rig derives its ticket key from. */
  tickets: string;
}

let pki: Pki;
let rig: Rig<OrcaBackends> | undefined;
let ports: { web: number; edge: number };
const envoys: EnvoyHandle[] = [];

function r(): Rig<OrcaBackends> {
  if (!rig) throw new Error('rig not started');
  return rig;
}

async function makePki(): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-mtls-'));
  const { ca, server } = await serverPki(dir);
  const ca2 = await makeCa(dir, 'ca2');
  const web = await issue(ca, 'web', [`URI:${WEB_ID}`, 'DNS:web.shop.svc']);
  const edge = await issue(ca, 'edge', [`URI:${EDGE_ID}`]);
  const tickets = join(dir, 'tickets.key');
  await writeFile(tickets, randomBytes(48));
  return { dir, ca, server, web, edge, ca2, tickets };
}

const refused = (surface: string, reason: string): Promise<number> => refusedCalls(r().fulcrum, surface, reason);

async function envoy(nodeId: string, nodeCluster: string, client: CertFiles | undefined, ca = pki.ca.cert, mode: 'sotw' | 'delta' = 'sotw'): Promise<EnvoyHandle> {
  const e = await r().addEnvoy({ mode, nodeId, nodeCluster, name: `envoy-${nodeId}`, patchBootstrap: envoyXdsTls(ca, client) });
  envoys.push(e);
  return e;
}

const connectedNodes = (): string[] => r().fulcrum.registry.list().map((p) => p.node.id);

/** fulcrum's `fulcrum_xds_tls_connections_total{handshake}`. */
async function tlsConnections(handshake: string): Promise<number> {
  const metric = await r().fulcrum.metrics.registry.getSingleMetric('fulcrum_xds_tls_connections_total')?.get();
  return metric?.values.find((v) => v.labels.handshake === handshake)?.value ?? 0;
}

/** The certificate the xDS port serves to a new connection. */
function servedCertificate(port: number): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ALPNProtocols: ['h2'], rejectUnauthorized: false, cert: undefined }, () => {
      const cert = socket.getPeerCertificate();
      socket.destroy();
      resolve(cert);
    });
    socket.on('error', reject);
  });
}

describeEnvoy('xDS over mTLS with a real Envoy', () => {
  beforeAll(async () => {
    pki = await makePki();
    ports = { web: await freePort(), edge: await freePort() };
    rig = await startRig({
      name: 'mtls',
      // Backend 0 reports itself busy, backend 1 idle: reports that get through move weight to 1.
      backends: () => startOrcaBackends([{ cpu: 0.9 }, { cpu: 0.2 }]),
      config: ({ backends }) => ({
        server: {
          xds: {
            tls: { certFile: pki.server.cert, keyFile: pki.server.key, clientCaFile: pki.ca.cert, requireClientCert: true, reloadIntervalMs: 200, sessionTicketKeyFile: pki.tickets },
            identities: [
              { match: 'spiffe://fulcrum.test/ns/*/sa/web', nodeId: 'web-*', nodeCluster: 'web', report: true },
              { match: 'spiffe://fulcrum.test/ns/*/sa/edge', nodeCluster: 'edge' },
            ],
          },
          loadReporting: { intervalMs: 500 },
          engine: { tickMs: 500 },
        },
        clusters: [
          {
            name: 'web',
            weighting: { policy: 'pid', setpoint: 'mean', metric: 'cpu' },
            endpoints: backends.list.map((b) => ({ address: '127.0.0.1', port: b.port, weight: 100 })),
          },
          { name: 'other', endpoints: [{ address: '127.0.0.1', port: backends.list[0]?.port ?? 1 }] },
        ],
        listeners: [
          { name: 'ingress-web', address: '127.0.0.1', port: ports.web, routes: [{ prefix: '/', cluster: 'web' }] },
          { name: 'ingress-edge', address: '127.0.0.1', port: ports.edge, routes: [{ prefix: '/', cluster: 'web' }] },
        ],
        nodeGroups: [
          { nodeCluster: 'web', listeners: ['ingress-web'] },
          { nodeCluster: 'edge', listeners: ['ingress-edge'] },
        ],
      }),
      envoy: false,
    });
  }, scaled(60_000));

  afterAll(async () => {
    await rig?.stop();
    if (pki) await rm(pki.dir, { recursive: true, force: true });
  });

  it('an Envoy whose certificate does not match the node id or node group it claims is refused', async () => {
    const before = await refused('xds', 'node_mismatch');
    const wrongId = await envoy('edge-1', 'web', pki.web); // web identity, node id outside web-*
    const wrongGroup = await envoy('web-9', 'edge', pki.web); // web identity claiming the edge group
    const wrongDelta = await envoy('edge-2', 'web', pki.web, pki.ca.cert, 'delta'); // the same over Delta xDS
    await waitFor(async () => (await refused('xds', 'node_mismatch')) >= before + 3, { what: 'three node_mismatch refusals', timeoutMs: 20_000 });
    for (const e of [wrongId, wrongGroup, wrongDelta]) {
      // Envoy counts itself connected from the moment a stream opens until it is closed, and it
      // keeps retrying: each retry's stream is open until its first request is refused. So it is
      // seen disconnected between retries (never durably connected), and it holds no config.
      await waitFor(async () => (await e.stat('control_plane.connected_state')) === 0, { what: 'the refused Envoy seen disconnected', timeoutMs: 20_000, intervalMs: 20 });
      expect(dumpListenerNames(await e.configDump())).toEqual([]);
    }
    expect(connectedNodes()).not.toContain('edge-1');
    expect(connectedNodes()).not.toContain('web-9');
    expect(connectedNodes()).not.toContain('edge-2');
  });

  it("a proxy's certificate does not read every node group's config through CSDS", async () => {
    // The edge identity may claim only the edge group; CSDS would show every proxy's config.
    const client = new grpc.Client(`127.0.0.1:${r().fulcrum.xdsPort}`, grpc.credentials.createSsl(readFileSync(pki.ca.cert), readFileSync(pki.edge.key), readFileSync(pki.edge.cert)), {
      'grpc.ssl_target_name_override': 'localhost',
    });
    try {
      const before = await refused('status', 'no_credentials');
      const outcome = await new Promise<{ code: grpc.status; details: string }>((resolve) =>
        client.makeUnaryRequest(CSDS_FETCH, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (err) => resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' })),
      );
      // Refused by fulcrum (the handshake went through): it needs an admin or read token.
      expect(outcome).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: expect.stringMatching(/client status \(CSDS\) needs credentials/) as unknown });
      expect(await refused('status', 'no_credentials')).toBe(before + 1);
    } finally {
      client.close();
    }
  });

  it('an Envoy without a client certificate fails the handshake when mTLS is required', async () => {
    const anonymous = await envoy('web-anon', 'web', undefined);
    await waitFor(async () => ((await anonymous.stat('cluster.fulcrum_xds.ssl.connection_error')) ?? 0) > 0, {
      what: 'Envoy sees its TLS handshakes to fulcrum fail',
      timeoutMs: 20_000,
    });
    // As above: each retry's stream counts as connected until its handshake fails, so a single
    // read can land inside a retry (seen at load 9). It must be seen disconnected, and hold nothing.
    await waitFor(async () => (await anonymous.stat('control_plane.connected_state')) === 0, { what: 'the anonymous Envoy seen disconnected', timeoutMs: 20_000, intervalMs: 20 });
    expect(dumpListenerNames(await anonymous.configDump())).toEqual([]);
    expect(connectedNodes()).not.toContain('web-anon');
  });

  it('an identity allowed to report connects over mTLS, sees only its node group, and its LRS over mTLS steers weights; one not allowed to report changes nothing', async () => {
    // First the edge proxy: its identity may connect (edge group) but not report.
    const edge = await envoy('edge-1b', 'edge', pki.edge);
    await edge.waitForListener('ingress-edge', 20_000);
    expect(dumpListenerNames(await edge.configDump())).toEqual(['ingress-edge']);
    const beforeLrs = await refused('report', 'identity_not_reporter');
    const traffic = await sendRequests(`http://127.0.0.1:${ports.edge}/`, 200, { concurrency: 4 });
    expect(traffic.errors).toBe(0);
    await waitFor(async () => (await refused('report', 'identity_not_reporter')) > beforeLrs, { what: "the edge Envoy's LRS stream refused", timeoutMs: 20_000 });
    // Nothing it sent reached the signals: no sample, weights untouched.
    for (const b of r().backends.list) expect(r().fulcrum.signals.store.latest('web', b.key)).toBeUndefined();
    const edgeWeights = ((await edge.clusterStatuses()).web?.hosts ?? []).map((h) => h.weight);
    expect(edgeWeights).toHaveLength(2);
    expect(new Set(edgeWeights).size).toBe(1);

    // Then the web proxy over mTLS: its group only, traffic flows, its load reports count.
    const web = await envoy('web-1', 'web', pki.web);
    await web.waitForListener('ingress-web', 20_000);
    const dump = await web.configDump();
    expect(dumpListenerNames(dump)).toEqual(['ingress-web']);
    expect(dumpClusterNames(dump)).not.toContain('other');
    expect(connectedNodes()).toContain('web-1');
    const load = setInterval(() => void sendRequests(`http://127.0.0.1:${ports.web}/`, 40, { concurrency: 2 }).catch(() => undefined), 250);
    try {
      await waitFor(
        async (ctx) => {
          const hosts = (await web.clusterStatuses()).web?.hosts ?? [];
          const [busy, idle] = r().backends.list.map((b) => hosts.find((h) => h.address === b.key)?.weight ?? 0);
          ctx.note({ busy, idle });
          return busy !== undefined && idle !== undefined && busy > 0 && idle / busy >= 1.5;
        },
        { what: 'LRS over mTLS moves weight to the idle backend in Envoy', timeoutMs: 40_000, intervalMs: 250 },
      );
    } finally {
      clearInterval(load);
    }
    expect(r().fulcrum.signals.store.latest('web', r().backends.list[0]?.key ?? '')?.cpu).toBeCloseTo(0.9, 5);
  }, scaled(90_000));

  it('after a restart an Envoy resumes its TLS session (the ticket key comes from a shared file) and is served again', async () => {
    // Its listener may clash with web-1's port: only its xDS connection matters here.
    const web = await envoy('web-r', 'web', pki.web);
    await waitFor(() => connectedNodes().includes('web-r'), { what: 'web-r connected', timeoutMs: 20_000 });
    const stat = async (name: string): Promise<number> => (await web.stat(name)) ?? 0;
    const reused = await stat('cluster.fulcrum_xds.ssl.session_reused');
    await r().restartFulcrum();
    await waitFor(() => connectedNodes().includes('web-r'), { what: 'web-r connected to the restarted fulcrum', timeoutMs: 30_000 });
    await waitFor(async () => (await stat('cluster.fulcrum_xds.ssl.session_reused')) > reused, { what: "Envoy's own count of resumed TLS sessions rises", timeoutMs: 20_000 });
    await waitFor(async () => (await tlsConnections('resumed')) >= 1, { what: 'the restarted fulcrum counts a resumed TLS connection', timeoutMs: 20_000 });
    // The resumed connection is served: the restarted fulcrum's clusters sent on it and ACKed.
    await waitFor(
      () => {
        const record = r().fulcrum.registry.list().find((p) => p.node.id === 'web-r');
        return syncState(record?.types.get(CLUSTER_TYPE)) === 'SYNCED';
      },
      { what: "web-r ACKs the restarted fulcrum's clusters", timeoutMs: 20_000 },
    );
    expect(await web.stat('control_plane.connected_state')).toBe(1);
    expect(await tlsConnections('resumed_refused')).toBe(0);
  }, scaled(90_000));

  it('a server certificate rotated on disk is served to new connections without a restart', async () => {
    // A proxy connected before the rotation (its listener may clash with another web Envoy's port: only its stream matters here).
    await envoy('web-0', 'web', pki.web);
    await waitFor(() => connectedNodes().includes('web-0'), { what: 'web-0 connected before the rotation', timeoutMs: 20_000 });
    const before = await servedCertificate(r().fulcrum.xdsPort);
    // The new certificate chains to a second CA: an Envoy that trusts only that CA can connect only after the reload.
    const rotated = await issue(pki.ca2, 'server-rotated', ['DNS:localhost', 'IP:127.0.0.1']);
    // Key first, then certificate, each by rename: between the two the files do not match, and the old pair must stay.
    await rename(rotated.key, pki.server.key);
    await rename(rotated.cert, pki.server.cert);
    await waitFor(async () => (await servedCertificate(r().fulcrum.xdsPort)).fingerprint256 !== before.fingerprint256, {
      what: 'the xDS port serves the rotated certificate',
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    const after = await servedCertificate(r().fulcrum.xdsPort);
    expect(after.issuer.CN).toBe('ca2');
    const reloads = await r().fulcrum.metrics.registry.getSingleMetric('fulcrum_xds_tls_reloads_total')?.get();
    expect(reloads?.values.find((v) => v.labels.result === 'reloaded')?.value).toBeGreaterThanOrEqual(1);
    const fresh = await envoy('web-2', 'web', pki.web, pki.ca2.cert);
    await waitFor(() => connectedNodes().includes('web-2'), { what: 'an Envoy trusting only the new CA connects', timeoutMs: 20_000 });
    expect(await fresh.stat('control_plane.connected_state')).toBe(1);
    // The proxy connected before the rotation keeps its stream.
    expect(connectedNodes()).toContain('web-0');
  }, scaled(60_000));
});
