import { expect, it } from 'vitest';
import type { Fulcrum } from '../../src/main.js';
import { typeSyncView } from '../../src/admin/views.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { describeProxy, syncState, type ProxyRecord } from '../../src/xds/proxy-status.js';
import { startBackends, sendRequests, type Backends } from '../support/backends.js';
import { dumpActiveCluster, dumpClusterNames, dumpListenerNames, type ConfigDump, type XdsMode } from '../support/envoy.js';
import { freePort } from '../support/ports.js';
import { useRig } from '../support/rig.js';
import { waitFor } from '../support/wait.js';

/**
 * The same end-to-end story for SotW and Delta ADS: a real Envoy bootstrapped with nothing but
 * the example bootstrap gets everything from fulcrum, and real HTTP traffic proves it.
 */
export function envoySuite(mode: XdsMode): void {
  const nodeId = `envoy-${mode}`;

  interface Shape {
    weights: [number, number];
    lbPolicy?: string;
    localityWeighted?: boolean;
    brokenListener?: boolean;
    /** A second, valid listener on this port. */
    extraListenerPort?: number;
  }

  function config(backends: Backends, listenerPort: number, shape: Shape): Record<string, unknown> {
    const [a, b] = backends.list;
    const listeners: unknown[] = [
      { name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'web' }] },
    ];
    // A port another process holds (backend 0's): valid config, but Envoy cannot bind it and rejects the listener.
    if (shape.brokenListener) listeners.push({ name: 'taken', address: '127.0.0.1', port: a?.port, routes: [{ prefix: '/', cluster: 'web' }] });
    if (shape.extraListenerPort) listeners.push({ name: 'extra', address: '127.0.0.1', port: shape.extraListenerPort, routes: [{ prefix: '/', cluster: 'web' }] });
    return {
      clusters: [
        {
          name: 'web',
          lbPolicy: shape.lbPolicy ?? 'ROUND_ROBIN',
          ...(shape.localityWeighted ? { localityWeighted: true } : {}),
          endpoints: [
            { address: '127.0.0.1', port: a?.port, weight: shape.weights[0] },
            { address: '127.0.0.1', port: b?.port, weight: shape.weights[1] },
          ],
        },
      ],
      listeners,
    };
  }

  const rig = useRig(() => ({
    name: `e2e-${mode}`,
    backends: () => startBackends(2),
    config: ({ backends, listenerPort }) => config(backends, listenerPort, { weights: [1, 3] }),
    envoy: { mode, nodeId, name: `envoy-${mode}` },
  }));

  /** Atomic replace, as editors and ConfigMap mounts do. */
  const writeConfig = (shape: Shape): Promise<void> => rig().writeConfig(config(rig().backends, rig().listenerPort, shape));

  function proxy(f: Fulcrum = rig().fulcrum): ProxyRecord | undefined {
    return f.registry.list().find((r) => r.node.id === nodeId);
  }

  const url = (): string => rig().url;
  const envoy = () => rig().envoy;

  /** Envoy's weights for backend 0 and backend 1 (Envoy lists hosts in its own order). */
  async function webWeights(): Promise<number[]> {
    const status = await envoy().clusterStatuses();
    const hosts = status.web?.hosts ?? [];
    return rig().backends.list.map((b) => hosts.find((h) => h.address === `127.0.0.1:${b.port}`)?.weight ?? 0);
  }

  function expectShares(distribution: Record<string, number>, expected: [number, number]): void {
    expect(Math.abs(share(distribution, 0) - expected[0])).toBeLessThanOrEqual(0.03);
    expect(Math.abs(share(distribution, 1) - expected[1])).toBeLessThanOrEqual(0.03);
  }

  /** The web cluster's LB policy as Envoy holds it: lb_policy or load_balancing_policy, as JSON. */
  function webPolicy(dump: ConfigDump): string {
    const web = dumpActiveCluster(dump, 'web');
    return JSON.stringify({ lb: web?.lb_policy, policy: web?.load_balancing_policy });
  }

  /** Backend i's share of the requests that reached a backend. */
  function share(distribution: Record<string, number>, i: number): number {
    const total = (distribution['0'] ?? 0) + (distribution['1'] ?? 0);
    expect(total).toBeGreaterThan(0);
    return (distribution[String(i)] ?? 0) / total;
  }

  it('delivers listener, routes, clusters and endpoints, all ACKed', async () => {
    await envoy().waitForListener('ingress', 20_000);
    const dump = await envoy().configDump();
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
        const dump = await envoy().configDump();
        return webPolicy(dump).includes('envoy.load_balancing_policies.least_request') && JSON.stringify(await webWeights()) === '[3,1]';
      },
      { what: 'cluster re-created with LEAST_REQUEST and its endpoints', timeoutMs: 10_000 },
    );
    // Without the EDS answer the new cluster would warm until Envoy's 15 s initial fetch timeout.
    expect(Date.now() - started).toBeLessThan(2_000);
    const dump = JSON.stringify(await envoy().configDump());
    expect(dump).not.toContain('dynamic_warming_clusters');
    expect((await load).errors).toBe(0);
  });

  it('LEAST_REQUEST: Envoy takes the least-request policy and weighs each host by weight ÷ active requests', async () => {
    // With locality weighting, which the typed policy carries itself: Envoy rejects it beside
    // load_balancing_policy in common_lb_config.
    await writeConfig({ weights: [3, 1], lbPolicy: 'LEAST_REQUEST', localityWeighted: true });
    await waitFor(
      async () => {
        const r = proxy();
        return webPolicy(await envoy().configDump()).includes('locality_weighted_lb_config') && r !== undefined && syncState(r.types.get(TYPE.cluster)) === 'SYNCED';
      },
      { what: 'the locality-weighted LEAST_REQUEST cluster ACKed', timeoutMs: 10_000 },
    );
    // Fast backends: the weights count (unweighted least request would split about evenly).
    const even = await sendRequests(url(), 1200, { concurrency: 8 });
    expect(even.errors).toBe(0);
    expect(share(even.distribution, 0)).toBeGreaterThan(0.6);
    // Backend 0 slowed: its requests in flight pile up and least request moves picks off it, where
    // round robin (the control below) keeps giving it its 3/4.
    rig().backends.behave(0, { delayMs: 100 });
    try {
      const slowed = await sendRequests(url(), 600, { concurrency: 8 });
      expect(slowed.errors).toBe(0);
      expect(share(slowed.distribution, 0)).toBeLessThan(0.5);
      await writeConfig({ weights: [3, 1], lbPolicy: 'ROUND_ROBIN' });
      // ROUND_ROBIN is lb_policy's default: the dump leaves it out.
      await waitFor(async () => !webPolicy(await envoy().configDump()).includes('least_request'), { what: 'ROUND_ROBIN in Envoy', timeoutMs: 10_000 });
      const control = await sendRequests(url(), 600, { concurrency: 8 });
      expect(share(control.distribution, 0)).toBeGreaterThan(0.67);
    } finally {
      rig().backends.behave(0, { delayMs: 0 });
    }
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
    // Another listener added beside it: Envoy binds that one and ACKs what carried only it (Delta),
    // or NACKs the whole state again (SotW). Either way 'taken' is still refused: still NACKED.
    const extraListenerPort = await freePort();
    await writeConfig({ weights: [3, 1], brokenListener: true, extraListenerPort });
    await waitFor(async () => dumpListenerNames(await envoy().configDump()).includes('extra'), { what: 'the extra listener in Envoy', timeoutMs: 10_000 });
    await waitFor(
      () => {
        const t = proxy()?.types.get(TYPE.listener);
        return t !== undefined && t.responses > responses && (t.ackedNonce === t.sentNonce || t.lastNack?.nonce === t.sentNonce);
      },
      { what: 'the response that carried the extra listener answered', timeoutMs: 10_000 },
    );
    const extra = await sendRequests(`http://127.0.0.1:${extraListenerPort}/`, 50, { concurrency: 2 });
    expect(extra.errors).toBe(0);
    expect(describeProxy(proxy() as ProxyRecord)).toMatchObject({ types: { LDS: { state: 'NACKED' } } });
    // Which one: the listener Envoy's error names (it bound the others).
    expect(typeSyncView(proxy()?.types.get(TYPE.listener)).rejected).toEqual(['taken']);
    // Fixing the config heals it.
    await writeConfig({ weights: [3, 1] });
    await waitFor(() => syncState(proxy()?.types.get(TYPE.listener)) === 'SYNCED', { what: 'LDS SYNCED again', timeoutMs: 10_000 });
  });

  it('survives a control-plane restart: Envoy keeps routing, reconnects, converges, drops nothing', async () => {
    const before = JSON.stringify(await webWeights());
    const updates = () => envoy().stats('^(cluster_manager\\.cds|listener_manager\\.lds)\\.update_(success|rejected)$');
    const updatesBefore = await updates();
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
    // Envoy keeps its last config meanwhile.
    await rig().restartFulcrum(() => waitFor(() => sent > 200, { what: 'traffic while fulcrum is down', timeoutMs: 10_000 }));
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
    // Versions come from content: the new process recognizes what Envoy holds and resends no
    // cluster or listener (Envoy counts every CDS/LDS response it takes as an update).
    expect(Object.keys(updatesBefore)).toHaveLength(4);
    expect(await updates()).toEqual(updatesBefore);
  });

  it('a cluster changed while fulcrum was down reaches Envoy with its endpoints after the restart, no warming stall', async () => {
    // The restarted fulcrum sends the changed cluster; Envoy re-creates it and waits for its
    // endpoints, which it already holds at the version it reconnected with (the assignment did not change).
    await rig().restartFulcrum(() => writeConfig({ weights: [1, 3], lbPolicy: 'RANDOM' }));
    await waitFor(
      async () => {
        const dump = await envoy().configDump();
        return webPolicy(dump).includes('envoy.load_balancing_policies.random') && !JSON.stringify(dump).includes('dynamic_warming_clusters') && JSON.stringify(await webWeights()) === '[1,3]';
      },
      { what: 'the changed cluster active in Envoy with both endpoints', timeoutMs: 10_000 },
    );
    expect((await sendRequests(url(), 200, { concurrency: 4 })).errors).toBe(0);
    await writeConfig({ weights: [1, 3] });
    await waitFor(async () => !webPolicy(await envoy().configDump()).includes('envoy.load_balancing_policies.random'), { what: 'the cluster back to round robin', timeoutMs: 10_000 });
  });
}
