import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { describeEnvoy, dumpLogsOnFailure, startEnvoy, type EnvoyHandle } from '../support/envoy.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { sendN, startLoad, startTestBackends, summarize, type TestBackend } from './protection-backends.js';

/**
 * Envoy-side protection emitted by fulcrum, with a real Envoy: outlier detection takes a dead or
 * fast-failing backend out, retries hide single failures, active health checks run, and client-side
 * weighted round robin follows the backends' ORCA reports. Figures are printed for the record.
 */

type Sets = Record<'dead' | 'retry' | 'flaky' | 'orca' | 'checked', TestBackend[]>;

const endpointsOf = (list: readonly TestBackend[]) => list.map((b) => ({ address: '127.0.0.1', port: b.port }));
const OFF = { outlierDetection: { enabled: false }, retryPolicy: { enabled: false } };

function config(sets: Sets, port: number): unknown {
  const clusters = [
    // Fulcrum's defaults: outlier detection and retries on, no probe: only Envoy acts.
    { name: 'dead', endpoints: endpointsOf(sets.dead) },
    { name: 'dead-plain', ...OFF, endpoints: endpointsOf(sets.dead) },
    { name: 'retry', endpoints: endpointsOf(sets.retry) },
    { name: 'noretry', ...OFF, endpoints: endpointsOf(sets.retry) },
    // A reset after the request was sent may follow effects: retried only when the operator says so.
    { name: 'retry-reset', retryPolicy: { retryOn: ['reset', 'connect-failure'] }, endpoints: endpointsOf(sets.retry) },
    { name: 'flaky-plain', ...OFF, endpoints: endpointsOf(sets.flaky) },
    { name: 'flaky-od', retryPolicy: { enabled: false }, endpoints: endpointsOf(sets.flaky) },
    { name: 'flaky-default', endpoints: endpointsOf(sets.flaky) },
    {
      name: 'cswrr',
      lbPolicy: 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN',
      clientSideWeightedRoundRobin: { blackoutPeriodMs: 1_000, weightUpdatePeriodMs: 200, weightExpirationPeriodMs: 60_000 },
      endpoints: endpointsOf(sets.orca),
    },
    { name: 'orca-rr', endpoints: endpointsOf(sets.orca) },
    {
      name: 'checked',
      // No traffic goes to this cluster: without noTrafficIntervalMs Envoy would check every 60 s.
      healthCheck: { kind: 'http', path: '/healthz', intervalMs: 500, noTrafficIntervalMs: 500, timeoutMs: 400, unhealthyThreshold: 2, healthyThreshold: 1 },
      endpoints: endpointsOf(sets.checked),
    },
  ];
  const routes = clusters.map((c) => ({ prefix: `/${c.name}/`, cluster: c.name }));
  return { clusters, listeners: [{ name: 'ingress', address: '127.0.0.1', port, routes }] };
}

describeEnvoy(
  'Envoy-side protection with a real Envoy',
  () => {
    let dir: string;
    let fulcrum: Fulcrum;
    let envoy: EnvoyHandle;
    let base: string;
    let sets: Sets;
    const closers: (() => Promise<void>)[] = [];

    const hostFlags = async (cluster: string, address: string): Promise<string> =>
      (await envoy.clusterStatuses())[cluster]?.hosts.find((h) => h.address === address)?.health_flags ?? '';

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'fulcrum-protect-'));
      const make = async (n: number) => {
        const s = await startTestBackends(n);
        closers.push(s.close);
        return s.list;
      };
      sets = { dead: await make(4), retry: await make(2), flaky: await make(3), orca: await make(3), checked: await make(1) };
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      const configPath = join(dir, 'fulcrum.yaml');
      await writeFile(configPath, YAML.stringify(config(sets, port)));
      fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger: pino({ level: 'silent' }) });
      envoy = await startEnvoy({ xdsPort: fulcrum.xdsPort, mode: 'sotw', nodeId: 'protect', name: 'envoy-protect' });
      await envoy.waitForListener('ingress', 30_000);
    }, 90_000);

    afterAll(async () => {
      await envoy?.stop();
      await fulcrum?.stop();
      await Promise.all(closers.map((c) => c()));
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    dumpLogsOnFailure(() => envoy);

    it('Envoy ACKs every cluster and route, with the protection fulcrum emitted', async () => {
      expect(await envoy.stat('cluster_manager.cds.update_rejected')).toBe(0);
      expect((await envoy.stats('http.ingress.rds.ingress.update_rejected'))['http.ingress.rds.ingress.update_rejected'] ?? 0).toBe(0);
      const dump = JSON.stringify(await envoy.configDump());
      expect(dump).toContain('"outlier_detection"');
      expect(dump).toContain('"retry_budget"');
      expect(dump).toContain('envoy.retry_host_predicates.previous_hosts');
      expect(dump).toContain('client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin');
      expect(dump).toContain('"health_checks"');
    });

    it('a dead backend (port refused) is ejected within 5 s, clients see almost no errors, and it gets traffic back after revival', async () => {
      const [victim] = sets.dead;
      if (!victim) throw new Error('no backend');
      const load = startLoad(`${base}/dead/`, 4);
      try {
        await waitFor(() => sets.dead.every((b) => b.ok > 0), { what: 'every backend of "dead" to serve', timeoutMs: 20_000 });
        const killedAt = Date.now();
        await victim.kill();
        await waitFor(async () => (await hostFlags('dead', victim.address)).includes('failed_outlier_check'), {
          what: 'Envoy to eject the dead backend', timeoutMs: 20_000, intervalMs: 20,
        });
        const ejectMs = Date.now() - killedAt;
        // Hold the outage a little, as a real one would last, and send the same load to an unprotected cluster.
        const plainLoad = startLoad(`${base}/dead-plain/`, 4);
        await waitFor(() => Date.now() - killedAt > 3_000, { what: '3 s of outage', timeoutMs: 10_000, intervalMs: 100 });
        const plain = summarize(await plainLoad.stop());
        const outage = summarize(load.since(killedAt));
        const okBefore = victim.ok;
        const revivedAt = Date.now();
        await victim.revive();
        await waitFor(() => victim.ok > okBefore, { what: 'the revived backend to get traffic back', timeoutMs: 45_000, intervalMs: 100 });
        const backMs = Date.now() - revivedAt;
        console.log(
          `[protect] dead backend: ejected after ${ejectMs} ms; during the outage ${outage.errors}/${outage.sent} client errors (${(outage.errorRate * 100).toFixed(2)}%) ` +
            `vs ${(plain.errorRate * 100).toFixed(1)}% unprotected; traffic back ${backMs} ms after revival`,
        );
        // A quarter would be 25 %; on a loaded machine Envoy sends the fast-refusing backend less
        // (fresh-clone CI read 5.2 % once): as for the fast-failing backend below, the precondition is
        // that the unprotected cluster clearly sees the failures; the claim is the comparison.
        expect(plain.errorRate).toBeGreaterThan(0.04);
        expect(ejectMs).toBeLessThan(5_000);
        expect(outage.errorRate).toBeLessThan(0.02);
        // First ejection: 10 s, released at the next 5 s interval tick.
        expect(backMs).toBeLessThan(30_000);
      } finally {
        await load.stop();
      }
    }, 120_000);

    it('retries hide a single 503 from the client (and without retries the client sees it)', async () => {
      const [first] = sets.retry;
      if (!first) throw new Error('no backend');
      const retriesBefore = (await envoy.stat('cluster.retry.upstream_rq_retry')) ?? 0;
      const failedBefore = first.failed;
      first.behave({ failNext: 1 });
      const withRetries = summarize(await sendN(`${base}/retry/`, 20, 1));
      expect(first.failed).toBe(failedBefore + 1);
      expect(withRetries.errors).toBe(0);
      expect((await envoy.stat('cluster.retry.upstream_rq_retry')) ?? 0).toBeGreaterThan(retriesBefore);

      first.behave({ failNext: 1 });
      const without = summarize(await sendN(`${base}/noretry/`, 20, 1));
      expect(first.failed).toBe(failedBefore + 2);
      expect(without.errors).toBe(1);
    });

    it('a connection reset is hidden when retryOn has reset, and reaches the client under the default conditions', async () => {
      const [first] = sets.retry;
      if (!first) throw new Error('no backend');
      const resetsBefore = first.resets;
      first.behave({ resetNext: 1 });
      const withReset = summarize(await sendN(`${base}/retry-reset/`, 20, 1));
      expect(first.resets).toBe(resetsBefore + 1);
      expect(withReset.errors).toBe(0);

      first.behave({ resetNext: 1 });
      const defaults = summarize(await sendN(`${base}/retry/`, 20, 1));
      expect(first.resets).toBe(resetsBefore + 2);
      expect(defaults.errors).toBe(1);
    });

    it('outlier detection ejects a fast-failing backend (50% quick 503s); with retries clients see almost nothing', async () => {
      const [bad] = sets.flaky;
      if (!bad) throw new Error('no backend');
      bad.behave({ failRate: 0.5 });
      const run = async (cluster: string) => summarize(await sendN(`${base}/${cluster}/`, 900, 4));
      const plain = await run('flaky-plain');
      const od = await run('flaky-od');
      const protectedRun = await run('flaky-default');
      const share = (s: ReturnType<typeof summarize>) => (s.okBy[0] ?? 0) / Math.max(1, s.sent - s.errors);
      const ejections = (await envoy.stat('cluster.flaky-od.outlier_detection.ejections_enforced_total')) ?? 0;
      console.log(
        `[protect] 50% failing backend: error rate ${(plain.errorRate * 100).toFixed(1)}% unprotected, ` +
          `${(od.errorRate * 100).toFixed(1)}% with outlier detection (${ejections} ejections), ${(protectedRun.errorRate * 100).toFixed(2)}% with the defaults (+ retries); ` +
          `its share of successes ${(share(plain) * 100).toFixed(1)}% → ${(share(od) * 100).toFixed(1)}%`,
      );
      // A third of 50 % would be 16.7 %; on a loaded machine (load 7–12) Envoy sent the fast-failing
      // backend less than its third and the unprotected rate read 7–9 %: the precondition is that
      // the unprotected cluster clearly sees the failures, the claims are the comparisons below.
      expect(plain.errorRate).toBeGreaterThan(0.04);
      expect(ejections).toBeGreaterThanOrEqual(1);
      expect(od.errorRate).toBeLessThan(plain.errorRate * 0.6);
      expect(share(od)).toBeLessThan(share(plain));
      expect(protectedRun.errorRate).toBeLessThan(0.02);
    }, 120_000);

    it('client-side weighted round robin: Envoy weighs hosts by their ORCA utilization', async () => {
      const [hot, ...cool] = sets.orca;
      if (!hot) throw new Error('no backend');
      hot.behave({ orca: { cpu: 0.9, rps: 100 } });
      for (const b of cool) b.behave({ orca: { cpu: 0.3, rps: 100 } });
      const hotShare = (s: ReturnType<typeof summarize>) => (s.okBy[0] ?? 0) / Math.max(1, s.sent);
      // Weights need a report per host, then the blackout period, then an update tick.
      await waitFor(
        async (ctx) => {
          const s = summarize(await sendN(`${base}/cswrr/`, 300, 4));
          ctx.note(hotShare(s));
          return hotShare(s) < 0.22;
        },
        { what: 'the hot backend to lose share under client-side WRR', timeoutMs: 60_000, intervalMs: 200 },
      );
      const wrr = summarize(await sendN(`${base}/cswrr/`, 900, 4));
      const rr = summarize(await sendN(`${base}/orca-rr/`, 900, 4));
      console.log(`[protect] CSWRR: hot backend (cpu 0.9 vs 0.3) share ${(hotShare(wrr) * 100).toFixed(1)}% (ideal 14.3%), round robin ${(hotShare(rr) * 100).toFixed(1)}%`);
      expect(wrr.errors).toBe(0);
      expect(hotShare(wrr)).toBeLessThan(0.22);
      expect(Math.abs(hotShare(rr) - 1 / 3)).toBeLessThan(0.05);
    }, 120_000);

    it('active health checks run and take a dead host out', async () => {
      const [host] = sets.checked;
      if (!host) throw new Error('no backend');
      await waitFor(async () => ((await envoy.stat('cluster.checked.health_check.success')) ?? 0) > 0, { what: 'a passed health check', timeoutMs: 20_000 });
      await host.kill();
      await waitFor(async () => (await hostFlags('checked', host.address)).includes('failed_active_hc'), { what: 'Envoy to fail the host by active health checks', timeoutMs: 20_000 });
      await host.revive();
      await waitFor(async () => (await hostFlags('checked', host.address)) === 'healthy', { what: 'the host to pass again', timeoutMs: 20_000 });
    }, 60_000);
  },
  { timeout: 120_000 },
);
