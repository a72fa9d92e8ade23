import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, onTestFinished, test } from 'vitest';
import { describeEnvoy, dumpClusterNames, dumpLogsOnFailure, startEnvoy, type EnvoyHandle } from '../support/envoy.js';
import { startFulcrumProcess, type FulcrumProcess } from '../support/fulcrum-process.js';
import { garbage, hugeNames, http11, idleConnections, neverRead, reconnectingNodes, wrongProtocol } from '../support/hostile-attacks.js';
import { scaled, waitFor } from '../support/wait.js';

/**
 * Issue 10: fulcrum under the heap cap the Kubernetes manifest ships (--max-old-space-size=384,
 * pod limit 512 MiB) survives every hostile client at once, with the default limits, while a
 * real Envoy keeps being served and receives a change made during the attack.
 *
 * The attackers come from 127.0.0.2 and up, so per-peer limits apply to them and not to Envoy.
 * The 100,000 reconnecting node ids: the whole test took 41 s at load 6 on two cores, but
 * ~110 s at load 16 (~900 streams/s); FULCRUM_HOSTILE_NODE_IDS lowers the count on a busy machine.
 */

const MiB = 1024 * 1024;
/** The shipped pod's memory limit: above it Kubernetes kills the process. */
const RSS_BOUND = 512 * MiB;
const NODE_IDS = Number(process.env.FULCRUM_HOSTILE_NODE_IDS ?? 100_000);
const HUGE_NAME = 50_000_000;

const config = (extra = ''): string => `clusters:
  - name: web
    endpoints: [{ address: 127.0.0.1, port: 9001 }, { address: 127.0.0.1, port: 9002 }]
  - name: api
    endpoints: [{ address: 127.0.0.1, port: 9003 }]
${extra}`;

let dir: string;
let fulcrum: FulcrumProcess | undefined;
let envoy: EnvoyHandle | undefined;

describeEnvoy(
  'a hostile crowd on the xDS port',
  () => {
    dumpLogsOnFailure(() => envoy);
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'fulcrum-hostile-'));
      await writeFile(join(dir, 'fulcrum.yaml'), config());
      fulcrum = await startFulcrumProcess({ config: join(dir, 'fulcrum.yaml'), dataDir: join(dir, 'data'), nodeOptions: ['--max-old-space-size=384'] });
      envoy = await startEnvoy({ xdsPort: fulcrum.xdsPort, mode: 'sotw', nodeId: 'well-behaved', name: 'envoy-hostile' });
      const e = envoy;
      await waitFor(async () => dumpClusterNames(await e.configDump()).includes('web'), { what: 'Envoy to receive cluster web', timeoutMs: 60_000 });
    }, scaled(180_000));

    afterAll(async () => {
      await envoy?.stop();
      await fulcrum?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    test('fulcrum stays up and under its memory bound; Envoy is served and gets a change made during the attack', async () => {
      const f = fulcrum;
      const e = envoy;
      if (!f || !e) throw new Error('setup failed');
      let peak = f.rss();
      const sampler = setInterval(() => {
        if (f.proc.exit === undefined) peak = Math.max(peak, f.rss());
      }, 200);
      onTestFinished(() => clearInterval(sampler));
      const port = f.xdsPort;

      const huge = hugeNames(port, '127.0.0.2', 8, HUGE_NAME);
      const held = neverRead(port, ['127.0.0.3', '127.0.0.4'], 10_000, 100);
      const idle = idleConnections(port, '127.0.0.5', '127.0.0.6', 2_000);
      const churn = reconnectingNodes(port, ['127.0.0.7', '127.0.0.8', '127.0.0.9', '127.0.0.10'], NODE_IDS, 100);
      const junk = wrongProtocol(port, '127.0.0.11', 200, garbage, scaled(10_000));
      const h1 = wrongProtocol(port, '127.0.0.12', 200, http11, scaled(10_000));

      // The change, made while the attack runs: Envoy must receive it.
      const [never, idles] = await Promise.all([held, idle]);
      await writeFile(join(dir, 'fulcrum.yaml'), config('  - name: during-attack\n    endpoints: [{ address: 127.0.0.1, port: 9004 }]\n'));
      await waitFor(async () => dumpClusterNames(await e.configDump()).includes('during-attack'), {
        what: 'Envoy to receive the cluster added during the attack',
        timeoutMs: 60_000,
      });

      // Each is refused from its length prefix: the status names the limit, or, for a client that
      // keeps sending after it, Node's HTTP/2 layer resets the stream (ENHANCE_YOUR_CALM or CANCEL)
      // and the status is lost. None is served; the server counts all 8 (below).
      for (const end of await huge) {
        expect(end.bytes).toBe(0);
        if (end.status === undefined) expect([8, 11]).toContain(end.rstCode);
        else expect(end.message).toMatch(/^request message of \d+ bytes exceeds server\.xds\.limits\.maxRequestBytes \(4194304\)$/);
      }

      // Two peers of 2,000 calls each (maxStreamsPerPeer); the rest refused by name.
      expect(never.admitted).toBe(4_000);
      expect([...never.refused.entries()]).toEqual([['too many calls: server.xds.limits.maxStreamsPerPeer (2000) reached', 6_000]]);

      expect(await junk).toBe(200);
      expect(await h1).toBe(200);
      const nodes = await churn;
      expect(nodes).toEqual({ served: NODE_IDS, failed: 0 });
      // Silent connections are closed at server.xds.limits.handshakeTimeoutMs (30 s); HTTP/2 ones may idle.
      await waitFor(() => idles.silentClosed() === 1_000, { what: 'silent connections closed by the handshake deadline', timeoutMs: 60_000 });
      expect(idles.h2Open()).toBe(1_000);

      // After the attack, fulcrum serves Envoy as before.
      expect(f.proc.exit).toBeUndefined();
      const metrics = await (await fetch(`http://127.0.0.1:${f.adminPort}/metrics`)).text();
      expect(metricValue(metrics, 'fulcrum_xds_limit_exceeded_total{limit="maxRequestBytes"}')).toBe(8);
      expect(metricValue(metrics, 'fulcrum_xds_limit_exceeded_total{limit="maxStreamsPerPeer"}')).toBe(6_000);
      expect(metricValue(metrics, 'fulcrum_xds_limit_exceeded_total{limit="handshakeTimeoutMs"}')).toBe(1_000);
      expect(metricValue(metrics, 'fulcrum_xds_connections_refused_total{reason="not-grpc"}')).toBe(400);
      never.close();
      idles.close();
      clearInterval(sampler);
      console.log(`hostile: peak RSS ${(peak / MiB).toFixed(0)} MiB (bound ${RSS_BOUND / MiB} MiB), ${NODE_IDS} node ids`);
      expect(peak).toBeLessThan(RSS_BOUND);
    }, scaled(300_000));
  },
  { timeout: 300_000 },
);

function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
