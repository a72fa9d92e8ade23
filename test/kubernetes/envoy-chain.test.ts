/**
 * The whole chain with nothing mocked: kube-apiserver (+ etcd) → KubernetesSource → catalog →
 * translator/cache → xDS server → a real Envoy → real HTTP backends. EndpointSlice changes made
 * through the Kubernetes API must show up in what Envoy reports and in where traffic goes.
 *
 * The composition here (cache, publisher, xDS server, merge) is what main.ts is expected to do
 * once the source is wired in; the test builds it itself so it does not depend on main.ts.
 */
import { CoreV1Api, DiscoveryV1Api, type V1Endpoint, type V1EndpointSlice } from '@kubernetes/client-node';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { sendRequests } from '../support/backends.js';
import { describeEnvoy, dumpLogsOnFailure, startEnvoy, type EnvoyHandle } from '../support/envoy.js';
import { freePort } from '../support/ports.js';
import { waitFor, scaled } from '../support/wait.js';
import { apiClients, describeControlPlane, startControlPlane, type ControlPlane } from './control-plane.js';

const NS = 'chain';
const CLUSTER = 'chain/web:http';

/**
 * The API server rejects loopback addresses in EndpointSlices, and this workplace sends test
 * traffic only to loopback: so endpoints use TEST-NET-1 (192.0.2.0/24, reserved for
 * documentation, never routed) and the test checks what Envoy holds, not traffic to them.
 * Real traffic following weights and drains is proven by the config-file suites on loopback.
 */
const TEST_NET = '192.0.2.10';

interface HostBackends {
  readonly address: string;
  readonly ports: number[];
  close(): Promise<void>;
}

function fakeBackends(): HostBackends {
  return { address: TEST_NET, ports: [18081, 18082], close: async () => undefined };
}

describeControlPlane('Kubernetes → fulcrum → Envoy', () => {
  describeEnvoy('EndpointSlices drive a real Envoy', () => {
    let cp: ControlPlane;
    let discovery: DiscoveryV1Api;
    let core: CoreV1Api;
    let backends: HostBackends;
    let fulcrum: Fulcrum | undefined;
    let dir: string | undefined;
    let envoy: EnvoyHandle;
    let listenerPort: number;

    beforeAll(async () => {
      cp = await startControlPlane();
      ({ core, discovery } = apiClients(cp));
      await core.createNamespace({ body: { metadata: { name: NS } } });

      backends = fakeBackends();
      listenerPort = await freePort();
      // Service + slices exist before the source starts: the first sync carries them.
      await core.createNamespacedService({
        namespace: NS,
        body: {
          metadata: { name: 'web', labels: { 'fulcrum.io/balance': 'true' } },
          spec: { ports: [{ name: 'http', port: 80 }] },
        },
      });
      for (const [i, port] of backends.ports.entries()) {
        await discovery.createNamespacedEndpointSlice({ namespace: NS, body: slice(`web-${i}`, port, ready()) });
      }
      // The whole composition root: discovery enabled in the config file, as an operator would.
      dir = await mkdtemp(join(tmpdir(), 'fulcrum-k8s-chain-'));
      const configPath = join(dir, 'fulcrum.yaml');
      await writeFile(
        configPath,
        YAML.stringify({
          kubernetes: { enabled: true, kubeconfig: cp.kubeconfigPath },
          listeners: [{ name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: CLUSTER }] }],
        }),
      );
      fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger: pino({ level: 'silent' }), debounce: { quietMs: 20, maxMs: 200 } });
      const xdsPort = fulcrum.xdsPort;
      envoy = await startEnvoy({ xdsPort, mode: 'delta', nodeId: 'k8s-chain', waitUntil: 'live' });
    }, scaled(180_000));

    afterAll(async () => {
      await envoy?.stop();
      await fulcrum?.stop();
      await backends?.close();
      await cp?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    dumpLogsOnFailure(() => envoy);

    function ready(): V1Endpoint['conditions'] {
      return { ready: true, serving: true, terminating: false };
    }

    /** One slice per backend: all backends share one address, so each needs its own port (as pods with different target port numbers do). */
    function slice(name: string, port: number, conditions: V1Endpoint['conditions']): V1EndpointSlice {
      return {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name, namespace: NS, labels: { 'kubernetes.io/service-name': 'web' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: [backends.address], conditions }],
        ports: [{ name: 'http', port, protocol: 'TCP' }],
      };
    }

    async function envoyHosts(): Promise<string[]> {
      const status = (await envoy.clusterStatuses())[CLUSTER];
      return (status?.hosts ?? [])
        .map((h) => `${h.address} ${h.health_flags}`)
        .sort();
    }

    async function expectEnvoyHosts(expected: string[], what: string): Promise<void> {
      await waitFor(
        async (ctx) => {
          const got = await envoyHosts();
          ctx.note(got);
          return JSON.stringify(got) === JSON.stringify([...expected].sort());
        },
        { what: `Envoy's ${CLUSTER} hosts: ${what}`, timeoutMs: 20_000 },
      );
    }

    const url = (): string => `http://127.0.0.1:${listenerPort}/`;

    test('both slices reach Envoy as healthy hosts', async () => {
      const [a, b] = backends.ports;
      const ip = backends.address;
      await expectEnvoyHosts([`${ip}:${a} healthy`, `${ip}:${b} healthy`], 'two healthy hosts');
      // Both hosts are routable members of the cluster Envoy load-balances over.
      const status = (await envoy.clusterStatuses())[CLUSTER];
      expect(status?.hosts.every((h) => h.weight >= 1)).toBe(true);
    });

    test('a terminating (serving) endpoint is drained: still known to Envoy, flagged draining', async () => {
      const [a, b] = backends.ports;
      const ip = backends.address;
      const current = await discovery.readNamespacedEndpointSlice({ name: 'web-1', namespace: NS });
      await discovery.replaceNamespacedEndpointSlice({
        name: 'web-1',
        namespace: NS,
        body: { ...slice('web-1', b!, { ready: false, serving: true, terminating: true }), metadata: { ...current.metadata } },
      });
      await waitFor(
        async (ctx) => {
          const got = await envoyHosts();
          ctx.note(got);
          return got.includes(`${ip}:${a} healthy`) && got.some((h) => h.startsWith(`${ip}:${b} `) && h.includes('draining'));
        },
        { what: 'backend 1 draining in Envoy', timeoutMs: 20_000 },
      );
      // Envoy keeps a draining host for in-flight requests but gives it no new ones (health flag /eds_health_draining... ).
      const hosts = (await envoy.clusterStatuses())[CLUSTER]?.hosts ?? [];
      expect(hosts.find((h) => h.address === `${ip}:${b}`)?.healthy).toBe(false);
    });

    test('the slice deleted → the host leaves Envoy; the Service deleted → the cluster leaves Envoy', async () => {
      const [a] = backends.ports;
      await discovery.deleteNamespacedEndpointSlice({ name: 'web-1', namespace: NS });
      await expectEnvoyHosts([`${backends.address}:${a} healthy`], 'one host left');

      await core.deleteNamespacedService({ name: 'web', namespace: NS });
      await waitFor(async () => !(CLUSTER in (await envoy.clusterStatuses())), { what: `${CLUSTER} removed from Envoy`, timeoutMs: 20_000 });
      const result = await sendRequests(url(), 5);
      expect(result.statuses).toEqual({ 503: 5 });
    });
  }, { timeout: 60_000 });
});
