import * as grpc from '@grpc/grpc-js';
import { afterEach, expect, it } from 'vitest';
import type { Fulcrum } from '../../src/main.js';
import { decodeReportResponse, encodeReportRequest, REPORT_METHOD_PATH, type WireReportResponse } from '../../src/signals/report-grpc.js';
import { openLoop, startCapacityBackends, type CapacityBackends } from '../support/capacity-backends.js';
import { describeEnvoy, dumpLogsOnFailure, type EnvoyHandle } from '../support/envoy.js';
import { startRig } from '../support/rig.js';
import { scaled, waitFor } from '../support/wait.js';

/**
 * The loop closed end to end: backends whose utilization follows their load and capacity
 * (1× and 2×) report it — through Envoy's load reports (ORCA), or through fulcrum's report API —
 * the PID engine moves weights, Envoy applies them, and real traffic follows.
 */

const LOAD_RPS = 105; // 70% of 50 + 100 rps of capacity

/** One test's rig (test/support/rig.ts) and the open-loop load running through its Envoy. */
interface Rig {
  backends: CapacityBackends;
  fulcrum: Fulcrum;
  envoy: EnvoyHandle;
  /** Responses per backend since the last reset. */
  seen: number[];
  errors: number;
  stop(): Promise<void>;
}

let rig: Rig | undefined;
let envoyForLogs: EnvoyHandle | undefined;

async function setUp(opts: { orca: boolean; cluster?: Record<string, unknown>; engine?: Record<string, unknown>; health?: string }): Promise<Rig> {
  const started = await startRig({
    name: 'adaptive',
    backends: async () => {
      const backends = await startCapacityBackends([{ capacityRps: 50, baseLatencyMs: 40 }, { capacityRps: 100, baseLatencyMs: 40 }]);
      backends.orca = opts.orca;
      return backends;
    },
    config: ({ backends, listenerPort }) => ({
      server: { loadReporting: { intervalMs: 500 }, engine: { tickMs: 500, ...opts.engine } },
      clusters: [
        {
          name: 'web',
          weighting: { policy: 'pid', setpoint: 'mean', metric: 'cpu' },
          safety: { staleAfterMs: 3000, decayAfterMs: 6000, decayHalfLifeMs: 1500 },
          endpoints: backends.list.map((b) => ({ address: '127.0.0.1', port: b.port, weight: 1, ...(opts.health ? { health: opts.health } : {}) })),
          ...opts.cluster,
        },
      ],
      listeners: [{ name: 'ingress', address: '127.0.0.1', port: listenerPort, routes: [{ prefix: '/', cluster: 'web' }] }],
    }),
    waitForListener: 'ingress',
  });
  envoyForLogs = started.envoy;
  const r: Rig = { backends: started.backends, fulcrum: started.fulcrum, envoy: started.envoy, seen: [0, 0], errors: 0, stop: () => started.stop() };
  const load = openLoop(started.url, LOAD_RPS, (backend, _ms, ok) => {
    if (!ok) r.errors++;
    else if (backend !== undefined) r.seen[Number(backend)] = (r.seen[Number(backend)] ?? 0) + 1;
  });
  started.onStop(() => load.stop());
  rig = r;
  return r;
}

afterEach(async () => {
  const r = rig;
  rig = undefined;
  await r?.stop();
});

async function envoyWeights(r: Rig): Promise<number[]> {
  const hosts = (await r.envoy.clusterStatuses()).web?.hosts ?? [];
  return r.backends.list.map((b) => hosts.find((h) => h.address === b.key)?.weight ?? 0);
}

/** Share of traffic the 2× backend got over a fresh window of `ms`. */
async function bigShare(r: Rig, ms: number): Promise<number> {
  r.seen = [0, 0];
  await new Promise((resolve) => setTimeout(resolve, ms)); // a measurement window, not a wait for a condition
  const total = (r.seen[0] ?? 0) + (r.seen[1] ?? 0);
  return total === 0 ? 0 : (r.seen[1] ?? 0) / total;
}

async function converge(r: Rig): Promise<void> {
  // Round robin would give the 2× backend half the traffic; equal utilization needs two thirds.
  await waitFor(
    async (ctx) => {
      const [small = 0, big = 0] = await envoyWeights(r);
      ctx.note({ weights: [small, big], util: r.backends.list.map((b) => b.utilization().toFixed(2)) });
      return small > 0 && big / small >= 1.6;
    },
    { what: 'Envoy weights favour the 2× backend (≥ 1.6:1)', timeoutMs: 40_000, intervalMs: 250 },
  );
  // Then real traffic balances: utilization over a window, from the traffic each backend got
  // (round robin would give max/avg 1.33 here).
  const [c0 = 1, c1 = 1] = r.backends.list.map((b) => b.capacityRps);
  await waitFor(
    async (ctx) => {
      const share = await bigShare(r, 2_000);
      const u0 = ((1 - share) * LOAD_RPS) / c0;
      const u1 = (share * LOAD_RPS) / c1;
      const ratio = Math.max(u0, u1) / ((u0 + u1) / 2);
      ctx.note({ share, ratio });
      return share > 0.6 && ratio < 1.1;
    },
    { what: 'traffic balanced by utilization (max/avg < 1.1)', timeoutMs: 30_000, intervalMs: 0 },
  );
  expect(r.errors).toBe(0);
}

describeEnvoy('adaptive weights with a real Envoy', () => {
  dumpLogsOnFailure(() => envoyForLogs);

  it('ORCA utilization through Envoy load reports moves weights toward the bigger backend, and traffic follows', async () => {
    const r = await setUp({ orca: true });
    await converge(r);
    // The weights and their explanation are visible: PID terms from the utilization the backends reported.
    const explained = r.fulcrum.adaptive.explain('web');
    const big = explained?.explanations.get(r.backends.list[1]?.key ?? '');
    expect(big?.policy).toBe('pid');
    expect(big?.inputs.cpu).toBeGreaterThan(0);
    expect(big?.pid).toBeDefined();
  }, scaled(90_000));

  it('utilization sent to the report API does the same (no ORCA), and when reports stop weights hold, then decay to static without emptying', async () => {
    const r = await setUp({ orca: false });
    const client = new grpc.Client(`127.0.0.1:${r.fulcrum.xdsPort}`, grpc.credentials.createInsecure());
    const report = (samples: object[]): Promise<WireReportResponse> =>
      new Promise((resolve, reject) =>
        client.makeUnaryRequest(REPORT_METHOD_PATH, (b: Buffer) => b, decodeReportResponse, encodeReportRequest({ reporter: 'test-agent', samples }), (err, res) =>
          err || !res ? reject(err ?? new Error('no response')) : resolve(res),
        ),
      );
    let reporting = true;
    const agent = setInterval(() => {
      if (!reporting) return;
      const now = Date.now();
      const time = { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1e6 };
      void report(r.backends.list.map((b) => ({ cluster: 'web', endpoint: b.key, time, cpu: Math.min(1, b.utilization()) }))).catch(() => undefined);
    }, 250);
    try {
      // Garbage in the same channel is refused per sample and disturbs nothing.
      const bad = await report([{ cluster: 'web', endpoint: r.backends.list[0]?.key, cpu: Number.NaN }, { cluster: 'nope', endpoint: '1.2.3.4:5', cpu: 0.5 }]);
      expect(bad.accepted).toBe(0);
      expect(bad.rejected.length).toBeGreaterThanOrEqual(2);

      await converge(r);
      // Reports stop: weights hold while samples are merely stale (staleAfterMs 3000, decayAfterMs
      // 6000). Until they go stale the controller still acts on the last (noisy, measured)
      // utilization, so the hold is compared inside the stale window itself.
      reporting = false;
      clearInterval(agent);
      const stoppedAt = Date.now();
      await waitFor(() => Date.now() - stoppedAt > 3_600, { what: 'samples stale', intervalMs: 100 });
      const converged = await envoyWeights(r);
      await waitFor(() => Date.now() - stoppedAt > 4_800, { what: 'still inside the hold window', intervalMs: 100 });
      const held = await envoyWeights(r);
      const heldRatio = (held[1] ?? 0) / (held[0] ?? 1) / ((converged[1] ?? 0) / (converged[0] ?? 1));
      expect(Math.abs(heldRatio - 1)).toBeLessThan(0.1);
      // ... then decay toward the static 1:1, never emptying the cluster.
      await waitFor(
        async (ctx) => {
          const [a = 0, b = 0] = await envoyWeights(r);
          ctx.note([a, b]);
          return a > 0 && b > 0 && b / a < 1.15;
        },
        { what: 'weights decayed back toward static 1:1', timeoutMs: 30_000, intervalMs: 250 },
      );
      const hosts = (await r.envoy.clusterStatuses()).web?.hosts ?? [];
      expect(hosts).toHaveLength(2);
      expect(hosts.every((h) => h.healthy && h.weight >= 1)).toBe(true);
      expect(r.errors).toBe(0);
    } finally {
      clearInterval(agent);
      client.close();
    }
  }, scaled(120_000));

  it('a dead backend is ejected by probes and returns only after 3 successful probes', async () => {
    const r = await setUp({
      orca: true,
      cluster: { probe: { kind: 'tcp', intervalMs: 200, timeoutMs: 200 } },
      engine: { health: { failureThreshold: 3, successThreshold: 3, baseBackoffMs: 1000 } },
    });
    const small = r.backends.list[0];
    if (!small) throw new Error('no backend');
    await r.backends.kill(0);
    // Left out of the assignment (not sent UNHEALTHY: Envoy counts those against its panic threshold).
    await waitFor(
      async () => {
        const hosts = (await r.envoy.clusterStatuses()).web?.hosts ?? [];
        return hosts.length === 1 && hosts.every((h) => h.address !== small.key);
      },
      { what: 'the dead backend taken out of Envoy', timeoutMs: 15_000, intervalMs: 100 },
    );
    r.errors = 0;
    await bigShare(r, 1_000);
    expect(r.errors).toBe(0);
    expect(r.seen[0]).toBe(0);

    await r.backends.revive(0);
    const revivedAt = Date.now();
    await waitFor(
      async () => ((await r.envoy.clusterStatuses()).web?.hosts ?? []).find((h) => h.address === small.key)?.healthy,
      { what: 'the revived backend healthy again', timeoutMs: 15_000, intervalMs: 100 },
    );
    // Back only after the backoff and 3 consecutive successes at a 200 ms interval.
    expect(Date.now() - revivedAt).toBeGreaterThanOrEqual(400);
    const record = r.fulcrum.adaptive.explain('web')?.explanations.get(small.key);
    expect(record?.health).toBe('HEALTHY');
  }, scaled(90_000));

  it('an endpoint declared DEGRADED whose backend dies is taken out by probes: Envoy no longer has it, it gets no traffic', async () => {
    // Every host degraded: Envoy sends them all traffic (no healthy host to prefer), so a dead one
    // left in would keep getting its share. With nothing HEALTHY or UNKNOWN, the DEGRADED tier is
    // sent UNKNOWN (translate-clusters.ts tierOf), which proxyless gRPC can use too.
    const r = await setUp({ orca: true, health: 'DEGRADED', cluster: { probe: { kind: 'tcp', intervalMs: 200, timeoutMs: 200 } }, engine: { health: { failureThreshold: 3 } } });
    const [small, big] = r.backends.list;
    if (!small || !big) throw new Error('no backends');
    const host = async (key: string) => ((await r.envoy.clusterStatuses()).web?.hosts ?? []).find((h) => h.address === key);
    await waitFor(async () => (await host(small.key))?.healthy === true && (await host(big.key))?.healthy === true, { what: 'both DEGRADED hosts in Envoy, sent UNKNOWN', timeoutMs: 15_000, intervalMs: 100 });
    await r.backends.kill(0);
    await waitFor(async () => (await host(small.key)) === undefined && (await host(big.key)) !== undefined, {
      what: 'the dead DEGRADED backend taken out',
      timeoutMs: 15_000,
      intervalMs: 100,
    });
    expect((await host(big.key))?.healthy).toBe(true);
    r.errors = 0;
    await bigShare(r, 1_000);
    expect(r.errors).toBe(0);
    expect(r.seen[0]).toBe(0);
    expect(r.seen[1]).toBeGreaterThan(0);
  }, scaled(90_000));
});
