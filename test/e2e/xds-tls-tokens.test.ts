import * as grpc from '@grpc/grpc-js';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodeReportResponse, encodeReportRequest, REPORT_METHOD_PATH, type WireReportResponse } from '../../src/signals/report-grpc.js';
import { sendRequests } from '../support/backends.js';
import { envoyXdsTls, opensslFound, refusedCalls, serverPki } from '../support/certs.js';
import { describeRequiring } from '../support/requires.js';
import { describeEnvoy, dumpListenerNames, type Bootstrap, type EnvoyHandle } from '../support/envoy.js';
import { startGrpcServers, type GrpcTestServers } from '../support/grpc-whoami.js';
import { startXdsClient, tally } from '../support/grpc-xds.js';
import { startOrcaBackends, type OrcaBackends } from '../support/orca-backends.js';
import { startRig, type Rig } from '../support/rig.js';
import { scaled, waitFor } from '../support/wait.js';

/**
 * TLS without client certificates: proxies and agents authenticate with bearer tokens in gRPC
 * metadata (roles `proxy` and `report`). A real Envoy 1.40 over TLS with and without a proxy
 * token; reports over TLS with and without a report token (and Envoy's LRS, which has none);
 * the proxyless @grpc/grpc-js-xds client over TLS from its bootstrap's channel_creds.
 */

const PROXY_TOKEN = 'proxy-token-for-tests';
const REPORT_TOKEN = 'report-token-for-tests';

type Pki = Awaited<ReturnType<typeof serverPki>> & { dir: string };

async function makePki(name: string): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), `fulcrum-${name}-`));
  return { dir, ...(await serverPki(dir)) };
}

/** Envoy's ADS stream sends `authorization: Bearer <token>` as initial metadata. */
const withToken =
  (token: string) =>
  (bootstrap: Bootstrap): void => {
    const ads = (bootstrap.dynamic_resources as { ads_config: { grpc_services: Record<string, unknown>[] } }).ads_config;
    for (const svc of ads.grpc_services) svc.initial_metadata = [{ key: 'authorization', value: `Bearer ${token}` }];
  };

describeEnvoy('xDS over TLS with bearer tokens, and a real Envoy', () => {
  let pki: Pki;
  let rig: Rig<OrcaBackends> | undefined;
  let client: grpc.Client | undefined;
  const r = (): Rig<OrcaBackends> => {
    if (!rig) throw new Error('rig not started');
    return rig;
  };

  const refused = (surface: string, reason: string): Promise<number> => refusedCalls(r().fulcrum, surface, reason);

  const envoy = (nodeId: string, token?: string): Promise<EnvoyHandle> =>
    r().addEnvoy({
      nodeId,
      name: `envoy-${nodeId}`,
      patchBootstrap: (b) => {
        envoyXdsTls(pki.ca.cert)(b);
        if (token !== undefined) withToken(token)(b);
      },
    });

  function report(samples: object[], token?: string): Promise<WireReportResponse> {
    const c = (client ??= new grpc.Client(`127.0.0.1:${r().fulcrum.xdsPort}`, grpc.credentials.createSsl(readFileSync(pki.ca.cert))));
    const metadata = new grpc.Metadata();
    if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
    return new Promise((resolve, reject) =>
      c.makeUnaryRequest(REPORT_METHOD_PATH, (b: Buffer) => b, decodeReportResponse, encodeReportRequest({ reporter: 'tls-agent', samples }), metadata, (err, res) =>
        err || !res ? reject(err ?? new Error('no response')) : resolve(res),
      ),
    );
  }

  beforeAll(async () => {
    pki = await makePki('tls-tokens');
    rig = await startRig({
      name: 'tls-tokens',
      backends: () => startOrcaBackends([{ format: 'none' }, { format: 'none' }]),
      config: ({ backends, listenerPort }) => ({
        server: { xds: { tls: { certFile: pki.server.cert, keyFile: pki.server.key } }, loadReporting: { intervalMs: 500 }, engine: { tickMs: 500 } },
        clusters: [
          {
            name: 'web',
            weighting: { policy: 'pid', setpoint: 'mean', metric: 'cpu' },
            endpoints: backends.list.map((b) => ({ address: '127.0.0.1', port: b.port, weight: 100 })),
          },
        ],
        listeners: [{ name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'web' }] }],
      }),
      fulcrum: { auth: { adminTokens: [], readTokens: [], reportTokens: [REPORT_TOKEN], proxyTokens: [PROXY_TOKEN] } },
      envoy: false,
    });
  }, scaled(60_000));

  afterAll(async () => {
    client?.close();
    await rig?.stop();
    if (pki) await rm(pki.dir, { recursive: true, force: true });
  });

  it('an Envoy presenting a proxy token is served over TLS; without one, or with a report token, it is refused', async () => {
    const before = { none: await refused('xds', 'no_credentials'), role: await refused('xds', 'wrong_role') };
    const good = await envoy('tls-proxy', PROXY_TOKEN);
    await good.waitForListener('ingress', 20_000);
    const traffic = await sendRequests(r().url, 50, { concurrency: 4 });
    expect(traffic.errors).toBe(0);

    const anonymous = await envoy('tls-anonymous');
    const reporter = await envoy('tls-wrong-role', REPORT_TOKEN);
    await waitFor(async () => (await refused('xds', 'no_credentials')) > before.none && (await refused('xds', 'wrong_role')) > before.role, {
      what: 'the Envoy without a token refused (UNAUTHENTICATED) and the one with a report token too (PERMISSION_DENIED)',
      timeoutMs: 20_000,
    });
    for (const e of [anonymous, reporter]) expect(dumpListenerNames(await e.configDump())).toEqual([]);
    const nodes = r().fulcrum.registry.list().map((p) => p.node.id);
    expect(nodes).toContain('tls-proxy');
    expect(nodes).not.toContain('tls-anonymous');
    expect(nodes).not.toContain('tls-wrong-role');
  });

  it("reports and Envoy's LRS without a report token are refused and change no weight; with one, reports steer weights", async () => {
    const [busy, idle] = r().backends.list;
    if (!busy || !idle) throw new Error('two backends expected');
    const samples = (): object[] => {
      const now = Date.now();
      const time = { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1e6 };
      return [
        { cluster: 'web', endpoint: busy.key, time, cpu: 0.9 },
        { cluster: 'web', endpoint: idle.key, time, cpu: 0.2 },
      ];
    };
    const envoyWeights = async (): Promise<number[]> => {
      const hosts = (await r().envoy.clusterStatuses()).web?.hosts ?? [];
      return [busy, idle].map((b) => hosts.find((h) => h.address === b.key)?.weight ?? 0);
    };

    // The token-less proxy Envoy's LRS stream is refused: it carries no report token.
    await waitFor(async () => (await refused('report', 'no_credentials')) > 0, { what: "Envoy's LRS refused", timeoutMs: 20_000 });
    await expect(report(samples())).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    await expect(report(samples(), PROXY_TOKEN)).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED });
    await expect(report(samples(), 'not-a-token')).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    expect(r().fulcrum.signals.store.latest('web', busy.key)).toBeUndefined();
    const [w0, w1] = await envoyWeights();
    expect(w0).toBeGreaterThan(0);
    expect(w0).toBe(w1);

    const agent = setInterval(() => void report(samples(), REPORT_TOKEN).catch(() => undefined), 250);
    try {
      expect((await report(samples(), REPORT_TOKEN)).accepted).toBe(2);
      await waitFor(
        async (ctx) => {
          const [b, i] = await envoyWeights();
          ctx.note({ busy: b, idle: i });
          return b !== undefined && i !== undefined && b > 0 && i / b >= 1.5;
        },
        { what: 'authenticated reports move weight to the idle backend in Envoy', timeoutMs: 40_000, intervalMs: 250 },
      );
    } finally {
      clearInterval(agent);
    }
  }, scaled(90_000));
});

/**
 * grpc-js-xds 1.14 knows two channel_creds: `insecure` and `google_default` (TLS with the default
 * roots, composed with Google call credentials). Its TLS here trusts the test CA through
 * GRPC_DEFAULT_SSL_ROOTS_FILE_PATH; the call credentials come from a made-up service account
 * key, which google-auth-library turns into a self-signed JWT without any network call.
 */
describeRequiring('openssl', opensslFound(), 'proxyless gRPC (@grpc/grpc-js-xds) over TLS', () => {
  let pki: Pki;
  let servers: GrpcTestServers;
  let rig: Rig<GrpcTestServers> | undefined;

  beforeAll(async () => {
    pki = await makePki('proxyless-tls');
    servers = await startGrpcServers(2, 'tls');
    rig = await startRig({
      name: 'proxyless-tls',
      backends: () => Promise.resolve(servers),
      config: () => ({
        server: { xds: { tls: { certFile: pki.server.cert, keyFile: pki.server.key } } },
        clusters: [{ name: 'greeter-backends', http2: true, endpoints: servers.list.map((s) => ({ address: s.host, port: s.port })) }],
        listeners: [{ name: 'greeter', apiListener: true, routes: [{ prefix: '/', cluster: 'greeter-backends' }] }],
      }),
      envoy: false,
    });
  }, scaled(60_000));

  afterAll(async () => {
    await rig?.stop();
    if (pki) await rm(pki.dir, { recursive: true, force: true });
  });

  it('connects with channel_creds google_default, trusting the test CA, and routes calls', async (ctx) => {
    if (!rig) throw new Error('rig not started');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const account = join(pki.dir, 'service-account.json');
    await writeFile(
      account,
      JSON.stringify({
        type: 'service_account',
        project_id: 'fulcrum-test',
        private_key_id: 'test',
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        client_email: 'proxyless@fulcrum-test.iam.gserviceaccount.com',
        client_id: '1',
      }),
    );
    const client = await startXdsClient({
      xdsPort: rig.fulcrum.xdsPort,
      nodeId: 'proxyless-tls',
      channelCreds: [{ type: 'google_default' }],
      env: { GRPC_DEFAULT_SSL_ROOTS_FILE_PATH: pki.ca.cert, GOOGLE_APPLICATION_CREDENTIALS: account },
      trace: 'xds_client',
    });
    rig.onStop(() => client.stop());
    ctx.onTestFailed(() => console.error(`--- grpc-xds-client trace (tail):\n${client.traceSummary(20_000)}`));
    const results = await waitFor(
      async (ctx) => {
        const batch = await client.call('xds:///greeter', { count: 4, deadlineMs: 3_000 });
        ctx.note(tally(batch));
        return batch.every((b) => b.server !== undefined) ? batch : undefined;
      },
      { what: 'calls through xds:///greeter succeed', timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(new Set(results.map((b) => b.server))).toEqual(new Set(servers.list.map((s) => s.id)));
    const proxy = rig.fulcrum.registry.list().find((p) => p.node.id === 'proxyless-tls');
    expect(proxy?.peer).toBeDefined();
  }, scaled(90_000));
});
