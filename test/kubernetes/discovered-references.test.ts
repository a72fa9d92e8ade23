/**
 * A config route may name a discovered cluster (README: before it exists). When its Service goes
 * away the route dangles (Envoy answers it 503): fulcrum keeps the route, says so once, counts
 * it, and shows it on the listener, as for a cluster the config file dropped
 * (test/catalog/dangling-references.test.ts).
 */
import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { scaled, waitFor } from '../support/wait.js';
import { balancedService, fakeApiKubeconfig, fakeApiServer, readySlices, type FakeApiState } from './fake-api-server.js';

const SERIES = 'fulcrum_dangling_references{referrer="listener",name="greeter",cluster="shop/web:http"} 1';

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

it('a discovered cluster leaving under a config route: the route is kept, warned once, counted and shown until the Service is back', async () => {
  dir = await mkdtemp(join(tmpdir(), 'fulcrum-k8s-refs-'));
  const state: FakeApiState = { up: true, services: [balancedService('shop', 'web')], slices: readySlices('shop', 'web', ['10.0.0.1']) };
  api = await fakeApiServer(state);
  const configPath = join(dir, 'fulcrum.yaml');
  await writeFile(
    configPath,
    `kubernetes: { enabled: true, kubeconfig: ${JSON.stringify(await fakeApiKubeconfig(dir, api))} }\n` +
      'clusters: [{ name: file-web, endpoints: [{ address: 127.0.0.1, port: 8080 }] }]\n' +
      'listeners: [{ name: greeter, apiListener: true, routes: [{ cluster: "shop/web:http" }] }]\n',
  );
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const f = (running = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminPort: 0, adminAddress: '127.0.0.1', logger: pino({ level: 'info' }, sink) }));
  await f.settled;
  const admin = async (path: string): Promise<unknown> => (await fetch(`http://127.0.0.1:${f.adminPort}${path}`)).json();
  const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${f.adminPort}/metrics`)).text();
  const warnings = (): Record<string, unknown>[] => lines.filter((l) => l.level === 40 && Array.isArray(l.references));

  // The Service is deleted; the informers' watches end and list again.
  state.services = [];
  state.slices = [];
  state.gone = new Set(['services', 'endpointslices']);
  api.closeAllConnections();
  await waitFor(async () => (await metrics()).includes(SERIES), { what: 'the dangling route counted', timeoutMs: 20_000 });
  expect(warnings()).toEqual([expect.objectContaining({ references: ['listener "greeter" -> cluster "shop/web:http"'] })]);
  expect(await admin('/v1/listeners/greeter')).toMatchObject({ owner: 'file', routes: [{ cluster: 'shop/web:http' }], missingClusters: ['shop/web:http'] });

  // Back: resolved, said once, nothing warned again.
  state.services = [balancedService('shop', 'web')];
  state.slices = readySlices('shop', 'web', ['10.0.0.1']);
  state.gone = new Set(['services', 'endpointslices']);
  api.closeAllConnections();
  await waitFor(async () => !(await metrics()).includes('fulcrum_dangling_references{'), { what: 'the route resolved', timeoutMs: 20_000 });
  expect(await admin('/v1/listeners/greeter')).not.toHaveProperty('missingClusters');
  expect(warnings()).toHaveLength(1);
}, scaled(90_000));
