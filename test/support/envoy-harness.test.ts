/**
 * Self-test of the Envoy harness against the real Envoy, without fulcrum:
 * the example bootstraps validate, startEnvoy() boots them, and a static
 * bootstrap balances real traffic 1:3 across two local backends.
 */
import fs from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import YAML from 'yaml';
import { sendRequests, shares, startBackends, type Backends } from './backends.js';
import {
  buildXdsBootstrap,
  describeEnvoy,
  dumpClusterNames,
  dumpListenerNames,
  dumpLogsOnFailure,
  dumpSection,
  exampleBootstrapPath,
  startEnvoy,
  startEnvoyWithBootstrap,
  validateBootstrap,
  type Bootstrap,
  type EnvoyHandle,
} from './envoy.js';
import { freePort } from './ports.js';
import { waitFor, scaled } from './wait.js';

describeEnvoy('example bootstraps', () => {
  for (const mode of ['sotw', 'delta'] as const) {
    test(`examples/envoy/bootstrap-${mode}.yaml passes envoy --mode validate`, async () => {
      const out = await validateBootstrap(exampleBootstrapPath(mode));
      expect(out).toContain('OK');
    });

    test(`bootstrap-${mode}.yaml has only an ADS config source of the right api_type`, async () => {
      const doc = YAML.parse(fs.readFileSync(exampleBootstrapPath(mode), 'utf8')) as {
        node: { id: string; cluster: string };
        dynamic_resources: Record<string, { api_type?: string; ads?: object; resource_api_version?: string }>;
        static_resources: { clusters: Array<{ name: string }>; listeners?: unknown };
        admin: { address: { socket_address: { address: string; port_value: number } } };
      };
      expect(doc.node).toEqual({ id: 'envoy-1', cluster: 'demo' });
      expect(Object.keys(doc.dynamic_resources).sort()).toEqual(['ads_config', 'cds_config', 'lds_config']);
      expect(doc.dynamic_resources.ads_config?.api_type).toBe(mode === 'delta' ? 'DELTA_GRPC' : 'GRPC');
      expect(doc.dynamic_resources.cds_config).toEqual({ ads: {}, resource_api_version: 'V3' });
      expect(doc.dynamic_resources.lds_config).toEqual({ ads: {}, resource_api_version: 'V3' });
      expect(doc.static_resources.clusters.map((c) => c.name)).toEqual(['fulcrum_xds']);
      expect(doc.static_resources.listeners).toBeUndefined();
      expect(doc.admin.address.socket_address).toEqual({ address: '127.0.0.1', port_value: 9901 });
    });

    test(`startEnvoy({ mode: '${mode}' }) boots the patched example and waits for the control plane`, async () => {
      const xdsPort = await freePort(); // nothing listens: Envoy keeps retrying ADS
      const envoy = await startEnvoy({ xdsPort, mode, nodeId: `harness-${mode}`, nodeCluster: 'harness' });
      try {
        expect(envoy.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        expect(envoy.adminPort).not.toBe(9901);
        // No control plane, so the server is not LIVE: it waits for CDS/LDS.
        expect(['PRE_INITIALIZING', 'INITIALIZING']).toContain(await envoy.serverState());

        const dump = await envoy.configDump();
        const boot = dumpSection(dump, 'BootstrapConfigDump')?.bootstrap as Bootstrap & {
          node: { id: string; cluster: string };
          dynamic_resources: { ads_config: { api_type: string } };
        };
        expect(boot.node.id).toBe(`harness-${mode}`);
        expect(boot.node.cluster).toBe('harness');
        expect(boot.dynamic_resources.ads_config.api_type).toBe(mode === 'delta' ? 'DELTA_GRPC' : 'GRPC');
        expect(dumpClusterNames(dump)).toEqual(['fulcrum_xds']);

        const xds = (await envoy.clusterStatuses()).fulcrum_xds;
        expect(xds?.hosts.map((h) => h.address)).toEqual([`127.0.0.1:${xdsPort}`]);
        // Envoy keeps trying to reach the (absent) control plane.
        await waitFor(
          async ({ note }) => {
            const fails = await envoy.stat('cluster.fulcrum_xds.upstream_cx_connect_fail');
            note(fails);
            return (fails ?? 0) > 0;
          },
          { what: 'a failed connection attempt to the xDS port', timeoutMs: 15_000 },
        );
      } finally {
        await envoy.stop();
      }
      expect(envoy.exitInfo()).toBeDefined();
      expect(fs.existsSync(envoy.dir)).toBe(false);
    });
  }

  test('buildXdsBootstrap output validates too', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'fulcrum-validate-'));
    try {
      for (const mode of ['sotw', 'delta'] as const) {
        const file = path.join(dir, `${mode}.yaml`);
        await writeFile(file, YAML.stringify(await buildXdsBootstrap({ xdsPort: 18123, mode, nodeId: 'x' })));
        await validateBootstrap(file);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a bootstrap Envoy rejects fails startup fast, with its output', async () => {
    const started = Date.now();
    const bad = { static_resources: { clusters: [{ name: 'broken', type: 'NOT_A_TYPE' }] } };
    await expect(startEnvoyWithBootstrap(bad, { name: 'bad-envoy' })).rejects.toThrow(
      /bad-envoy: exited during startup[\s\S]*NOT_A_TYPE/,
    );
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});

/** Static listener `ingress` on `listenerPort` → cluster `web` with the two backends weighted 1:3. */
function staticBootstrap(listenerPort: number, backends: Backends): Bootstrap {
  const [b0, b1] = backends.list;
  if (!b0 || !b1) throw new Error('need two backends');
  return {
    node: { id: 'harness-static', cluster: 'harness' },
    static_resources: {
      listeners: [
        {
          name: 'ingress',
          address: { socket_address: { address: '127.0.0.1', port_value: listenerPort } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type':
                      'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'ingress',
                    route_config: {
                      name: 'local',
                      virtual_hosts: [
                        { name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'web' } }] },
                      ],
                    },
                    http_filters: [
                      {
                        name: 'envoy.filters.http.router',
                        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        {
          name: 'web',
          type: 'STATIC',
          connect_timeout: '1s',
          lb_policy: 'ROUND_ROBIN',
          load_assignment: {
            cluster_name: 'web',
            endpoints: [
              {
                lb_endpoints: [b0, b1].map((b, i) => ({
                  endpoint: { address: { socket_address: { address: b.host, port_value: b.port } } },
                  load_balancing_weight: i === 0 ? 1 : 3,
                })),
              },
            ],
          },
        },
      ],
    },
  };
}

describeEnvoy('harness against a static Envoy', () => {
  let backends: Backends | undefined;
  let envoy: EnvoyHandle | undefined;
  let port = 0;

  beforeAll(async () => {
    backends = await startBackends(2);
    port = await freePort();
    envoy = await startEnvoyWithBootstrap(staticBootstrap(port, backends), { name: 'static-envoy', waitUntil: 'live' });
  }, scaled(30_000));

  afterAll(async () => {
    await envoy?.stop();
    await backends?.close();
  }, scaled(30_000));

  dumpLogsOnFailure(() => envoy);

  const running = (): { envoy: EnvoyHandle; backends: Backends } => {
    if (!envoy || !backends) throw new Error('beforeAll did not complete');
    return { envoy, backends };
  };

  test('listener and server state are visible through the admin API', async () => {
    const { envoy } = running();
    expect(await envoy.serverState()).toBe('LIVE');
    expect(await envoy.listenerPort('ingress')).toBe(port);
    expect(await envoy.waitForListener('ingress')).toBe(port);
    expect(await envoy.listenerPort('no-such-listener')).toBeUndefined();
    const listeners = await envoy.listeners();
    expect(listeners).toEqual([{ name: 'ingress', address: '127.0.0.1', port }]);
  });

  test('configDump returns the static listener and cluster', async () => {
    const { envoy } = running();
    const dump = await envoy.configDump();
    expect(dumpListenerNames(dump)).toEqual(['ingress']);
    expect(dumpClusterNames(dump)).toEqual(['web']);
    const section = dumpSection(dump, 'ListenersConfigDump') as {
      static_listeners: Array<{ listener: { name: string; address: { socket_address: { port_value: number } } } }>;
    };
    expect(section.static_listeners[0]?.listener.address.socket_address.port_value).toBe(port);
    // include_eds adds the endpoint section.
    expect(dumpSection(dump, 'EndpointsConfigDump')).toBeDefined();
  });

  test('parseClusters shows both hosts with their 1:3 weights', async () => {
    const { envoy, backends } = running();
    const web = (await envoy.clusterStatuses()).web;
    expect(web).toBeDefined();
    expect(web?.added_via_api).toBe(false);
    expect(web?.settings['default_priority::max_connections']).toBe('1024');
    const byAddress = Object.fromEntries((web?.hosts ?? []).map((h) => [h.address, h]));
    const [b0, b1] = backends.list;
    const h0 = byAddress[`127.0.0.1:${b0?.port}`];
    const h1 = byAddress[`127.0.0.1:${b1?.port}`];
    expect(h0?.weight).toBe(1);
    expect(h1?.weight).toBe(3);
    expect(h0?.health_flags).toBe('healthy');
    expect(h1?.healthy).toBe(true);
  });

  test('2000 requests split 25% / 75% (±3%) by weight', async () => {
    const { envoy, backends } = running();
    backends.reset();
    const n = 2000;
    const before = await envoy.clusterStatuses();
    const result = await sendRequests(`http://127.0.0.1:${port}/`, n, { concurrency: 8 });
    expect(result.errors, `errors: ${result.errorSamples.join('; ')}`).toBe(0);
    expect(result.ok).toBe(n);
    expect(result.statuses).toEqual({ 200: n });
    const s = shares(result.distribution);
    expect(Math.abs((s['0'] ?? 0) - 0.25), JSON.stringify(result.distribution)).toBeLessThanOrEqual(0.03);
    expect(Math.abs((s['1'] ?? 0) - 0.75), JSON.stringify(result.distribution)).toBeLessThanOrEqual(0.03);
    // The backends' own counters agree with the response headers.
    expect(backends.counts()).toEqual([result.distribution['0'] ?? 0, result.distribution['1'] ?? 0]);

    // Envoy's per-host rq_total moved by the same amounts.
    const after = await envoy.clusterStatuses();
    const delta = (i: number): number => {
      const addr = `127.0.0.1:${backends.list[i]?.port}`;
      const a = after.web?.hosts.find((h) => h.address === addr)?.rq_total ?? 0;
      const b = before.web?.hosts.find((h) => h.address === addr)?.rq_total ?? 0;
      return a - b;
    };
    expect([delta(0), delta(1)]).toEqual(backends.counts());
    expect((await envoy.stats('^cluster\\.web\\.upstream_rq_total$'))['cluster.web.upstream_rq_total']).toBeGreaterThanOrEqual(n);
  });

  test('logs() captures Envoy output, including the command line', () => {
    const { envoy } = running();
    expect(envoy.logs()).toContain('--disable-hot-restart');
    expect(envoy.logs()).toContain('--admin-address-path');
  });
});
