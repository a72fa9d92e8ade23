/**
 * Endpoint health for proxyless gRPC (@grpc/grpc-js-xds, in a child process). gRPC uses only the
 * HEALTHY and UNKNOWN endpoints of an assignment (gRFC A27) and has no panic mode: where Envoy
 * balances over UNHEALTHY hosts once too few are healthy, gRPC has nothing to call. So endpoints
 * declared UNHEALTHY must get no call while others may serve, and when none may serve, gRPC must
 * still be given endpoints it will use (fulcrum never empties a cluster).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { GrpcTestServer } from '../support/grpc-whoami.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { syncState } from '../../src/xds/proxy-status.js';
import { tally, type CallResult } from '../support/grpc-xds.js';
import { startProxylessRig, type ProxylessRig } from '../support/proxyless-rig.js';
import { scaled, waitFor } from '../support/wait.js';

const TARGET = 'xds:///health';

let rig: ProxylessRig;

/** The config with each server's declared health (HEALTHY where not given) and priority (0 where not given). */
function config(servers: readonly GrpcTestServer[], health: readonly string[] = [], priority: readonly number[] = []): Record<string, unknown> {
  const endpoints = servers.map((s, i) => ({ address: s.host, port: s.port, health: health[i] ?? 'HEALTHY', priority: priority[i] ?? 0 }));
  return {
    server: { xds: { debounceQuietMs: 20, debounceMaxMs: 200 } },
    clusters: [{ name: 'health-backends', http2: true, endpoints }],
    listeners: [{ name: 'health', apiListener: true, routes: [{ cluster: 'health-backends' }] }],
  };
}

const served = (results: readonly CallResult[]): string[] => [...new Set(results.map((r) => r.server ?? `error ${r.code}: ${r.error}`))].sort();
const eds = () => rig.fulcrum.registry.list().find((r) => r.node.id === rig.nodeId)?.types.get(TYPE.endpoint);

/** Applies `health` (and `priority`) and waits until the client ACKed the assignment it makes. */
async function declare(health: readonly string[], priority: readonly number[] = []): Promise<void> {
  const before = eds()?.ackedVersion;
  await rig.writeConfig(config(rig.servers.list, health, priority));
  await waitFor(
    () => {
      const t = eds();
      return t !== undefined && syncState(t) === 'SYNCED' && t.ackedVersion !== before;
    },
    { what: `the assignment for ${JSON.stringify(health)} ACKed`, timeoutMs: 30_000, intervalMs: 100 },
  );
}

/** Waits until a batch of calls succeeds on exactly `servers`. */
async function callsReach(servers: string[]): Promise<CallResult[]> {
  return waitFor(
    async ({ note }) => {
      const results = await rig.client.call(TARGET, { count: 30, deadlineMs: scaled(5_000) });
      note(served(results));
      return served(results).join() === servers.join() && results;
    },
    { what: `calls to succeed on ${servers.join(', ')}`, timeoutMs: 30_000, intervalMs: 200 },
  );
}

beforeAll(async () => {
  rig = await startProxylessRig({ name: 'h', servers: 3, config: (servers) => config(servers) });
  await callsReach(['h-0', 'h-1', 'h-2']);
}, scaled(60_000));

afterAll(() => rig?.stop(), scaled(60_000));

describe('proxyless gRPC and declared endpoint health', () => {
  test('two of three declared UNHEALTHY: the third takes every call', async () => {
    await declare(['UNHEALTHY', 'UNHEALTHY']);
    expect(tally(await callsReach(['h-2']))).toEqual({ 'h-2': 30 });
  }, scaled(90_000));

  test('every endpoint declared UNHEALTHY: calls still succeed over all of them, as through Envoy (never an empty cluster)', async () => {
    await declare(['UNHEALTHY', 'UNHEALTHY', 'UNHEALTHY']);
    // Sent UNHEALTHY (for Envoy's panic mode), they left gRPC no endpoint: every call failed
    // UNAVAILABLE ("priority policy has empty priority list") while Envoy balanced over the three.
    await callsReach(['h-0', 'h-1', 'h-2']);
  }, scaled(90_000));

  test('none routable: a DRAINING endpoint (a terminating pod still serving) takes the calls before those declared UNHEALTHY', async () => {
    await declare(['DRAINING', 'UNHEALTHY', 'UNHEALTHY']);
    // gRPC uses no DRAINING endpoint either: sent as it was, every call failed.
    expect(tally(await callsReach(['h-0']))).toEqual({ 'h-0': 30 });
  }, scaled(90_000));

  test('priority 0 declared UNHEALTHY (sent as it is across priorities, for Envoy\'s spill-over): gRPC fails over to priority 1', async () => {
    await declare(['UNHEALTHY'], [0, 1, 1]);
    await callsReach(['h-1', 'h-2']);
  }, scaled(90_000));

  test('every endpoint of every priority declared UNHEALTHY: calls still succeed', async () => {
    await declare(['UNHEALTHY', 'UNHEALTHY', 'UNHEALTHY'], [0, 1, 1]);
    // Across priorities every endpoint went out as published, UNHEALTHY: gRPC had none to call.
    await callsReach(['h-0']);
  }, scaled(90_000));
});
