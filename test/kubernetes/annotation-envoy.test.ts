/**
 * A Service's annotations are written by whoever may edit that Service, and what they become goes
 * to every proxy: a value Envoy would reject must be refused (warned about, default kept), or one
 * namespace's typo or malice has the whole CDS update NACKed by the fleet.
 */
import type { Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { describeEnvoy, dumpLogsOnFailure, startEnvoy, type EnvoyHandle } from '../support/envoy.js';
import { scaled, waitFor } from '../support/wait.js';
import { balancedService, fakeApiKubeconfig, fakeApiServer, readySlices } from './fake-api-server.js';

describeEnvoy('Service annotations Envoy would reject', () => {
  let dir: string | undefined;
  let api: Server | undefined;
  let fulcrum: Fulcrum | undefined;
  let envoy: EnvoyHandle | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-k8s-annotations-'));
    api = await fakeApiServer({
      up: true,
      services: [
        balancedService('shop', 'good', { 'fulcrum.io/health-check': 'http:/healthz' }),
        // A control character in the health check path: Envoy's HTTP_HEADER_VALUE rule refuses it.
        balancedService('shop', 'bad', { 'fulcrum.io/health-check': 'http:/health\u0001z' }),
        balancedService('shop', 'ramp', { 'fulcrum.io/lb-policy': 'LEAST_REQUEST', 'fulcrum.io/slow-start': '{windowMs: 45000, aggression: 2.5, minWeightPercent: 5}' }),
        // Past the config file's bound of a day: refused with a warning, the cluster served without it.
        balancedService('shop', 'longramp', { 'fulcrum.io/slow-start': '25h' }),
      ],
      slices: [
        ...readySlices('shop', 'good', ['192.0.2.10']),
        ...readySlices('shop', 'bad', ['192.0.2.11']),
        ...readySlices('shop', 'ramp', ['192.0.2.12']),
        ...readySlices('shop', 'longramp', ['192.0.2.13']),
      ],
    });
    const kubeconfig = await fakeApiKubeconfig(dir, api);
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(configPath, `kubernetes: { enabled: true, kubeconfig: ${JSON.stringify(kubeconfig)} }\n`);
    fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger: pino({ level: 'silent' }), debounce: { quietMs: 20, maxMs: 200 } });
    await fulcrum.settled;
    envoy = await startEnvoy({ xdsPort: fulcrum.xdsPort, mode: 'sotw', nodeId: 'annotations', waitUntil: 'live' });
  }, scaled(120_000));

  afterAll(async () => {
    await envoy?.stop();
    await fulcrum?.stop();
    api?.closeAllConnections();
    api?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  dumpLogsOnFailure(() => envoy);

  /** Waits until Envoy has every named discovered cluster. */
  const inEnvoy = (...clusters: string[]): Promise<unknown> =>
    waitFor(
      async (ctx) => {
        const names = Object.keys((await envoy?.clusterStatuses()) ?? {});
        ctx.note(names);
        return clusters.every((c) => names.includes(c));
      },
      { what: `${clusters.join(', ')} in Envoy`, timeoutMs: 15_000 },
    );

  it('a health check path with a control character is ignored (no health check), and Envoy takes every cluster', async () => {
    await inEnvoy('shop/good:http', 'shop/bad:http');
    expect(await envoy?.stat('cluster_manager.cds.update_rejected')).toBe(0);
    const dump = JSON.stringify(await envoy?.configDump({ resource: 'dynamic_active_clusters' }));
    expect(dump).toContain('/healthz');
  }, scaled(60_000));

  it('fulcrum.io/slow-start reaches Envoy as the cluster\'s slow_start_config; a window past a day is left out', async () => {
    await inEnvoy('shop/ramp:http', 'shop/longramp:http');
    expect(await envoy?.stat('cluster_manager.cds.update_rejected')).toBe(0);
    const dump = (await envoy?.configDump({ resource: 'dynamic_active_clusters' })) as { configs?: { cluster?: { name?: string } }[] };
    const cluster = (name: string): string => JSON.stringify(dump.configs?.find((c) => c.cluster?.name === name)?.cluster ?? null);
    const ramp = cluster('shop/ramp:http');
    expect(ramp).toContain('LeastRequest');
    expect(ramp).toContain('"slow_start_window":"45s"');
    expect(ramp).toContain('"default_value":2.5');
    expect(ramp).toContain('"min_weight_percent":{"value":5}');
    const longRamp = cluster('shop/longramp:http');
    expect(longRamp).toContain('"name":"shop/longramp:http"');
    expect(longRamp).not.toContain('slow_start');
  }, scaled(60_000));
});
