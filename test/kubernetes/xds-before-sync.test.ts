/**
 * Fail static across a restart of fulcrum while the Kubernetes API server is away: discovered
 * clusters are not stored (they are rebuilt from the API server), so until discovery has its
 * first complete view fulcrum does not know them. A State-of-the-World CDS answer without them
 * would make every proxy that (re)connects delete them: fulcrum must not answer a proxy's first
 * requests before that view is in what it serves.
 */
import type { Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { CDS, isType, namesOf, XdsClient } from '../support/xds-client.js';
import { scaled, waitFor } from '../support/wait.js';
import { balancedService, fakeApiKubeconfig, fakeApiServer, readySlices } from './fake-api-server.js';

let dir: string | undefined;
let api: Server | undefined;
let fulcrum: Fulcrum | undefined;
let client: XdsClient | undefined;
afterEach(async () => {
  client?.close();
  await fulcrum?.stop();
  api?.closeAllConnections();
  api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// 1,500 endpoints: a view that big reaches the publisher in turns of the event loop (catalog-feed.ts).
it.each([1, 1_500])("a proxy's first CDS answer waits for Kubernetes discovery's first view (%i endpoints), and carries the discovered clusters", async (endpoints) => {
  dir = await mkdtemp(join(tmpdir(), 'fulcrum-k8s-first-'));
  const addresses = Array.from({ length: endpoints }, (_, i) => `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`);
  const state = { up: false, services: [balancedService('shop', 'web')], slices: readySlices('shop', 'web', addresses) };
  api = await fakeApiServer(state);
  const kubeconfig = await fakeApiKubeconfig(dir, api);
  const configPath = join(dir, 'fulcrum.yaml');
  await writeFile(
    configPath,
    `kubernetes: { enabled: true, kubeconfig: ${JSON.stringify(kubeconfig)} }\n` +
      'clusters: [{ name: file-web, endpoints: [{ address: 127.0.0.1, port: 8080 }] }]\n',
  );
  fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger: pino({ level: 'silent' }), debounce: { quietMs: 20, maxMs: 200 } });

  // A proxy (re)connects while the API server is away: a wildcard CDS request.
  client = XdsClient.forPort(fulcrum.xdsPort);
  const ads = client.sotw();
  ads.send({ node: { id: 'envoy-1', cluster: 'edge' }, type_url: CDS, resource_names: [] });
  // Without the discovered clusters, an answer would make the proxy delete them.
  await ads.expectNone(300, isType(CDS));
  // Proxies that give up while held are not kept until the API server is back (their Node, their stream).
  const gone = [1, 2, 3].map((i) => {
    const s = (client as XdsClient).sotw();
    s.send({ node: { id: `envoy-gone-${i}`, cluster: 'edge' }, type_url: CDS, resource_names: [] });
    return s;
  });
  await waitFor(async () => (await held(fulcrum as Fulcrum)) === 4, { what: 'four first answers held' });
  for (const s of gone) s.cancel();
  await waitFor(async () => (await held(fulcrum as Fulcrum)) === 1, { what: 'the cancelled streams dropped' });

  state.up = true;
  const first = await ads.next(isType(CDS), 60_000);
  expect(namesOf(first)).toEqual(['file-web', 'shop/web:http']);
  expect(ads.received.filter(isType(CDS))[0]).toBe(first);
  expect(await held(fulcrum)).toBe(0);
}, scaled(120_000));

/** fulcrum_xds_held_answers as a scrape reads it. */
async function held(f: Fulcrum): Promise<number> {
  const gauge = await f.metrics.registry.getSingleMetric('fulcrum_xds_held_answers')?.get();
  return gauge?.values[0]?.value ?? Number.NaN;
}
