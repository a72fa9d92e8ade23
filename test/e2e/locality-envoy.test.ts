import { expect, it } from 'vitest';
import { sendRequests, startBackends } from '../support/backends.js';
import { describeEnvoy } from '../support/envoy.js';
import { useRig } from '../support/rig.js';

/** Locality-tiered balancing: Envoy picks a zone by its aggregated weight, then a host in it. */
describeEnvoy('locality-weighted clusters with a real Envoy', () => {
  const rig = useRig(() => ({
    name: 'locality',
    backends: () => startBackends(3),
    config: ({ backends, listenerPort }) => {
      const [a, b, c] = backends.list;
      return {
        clusters: [
          {
            name: 'zoned',
            localityWeighted: true,
            endpoints: [
              // zone a weighs 1 in all; zone b weighs 3 (two hosts), so zone b gets 75% of requests.
              { address: '127.0.0.1', port: a?.port, weight: 1, locality: { region: 'r', zone: 'a' } },
              { address: '127.0.0.1', port: b?.port, weight: 1, locality: { region: 'r', zone: 'b' } },
              { address: '127.0.0.1', port: c?.port, weight: 2, locality: { region: 'r', zone: 'b' } },
            ],
          },
        ],
        listeners: [{ name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'zoned' }] }],
      };
    },
    waitForListener: 'ingress',
  }));

  it('Envoy accepts the cluster and splits traffic by zone weight, then by host weight inside the zone', async () => {
    const { envoy, url } = rig();
    expect(JSON.stringify(await envoy.configDump())).toContain('"locality_weighted_lb_config":{}');
    const r = await sendRequests(url, 2400, { concurrency: 8 });
    expect(r.errors).toBe(0);
    const share = (i: number): number => (r.distribution[String(i)] ?? 0) / r.sent;
    expect(Math.abs(share(0) - 0.25)).toBeLessThan(0.04);
    expect(Math.abs(share(1) + share(2) - 0.75)).toBeLessThan(0.04);
    expect(Math.abs(share(2) / share(1) - 2)).toBeLessThan(0.4);
  });
});
