/**
 * examples/kubernetes against the real thing: its rendered objects are created on a real
 * kube-apiserver (server-side validation of every Deployment, Service and ConfigMap), fulcrum
 * runs on deploy/kubernetes/base/fulcrum.yaml (only its addresses moved to loopback), and an Envoy
 * runs on the example's own sidecar bootstrap. The discovered `fulcrum-demo/echo:http` reaches
 * Envoy through the ingress listener's route, with adaptive (pid) weights that follow the load
 * the endpoints report.
 *
 * The API server refuses loopback addresses in EndpointSlices, so the pods' endpoints are
 * TEST-NET-1 addresses (never routed) and their load arrives as reports, not through ORCA on
 * real traffic (ORCA through Envoy's load reports is proven on loopback in the LRS suites).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiscoveryV1Api, KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { describeEnvoy, dumpLogsOnFailure, startEnvoyWithBootstrap, type EnvoyHandle } from '../support/envoy.js';
import { freePort } from '../support/ports.js';
import { scaled, waitFor } from '../support/wait.js';
import { describeControlPlane, startControlPlane, type ControlPlane } from './control-plane.js';

const REPO = new URL('../..', import.meta.url).pathname;
const NS = 'fulcrum-demo';
const CLUSTER = 'fulcrum-demo/echo:http';
const ADMIN_TOKEN = 'example-admin-token';
/** The report token the example's sidecar bootstrap presents on its load reports (README set-up). */
const REPORT_TOKEN = 'fulcrum-demo-report-token';
/** Two small pods (2 workers) and two large ones (8 workers), as the example's Deployments. */
const PODS = [
  { ip: '192.0.2.11', large: false },
  { ip: '192.0.2.12', large: false },
  { ip: '192.0.2.13', large: true },
  { ip: '192.0.2.14', large: true },
];

function kustomize(dir: string): KubernetesObject[] {
  const bin = process.env.KUSTOMIZE_BIN ?? join(REPO, '.tools/bin/kustomize');
  const text = execFileSync(bin, ['build', join(REPO, dir)], { encoding: 'utf8' });
  return YAML.parseAllDocuments(text).map((d) => d.toJS() as KubernetesObject);
}

/** deploy/kubernetes/base/fulcrum.yaml with loopback addresses and the test's kubeconfig. */
function baseConfig(kubeconfig: string, listenerPort: number): string {
  const cfg = YAML.parse(readFileSync(join(REPO, 'deploy/kubernetes/base/fulcrum.yaml'), 'utf8')) as {
    server: { xds: Record<string, unknown>; admin: Record<string, unknown> };
    kubernetes: Record<string, unknown>;
    listeners: { address: string; port: number }[];
  };
  cfg.server.xds.address = '127.0.0.1';
  cfg.server.admin.address = '127.0.0.1';
  cfg.kubernetes.kubeconfig = kubeconfig;
  for (const l of cfg.listeners) {
    l.address = '127.0.0.1';
    l.port = listenerPort;
  }
  return YAML.stringify(cfg);
}

/** The sidecar bootstrap of the example, pointed at this fulcrum (node id and cluster come from flags in the pod). */
function sidecarBootstrap(objects: readonly KubernetesObject[], xdsPort: number): Record<string, unknown> {
  const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === 'envoy-bootstrap') as { data: Record<string, string> } | undefined;
  const text = cm?.data['envoy.yaml'];
  if (text === undefined) throw new Error('examples/kubernetes: no envoy-bootstrap ConfigMap with envoy.yaml');
  const b = YAML.parse(text) as {
    node: Record<string, unknown>;
    admin?: unknown;
    static_resources: { clusters: { name: string; load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: Record<string, unknown> } } }[] }[] } }[] };
  };
  b.node = { ...b.node, id: 'client-0.fulcrum-demo', cluster: 'client' };
  delete b.admin;
  const xds = b.static_resources.clusters.find((c) => c.name === 'fulcrum_xds');
  const socket = xds?.load_assignment.endpoints[0]?.lb_endpoints[0]?.endpoint.address.socket_address;
  if (!socket) throw new Error('examples/kubernetes bootstrap: no fulcrum_xds endpoint');
  socket.address = '127.0.0.1';
  socket.port_value = xdsPort;
  return b;
}

describeControlPlane('examples/kubernetes on a real API server', () => {
  describeEnvoy('the example balances adaptively through discovery and its sidecar bootstrap', () => {
    let cp: ControlPlane;
    let objects: KubernetesObject[];
    let fulcrum: Fulcrum | undefined;
    let envoy: EnvoyHandle | undefined;
    let dir: string | undefined;

    beforeAll(async () => {
      cp = await startControlPlane();
      const kc = new KubeConfig();
      kc.loadFromFile(cp.kubeconfigPath);
      const api = KubernetesObjectApi.makeApiClient(kc);
      objects = kustomize('examples/kubernetes');
      // Namespace first; then every object, validated and stored by the API server for real.
      for (const o of [...objects].sort((a, b) => Number(b.kind === 'Namespace') - Number(a.kind === 'Namespace'))) await api.create(o);
      // No controller-manager runs: the EndpointSlice the controller would write for the pods.
      await kc.makeApiClient(DiscoveryV1Api).createNamespacedEndpointSlice({
        namespace: NS,
        body: {
          metadata: { name: 'echo-pods', namespace: NS, labels: { 'kubernetes.io/service-name': 'echo' } },
          addressType: 'IPv4',
          endpoints: PODS.map((p) => ({ addresses: [p.ip], conditions: { ready: true, serving: true, terminating: false } })),
          ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        },
      });
      dir = await mkdtemp(join(tmpdir(), 'fulcrum-k8s-example-'));
      const configPath = join(dir, 'fulcrum.yaml');
      await writeFile(configPath, baseConfig(cp.kubeconfigPath, await freePort()));
      // Tokens as the base manifests configure them (admin, read, and the demo's report token), so
      // signal ingress is closed to anyone without a report token.
      const auth = { adminTokens: [ADMIN_TOKEN], readTokens: [], reportTokens: [REPORT_TOKEN] };
      fulcrum = await startFulcrum({ configPath, xdsPort: 0, adminPort: 0, logger: pino({ level: 'silent' }), engineTickMs: 500, auth });
      envoy = await startEnvoyWithBootstrap(sidecarBootstrap(objects, fulcrum.xdsPort), { name: 'envoy[k8s-example]', waitUntil: 'live' });
    }, scaled(240_000));

    afterAll(async () => {
      await envoy?.stop();
      await fulcrum?.stop();
      await cp?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    dumpLogsOnFailure(() => envoy);

    test('the sidecar\'s load reports carry the report token and are accepted', async () => {
      await waitFor(async () => ((await envoy?.stat('load_reporter.responses')) ?? 0) >= 1, { what: 'fulcrum answered the sidecar\'s LRS stream', timeoutMs: 30_000 });
      const metrics = await (await fetch(`http://127.0.0.1:${fulcrum?.adminPort}/metrics`)).text();
      expect(metrics).not.toMatch(/fulcrum_grpc_auth_refused_total\{[^}]*surface="report"[^}]*\} [1-9]/);
      expect((await envoy?.stat('load_reporter.errors')) ?? 0).toBe(0);
    });

    test('the API server accepted every object of the example', () => {
      const kinds = objects.map((o) => `${o.kind}/${o.metadata?.name}`);
      expect(kinds).toEqual(expect.arrayContaining(['Service/echo', 'Deployment/echo-small', 'Deployment/echo-large', 'Deployment/client', 'ConfigMap/envoy-bootstrap']));
    });

    test('the sidecar routes its listener to the discovered Service, whose pods get weights that follow their reported load', async () => {
      const admin = `http://127.0.0.1:${fulcrum?.adminPort}`;
      const hosts = async (): Promise<Map<string, number>> =>
        new Map(((await envoy?.clusterStatuses())?.[CLUSTER]?.hosts ?? []).map((h) => [h.address.split(':')[0] ?? '', h.weight]));
      await waitFor(async () => (await hosts()).size === PODS.length, { what: `Envoy holds the ${PODS.length} pods of ${CLUSTER}`, timeoutMs: 30_000 });
      const routes = JSON.stringify(await envoy?.configDump());
      expect(routes).toContain(`"cluster":"${CLUSTER}"`);

      // Small pods report hot, large ones cool: the pid policy from the annotation moves traffic to the large ones.
      const report = async (): Promise<void> => {
        const time = Date.now();
        const samples = PODS.map((p) => ({ cluster: CLUSTER, endpoint: `${p.ip}:8080`, time, cpu: p.large ? 0.3 : 0.9 }));
        const res = await fetch(`${admin}/v1/reports`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${REPORT_TOKEN}` },
          body: JSON.stringify({ reporter: 'test', samples }),
        });
        expect(res.status).toBe(200);
      };
      let seen: Map<string, number> = new Map();
      await waitFor(
        async (ctx) => {
          await report();
          seen = await hosts();
          ctx.note([...seen]);
          const small = PODS.filter((p) => !p.large).map((p) => seen.get(p.ip) ?? 0);
          const large = PODS.filter((p) => p.large).map((p) => seen.get(p.ip) ?? 0);
          return Math.min(...large) > 1.5 * Math.max(...small);
        },
        { what: 'Envoy weights the large pods above the small ones', timeoutMs: 60_000, intervalMs: 250 },
      );
      const weights = (await (await fetch(`${admin}/v1/weights/${encodeURIComponent(CLUSTER)}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as {
        policy: string;
        missingSignals?: unknown;
      };
      expect(weights.policy).toBe('pid');
      expect(weights.missingSignals).toBeUndefined();
    });
  }, { timeout: 120_000 });
});
