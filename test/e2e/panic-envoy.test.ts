import { afterEach, expect, it } from 'vitest';
import { sendRequests, startBackends, type Backends } from '../support/backends.js';
import { startCapacityBackends, type CapacityBackends } from '../support/capacity-backends.js';
import { describeEnvoy, dumpLogsOnFailure, type ClusterHost } from '../support/envoy.js';
import { startRig, type Closable, type Rig } from '../support/rig.js';
import { scaled, waitFor } from '../support/wait.js';

/**
 * Envoy's panic mode against the endpoints fulcrum takes out. With fewer than half of a cluster's
 * hosts healthy (its default panic threshold, 50%), Envoy balances over every host it has,
 * unhealthy ones included: endpoints fulcrum's probes had taken out and sent UNHEALTHY got their
 * even share. They are left out of the assignment instead, so Envoy's panic mode only ever
 * balances over the hosts fulcrum keeps, where it still helps (a host Envoy's own outlier
 * detection ejected is used when it is the only one).
 */

let rig: Rig<Closable> | undefined;

afterEach(async () => {
  const r = rig;
  rig = undefined;
  await r?.stop();
});

const ENGINE = { tickMs: 250, health: { failureThreshold: 2, successThreshold: 2, baseBackoffMs: 1000 } };

async function setUp<B extends CapacityBackends | Backends>(
  backends: () => Promise<B>,
  ports: (b: B) => number[],
  cluster: (port: number, i: number) => Record<string, unknown> = () => ({}),
  more: Record<string, unknown> = {},
): Promise<Rig<B>> {
  const started = await startRig({
    name: 'panic',
    backends,
    config: ({ backends: b, listenerPort }) => ({
      server: { engine: ENGINE },
      clusters: [
        {
          name: 'web',
          probe: { kind: 'tcp', intervalMs: 200, timeoutMs: 200 },
          endpoints: ports(b).map((port, i) => ({ address: '127.0.0.1', port, ...cluster(port, i) })),
          ...more,
        },
      ],
      listeners: [{ name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'web' }] }],
    }),
    waitForListener: 'ingress',
  });
  rig = started;
  return started;
}

const capacity = (n: number) => () => startCapacityBackends(Array.from({ length: n }, () => ({ capacityRps: 400, baseLatencyMs: 5 })));
const capacityPorts = (b: CapacityBackends): number[] => b.list.map((x) => x.port);

async function hostsOf(r: Rig<Closable>, keys: readonly string[]): Promise<(ClusterHost | undefined)[]> {
  const hosts = (await r.envoy.clusterStatuses()).web?.hosts ?? [];
  return keys.map((k) => hosts.find((h) => h.address === k));
}

/** Sends 300 requests; returns where Envoy sent them: per host, its connection attempts and requests. */
async function attemptsDuring(r: Rig<Closable>, keys: readonly string[]): Promise<{ result: Awaited<ReturnType<typeof sendRequests>>; attempts: number[]; panics: number }> {
  const tried = async (): Promise<number[]> => (await hostsOf(r, keys)).map((h) => (h?.cx_connect_fail ?? 0) + (h?.rq_total ?? 0));
  const before = await tried();
  const panicsBefore = (await r.envoy.stat('cluster.web.lb_healthy_panic')) ?? 0;
  const result = await sendRequests(r.url, 300, { concurrency: 4 });
  const after = await tried();
  const panics = ((await r.envoy.stat('cluster.web.lb_healthy_panic')) ?? 0) - panicsBefore;
  return { result, attempts: after.map((n, i) => n - (before[i] ?? 0)), panics };
}

/** 300 requests, all to the third backend: none tried on the first two, and no panic. */
async function expectThirdTakesAll(r: Rig<Closable>, keys: readonly string[]): Promise<void> {
  const { result, attempts, panics } = await attemptsDuring(r, keys);
  expect(result.errors).toBe(0);
  expect(result.distribution['2']).toBe(300);
  expect({ attempts: attempts.slice(0, 2), panics }).toEqual({ attempts: [0, 0], panics: 0 });
}

describeEnvoy('Envoy panic mode and the endpoints fulcrum took out', () => {
  dumpLogsOnFailure(() => rig?.envoys[0]);

  it('two of three backends dead: probes take them out and Envoy sends them nothing (no panic over the dead)', async () => {
    const r = await setUp(capacity(3), capacityPorts);
    const keys = r.backends.list.map((b) => b.key);
    await r.backends.kill(0);
    await r.backends.kill(1);
    const out = (i: number): string | undefined => r.fulcrum.adaptive.publishedHealthOf('web')(keys[i] as string);
    await waitFor(() => out(0) === 'UNHEALTHY' && out(1) === 'UNHEALTHY', { what: 'probes take both dead backends out', timeoutMs: 20_000, intervalMs: 100 });
    // Then Envoy stops trying them (the push takes a moment).
    await waitFor(
      async (ctx) => {
        const window = await attemptsDuring(r, keys);
        ctx.note({ attempts: window.attempts, panics: window.panics, errors: window.result.errors });
        return window.attempts[0] === 0 && window.attempts[1] === 0;
      },
      { what: 'Envoy sends the dead backends nothing', timeoutMs: 20_000, intervalMs: 100 },
    );
    // Not one connection attempt to a dead backend, retried or not (~370 of them for 300 requests before).
    await expectThirdTakesAll(r, keys);
  }, scaled(90_000));

  it('two of three backends draining: the third takes every new request', async () => {
    const r = await setUp(capacity(3), capacityPorts, (_, i) => (i < 2 ? { health: 'DRAINING' } : {}));
    const keys = r.backends.list.map((b) => b.key);
    await waitFor(async () => (await hostsOf(r, keys)).every((h) => h !== undefined), { what: 'three hosts in Envoy', timeoutMs: 20_000, intervalMs: 100 });
    await expectThirdTakesAll(r, keys);
  }, scaled(90_000));

  it('two of three backends declared UNHEALTHY (a Kubernetes pod not ready, say): the third takes every request', async () => {
    // Sent UNHEALTHY, Envoy's panic mode gave each of them a third of the requests.
    const r = await setUp(capacity(3), capacityPorts, (_, i) => (i < 2 ? { health: 'UNHEALTHY' } : {}));
    const keys = r.backends.list.map((b) => b.key);
    await waitFor(async () => (await hostsOf(r, keys))[2] !== undefined, { what: 'the healthy host in Envoy', timeoutMs: 20_000, intervalMs: 100 });
    await expectThirdTakesAll(r, keys);
  }, scaled(90_000));

  it('none routable: the DRAINING backend (a terminating pod still serving) takes every request, not those declared UNHEALTHY', async () => {
    const r = await setUp(capacity(3), capacityPorts, (_, i) => ({ health: i === 0 ? 'DRAINING' : 'UNHEALTHY' }));
    const keys = r.backends.list.map((b) => b.key);
    await waitFor(async () => (await hostsOf(r, keys))[0] !== undefined, { what: 'the draining host in Envoy', timeoutMs: 20_000, intervalMs: 100 });
    const result = await sendRequests(r.url, 300, { concurrency: 4 });
    expect(result.errors).toBe(0);
    expect(result.distribution).toEqual({ '0': 300 });
  }, scaled(90_000));

  it('every backend declared UNHEALTHY: all are still sent, and Envoy balances over them (never an empty cluster)', async () => {
    // Sent UNKNOWN (proxyless gRPC, which has no panic mode, would use none of them UNHEALTHY):
    // Envoy balances over them as its panic mode did.
    const r = await setUp(capacity(3), capacityPorts, () => ({ health: 'UNHEALTHY' }));
    const keys = r.backends.list.map((b) => b.key);
    await waitFor(async () => (await hostsOf(r, keys)).every((h) => h !== undefined && !h.health_flags.includes('failed_eds_health')), {
      what: 'three hosts in Envoy, none flagged failed_eds_health',
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    const result = await sendRequests(r.url, 300, { concurrency: 4 });
    expect(result.errors).toBe(0);
    expect(Object.keys(result.distribution).sort()).toEqual(['0', '1', '2']);
  }, scaled(90_000));

  it('after a full outage the first backend back serves everything, even one Envoy\'s outlier detection had ejected', async () => {
    // What Envoy's panic mode is still for: with it off, the revived host (ejected by Envoy while
    // it refused connections) and the dead one (UNHEALTHY) left Envoy no host: 100 of 100 requests 503.
    const r = await setUp(capacity(2), capacityPorts);
    const keys = r.backends.list.map((b) => b.key);
    await r.backends.kill(0);
    await r.backends.kill(1);
    let ejected = -1;
    await waitFor(
      async () => {
        await sendRequests(r.url, 20, { concurrency: 2, timeoutMs: 5_000 });
        ejected = (await hostsOf(r, keys)).findIndex((h) => h?.health_flags.includes('failed_outlier_check'));
        return ejected >= 0;
      },
      { what: 'Envoy ejects one of the dead backends', timeoutMs: 30_000, intervalMs: 100 },
    );
    // The outage is whole once fulcrum's probes have found both dead (it then fails static and
    // sends both). Revived before that, the first back could still be found dead afterwards by a
    // probe sent before its revival, and the dead one sent again: 503s the test would blame on panic.
    await waitFor(() => r.fulcrum.adaptive.explain('web')?.tick.failStatic === true, { what: 'fulcrum finds both dead', timeoutMs: 20_000, intervalMs: 50 });
    await r.backends.revive(ejected);
    const dead = keys[1 - ejected] as string;
    const outOfRotation = (h: ClusterHost | undefined): boolean => h === undefined || h.health_flags.includes('failed_eds_health');
    await waitFor(async () => r.fulcrum.adaptive.publishedHealthOf('web')(dead) === 'UNHEALTHY' && outOfRotation((await hostsOf(r, [dead]))[0]), {
      what: 'the one still dead taken out',
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    // The admin's host list can change before every worker thread's copy of it: one clean round first.
    await waitFor(async () => (await sendRequests(r.url, 20, { concurrency: 2 })).distribution[String(ejected)] === 20, {
      what: 'a round served whole by the revived backend',
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    const result = await sendRequests(r.url, 100, { concurrency: 2 });
    expect(result.errorSamples).toEqual([]);
    expect(result.distribution[String(ejected)]).toBe(100);
  }, scaled(90_000));

  it('a backend back from an outage its probes found returns to Envoy at a quarter of its weight under pid, whole under static', async () => {
    // A restarted backend is cold: handed its whole share at once, it can fall over again.
    for (const policy of ['pid', 'static'] as const) {
      const r = await setUp(capacity(2), capacityPorts, () => ({}), { weighting: { policy } });
      const keys = r.backends.list.map((b) => b.key);
      await waitFor(async () => (await hostsOf(r, keys)).every((h) => h?.healthy), { what: 'both hosts in Envoy', timeoutMs: 20_000, intervalMs: 100 });
      await r.backends.kill(0);
      await waitFor(async () => (await hostsOf(r, keys))[0] === undefined, { what: 'backend 0 taken out of Envoy', timeoutMs: 20_000, intervalMs: 100 });
      await r.backends.revive(0);
      // The first weight Envoy holds for it once back, against the other's.
      let ratio = Number.NaN;
      await waitFor(
        async () => {
          const [back, other] = await hostsOf(r, keys);
          if (back && other) ratio = back.weight / other.weight;
          return back !== undefined;
        },
        { what: 'backend 0 back in Envoy', timeoutMs: 20_000, intervalMs: 50 },
      );
      if (policy === 'pid') expect(ratio).toBeLessThan(0.5);
      else expect(ratio).toBe(1);
      await r.stop();
      rig = undefined;
    }
  }, scaled(120_000));

  it('Envoy health checks passing do not keep a backend fulcrum\'s probes took out (a removed host is not held for its checks)', async () => {
    // fulcrum probes HTTP (503: failing), Envoy checks TCP (passing). Envoy keeps a host removed
    // from EDS, and balances to it, while its active health checks pass, unless told to ignore
    // them on removal (without: Envoy still sent it half the requests 20 s later).
    const r = await setUp(
      () => startBackends(2),
      (b) => b.list.map((x) => x.port),
      () => ({}),
      {
        probe: { kind: 'http', path: '/', intervalMs: 200, timeoutMs: 200 },
        healthCheck: { kind: 'tcp', intervalMs: 200, timeoutMs: 200 },
        // Only fulcrum's verdict: Envoy's outlier detection would eject this 503ing backend itself.
        outlierDetection: { enabled: false },
        retryPolicy: { enabled: false },
      },
    );
    const keys = r.backends.list.map((b) => `127.0.0.1:${b.port}`);
    await waitFor(async () => (await hostsOf(r, keys)).every((h) => h?.healthy), { what: 'both hosts healthy in Envoy', timeoutMs: 20_000, intervalMs: 100 });
    r.backends.behave(0, { status: 503 });
    await waitFor(async () => r.fulcrum.adaptive.publishedHealthOf('web')(keys[0] as string) === 'UNHEALTHY', { what: 'probes take backend 0 out', timeoutMs: 20_000, intervalMs: 100 });
    // Round robin over two hosts: 40 requests without one to backend 0 means Envoy no longer has it.
    await waitFor(async () => (await sendRequests(r.url, 40, { concurrency: 2 })).distribution['0'] === undefined, {
      what: 'Envoy stops sending backend 0 requests',
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    const result = await sendRequests(r.url, 200, { concurrency: 4 });
    expect(result.distribution).toEqual({ '1': 200 });
    expect(result.errors).toBe(0);
  }, scaled(90_000));
});
