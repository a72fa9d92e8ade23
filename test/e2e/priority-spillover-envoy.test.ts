import { expect, it } from 'vitest';
import { sendRequests } from '../support/backends.js';
import { startCapacityBackends, type CapacityBackends } from '../support/capacity-backends.js';
import { describeEnvoy, dumpLogsOnFailure } from '../support/envoy.js';
import { useRig } from '../support/rig.js';
import { scaled, waitFor } from '../support/wait.js';

/**
 * Priority failover against a real Envoy. Envoy spreads a cluster's load over its priorities by
 * each priority's health: a priority with a quarter of its hosts healthy keeps 1.4 × 25% = 35% of
 * the requests and spills the rest to the next one (README: "0 is preferred; Envoy spills over on
 * failure"). Endpoints left out of the assignment no longer count in that ratio: the one host of
 * priority 0 still up must not be handed every request while priority 1 sits idle.
 */

describeEnvoy('priority spill-over with endpoints out of rotation', () => {
  const rig = useRig<CapacityBackends>(() => ({
    name: 'spillover',
    backends: () => startCapacityBackends(Array.from({ length: 5 }, () => ({ capacityRps: 400, baseLatencyMs: 2 }))),
    config: ({ backends, listenerPort }) => ({
      clusters: [
        {
          name: 'web',
          // Backends 0-3 in priority 0, three of them declared UNHEALTHY (pods not ready, say); backend 4 in priority 1.
          endpoints: backends.list.map((b, i) => ({ address: '127.0.0.1', port: b.port, priority: i < 4 ? 0 : 1, ...(i < 3 ? { health: 'UNHEALTHY' } : {}) })),
          outlierDetection: { enabled: false },
        },
      ],
      listeners: [{ name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'web' }] }],
    }),
    waitForListener: 'ingress',
  }));
  dumpLogsOnFailure(() => rig().envoys[0]);

  it('three of four priority-0 endpoints UNHEALTHY: priority 1 takes the share Envoy spills over to it', async () => {
    const r = rig();
    const p1 = `127.0.0.1:${r.backends.list[4]?.port}`;
    await waitFor(async () => ((await r.envoy.clusterStatuses()).web?.hosts ?? []).some((h) => h.address === p1), { what: 'the priority-1 host in Envoy', timeoutMs: 20_000, intervalMs: 100 });
    const result = await sendRequests(r.url, 400, { concurrency: 4 });
    expect(result.errors).toBe(0);
    // Envoy's split is 35% / 65%; left out, the lone priority-0 host took all 400 and backend 4 none.
    expect(result.distribution['4'] ?? 0).toBeGreaterThan(150);
  }, scaled(90_000));
});
