/**
 * What proxyless gRPC (@grpc/grpc-js-xds, in a child process) does with fulcrum's protection
 * output: the default outlier detection and route retry policy, and a CLIENT_SIDE_WEIGHTED_ROUND_ROBIN
 * cluster. grpc-js implements client-side WRR only behind GRPC_EXPERIMENTAL_XDS_WRR_LB; without it
 * the cluster must fall back to the round robin listed second, not be NACKed.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { syncState } from '../../src/xds/proxy-status.js';
import { startGrpcServers, type GrpcTestServers } from '../support/grpc-whoami.js';
import { startXdsClient, type XdsClientHandle } from '../support/grpc-xds.js';
import { waitFor } from '../support/wait.js';

const WRR = 'xds:///wrr';
const PROTECTED = 'xds:///protected';

let dir: string;
let servers: GrpcTestServers;
let fulcrum: Fulcrum;
const clients: XdsClientHandle[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'fulcrum-protect-proxyless-'));
  servers = await startGrpcServers(3, 's');
  const endpoints = servers.list.map((s) => ({ address: s.host, port: s.port }));
  const configPath = path.join(dir, 'fulcrum.yaml');
  await writeFile(
    configPath,
    YAML.stringify({
      clusters: [
        { name: 'wrr-backends', lbPolicy: 'CLIENT_SIDE_WEIGHTED_ROUND_ROBIN', http2: true, endpoints },
        // Defaults: outlier detection, retries, retry budget.
        { name: 'protected-backends', http2: true, retryPolicy: { retryOn: ['unavailable', 'connect-failure'] }, endpoints },
      ],
      listeners: [
        { name: 'wrr', apiListener: true, routes: [{ cluster: 'wrr-backends' }] },
        { name: 'protected', apiListener: true, routes: [{ cluster: 'protected-backends' }] },
      ],
    }),
  );
  fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger: pino({ level: 'silent' }) });
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.stop()));
  await fulcrum?.stop();
  await servers?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const nodeSynced = (nodeId: string): boolean => {
  const record = fulcrum.registry.list().find((r) => r.node.id === nodeId);
  return [TYPE.cluster, TYPE.route].every((t) => syncState(record?.types.get(t)) === 'SYNCED' && record?.types.get(t)?.lastNack === undefined);
};

describe.each([
  ['without GRPC_EXPERIMENTAL_XDS_WRR_LB (round-robin fallback)', {}, false],
  ['with GRPC_EXPERIMENTAL_XDS_WRR_LB=true', { GRPC_EXPERIMENTAL_XDS_WRR_LB: 'true' }, true],
])('proxyless gRPC %s', (label, env: Record<string, string>, wrrEnabled: boolean) => {
  test('ACKs the clusters and routes and spreads calls over every backend', async () => {
    const nodeId = `protect-proxyless-${clients.length}-${process.pid}`;
    const client = await startXdsClient({ xdsPort: fulcrum.xdsPort, nodeId, env, trace: 'xds_client,cds_balancer' });
    clients.push(client);
    for (const target of [WRR, PROTECTED]) {
      const results = await waitFor(
        async () => {
          const r = await client.call(target, { count: 60, concurrency: 4, deadlineMs: 5_000 });
          return r.every((x) => x.server !== undefined) && new Set(r.map((x) => x.server)).size === 3 ? r : undefined;
        },
        { what: `${label}: all 60 calls to ${target} succeed over the 3 backends`, timeoutMs: 45_000, intervalMs: 200 },
      );
      expect(results).toHaveLength(60);
    }
    await waitFor(() => nodeSynced(nodeId), { what: `${label}: CDS and RDS ACKed with no NACK`, timeoutMs: 20_000 });
    // The cds_balancer trace prints the parsed LB config: grpc-js' WRR only when enabled.
    expect(/"weighted_round_robin": \{/.test(client.stderr())).toBe(wrrEnabled);
  }, 90_000);
});
