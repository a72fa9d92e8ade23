import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { Fulcrum } from '../../src/main.js';
import { decodeLoadStatsResponse, durationMs, encodeLoadStatsRequest, LRS_METHOD_PATH } from '../../src/signals/lrs-codec.js';
import { startLoopbackFulcrum } from '../support/loopback-fulcrum.js';
import { waitFor } from '../support/wait.js';

/** fulcrum as deployed: LRS on the xDS port, `server.loadReporting` from its config, the interval in /metrics. */
describe('the load report interval, through fulcrum', () => {
  let dir: string | undefined;
  let fulcrum: Fulcrum | undefined;
  afterEach(async () => {
    await fulcrum?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('asks 1 s and shows it; a report past entriesPerSecond stretches what new streams are asked, and the gauge shows it', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-lrs-interval-'));
    const configPath = join(dir, 'fulcrum.yaml');
    await writeFile(
      configPath,
      stringify({
        server: { loadReporting: { intervalMs: 1_000, maxIntervalMs: 2_000, entriesPerSecond: 2 } },
        clusters: [{ name: 'web', endpoints: [1, 2, 3].map((i) => ({ address: `10.0.0.${i}`, port: 80 })) }],
      }),
    );
    const f = (fulcrum = await startLoopbackFulcrum(configPath, { dataDir: join(dir, 'data') }));
    const gauge = async (): Promise<string | undefined> => (await (await fetch(`http://127.0.0.1:${f.adminPort}/metrics`)).text()).match(/^fulcrum_lrs_interval_seconds (\S+)$/m)?.[1];
    expect(await gauge()).toBe('1');
    const client = new grpc.Client(`127.0.0.1:${f.xdsPort}`, grpc.credentials.createInsecure());
    try {
      const open = () => {
        const call = client.makeBidiStreamRequest(LRS_METHOD_PATH, (b: Buffer) => b, (b: Buffer) => b);
        const asked: number[] = [];
        call.on('error', () => undefined);
        call.on('data', (b: Buffer) => asked.push(durationMs(decodeLoadStatsResponse(b).load_reporting_interval) ?? Number.NaN));
        call.write(encodeLoadStatsRequest({ node: { id: `envoy-${Math.random()}`, client_features: ['envoy.lrs.supports_send_all_clusters'] } }));
        return { call, asked };
      };
      const first = open();
      await waitFor(() => first.asked.length === 1, { what: 'the first answer' });
      expect(first.asked).toEqual([1_000]);
      // Three endpoint entries a round at 2 a second: 1.5 s.
      first.call.write(
        encodeLoadStatsRequest({
          cluster_stats: [
            {
              cluster_name: 'web',
              load_report_interval: { seconds: 1, nanos: 0 },
              upstream_locality_stats: [{ upstream_endpoint_stats: [1, 2, 3].map((i) => ({ address: { socket_address: { address: `10.0.0.${i}`, port_value: 80 } }, total_issued_requests: 5 })) }],
            },
          ],
        }),
      );
      await waitFor(async () => (await gauge()) === '1.5', { what: 'the gauge at 1.5 s' });
      const second = open();
      await waitFor(() => second.asked.length === 1, { what: "the second stream's answer" });
      // It counts as the mean before it reports: 6 entries a round, 3 s, the longest is 2 s.
      expect(second.asked).toEqual([2_000]);
      expect(await gauge()).toBe('2');
      first.call.end();
      second.call.end();
    } finally {
      client.close();
    }
  });
});
