/**
 * Published weights are archived per cluster so a restart resumes from them, Kubernetes-discovered
 * clusters' too. Those are not stored as clusters (rebuilt from the API server), so they reach the
 * weight engine after discovery's first view, after the weight loop resumed from the archive: the
 * archived weights must wait for them, or every restart sloshes their traffic back to static.
 * And no store delete took their archived weights when they went: they stayed for good, and a
 * cluster discovered later under the name resumed from them at a restart. They are deleted when
 * the cluster leaves the catalog, and at start once discovery's first view is in (not before:
 * until then a discovered cluster missing from the catalog is only not listed yet).
 */
import type { Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { openStore } from '../../src/catalog/store/store.js';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { scaled, waitFor } from '../support/wait.js';
import { balancedService, fakeApiKubeconfig, fakeApiServer, readySlices, type FakeApiState } from './fake-api-server.js';

const CLUSTER = 'shop/web:http';
const ENDPOINTS = ['10.0.0.1:8080', '10.0.0.2:8080'];

let dir: string | undefined;
let api: Server | undefined;
let running: Fulcrum | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
  api?.closeAllConnections();
  api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A fake API server holding the one weighted service, and a fulcrum discovering from it. */
async function discovering(state: FakeApiState): Promise<{ start: () => Promise<Fulcrum>; dataDir: string }> {
  dir = await mkdtemp(join(tmpdir(), 'fulcrum-k8s-sweep-'));
  api = await fakeApiServer(state);
  const configPath = join(dir, 'fulcrum.yaml');
  await writeFile(configPath, `kubernetes: { enabled: true, kubeconfig: ${JSON.stringify(await fakeApiKubeconfig(dir, api))} }\n`);
  const dataDir = join(dir, 'data');
  const start = (): Promise<Fulcrum> => startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', dataDir, engineTickMs: 100, logger: pino({ level: 'silent' }) });
  return { start, dataDir };
}

const webService = (): FakeApiState => ({ up: true, services: [balancedService('shop', 'web', { 'fulcrum.io/weighting': 'pid' })], slices: readySlices('shop', 'web', ['10.0.0.1', '10.0.0.2']) });

it('a discovered cluster that goes away takes its archived weights with it', async () => {
  const state = webService();
  const { start } = await discovering(state);
  const f = (running = await start());
  await f.settled;
  const feed = setInterval(() => {
    f.signals.ingest({ reporter: 't', samples: ENDPOINTS.map((endpoint) => ({ cluster: CLUSTER, endpoint, time: Date.now(), cpu: 0.5 })) });
  }, 100);
  try {
    await waitFor(() => f.store.loadWeights().has(CLUSTER), { what: 'the discovered cluster\'s weights archived', timeoutMs: 20_000 });
  } finally {
    clearInterval(feed);
  }

  // The Service is deleted; the informers' watches end and list again.
  state.services = [];
  state.slices = [];
  state.gone = new Set(['services', 'endpointslices']);
  api?.closeAllConnections();
  await waitFor(() => !f.adaptive.adaptiveWeights().has(CLUSTER), { what: 'the cluster gone from the engine', timeoutMs: 20_000 });
  await waitFor(() => !f.store.loadWeights().has(CLUSTER), { what: 'its archived weights deleted', timeoutMs: 20_000 });
}, scaled(60_000));

it('at start, archived weights of clusters no source has are deleted once discovery\'s first view is in, and only then', async () => {
  const state = { ...webService(), up: false };
  const { start, dataDir } = await discovering(state);
  const archived = openStore(dataDir);
  archived.saveAllWeights(new Map([
    ['gone-while-down', new Map([['10.9.0.1:8080', 7]])],
    [CLUSTER, new Map([[ENDPOINTS[0] ?? '', 10], [ENDPOINTS[1] ?? '', 30]])],
  ]));
  archived.close();

  const f = (running = await start());
  // The API server away: discovery retries; meanwhile no archived weights are taken for orphans.
  await waitFor(() => (state.requests ?? 0) >= 3, { what: 'discovery retried a few times', timeoutMs: 30_000 });
  expect([...f.store.loadWeights().keys()].sort()).toEqual(['gone-while-down', CLUSTER].sort());

  state.up = true;
  await f.settled;
  await waitFor(() => !f.store.loadWeights().has('gone-while-down'), { what: 'the orphan\'s weights deleted', timeoutMs: 20_000 });
  expect(f.store.loadWeights().has(CLUSTER)).toBe(true);
}, scaled(60_000));

/** The second endpoint's weight over the first's. */
const ratioOf = (w: ReadonlyMap<string, number> | undefined): number => (w?.get(ENDPOINTS[1] ?? '') ?? 0) / Math.max(1, w?.get(ENDPOINTS[0] ?? '') ?? 0);

it('a discovered cluster resumes from the weights published before the restart, not from static ones', async () => {
  const { start } = await discovering(webService());

  const first = (running = await start());
  await first.settled;
  const feed = setInterval(() => {
    first.signals.ingest({ reporter: 't', samples: [
      { cluster: CLUSTER, endpoint: ENDPOINTS[0], time: Date.now(), cpu: 0.9 },
      { cluster: CLUSTER, endpoint: ENDPOINTS[1], time: Date.now(), cpu: 0.3 },
    ] });
  }, 100);
  try {
    await waitFor(() => ratioOf(first.store.loadWeights().get(CLUSTER)) > 3, { what: 'diverged weights persisted', timeoutMs: 20_000 });
  } finally {
    clearInterval(feed);
  }
  const persisted = ratioOf(first.store.loadWeights().get(CLUSTER));
  await first.stop();

  const second = (running = await start());
  await second.settled;
  // The cluster's first published weights, with no new reports: the persisted ones.
  const resumed = await waitFor(() => second.adaptive.current().get(CLUSTER), { what: 'the discovered cluster weighted' });
  const ratio = ratioOf(new Map([...resumed].map(([key, o]) => [key, o.weight ?? 0])));
  expect(Math.abs(ratio / persisted - 1)).toBeLessThan(0.05);
}, scaled(60_000));
