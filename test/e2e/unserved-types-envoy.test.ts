import { expect, it } from 'vitest';
import { sendRequests, startBackends, type Backends } from '../support/backends.js';
import { describeEnvoy, dumpLogsOnFailure } from '../support/envoy.js';
import { useRig } from '../support/rig.js';
import { scaled } from '../support/wait.js';

/**
 * An Envoy whose bootstrap points a runtime layer (RTDS) at ADS asks fulcrum, on the stream its
 * clusters and listeners ride, for a type fulcrum does not serve. fulcrum used to end the stream
 * (INVALID_ARGUMENT): Envoy reconnected, asked again, and never got its config. The request is
 * now left unanswered (Envoy gives the layer up after its initial fetch timeout) and the rest is
 * served: config arrives, is ACKed, and traffic flows.
 */
for (const mode of ['sotw', 'delta'] as const) {
  describeEnvoy(`an Envoy asking ADS for a runtime layer (${mode})`, () => {
    const rig = useRig<Backends>(() => ({
      name: `rtds-${mode}`,
      backends: () => startBackends(2),
      config: ({ backends, listenerPort }) => ({
        clusters: [{ name: 'web', endpoints: backends.list.map((b) => ({ address: '127.0.0.1', port: b.port })) }],
        listeners: [{ name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'web' }] }],
      }),
      envoy: {
        mode,
        patchBootstrap: (bootstrap) => {
          bootstrap.layered_runtime = {
            layers: [{ name: 'rtds', rtds_layer: { name: 'fulcrum-runtime', rtds_config: { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '1s' } } }],
          };
        },
      },
      waitForListener: 'ingress',
    }));
    dumpLogsOnFailure(() => rig().envoys[0]);

    it('gets its clusters, endpoints, listener and routes over the same stream, and traffic flows', async () => {
      const r = rig();
      const result = await sendRequests(r.url, 40, { concurrency: 2 });
      expect(result.errors).toBe(0);
      expect(Object.keys(result.distribution).sort()).toEqual(['0', '1']);
      // One stream all along: connected, and no reconnect loop behind the served config.
      expect(await r.envoy.stat('control_plane.connected_state')).toBe(1);
      const res = await fetch(`http://127.0.0.1:${r.fulcrum.adminPort}/v1/proxies/rtds-${mode}`);
      const body = (await res.json()) as { streams: { types: Record<string, { state: string }> }[] };
      expect(res.status).toBe(200);
      expect(body.streams.map((s) => Object.entries(s.types).map(([t, x]) => `${t}:${x.state}`).sort())).toEqual([['CDS:SYNCED', 'EDS:SYNCED', 'LDS:SYNCED', 'RDS:SYNCED']]);
    }, scaled(90_000));
  });
}
