/**
 * The last published weights survive a restart for Kubernetes-discovered clusters too. They are
 * not stored as clusters (rebuilt from the API server), so they reach the weight engine after
 * discovery's first view, after the weight loop resumed from the archive: the archived weights
 * must wait for them, or every restart sloshes their traffic back to static weights.
 */
import type { Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { scaled, waitFor } from '../support/wait.js';
import { balancedService, fakeApiKubeconfig, fakeApiServer, readySlices } from './fake-api-server.js';

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

/** The second endpoint's weight over the first's. */
const ratioOf = (w: ReadonlyMap<string, number> | undefined): number => (w?.get(ENDPOINTS[1] ?? '') ?? 0) / Math.max(1, w?.get(ENDPOINTS[0] ?? '') ?? 0);

it('a discovered cluster resumes from the weights published before the restart, not from static ones', async () => {
  dir = await mkdtemp(join(tmpdir(), 'fulcrum-k8s-weights-'));
  const state = { up: true, services: [balancedService('shop', 'web', { 'fulcrum.io/weighting': 'pid' })], slices: readySlices('shop', 'web', ['10.0.0.1', '10.0.0.2']) };
  api = await fakeApiServer(state);
  const configPath = join(dir, 'fulcrum.yaml');
  await writeFile(configPath, `kubernetes: { enabled: true, kubeconfig: ${JSON.stringify(await fakeApiKubeconfig(dir, api))} }\n`);
  const start = (): Promise<Fulcrum> =>
    startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', dataDir: join(dir as string, 'data'), engineTickMs: 100, logger: pino({ level: 'silent' }) });

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
