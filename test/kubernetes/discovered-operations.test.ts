/**
 * Operators act on Kubernetes-discovered clusters, nothing mocked: kube-apiserver (+ etcd) →
 * fulcrum (its composition root, SQLite data dir) → a real Envoy. A discovered cluster is listed
 * by /v1/clusters with owner kubernetes; draining one of its endpoints through the admin API
 * reaches Envoy over EDS as DRAINING and /v1/weights agrees; the drain is an override in the
 * store, so a fulcrum restarted on the same data directory serves it again (to a fresh Envoy);
 * a PUT of the Service-owned spec is refused with 409 DISCOVERED_READ_ONLY; a policy change
 * reaches Envoy; a drained pod that goes away and comes back is drained again; an auto policy
 * with session affinity puts its hash policy on the route to the cluster.
 */
import type { DiscoveryV1Api, V1EndpointSlice } from '@kubernetes/client-node';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import YAML from 'yaml';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { describeEnvoy, dumpLogsOnFailure, startEnvoy, type EnvoyHandle } from '../support/envoy.js';
import { freePort } from '../support/ports.js';
import { scaled, waitFor } from '../support/wait.js';
import { apiClients, describeControlPlane, startControlPlane, type ControlPlane } from './control-plane.js';

const NS = 'ops';
const CLUSTER = 'ops/web:http';
const URL_NAME = encodeURIComponent(CLUSTER);
/** TEST-NET-1: the API server refuses loopback endpoints (see envoy-chain.test.ts); Envoy's view is checked, not traffic. */
const IP = '192.0.2.20';
const PORTS = [18091, 18092] as const;
const DRAINED = `${IP}:${PORTS[1]}`;

describeControlPlane('operating Kubernetes-discovered clusters', () => {
  describeEnvoy('drain through the admin API → EDS, /v1/weights, restart', () => {
    let cp: ControlPlane;
    let dir: string;
    let configPath: string;
    let fulcrum: Fulcrum | undefined;
    let envoy: EnvoyHandle | undefined;
    let discovery: DiscoveryV1Api;

    const start = async (): Promise<Fulcrum> =>
      startFulcrum({
        configPath,
        dataDir: join(dir, 'data'),
        xdsPort: 0,
        xdsAddress: '127.0.0.1',
        auth: { adminTokens: [], readTokens: [] },
        logger: pino({ level: 'silent' }),
        debounce: { quietMs: 20, maxMs: 200 },
      });

    const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, any> }> => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const res = await fetch(`http://127.0.0.1:${fulcrum?.adminPort}${path}`, {
        method,
        ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
      });
      return { status: res.status, body: (await res.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
    };

    const envoyHealth = async (): Promise<Record<string, string>> => {
      const hosts = (await envoy?.clusterStatuses())?.[CLUSTER]?.hosts ?? [];
      return Object.fromEntries(hosts.map((h) => [h.address, h.health_flags]));
    };

    const expectEnvoyDraining = (what: string) =>
      waitFor(
        async (ctx) => {
          const got = await envoyHealth();
          ctx.note(got);
          return got[`${IP}:${PORTS[0]}`] === 'healthy' && (got[DRAINED] ?? '').includes('draining');
        },
        { what, timeoutMs: scaled(30_000) },
      );

    /** Each endpoint's health in /v1/weights, and in its explanation once the engine has ticked. */
    const weightsHealth = async (): Promise<Record<string, string>> => {
      const res = await api('GET', `/v1/weights/${URL_NAME}`);
      const endpoints: { endpoint: string; health: string; explanation?: { health: string } }[] = res.body.endpoints ?? [];
      return Object.fromEntries(endpoints.map((e) => [e.endpoint, res.body.computed ? `${e.health}/${e.explanation?.health}` : e.health]));
    };

    beforeAll(async () => {
      cp = await startControlPlane();
      const clients = apiClients(cp);
      const { core } = clients;
      discovery = clients.discovery;
      await core.createNamespace({ body: { metadata: { name: NS } } });
      await core.createNamespacedService({
        namespace: NS,
        body: { metadata: { name: 'web', labels: { 'fulcrum.io/balance': 'true' } }, spec: { ports: [{ name: 'http', port: 80 }] } },
      });
      for (const [i, port] of PORTS.entries()) await discovery.createNamespacedEndpointSlice({ namespace: NS, body: slice(`web-${i}`, port) });
      dir = await mkdtemp(join(tmpdir(), 'fulcrum-k8s-ops-'));
      configPath = join(dir, 'fulcrum.yaml');
      const listenerPort = await freePort();
      await writeFile(
        configPath,
        YAML.stringify({
          kubernetes: { enabled: true, kubeconfig: cp.kubeconfigPath },
          listeners: [{ name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: CLUSTER }] }],
        }),
      );
      fulcrum = await start();
      envoy = await startEnvoy({ xdsPort: fulcrum.xdsPort, mode: 'delta', nodeId: 'k8s-ops', waitUntil: 'live' });
    }, scaled(180_000));

    afterAll(async () => {
      await envoy?.stop();
      await fulcrum?.stop();
      await cp?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    dumpLogsOnFailure(() => envoy);

    test('the discovered cluster is listed with owner kubernetes and its spec is read-only (409)', async () => {
      await waitFor(async () => (await api('GET', '/v1/clusters')).body.clusters?.some((c: { name: string }) => c.name === CLUSTER), {
        what: `${CLUSTER} in /v1/clusters`,
        timeoutMs: scaled(30_000),
      });
      const one = await api('GET', `/v1/clusters/${URL_NAME}`);
      expect(one.body).toMatchObject({ name: CLUSTER, owner: 'kubernetes' });
      expect(one.body.endpoints.map((e: { address: string; port: number }) => `${e.address}:${e.port}`)).toEqual(PORTS.map((p) => `${IP}:${p}`));
      const put = await api('PUT', `/v1/clusters/${URL_NAME}`, { lbPolicy: 'RANDOM' });
      expect(put.status).toBe(409);
      expect(put.body.code).toBe('DISCOVERED_READ_ONLY');
      expect(put.body.message).toContain('Kubernetes Service');
    });

    test('drain → Envoy gets the endpoint DRAINING over EDS and /v1/weights agrees', async () => {
      const drained = await api('POST', `/v1/clusters/${URL_NAME}/endpoints/${IP}/${PORTS[1]}/drain`);
      expect(drained.status).toBe(200);
      expect(drained.body).toMatchObject({ state: 'draining', publishedHealth: 'DRAINING' });
      await expectEnvoyDraining('Envoy: the drained endpoint DRAINING, the other healthy');
      await waitFor(async () => (await weightsHealth())[DRAINED] === 'DRAINING/DRAINING', { what: '/v1/weights: DRAINING', timeoutMs: scaled(20_000) });
      expect((await weightsHealth())[`${IP}:${PORTS[0]}`]).toBe('HEALTHY/HEALTHY');
      const audit = await api('GET', '/v1/audit');
      expect(audit.body.entries?.[0]).toMatchObject({ kind: 'override', name: `${CLUSTER}/${DRAINED}` });
    });

    test('restarted on the same data directory, fulcrum serves the drain again (to a fresh Envoy)', async () => {
      await envoy?.stop();
      envoy = undefined;
      await fulcrum?.stop();
      fulcrum = undefined;
      fulcrum = await start();
      // Discovery syncs in the background after start: the endpoint is there once it has.
      await waitFor(async () => (await api('GET', `/v1/clusters/${URL_NAME}/endpoints/${IP}/${PORTS[1]}`)).body.state === 'draining', {
        what: 'the drained endpoint, rediscovered after the restart, still draining',
        timeoutMs: scaled(30_000),
      });
      envoy = await startEnvoy({ xdsPort: fulcrum.xdsPort, mode: 'sotw', nodeId: 'k8s-ops-2', waitUntil: 'live' });
      await expectEnvoyDraining('a fresh Envoy after the restart: still DRAINING');
      await waitFor(async () => (await weightsHealth())[DRAINED] === 'DRAINING/DRAINING', { what: '/v1/weights after restart', timeoutMs: scaled(20_000) });
    });

    test('a policy change is an override too: Envoy gets the new LB policy; the pod gone and back is drained again', async () => {
      const patched = await api('PATCH', `/v1/clusters/${URL_NAME}/policy`, { lbPolicy: 'RING_HASH' });
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({ lbPolicy: 'RING_HASH', owner: 'kubernetes' });
      await waitFor(async () => JSON.stringify(await envoy?.configDump()).includes('"lb_policy":"RING_HASH"'), {
        what: 'RING_HASH in Envoy',
        timeoutMs: scaled(30_000),
      });
      // Re-discovery: the drained pod's slice goes away (the host leaves Envoy) and comes back (drained again).
      await discovery.deleteNamespacedEndpointSlice({ name: 'web-1', namespace: NS });
      await waitFor(async () => !(DRAINED in (await envoyHealth())), { what: 'the drained host gone from Envoy', timeoutMs: scaled(30_000) });
      const overrides = await api('GET', '/v1/overrides');
      expect(overrides.body.overrides.map((o: { name: string; applies: boolean }) => [o.name, o.applies])).toEqual([
        [CLUSTER, true],
        [`${CLUSTER}/${DRAINED}`, false],
      ]);
      await discovery.createNamespacedEndpointSlice({ namespace: NS, body: slice('web-1', PORTS[1]) });
      await expectEnvoyDraining('the pod back: DRAINING again');
    });

    // The review's finding: the override kept auto's RING_HASH but not the hash policy of the routes
    // to the cluster, so Envoy hashed every request on nothing.
    test('an auto policy with session affinity is an override too: Envoy hashes the route to the cluster on its header', async () => {
      const patched = await api('PATCH', `/v1/clusters/${URL_NAME}/policy`, { weighting: { policy: 'auto', traits: { sessionAffinity: { header: 'x-user' } } } });
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({ lbPolicy: 'RING_HASH', owner: 'kubernetes' });
      await waitFor(async () => JSON.stringify(await envoy?.configDump()).includes('"header_name":"x-user"'), {
        what: 'the route hash policy in Envoy',
        timeoutMs: scaled(30_000),
      });
    });

    function slice(name: string, port: number): V1EndpointSlice {
      return {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name, namespace: NS, labels: { 'kubernetes.io/service-name': 'web' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: [IP], conditions: { ready: true, serving: true, terminating: false } }],
        ports: [{ name: 'http', port, protocol: 'TCP' }],
      };
    }
  }, { timeout: 90_000 });
});
