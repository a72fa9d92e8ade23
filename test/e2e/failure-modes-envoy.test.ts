import http from 'node:http';
import { expect, it } from 'vitest';
import { describeEnvoy } from '../support/envoy.js';
import { listenLocal, type LocalServers } from '../support/local-servers.js';
import { waitFor } from '../support/wait.js';
import { webClusterPerTest, webHosts, type WebSetup } from './web-cluster-rig.js';

/**
 * fulcrum's weights under failure modes, with a real Envoy in the path and nothing but Envoy's
 * load reports (LRS: request and error counts, plus the ORCA values backends return) as signals:
 * a backend that fails fast loses share instead of gaining it, fulcrum's fleet outlier detector
 * ejects it, and a backend slowed by a dependency (CPU unchanged) loses share under the default
 * PID metric. Envoy's own outlier detection and retries are switched off here so that what moves
 * is fulcrum's doing.
 */

interface Behavior {
  /** Share of requests answered 503 at once (no ORCA on them). */
  failRatio: number;
  /** Service time of a successful request, ms; reported as named_metrics.latency_ms. */
  latencyMs: number;
}

interface Backends extends LocalServers {
  readonly behaviors: Behavior[];
}

/** Backends reporting a fixed CPU (the same for all: only errors or latency set them apart). */
async function startBackends(behaviors: Behavior[]): Promise<Backends> {
  const servers = behaviors.map((b, index) =>
    http.createServer((req, res) => {
      req.resume();
      res.setHeader('x-backend', String(index));
      if (Math.random() < b.failRatio) {
        res.statusCode = 503;
        res.end('unavailable\n');
        return;
      }
      setTimeout(() => {
        res.setHeader('endpoint-load-metrics', `TEXT cpu_utilization=0.5, named_metrics.latency_ms=${b.latencyMs}`);
        res.end(`backend ${index}\n`);
      }, b.latencyMs);
    }),
  );
  return { ...(await listenLocal(servers)), behaviors };
}

/**
 * A few closed-loop clients through Envoy, counting per backend the requests it answered
 * (`routed`, errors included: every backend names itself) and its successes (`seen`), and errors.
 */
function drive(url: string, concurrency: number): { seen: number[]; routed: number[]; errors: number; total: number; reset(): void; stop(): Promise<void> } {
  const state = { seen: [0, 0, 0, 0], routed: [0, 0, 0, 0], errors: 0, total: 0, running: true };
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const req = http.get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => {
          state.total++;
          const b = Number(res.headers['x-backend']);
          if (Number.isInteger(b)) state.routed[b] = (state.routed[b] ?? 0) + 1;
          if (res.statusCode === 200 && Number.isInteger(b)) state.seen[b] = (state.seen[b] ?? 0) + 1;
          else state.errors++;
          resolve();
        });
      });
      req.on('error', () => (state.errors++, state.total++, resolve()));
    });
  const loops = Array.from({ length: concurrency }, async () => {
    while (state.running) await one();
  });
  return {
    get seen() {
      return state.seen;
    },
    get routed() {
      return state.routed;
    },
    get errors() {
      return state.errors;
    },
    get total() {
      return state.total;
    },
    reset() {
      state.seen = [0, 0, 0, 0];
      state.routed = [0, 0, 0, 0];
      state.errors = 0;
      state.total = 0;
    },
    async stop() {
      state.running = false;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

type Setup = WebSetup<Backends, ReturnType<typeof drive>>;

/** Envoy's view of the cluster: per backend, its weight and whether it is in rotation. */
function envoyHosts(s: Setup): Promise<{ weight: number; healthy: boolean }[]> {
  return webHosts(s.rig, s.keys);
}

describeEnvoy('failure modes with a real Envoy', () => {
  const perTest = webClusterPerTest<Backends, ReturnType<typeof drive>>();
  const setUp = (behaviors: Behavior[], cluster: Record<string, unknown>): Promise<Setup> =>
    perTest({ name: 'failure-modes', backends: () => startBackends(behaviors), reportIntervalMs: 500, cluster }, (url) => drive(url, 8));

  it('a backend failing half its requests fast loses share under pid (errors from Envoy\'s load reports)', async () => {
    const r = await setUp(
      [{ failRatio: 0, latencyMs: 5 }, { failRatio: 0, latencyMs: 5 }, { failRatio: 0.5, latencyMs: 5 }],
      { ejection: { enabled: false } },
    );
    // Envoy's weights for the failing backend fall well below the others' ...
    await waitFor(async () => {
      const h = await envoyHosts(r);
      return (h[2]?.weight ?? Infinity) * 3 < Math.min(h[0]?.weight ?? 0, h[1]?.weight ?? 0);
    }, { timeoutMs: 60_000, what: 'the failing backend\'s weight in Envoy to drop below a third of the others\'' });
    // ... and real traffic follows: it now gets far less than its third of the requests. Counted
    // exactly (every answer names its backend), over enough requests that the count's own noise
    // (~0.01 at 1,500) stays well inside the margin: a third of the others' weight is a share of
    // 1/7 at most, and the weight goes on falling (to ~0.23 of the others' here, a share of ~0.10).
    r.load.reset();
    await waitFor(() => r.load.total >= 1_500, { timeoutMs: 60_000, what: '1,500 requests' });
    const failingShare = (r.load.routed[2] ?? 0) / Math.max(1, r.load.total);
    expect(failingShare).toBeLessThan(0.15);
    expect(r.rig.fulcrum.adaptive.explain('web')?.explanations.get(r.keys[2] as string)?.rules).toContain('error-penalty');
  });

  it('fulcrum\'s fleet outlier detector ejects a backend failing every request, and lets it back after the back-off once it recovers', async () => {
    const r = await setUp(
      [{ failRatio: 0, latencyMs: 5 }, { failRatio: 0, latencyMs: 5 }, { failRatio: 1, latencyMs: 5 }],
      { ejection: { baseEjectionMs: 3_000 } },
    );
    await waitFor(async () => (await envoyHosts(r))[2]?.healthy === false, { timeoutMs: 30_000, what: 'Envoy to see the failing backend unhealthy' });
    expect(r.rig.fulcrum.adaptive.explain('web')?.explanations.get(r.keys[2] as string)?.ejection?.reason).toMatch(/all-failing|failure-percentage/);
    r.load.reset();
    await waitFor(() => r.load.total >= 300, { timeoutMs: 60_000, what: '300 requests' });
    // While ejected (probation releases may let a few through before the next ejection), errors are rare.
    expect(r.load.errors / r.load.total).toBeLessThan(0.1);
    (r.rig.backends.behaviors[2] as Behavior).failRatio = 0;
    await waitFor(async () => (await envoyHosts(r))[2]?.healthy === true && (r.load.seen[2] ?? 0) > 0, {
      timeoutMs: 60_000,
      what: 'the recovered backend back in rotation, serving',
    });
  });

  it('a backend slowed 5× by a dependency (same CPU) loses share under the default pid metric', async () => {
    const r = await setUp(
      [{ failRatio: 0, latencyMs: 10 }, { failRatio: 0, latencyMs: 10 }, { failRatio: 0, latencyMs: 50 }],
      {},
    );
    await waitFor(async () => {
      const h = await envoyHosts(r);
      return (h[2]?.weight ?? Infinity) * 2 < Math.min(h[0]?.weight ?? 0, h[1]?.weight ?? 0);
    }, { timeoutMs: 60_000, what: 'the slow backend\'s weight in Envoy to drop below half of the others\'' });
    expect(r.rig.fulcrum.adaptive.explain('web')?.explanations.get(r.keys[2] as string)?.rules).toContain('latency-penalty');
  });
});
