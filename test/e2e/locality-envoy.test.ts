import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { sendRequests, startBackends, type Backends } from '../support/backends.js';
import { describeEnvoy, dumpLogsOnFailure, startEnvoy, type EnvoyHandle } from '../support/envoy.js';
import { freePort } from '../support/ports.js';

/**
 * Locality-tiered balancing: Envoy picks a zone by its aggregated weight, then a host in it.
 * And ring hash across zones: fulcrum sends every locality its endpoint-weight sum, rescales the
 * endpoint weights to one common sum per locality (so that grpc-go, grpc-js-xds and Envoy agree:
 * src/xds/ring-hash-localities.ts) and turns on locality_weighted_lb_config, under which Envoy's
 * ring normalises host weights inside each locality and scales them by the locality's weight.
 */
describeEnvoy('locality-weighted clusters with a real Envoy', () => {
  let dir: string;
  let backends: Backends;
  let fulcrum: Fulcrum;
  let envoy: EnvoyHandle;
  let listenerPort: number;
  let hashedPort: number;
  let maglevPort: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-locality-'));
    backends = await startBackends(3);
    listenerPort = await freePort();
    hashedPort = await freePort();
    maglevPort = await freePort();
    const [a, b, c] = backends.list;
    // zone a sums 2, zone b 6: 25% / 75% by endpoint weight.
    const zonedWeights = [
      { address: '127.0.0.1', port: a?.port, weight: 2, locality: { region: 'r', zone: 'a' } },
      { address: '127.0.0.1', port: b?.port, weight: 3, locality: { region: 'r', zone: 'b' } },
      { address: '127.0.0.1', port: c?.port, weight: 3, locality: { region: 'r', zone: 'b' } },
    ];
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(
      configPath,
      YAML.stringify({
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
          {
            name: 'hashed',
            lbPolicy: 'RING_HASH',
            ringHash: { virtualNodesPerHost: 1000 }, // a ring of 4096: arcs within ~1 point of their weight share
            // Published as locality weights 2 and 6 with endpoint weights 6; 3, 3: a ring that ignored
            // the locality weights would give zone a 50%, one that multiplied the raw weights 10%.
            endpoints: zonedWeights,
          },
          // Sent as a load_balancing_policy (Maglev, then ring hash for gRPC), rescaled the same way.
          { name: 'maglev', lbPolicy: 'MAGLEV', endpoints: zonedWeights },
        ],
        listeners: [
          { name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'zoned' }] },
          { name: 'hashed-ingress', address: '127.0.0.1', port: hashedPort, routes: [{ prefix: '/', cluster: 'hashed', hashPolicy: { header: 'x-user' } }] },
          { name: 'maglev-ingress', address: '127.0.0.1', port: maglevPort, routes: [{ prefix: '/', cluster: 'maglev', hashPolicy: { header: 'x-user' } }] },
        ],
      }),
    );
    fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger: pino({ level: 'silent' }) });
    envoy = await startEnvoy({ xdsPort: fulcrum.xdsPort, mode: 'sotw', nodeId: 'locality', name: 'envoy-locality' });
    await envoy.waitForListener('ingress', 20_000);
    await envoy.waitForListener('hashed-ingress', 20_000);
    await envoy.waitForListener('maglev-ingress', 20_000);
  }, 60_000);

  afterAll(async () => {
    await envoy?.stop();
    await fulcrum?.stop();
    await backends?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  dumpLogsOnFailure(() => envoy);

  it('Envoy accepts the cluster and splits traffic by zone weight, then by host weight inside the zone', async () => {
    expect(JSON.stringify(await envoy.configDump())).toContain('"locality_weighted_lb_config":{}');
    const r = await sendRequests(`http://127.0.0.1:${listenerPort}/`, 2400, { concurrency: 8 });
    expect(r.errors).toBe(0);
    const share = (i: number): number => (r.distribution[String(i)] ?? 0) / r.sent;
    expect(Math.abs(share(0) - 0.25)).toBeLessThan(0.04);
    expect(Math.abs(share(1) + share(2) - 0.75)).toBeLessThan(0.04);
    expect(Math.abs(share(2) / share(1) - 2)).toBeLessThan(0.4);
  });

  it('ring hash: Envoy weighs localities and splits distinct keys by endpoint weight', async () => {
    const hashedCluster = JSON.stringify(await envoy.configDump({ includeEds: false, nameRegex: '^hashed$', resource: 'dynamic_active_clusters' }));
    expect(hashedCluster).toContain('"locality_weighted_lb_config":{}');
    expect(hashedCluster).toContain('"lb_policy":"RING_HASH"');
    const eds = JSON.stringify(await envoy.configDump({ includeEds: true, nameRegex: '^hashed$', resource: 'dynamic_endpoint_configs' }));
    expect(eds).toContain('"load_balancing_weight":6'); // zone b's locality weight, zone a's endpoint weight
    // ACKed: Envoy rejected no CDS or EDS update.
    expect(await envoy.stat('cluster_manager.cds.update_rejected')).toBe(0);
    expect(await envoy.stat('cluster.hashed.update_rejected')).toBe(0);
    expect(await envoy.stat('cluster.hashed.update_success')).toBeGreaterThanOrEqual(1);
    const r = await sendRequests(`http://127.0.0.1:${hashedPort}/`, 1200, { concurrency: 8, headers: (i) => ({ 'x-user': `user-${i}` }) });
    expect(r.errors, JSON.stringify(r.errorSamples)).toBe(0);
    expect(Math.abs((r.distribution['0'] ?? 0) / r.sent - 0.25), JSON.stringify(r.distribution)).toBeLessThan(0.08);
  });

  it('MAGLEV as an extension policy: Envoy takes Maglev, weighs localities, and keeps each key on one host', async () => {
    const cluster = JSON.stringify(await envoy.configDump({ includeEds: false, nameRegex: '^maglev$', resource: 'dynamic_active_clusters' }));
    expect(cluster).toContain('envoy.extensions.load_balancing_policies.maglev.v3.Maglev');
    expect(cluster).toContain('"locality_weighted_lb_config":{}');
    expect(await envoy.stat('cluster_manager.cds.update_rejected')).toBe(0);
    expect(await envoy.stat('cluster.maglev.update_rejected')).toBe(0);
    const r = await sendRequests(`http://127.0.0.1:${maglevPort}/`, 1200, { concurrency: 8, headers: (i) => ({ 'x-user': `user-${i}` }) });
    expect(r.errors, JSON.stringify(r.errorSamples)).toBe(0);
    // A 65537-entry table: each host's share within a point or two of its weight's.
    expect(Math.abs((r.distribution['0'] ?? 0) / r.sent - 0.25), JSON.stringify(r.distribution)).toBeLessThan(0.08);
    const same = await sendRequests(`http://127.0.0.1:${maglevPort}/`, 50, { concurrency: 4, headers: () => ({ 'x-user': 'alice' }) });
    expect(Object.keys(same.distribution), JSON.stringify(same.distribution)).toHaveLength(1);
  });
});
