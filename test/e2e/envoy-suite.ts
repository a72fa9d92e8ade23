import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { describeProxy, syncState, type ProxyRecord } from '../../src/xds/proxy-status.js';
import { startBackends, sendRequests, type Backends } from '../support/backends.js';
import { dumpClusterNames, dumpListenerNames, dumpLogsOnFailure, startEnvoy, type EnvoyHandle, type XdsMode } from '../support/envoy.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

/**
 * The same end-to-end story for SotW and Delta ADS: a real Envoy bootstrapped with nothing but
 * the example bootstrap gets everything from fulcrum, and real HTTP traffic proves it.
 */
export function envoySuite(mode: XdsMode): void {
  let dir: string;
  let configPath: string;
  let backends: Backends;
  let fulcrum: Fulcrum;
  let envoy: EnvoyHandle;
  let listenerPort: number;
  let busyPort: number;
  const nodeId = `envoy-${mode}`;

  interface Shape {
    weights: [number, number];
    lbPolicy?: string;
    brokenListener?: boolean;
  }

  function config(shape: Shape): string {
    const [a, b] = backends.list;
    const listeners: unknown[] = [
      { name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'web' }] },
    ];
    // A port another process holds: valid config, but Envoy cannot bind it and rejects the listener.
    if (shape.brokenListener) listeners.push({ name: 'taken', address: '127.0.0.1', port: busyPort, routes: [{ prefix: '/', cluster: 'web' }] });
    return YAML.stringify({
      clusters: [
        {
          name: 'web',
          lbPolicy: shape.lbPolicy ?? 'ROUND_ROBIN',
          endpoints: [
            { address: '127.0.0.1', port: a?.port, weight: shape.weights[0] },
            { address: '127.0.0.1', port: b?.port, weight: shape.weights[1] },
          ],
        },
      ],
      listeners,
    });
  }

  /** Atomic replace, as editors and ConfigMap mounts do. */
  async function writeConfig(shape: Shape): Promise<void> {
    const tmp = `${configPath}.tmp`;
    await writeFile(tmp, config(shape));
    await rename(tmp, configPath);
  }

  async function start(port = 0): Promise<Fulcrum> {
    return startFulcrum({
      configPath,
      xdsPort: port,
      xdsAddress: '127.0.0.1',
      logger: pino({ level: process.env.FULCRUM_TEST_LOG ?? 'silent' }),
      debounce: { quietMs: 20, maxMs: 200 },
    });
  }

  function proxy(f: Fulcrum = fulcrum): ProxyRecord | undefined {
    return f.registry.list().find((r) => r.node.id === nodeId);
  }

  const url = (): string => `http://127.0.0.1:${listenerPort}/`;

  /** Envoy's weights for backend 0 and backend 1 (Envoy lists hosts in its own order). */
  async function webWeights(): Promise<number[]> {
    const status = await envoy.clusterStatuses();
    const hosts = status.web?.hosts ?? [];
    return backends.list.map((b) => hosts.find((h) => h.address === `127.0.0.1:${b.port}`)?.weight ?? 0);
  }

  function expectShares(distribution: Record<string, number>, expected: [number, number]): void {
    const total = (distribution['0'] ?? 0) + (distribution['1'] ?? 0);
    expect(total).toBeGreaterThan(0);
    expect(Math.abs((distribution['0'] ?? 0) / total - expected[0])).toBeLessThanOrEqual(0.03);
    expect(Math.abs((distribution['1'] ?? 0) / total - expected[1])).toBeLessThanOrEqual(0.03);
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `fulcrum-e2e-${mode}-`));
    configPath = join(dir, 'fulcrum.yaml');
    backends = await startBackends(2);
    listenerPort = await freePort();
    busyPort = backends.list[0]?.port ?? 0;
    await writeConfig({ weights: [1, 3] });
    fulcrum = await start();
    envoy = await startEnvoy({ xdsPort: fulcrum.xdsPort, mode, nodeId, name: `envoy-${mode}` });
  }, 60_000);

  afterAll(async () => {
    await envoy?.stop();
    await fulcrum?.stop();
    await backends?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  dumpLogsOnFailure(() => envoy);

  it('delivers listener, routes, clusters and endpoints, all ACKed', async () => {
    await envoy.waitForListener('ingress', 20_000);
    const dump = await envoy.configDump();
    expect(dumpListenerNames(dump)).toContain('ingress');
    expect(dumpClusterNames(dump)).toContain('web');
    expect(JSON.stringify(dump)).toContain('"route_config_name":"ingress"');
    expect(await webWeights()).toEqual([1, 3]);
    const record = await waitFor(
      () => {
        const r = proxy();
        return r && [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route].every((t) => syncState(r.types.get(t)) === 'SYNCED') && r;
      },
      { what: 'all four types SYNCED', timeoutMs: 10_000 },
    );
    expect(describeProxy(record)).toMatchObject({ nodeId, protocol: mode });
  });

  it('routes real traffic in the configured 1:3 proportions', async () => {
    const result = await sendRequests(url(), 2000, { concurrency: 8 });
    expect(result.errors).toBe(0);
    expectShares(result.distribution, [0.25, 0.75]);
  });

  it('applies a config file edit to Envoy within 2 s and traffic follows', async () => {
    const started = Date.now();
    await writeConfig({ weights: [3, 1] });
    await waitFor(async () => JSON.stringify(await webWeights()) === '[3,1]', { what: 'weights 3:1 in Envoy', timeoutMs: 5_000 });
    expect(Date.now() - started).toBeLessThan(2_000);
    const result = await sendRequests(url(), 2000, { concurrency: 8 });
    expect(result.errors).toBe(0);
    expectShares(result.distribution, [0.75, 0.25]);
  });

  it('updates a cluster without a warming stall or dropped traffic (EDS follows every CDS push)', async () => {
    const load = sendRequests(url(), 1500, { concurrency: 4 });
    const started = Date.now();
    await writeConfig({ weights: [3, 1], lbPolicy: 'LEAST_REQUEST' });
    await waitFor(
      async () => {
        const dump = await envoy.configDump();
        return JSON.stringify(dump).includes('"lb_policy":"LEAST_REQUEST"') && JSON.stringify(await webWeights()) === '[3,1]';
      },
      { what: 'cluster re-created with LEAST_REQUEST and its endpoints', timeoutMs: 10_000 },
    );
    // Without the EDS answer the new cluster would warm until Envoy's 15 s initial fetch timeout.
    expect(Date.now() - started).toBeLessThan(2_000);
    const dump = JSON.stringify(await envoy.configDump());
    expect(dump).not.toContain('dynamic_warming_clusters');
    expect((await load).errors).toBe(0);
  });

  it('records an Envoy rejection as a NACK with its error, without a resend loop, and keeps serving', async () => {
    await writeConfig({ weights: [3, 1], brokenListener: true });
    const nack = await waitFor(
      () => {
        const t = proxy()?.types.get(TYPE.listener);
        return t && syncState(t) === 'NACKED' && t.lastNack;
      },
      { what: 'LDS NACKED', timeoutMs: 10_000 },
    );
    expect(nack.message).toMatch(/taken|bind|address/i);
    const responses = proxy()?.types.get(TYPE.listener)?.responses ?? 0;
    // Envoy re-requests after a NACK; a server with a resend loop would answer each of those.
    const result = await sendRequests(url(), 300, { concurrency: 4 });
    expect(result.errors).toBe(0);
    expect(proxy()?.types.get(TYPE.listener)?.responses).toBe(responses);
    expect(describeProxy(proxy() as ProxyRecord)).toMatchObject({ types: { LDS: { state: 'NACKED' } } });
    // Fixing the config heals it.
    await writeConfig({ weights: [3, 1] });
    await waitFor(() => syncState(proxy()?.types.get(TYPE.listener)) === 'SYNCED', { what: 'LDS SYNCED again', timeoutMs: 10_000 });
  });

  it('survives a control-plane restart: Envoy keeps routing, reconnects, converges, drops nothing', async () => {
    const before = JSON.stringify(await webWeights());
    const port = fulcrum.xdsPort;
    let stop = false;
    let errors = 0;
    let sent = 0;
    const loop = (async () => {
      while (!stop) {
        const r = await sendRequests(url(), 50, { concurrency: 2 });
        errors += r.errors;
        sent += r.sent;
      }
    })();
    await fulcrum.stop();
    // Envoy keeps its last config meanwhile.
    await waitFor(() => sent > 200, { what: 'traffic while fulcrum is down', timeoutMs: 10_000 });
    fulcrum = await start(port);
    await waitFor(
      () => {
        const r = proxy();
        return r && [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route].every((t) => syncState(r.types.get(t)) === 'SYNCED');
      },
      { what: 'Envoy reconnected and synced', timeoutMs: 20_000 },
    );
    stop = true;
    await loop;
    expect(errors).toBe(0);
    expect(JSON.stringify(await webWeights())).toBe(before);
    // Envoy ACKed versions minted by the new process (they carry its prefix). Envoy keeps showing the
    // old version in config_dump when the content is identical: it skips no-op updates.
    const acked = [...(proxy()?.types.values() ?? [])].map((t) => t.ackedVersion ?? '');
    expect(acked).toHaveLength(4);
    for (const v of acked) expect(v.startsWith(`${fulcrum.cache.versionPrefix}.`)).toBe(true);
  });
}
