/**
 * The Kubernetes source against a real etcd + kube-apiserver (built by
 * scripts/install-kube-test-binaries.sh): Services and EndpointSlices are created, changed and
 * deleted through the API, the API server is killed and restarted mid-watch, and the source's
 * view must follow every step. No sleeps: every step waits for the expected view.
 */
import {
  CoreV1Api,
  DiscoveryV1Api,
  type V1EndpointSlice,
  type V1Endpoint,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, onTestFailed, test } from 'vitest';
import type { Cluster } from '../../src/catalog/types.js';
import { KubernetesSource, type KubernetesContribution } from '../../src/sources/kubernetes.js';
import { waitFor, scaled } from '../support/wait.js';
import { apiClients, describeControlPlane, startControlPlane, type ControlPlane } from './control-plane.js';

const NS = 'shop';
const CLUSTER = 'shop/web:http';

describeControlPlane('Kubernetes source against a real kube-apiserver', () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  let discovery: DiscoveryV1Api;
  let source: KubernetesSource;
  const emitted: KubernetesContribution[] = [];
  const logs: string[] = [];

  beforeAll(async () => {
    cp = await startControlPlane();
    ({ core, discovery } = apiClients(cp));
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await core.createNode({
      body: {
        metadata: {
          name: 'node-a',
          labels: { 'topology.kubernetes.io/region': 'eu-west-1', 'topology.kubernetes.io/zone': 'eu-west-1a' },
        },
      },
    });
  }, scaled(180_000));

  afterAll(async () => {
    await source?.stop();
    await cp?.stop();
  });

  const failDump = (): void => {
    onTestFailed(() => {
      console.error(
        [
          'source status:',
          JSON.stringify(source?.status(), null, 2),
          'source log (last 30):',
          ...logs.slice(-30),
          cp?.logs() ?? '',
        ].join('\n'),
      );
    });
  };

  const view = (): KubernetesContribution | undefined => source.current();
  const cluster = (name = CLUSTER): Cluster | undefined => view()?.clusters.find((c) => c.name === name);
  const hosts = (c: Cluster | undefined): string[] =>
    (c?.endpoints ?? []).map((e) => `${e.address}:${e.port} ${e.health}${e.locality.zone ? ` ${e.locality.region}/${e.locality.zone}` : ''}`);

  /** Wait until the source's view of CLUSTER is exactly `expected` (sorted host lines). */
  const expectHosts = async (expected: string[], what: string, timeoutMs = 20_000): Promise<void> => {
    await waitFor(
      (ctx) => {
        const got = hosts(cluster());
        ctx.note(got);
        return JSON.stringify(got) === JSON.stringify(expected);
      },
      { what: `${CLUSTER}: ${what}`, timeoutMs },
    );
  };

  const endpoint = (ip: string, conditions: V1Endpoint['conditions'] = { ready: true, serving: true, terminating: false }, zone?: string): V1Endpoint => ({
    addresses: [ip],
    conditions,
    ...(zone ? { zone, nodeName: 'node-a' } : {}),
  });

  const sliceBody = (name: string, endpoints: V1Endpoint[], service = 'web'): V1EndpointSlice => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: NS, labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    endpoints,
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  });

  const putSlice = async (name: string, endpoints: V1Endpoint[]): Promise<void> => {
    const current = await discovery.readNamespacedEndpointSlice({ name, namespace: NS });
    await discovery.replaceNamespacedEndpointSlice({
      name,
      namespace: NS,
      body: { ...sliceBody(name, endpoints), metadata: { ...sliceBody(name, endpoints).metadata, resourceVersion: current.metadata?.resourceVersion } },
    });
  };

  test('starts, syncs an empty view, and picks up a new Service with its EndpointSlices', async () => {
    failDump();
    source = new KubernetesSource({
      kubeconfig: { mode: 'file', path: cp.kubeconfigPath },
      nodeTopology: true,
      debounceQuietMs: 20,
      debounceMaxMs: 200,
      backoffInitialMs: 100,
      backoffMaxMs: 1000,
      onChange: (v) => emitted.push(v),
      logger: {
        debug: (o, m) => logs.push(`${new Date().toISOString()} debug ${m} ${JSON.stringify(o)}`),
        info: (o, m) => logs.push(`${new Date().toISOString()} info ${m} ${JSON.stringify(o)}`),
        warn: (o, m) => logs.push(`${new Date().toISOString()} warn ${m} ${JSON.stringify(o)}`),
      },
    });
    await source.start(AbortSignal.timeout(20_000));
    expect(emitted).toHaveLength(1);
    expect(emitted[0]!.clusters).toEqual([]);

    // A Service without the label, with a slice: never selected.
    await core.createNamespacedService({
      namespace: NS,
      body: { metadata: { name: 'other' }, spec: { ports: [{ name: 'http', port: 80 }] } },
    });
    await discovery.createNamespacedEndpointSlice({ namespace: NS, body: sliceBody('other-1', [endpoint('10.9.0.1')], 'other') });

    await core.createNamespacedService({
      namespace: NS,
      body: {
        metadata: {
          name: 'web',
          labels: { 'fulcrum.io/balance': 'true' },
          annotations: { 'fulcrum.io/lb-policy': 'RING_HASH', 'fulcrum.io/hash-header': 'x-user' },
        },
        // No selector: no controller manages these slices (there is no controller-manager anyway).
        spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'admin', port: 9901 }] },
      },
    });
    await waitFor(() => cluster() !== undefined && cluster('shop/web:admin') !== undefined, { what: 'both web clusters' });
    expect(cluster()).toMatchObject({ lbPolicy: 'RING_HASH', endpoints: [] });
    expect(view()!.hashPolicies.get(CLUSTER)).toEqual({ header: 'x-user' });

    await discovery.createNamespacedEndpointSlice({
      namespace: NS,
      body: sliceBody('web-a', [endpoint('10.1.0.1', undefined, 'eu-west-1a'), endpoint('10.1.0.2')]),
    });
    await expectHosts(['10.1.0.1:8080 HEALTHY eu-west-1/eu-west-1a', '10.1.0.2:8080 HEALTHY'], 'first slice');
    // The slice only has the 'http' port: the admin cluster stays empty.
    expect(cluster('shop/web:admin')?.endpoints).toEqual([]);
    expect(view()!.clusters.map((c) => c.name)).toEqual(['shop/web:admin', 'shop/web:http']);
  });

  test('a namespaced source (namespaced list and watch paths) sees only its namespace', async () => {
    failDump();
    await core.createNamespace({ body: { metadata: { name: 'elsewhere' } } });
    const views: Record<string, KubernetesContribution | undefined> = {};
    const scoped = ['shop', 'elsewhere'].map(
      (namespace) =>
        new KubernetesSource({ kubeconfig: { mode: 'file', path: cp.kubeconfigPath, context: 'test' }, namespace, onChange: (v) => (views[namespace] = v) }),
    );
    try {
      await Promise.all(scoped.map((s) => s.start(AbortSignal.timeout(20_000))));
      await waitFor(() => views.shop?.clusters.find((c) => c.name === CLUSTER)?.endpoints.length === 2, { what: 'namespaced source to see shop/web:http' });
      expect(views.elsewhere?.clusters).toEqual([]);
    } finally {
      await Promise.all(scoped.map((s) => s.stop()));
    }
  });

  test('several slices are unioned and deduplicated; scale up and down', async () => {
    failDump();
    await discovery.createNamespacedEndpointSlice({
      namespace: NS,
      body: sliceBody('web-b', [endpoint('10.1.0.2'), endpoint('10.1.0.3'), endpoint('10.1.0.4')]),
    });
    await expectHosts(
      ['10.1.0.1:8080 HEALTHY eu-west-1/eu-west-1a', '10.1.0.2:8080 HEALTHY', '10.1.0.3:8080 HEALTHY', '10.1.0.4:8080 HEALTHY'],
      'two slices, one duplicate',
    );

    await putSlice('web-b', [endpoint('10.1.0.3')]);
    await expectHosts(['10.1.0.1:8080 HEALTHY eu-west-1/eu-west-1a', '10.1.0.2:8080 HEALTHY', '10.1.0.3:8080 HEALTHY'], 'web-b scaled down');

    await putSlice('web-b', [endpoint('10.1.0.3'), endpoint('10.1.0.5'), endpoint('10.1.0.6')]);
    await expectHosts(
      ['10.1.0.1:8080 HEALTHY eu-west-1/eu-west-1a', '10.1.0.2:8080 HEALTHY', '10.1.0.3:8080 HEALTHY', '10.1.0.5:8080 HEALTHY', '10.1.0.6:8080 HEALTHY'],
      'web-b scaled up',
    );
  });

  test('not ready → UNHEALTHY, terminating but serving → DRAINING, slice deleted → its endpoints gone', async () => {
    failDump();
    await putSlice('web-b', [
      endpoint('10.1.0.3', { ready: false, serving: false, terminating: false }),
      endpoint('10.1.0.5', { ready: false, serving: true, terminating: true }),
      endpoint('10.1.0.6'),
    ]);
    await expectHosts(
      ['10.1.0.1:8080 HEALTHY eu-west-1/eu-west-1a', '10.1.0.2:8080 HEALTHY', '10.1.0.3:8080 UNHEALTHY', '10.1.0.5:8080 DRAINING', '10.1.0.6:8080 HEALTHY'],
      'conditions',
    );

    await discovery.deleteNamespacedEndpointSlice({ name: 'web-b', namespace: NS });
    await expectHosts(['10.1.0.1:8080 HEALTHY eu-west-1/eu-west-1a', '10.1.0.2:8080 HEALTHY'], 'web-b deleted');
  });

  test("a change to one Service's slices leaves every other cluster the same object", async () => {
    failDump();
    await core.createNamespacedService({
      namespace: NS,
      body: { metadata: { name: 'api', labels: { 'fulcrum.io/balance': 'true' } }, spec: { ports: [{ name: 'http', port: 80 }] } },
    });
    await discovery.createNamespacedEndpointSlice({ namespace: NS, body: sliceBody('api-a', [endpoint('10.2.0.1')], 'api') });
    await waitFor(() => cluster('shop/api:http')?.endpoints.length === 1, { what: 'the api cluster' });
    const [web, admin, before] = [cluster(), cluster('shop/web:admin'), view()];

    const current = await discovery.readNamespacedEndpointSlice({ name: 'api-a', namespace: NS });
    const body = sliceBody('api-a', [endpoint('10.2.0.1', { ready: false, serving: false, terminating: false })], 'api');
    await discovery.replaceNamespacedEndpointSlice({ name: 'api-a', namespace: NS, body: { ...body, metadata: { ...body.metadata, resourceVersion: current.metadata?.resourceVersion } } });
    await waitFor(() => cluster('shop/api:http')?.endpoints[0]?.health === 'UNHEALTHY', { what: 'the api endpoint unready' });
    expect(view()).not.toBe(before);
    // Every stage after discovery finds changed clusters by identity: the web clusters did not change.
    expect(cluster()).toBe(web);
    expect(cluster('shop/web:admin')).toBe(admin);

    await core.deleteNamespacedService({ name: 'api', namespace: NS });
    await discovery.deleteNamespacedEndpointSlice({ name: 'api-a', namespace: NS });
    await waitFor(() => cluster('shop/api:http') === undefined, { what: 'the api cluster gone' });
  });

  test('the API server is killed and restarted mid-watch: the last view holds, then changes flow again', async () => {
    failDump();
    const before = view();
    const admin = cluster('shop/web:admin');
    const emitsBefore = source.status().emits;
    logs.push(`${new Date().toISOString()} test: kill kube-apiserver`);
    await cp.stopApiServer('SIGKILL');
    // The informers notice (watch connection closed, reconnects refused) and back off.
    await waitFor(() => source.status().informers.every((i) => i.errors > 0), { what: 'every informer to see the outage', timeoutMs: 20_000 });
    expect(view()).toBe(before); // fail static: nothing emitted while the API server is away
    expect(source.status().emits).toBe(emitsBefore);

    await cp.startApiServer();
    logs.push(`${new Date().toISOString()} test: kube-apiserver ready again`);
    await putSlice('web-a', [endpoint('10.1.0.1', undefined, 'eu-west-1a'), endpoint('10.1.0.2'), endpoint('10.1.0.7')]);
    await expectHosts(['10.1.0.1:8080 HEALTHY eu-west-1/eu-west-1a', '10.1.0.2:8080 HEALTHY', '10.1.0.7:8080 HEALTHY'], 'change after restart', 30_000);

    // Again, and change something the moment it is back, while the informers are still reconnecting.
    // (SIGKILL again: with watches open, a SIGTERM'd kube-apiserver drains for a long time.)
    await cp.stopApiServer('SIGKILL');
    await cp.startApiServer();
    await discovery.createNamespacedEndpointSlice({ namespace: NS, body: sliceBody('web-c', [endpoint('10.1.0.8')]) });
    await expectHosts(
      ['10.1.0.1:8080 HEALTHY eu-west-1/eu-west-1a', '10.1.0.2:8080 HEALTHY', '10.1.0.7:8080 HEALTHY', '10.1.0.8:8080 HEALTHY'],
      'slice created right after a restart',
      30_000,
    );
    // Both restarts made the watches resume from a resourceVersion the new API server's watch cache
    // no longer had, at least for some informer: 410 Gone, then a relist.
    expect(source.status().informers.some((i) => i.lists > 1)).toBe(true);
    // A relist makes every object new; a cluster whose content did not change is still the same object.
    expect(cluster('shop/web:admin')).toBe(admin);
  }, scaled(120_000));

  test('annotation change updates the policy; Service deleted → its clusters disappear', async () => {
    failDump();
    const svc = await core.readNamespacedService({ name: 'web', namespace: NS });
    await core.replaceNamespacedService({
      name: 'web',
      namespace: NS,
      body: { ...svc, metadata: { ...svc.metadata, annotations: { 'fulcrum.io/lb-policy': 'LEAST_REQUEST' } } },
    });
    await waitFor(() => cluster()?.lbPolicy === 'LEAST_REQUEST' && view()!.hashPolicies.size === 0, { what: 'policy change' });

    await core.deleteNamespacedService({ name: 'web', namespace: NS });
    await waitFor(() => view()!.clusters.length === 0, { what: 'every web cluster to disappear' });
    // The slices still exist (nothing garbage-collects them here) but belong to no selected Service.
    const slices = await discovery.listNamespacedEndpointSlice({ namespace: NS });
    expect(slices.items.length).toBeGreaterThan(0);
  });

  test('a Service deleted then created again under the same name is discovered again, with its slices', async () => {
    failDump();
    const before = source.status().emits;
    await core.createNamespacedService({
      namespace: NS,
      body: { metadata: { name: 'web', labels: { 'fulcrum.io/balance': 'true' } }, spec: { ports: [{ name: 'http', port: 80 }] } },
    });
    // The slices outlived the Service (nothing garbage-collects them here): the new Service takes them.
    await expectHosts(['10.1.0.1:8080 HEALTHY eu-west-1/eu-west-1a', '10.1.0.2:8080 HEALTHY', '10.1.0.7:8080 HEALTHY', '10.1.0.8:8080 HEALTHY'], 'web again');
    expect(cluster()?.lbPolicy).toBe('ROUND_ROBIN'); // the old Service's annotations went with it
    expect(source.status().emits).toBeGreaterThan(before);
  });

  test('stop() ends the informers; later changes are not emitted', async () => {
    failDump();
    await source.stop();
    const emits = source.status().emits;
    await core.createNamespacedService({
      namespace: NS,
      body: { metadata: { name: 'late', labels: { 'fulcrum.io/balance': 'true' } }, spec: { ports: [{ port: 80 }] } },
    });
    // Give a running informer every chance to deliver (one round trip through the API server).
    await core.readNamespacedService({ name: 'late', namespace: NS });
    await core.listNamespacedService({ namespace: NS });
    expect(source.status().emits).toBe(emits);
  });
});
