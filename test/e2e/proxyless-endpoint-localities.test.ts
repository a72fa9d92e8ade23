/**
 * gRPC's form of an assignment (src/xds/grpc-assignments.ts) puts each endpoint in a locality of
 * its own, so an endpoint gRPC does not use (DRAINING, UNHEALTHY) is alone in its locality, and a
 * priority can hold no usable endpoint at all. grpc-go and @grpc/grpc-js-xds accept such an
 * assignment (no NACK), send nothing to the locality left empty, and fail over to the next
 * priority when none of a priority's localities has a usable endpoint: as with Envoy's form.
 * Needs the Go client binary (scripts/build-grpc-go-client.sh): skipped locally without it, a
 * failure under CI.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import YAML from 'yaml';
import type { HealthStatus } from '../../src/catalog/types.js';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { locateGrpcGoClient, runGrpcGoClient, type GrpcGoResult } from '../support/grpc-go.js';
import { startGrpcServers, type GrpcTestServers } from '../support/grpc-whoami.js';
import { startXdsClient, tally, type XdsClientHandle } from '../support/grpc-xds.js';
import { replaceFile } from '../support/replace-file.js';
import { describeRequiring } from '../support/requires.js';
import { waitFor } from '../support/wait.js';

const CLUSTER = 'mixed';
const TARGET = 'xds:///mixed';
const goClient = locateGrpcGoClient();

describeRequiring('the grpc-go proxyless client', goClient, 'endpoints alone in their locality: unusable ones and whole priorities', () => {
  let dir: string;
  let servers: GrpcTestServers;
  let fulcrum: Fulcrum;
  let configPath: string;
  let jsClient: XdsClientHandle | undefined;

  /** m-0 (weight 1) and m-1 (weight 3, `second`) in priority 0, m-2 in priority 1; unequal weights: split for gRPC. */
  const configYaml = (first: HealthStatus, second: HealthStatus): string =>
    YAML.stringify({
      server: { xds: { debounceQuietMs: 20, debounceMaxMs: 200 } },
      clusters: [{
        name: CLUSTER, lbPolicy: 'ROUND_ROBIN', http2: true,
        endpoints: servers.list.map((s, i) => ({ address: s.host, port: s.port, weight: i + 1, priority: i === 2 ? 1 : 0, health: [first, second, 'HEALTHY'][i] })),
      }],
      listeners: [{ name: 'mixed', apiListener: true, routes: [{ prefix: '/', cluster: CLUSTER }] }],
    });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'fulcrum-grpc-localities-'));
    servers = await startGrpcServers(3, 'm');
    configPath = path.join(dir, 'fulcrum.yaml');
    await writeFile(configPath, configYaml('HEALTHY', 'DRAINING'));
    fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminPort: 0, logger: pino({ level: 'silent' }) });
    jsClient = await startXdsClient({ xdsPort: fulcrum.xdsPort, nodeId: `grpc-js-localities-${process.pid}` });
  }, 60_000);

  afterAll(async () => {
    await jsClient?.stop();
    await fulcrum?.stop();
    await servers?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  /** No connected proxy NACKed an assignment. */
  const noNack = (): void => {
    for (const r of fulcrum.registry.list()) expect(r.types.get(TYPE.endpoint)?.lastNack, r.node.id).toBeUndefined();
  };

  /** A grpc-go run of `count` calls, with the node id `tag`; checked for NACKs while its stream is up. */
  async function goRun(tag: string, count = 100): Promise<GrpcGoResult> {
    const run = runGrpcGoClient(goClient.bin, { xdsPort: fulcrum.xdsPort, nodeId: `grpc-go-localities-${tag}-${process.pid}`, target: TARGET, count, hold: true });
    try {
      const result = await run.result;
      noNack();
      return result;
    } finally {
      await run.stop();
    }
  }

  /** Batches of grpc-js-xds calls until one lands on `server` alone. */
  async function jsUntilOnly(server: string, what: string): Promise<void> {
    const client = jsClient as XdsClientHandle;
    await waitFor(async ({ note }) => {
      const counts = tally(await client.call(TARGET, { count: 50 }));
      note(counts);
      return counts[server] === 50;
    }, { what, timeoutMs: 60_000, intervalMs: 200 });
  }

  test('a DRAINING endpoint alone in its locality gets no call, and the assignment is accepted by both clients', { timeout: 180_000 }, async () => {
    const go = await goRun('draining');
    expect(go).toEqual({ counts: { 'm-0': 100 }, errors: {} });
    await jsUntilOnly('m-0', 'grpc-js-xds calls to reach m-0 alone');
    // The clients were sent gRPC's form (each endpoint a locality of its own), and neither refused it.
    const version = (form: 'envoy' | 'grpc') => fulcrum.cache.snapshotFor('', form).resources(TYPE.endpoint).get(CLUSTER)?.version;
    expect(version('grpc')).not.toBe(version('envoy'));
    noNack();
  });

  test('a priority none of whose localities has a usable endpoint fails over to the next', { timeout: 180_000 }, async () => {
    await replaceFile(configPath, configYaml('UNHEALTHY', 'DRAINING'));
    await jsUntilOnly('m-2', 'grpc-js-xds calls to fail over to priority 1 (m-2)');
    await waitFor(async ({ note }) => {
      const go = await goRun('failover');
      note(go);
      return go.counts['m-2'] === 100;
    }, { what: 'grpc-go calls to fail over to priority 1 (m-2)', timeoutMs: 90_000, intervalMs: 200 });
    noNack();
  });
});
