import http from 'node:http';
import { expect, it } from 'vitest';
import { describeEnvoy } from '../support/envoy.js';
import { listenLocal, type LocalServers } from '../support/local-servers.js';
import { waitFor } from '../support/wait.js';
import { webClusterPerTest, webHosts, type WebSetup } from './web-cluster-rig.js';

/**
 * A hung backend (accepts, never answers) behind a real Envoy, with nothing but Envoy's load
 * reports as signals: fulcrum's stall rule (src/balancing/engine/tick/stall.ts) takes it out from
 * the requests piling up in progress while its peers answer, long before the route timeout would
 * turn them into errors (the only thing the error rules could see). Envoy's own outlier detection
 * and retries are off, so what moves is fulcrum's doing.
 */

const ROUTE_TIMEOUT_MS = 60_000;

interface Backends extends LocalServers {
  /** Per backend: holds every request it gets, never answering. */
  readonly hung: boolean[];
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
  return { ...(await listenLocal(servers)), hung };
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

type Setup = WebSetup<Backends, ReturnType<typeof openLoop>>;

/** Whether Envoy has each backend in rotation. */
async function envoyHealthy(s: Setup): Promise<boolean[]> {
  return (await webHosts(s.rig, s.keys)).map((h) => h.healthy);
}

describeEnvoy('a hung backend with a real Envoy', () => {
  const perTest = webClusterPerTest<Backends, ReturnType<typeof openLoop>>();
  const setUp = (): Promise<Setup> =>
    perTest({ name: 'hung-backend', backends: () => startBackends(4), reportIntervalMs: 1_000, route: { timeoutMs: ROUTE_TIMEOUT_MS } }, (url) => openLoop(url, 100));

  it('is taken out from its load reports (requests piling up, none answered) well before its route timeout, and the reason says so', async () => {
    const r = await setUp();
    // Traffic flows and every backend has been reported (the rule needs a report before the hang).
    await waitFor(() => r.load.answered >= 300, { timeoutMs: 60_000, what: '300 answered requests' });
    await waitFor(() => r.keys.every((k) => r.rig.fulcrum.adaptive.explain('web')?.explanations.get(k)?.inputs.rps !== undefined), {
      timeoutMs: 30_000,
      what: 'load reports for every backend',
    });
    const hungAt = performance.now();
    r.rig.backends.hung[1] = true;
    await waitFor(async () => (await envoyHealthy(r))[1] === false, { timeoutMs: 30_000, what: 'Envoy to see the hung backend out of rotation' });
    // No request to it has ended (its route timeout is a minute away): no error rule could have fired.
    expect(performance.now() - hungAt).toBeLessThan(ROUTE_TIMEOUT_MS / 2);
    const x = r.rig.fulcrum.adaptive.explain('web')?.explanations.get(r.keys[1] as string);
    expect(x?.ejection?.reason).toMatch(/^stalled: \d+ requests in progress and none answered/);
    expect((await envoyHealthy(r)).filter((h) => h)).toHaveLength(3);
  });
});
