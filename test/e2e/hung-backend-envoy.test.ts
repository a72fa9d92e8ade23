import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { describeEnvoy, dumpLogsOnFailure, startEnvoy, type EnvoyHandle } from '../support/envoy.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

/**
 * A hung backend (accepts, never answers) behind a real Envoy, with nothing but Envoy's load
 * reports as signals: fulcrum's stall rule (src/balancing/engine/tick/stall.ts) takes it out from
 * the requests piling up in progress while its peers answer, long before the route timeout would
 * turn them into errors (the only thing the error rules could see). Envoy's own outlier detection
 * and retries are off, so what moves is fulcrum's doing.
 */

const ROUTE_TIMEOUT_MS = 60_000;

interface Backends {
  readonly ports: number[];
  /** Per backend: holds every request it gets, never answering. */
  readonly hung: boolean[];
  close(): Promise<void>;
}

async function startBackends(n: number): Promise<Backends> {
  const hung = new Array<boolean>(n).fill(false);
  const servers = hung.map((_, index) =>
    http.createServer((req, res) => {
      req.resume();
      if (hung[index]) return; // held until the test closes every connection
      setTimeout(() => res.end(`backend ${index}\n`), 5);
    }),
  );
  for (const s of servers) await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  return {
    ports: servers.map((s) => (s.address() as AddressInfo).port),
    hung,
    close: async () => {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.closeAllConnections(), s.close(() => resolve())))));
    },
  };
}

/** Open-loop load: `perSecond` requests started every second whatever became of the earlier ones (a hung backend must not stall the client). */
function openLoop(url: string, perSecond: number): { readonly answered: number; stop(): void } {
  const agent = new http.Agent({ keepAlive: true });
  const state = { answered: 0 };
  const timer = setInterval(() => {
    for (let i = 0; i < perSecond / 20; i++) {
      const req = http.get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => void (res.statusCode === 200 && state.answered++));
      });
      req.on('error', () => undefined);
    }
  }, 50);
  return {
    get answered() {
      return state.answered;
    },
    stop() {
      clearInterval(timer);
      agent.destroy();
    },
  };
}

interface Rig {
  dir: string;
  backends: Backends;
  fulcrum: Fulcrum;
  envoy: EnvoyHandle;
  load: ReturnType<typeof openLoop>;
  keys: string[];
}

let rig: Rig | undefined;

async function setUp(): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-hung-backend-'));
  const backends = await startBackends(4);
  const listenerPort = await freePort();
  const configPath = join(dir, 'fulcrum.yaml');
  await writeFile(
    configPath,
    YAML.stringify({
      server: { loadReporting: { intervalMs: 1_000 }, engine: { tickMs: 500 } },
      clusters: [
        {
          name: 'web',
          weighting: { policy: 'pid' },
          outlierDetection: { enabled: false },
          retryPolicy: { enabled: false },
          endpoints: backends.ports.map((port) => ({ address: '127.0.0.1', port })),
        },
      ],
      listeners: [{ name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'web', timeoutMs: ROUTE_TIMEOUT_MS }] }],
    }),
  );
  const fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger: pino({ level: 'silent' }), debounce: { quietMs: 20, maxMs: 200 } });
  let envoy: EnvoyHandle | undefined;
  try {
    envoy = await startEnvoy({ xdsPort: fulcrum.xdsPort, mode: 'sotw', nodeId: 'hung-backend', name: 'envoy-hung-backend' });
    await envoy.waitForListener('ingress', 20_000);
  } catch (err) {
    await envoy?.stop();
    await fulcrum.stop();
    await backends.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const load = openLoop(`http://127.0.0.1:${listenerPort}/`, 100);
  rig = { dir, backends, fulcrum, envoy, load, keys: backends.ports.map((p) => `127.0.0.1:${p}`) };
  return rig;
}

afterEach(async () => {
  const r = rig;
  rig = undefined;
  if (!r) return;
  r.load.stop();
  await r.envoy.stop();
  await r.fulcrum.stop();
  await r.backends.close();
  await rm(r.dir, { recursive: true, force: true });
});

/** Whether Envoy has each backend in rotation. */
async function envoyHealthy(r: Rig): Promise<boolean[]> {
  const hosts = (await r.envoy.clusterStatuses())['web']?.hosts ?? [];
  return r.keys.map((k) => hosts.find((x) => x.address === k)?.healthy ?? false);
}

describeEnvoy('a hung backend with a real Envoy', () => {
  dumpLogsOnFailure(() => rig?.envoy);

  it('is taken out from its load reports (requests piling up, none answered) well before its route timeout, and the reason says so', async () => {
    const r = await setUp();
    // Traffic flows and every backend has been reported (the rule needs a report before the hang).
    await waitFor(() => r.load.answered >= 300, { timeoutMs: 60_000, what: '300 answered requests' });
    await waitFor(() => r.keys.every((k) => r.fulcrum.adaptive.explain('web')?.explanations.get(k)?.inputs.rps !== undefined), {
      timeoutMs: 30_000,
      what: 'load reports for every backend',
    });
    const hungAt = performance.now();
    r.backends.hung[1] = true;
    await waitFor(async () => (await envoyHealthy(r))[1] === false, { timeoutMs: 30_000, what: 'Envoy to see the hung backend out of rotation' });
    // No request to it has ended (its route timeout is a minute away): no error rule could have fired.
    expect(performance.now() - hungAt).toBeLessThan(ROUTE_TIMEOUT_MS / 2);
    const x = r.fulcrum.adaptive.explain('web')?.explanations.get(r.keys[1] as string);
    expect(x?.ejection?.reason).toMatch(/^stalled: \d+ requests in progress and none answered/);
    expect((await envoyHealthy(r)).filter((h) => h)).toHaveLength(3);
  });
});
