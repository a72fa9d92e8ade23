/**
 * Proxyless gRPC with grpc-go (test/support/grpc-go-client, grpc-go 1.85) and, for comparison,
 * @grpc/grpc-js-xds, against a running fulcrum:
 *  - ring hash across two localities whose endpoint weights sum 1:3: grpc-go (gRPC A113) and
 *    @grpc/grpc-js-xds 1.14 (pre-A113) combine locality and endpoint weights differently, yet both
 *    split ~25/75 because fulcrum sends the sums as locality weights and rescales the endpoint
 *    weights to one common sum per locality (src/xds/ring-hash-localities.ts);
 *  - grpc-go's load reports (per locality, no per-endpoint stats) reach the SignalStore;
 *  - a MAGLEV cluster (auto's affinity policy at 1000+ endpoints) reaches grpc-go as ring hash;
 *  - LEAST_REQUEST and RANDOM clusters are ACKed (least request; round robin), and so are
 *    ROUND_ROBIN and LEAST_REQUEST ones with Envoy's slow start, and a LEAST_REQUEST one with
 *    adaptive weights (its active_request_bias);
 *  - a route's timeoutMs bounds grpc-go's calls (max_stream_duration, gRFC A31);
 *  - a grpc-go NACK names the cluster it refused (`resource "name": …`), and only that one is
 *    held refused while the other cluster of the same response stays served.
 * Needs the Go client binary (scripts/build-grpc-go-client.sh): skipped locally without it,
 * a failure under CI.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { typeSyncView } from '../../src/admin/views.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { syncState } from '../../src/xds/proxy-status.js';
import { locateGrpcGoClient, runGrpcGoClient } from '../support/grpc-go.js';
import { startGrpcServers, type GrpcTestServers } from '../support/grpc-whoami.js';
import { startXdsClient, tally } from '../support/grpc-xds.js';
import { replaceFile } from '../support/replace-file.js';
import { peakRps, reportedLoadOfEvery } from '../support/peak-rps.js';
import { describeRequiring } from '../support/requires.js';
import { waitFor } from '../support/wait.js';

const CLUSTER = 'sessions-backends';
const LR_CLUSTER = 'greeter-backends';
const MAGLEV_CLUSTER = 'maglev-backends';
/** Routed beside the WhoAmI method's cluster on the `mixed` listener: one grpc-go channel watches both. */
const SPARE_CLUSTER = 'spare-backends';
const RANDOM_CLUSTER = 'random-backends';
const CALLS = 400;
/** Envoy's slow start, on clusters of their own: Envoy's alone, ignored by grpc-go. */
const SLOW_START = { windowMs: 10_000, aggression: 2, minWeightPercent: 20 };
const goClient = locateGrpcGoClient();

/** Zone a: one server of weight 2; zone b: two of weight 3. Locality sums 2 : 6 = 1 : 3. */
const WEIGHTS = [2, 3, 3] as const;
const ZONES = ['a', 'b', 'b'] as const;

describeRequiring('the grpc-go proxyless client', goClient, 'proxyless grpc-go through fulcrum', () => {
  let dir: string;
  let servers: GrpcTestServers;
  let fulcrum: Fulcrum;
  let configPath: string;
  let maxRps: ReadonlyMap<string, number> = new Map();

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'fulcrum-grpc-go-'));
    servers = await startGrpcServers(3, 'go');
    configPath = path.join(dir, 'fulcrum.yaml');
    await writeFile(configPath, configYaml('ROUND_ROBIN'));
    fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger: pino({ level: 'silent' }) });
    maxRps = peakRps(fulcrum, CLUSTER);
  }, 60_000);

  afterAll(async () => {
    await fulcrum?.stop();
    await servers?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  /** The test's catalog; `sparePolicy`: the spare cluster's lbPolicy (ring hash on MURMUR_HASH_2 is Envoy's only: grpc-go refuses it). */
  function configYaml(sparePolicy: 'ROUND_ROBIN' | 'MURMUR_HASH_2'): string {
    const plain = servers.list.map((s) => ({ address: s.host, port: s.port }));
    const zoned = servers.list.map((s, i) => ({ address: s.host, port: s.port, weight: WEIGHTS[i], locality: { region: 'r', zone: ZONES[i] } }));
    const spare = sparePolicy === 'ROUND_ROBIN' ? { lbPolicy: 'ROUND_ROBIN' } : { lbPolicy: 'RING_HASH', ringHash: { hashFunction: 'MURMUR_HASH_2' } };
    return YAML.stringify({
      server: { xds: { debounceQuietMs: 20, debounceMaxMs: 200 }, loadReporting: { intervalMs: 500 } },
      clusters: [
        {
          name: CLUSTER,
          lbPolicy: 'RING_HASH',
          ringHash: { virtualNodesPerHost: 1000 }, // a ring of 4096: arcs within ~1 point of their weight share
          http2: true,
          endpoints: zoned,
        },
        // auto's choice for session affinity at 1000+ endpoints; grpc-go takes its ring-hash fallback.
        { name: MAGLEV_CLUSTER, lbPolicy: 'MAGLEV', http2: true, endpoints: zoned },
        { name: LR_CLUSTER, lbPolicy: 'LEAST_REQUEST', http2: true, endpoints: plain },
        { name: SPARE_CLUSTER, ...spare, http2: true, endpoints: plain },
        { name: RANDOM_CLUSTER, lbPolicy: 'RANDOM', http2: true, endpoints: plain },
        { name: 'slow-rr-backends', lbPolicy: 'ROUND_ROBIN', slowStart: SLOW_START, http2: true, endpoints: plain },
        { name: 'slow-lr-backends', lbPolicy: 'LEAST_REQUEST', slowStart: SLOW_START, http2: true, endpoints: plain },
        // Adaptive weights: the typed policy carries active_request_bias (translate-clusters.ts).
        { name: 'adaptive-lr-backends', lbPolicy: 'LEAST_REQUEST', weighting: { policy: 'pid', setpoint: 'mean' }, http2: true, endpoints: plain },
      ],
      listeners: [
        { name: 'sessions', apiListener: true, routes: [{ prefix: '/', cluster: CLUSTER, hashPolicy: { header: 'x-user' } }] },
        { name: 'maglev', apiListener: true, routes: [{ prefix: '/', cluster: MAGLEV_CLUSTER, hashPolicy: { header: 'x-user' } }] },
        { name: 'greeter', apiListener: true, routes: [{ prefix: '/', cluster: LR_CLUSTER }] },
        { name: 'random', apiListener: true, routes: [{ prefix: '/', cluster: RANDOM_CLUSTER }] },
        { name: 'slow-rr', apiListener: true, routes: [{ prefix: '/', cluster: 'slow-rr-backends' }] },
        { name: 'slow-lr', apiListener: true, routes: [{ prefix: '/', cluster: 'slow-lr-backends' }] },
        { name: 'adaptive-lr', apiListener: true, routes: [{ prefix: '/', cluster: 'adaptive-lr-backends' }] },
        { name: 'timed', apiListener: true, routes: [{ prefix: '/', cluster: LR_CLUSTER, timeoutMs: 500 }] },
        {
          name: 'mixed',
          apiListener: true,
          routes: [
            { prefix: '/fulcrum.test.WhoAmI/', cluster: LR_CLUSTER },
            { prefix: '/', cluster: SPARE_CLUSTER },
          ],
        },
      ],
    });
  }

  function writeConfig(text: string): Promise<void> {
    return replaceFile(configPath, text);
  }

  const zoneShare = (counts: Record<string, number>): number => {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    return (counts[servers.list[0]?.id ?? '?'] ?? 0) / total;
  };

  test('grpc-go: ring hash over distinct keys follows the 1:3 locality split, and its load reports reach the signal store', { timeout: 180_000 }, async () => {
    const run = runGrpcGoClient(goClient.bin, {
      xdsPort: fulcrum.xdsPort,
      nodeId: `grpc-go-${process.pid}`,
      target: 'xds:///sessions',
      count: CALLS,
      hashHeader: 'x-user',
      hold: true,
    });
    try {
      const { counts, errors } = await run.result;
      expect(errors, run.stderr().slice(-4_000)).toEqual({});
      // Intended: zone a 25%. Without locality weights, or with weights not rescaled per locality
      // under locality weights of 1, grpc-go gives it 50%.
      expect(Math.abs(zoneShare(counts) - 0.25), JSON.stringify(counts)).toBeLessThan(0.08);
      await reportedLoadOfEvery(maxRps, servers.list, 'grpc-go');
      const scrape = await fulcrum.metrics.registry.getSingleMetricAsString('fulcrum_lrs_report_entries_total');
      expect(scrape).toMatch(/granularity="locality",result="exact"} [1-9]/);
      expect(scrape).toMatch(/granularity="locality",result="spread"} [1-9]/);
    } finally {
      await run.stop();
    }
  });

  test('grpc-go takes the ring-hash fallback of a MAGLEV cluster: no NACK, distinct keys follow the 1:3 locality split', { timeout: 240_000 }, async () => {
    const nodeId = `grpc-go-maglev-${process.pid}`;
    const options = { xdsPort: fulcrum.xdsPort, nodeId, target: 'xds:///maglev', hashHeader: 'x-user' };
    // A few calls first: sent as lb_policy MAGLEV, grpc-go NACKed the cluster ("unexpected lbPolicy
    // MAGLEV") and every call waited out its deadline.
    const first = runGrpcGoClient(goClient.bin, { ...options, count: 3, deadlineMs: 10_000, hold: true });
    try {
      const { errors } = await first.result;
      const cds = fulcrum.registry.list().find((r) => r.node.id === nodeId)?.types.get(TYPE.cluster);
      expect({ errors, nack: cds?.lastNack?.message }, first.stderr().slice(-4_000)).toEqual({ errors: {}, nack: undefined });
      expect(cds?.ackedVersion).toBeDefined();
    } finally {
      await first.stop();
    }
    const run = runGrpcGoClient(goClient.bin, { ...options, count: CALLS });
    try {
      const { counts, errors } = await run.result;
      expect(errors, run.stderr().slice(-4_000)).toEqual({});
      expect(Math.abs(zoneShare(counts) - 0.25), JSON.stringify(counts)).toBeLessThan(0.08);
    } finally {
      await run.stop();
    }
  });

  test('grpc-go ends a call to a slow backend at the route timeoutMs (max_stream_duration), not at its own deadline', { timeout: 120_000 }, async () => {
    const nodeId = `grpc-go-timed-${process.pid}`;
    const options = { xdsPort: fulcrum.xdsPort, nodeId, target: 'xds:///timed' };
    // Warm-up: the channel resolves and connects.
    const warm = runGrpcGoClient(goClient.bin, { ...options, count: 1 });
    try {
      expect((await warm.result).errors, warm.stderr().slice(-4_000)).toEqual({});
    } finally {
      await warm.stop();
    }
    // 8 s of backend delay against a 500 ms route timeout and a 30 s deadline: with RouteAction.timeout
    // alone, grpc-go waited the 8 s and the call succeeded.
    const run = runGrpcGoClient(goClient.bin, { ...options, count: 1, headers: { 'x-delay-ms': '8000' } });
    try {
      const { counts, errors } = await run.result;
      expect({ counts, errors }, run.stderr().slice(-4_000)).toEqual({ counts: {}, errors: { DeadlineExceeded: 1 } });
    } finally {
      await run.stop();
    }
  });

  // RANDOM, sent as lb_policy, was NACKed ("unexpected lbPolicy RANDOM"): grpc-go has no random
  // policy and now takes the round-robin fallback of the load_balancing_policy.
  test.for([
    ['LEAST_REQUEST', 'least_request entry', 'greeter'],
    ['RANDOM', 'round-robin fallback', 'random'],
    // Envoy's slow start in the typed policy: grpc-go reads no slow_start_config.
    ['ROUND_ROBIN with slowStart', 'round_robin entry', 'slow-rr'],
    ['LEAST_REQUEST with slowStart', 'least_request entry', 'slow-lr'],
    ['LEAST_REQUEST with adaptive weights (active_request_bias)', 'least_request entry', 'adaptive-lr'],
  ] as const)('grpc-go takes the %s cluster\'s %s: no NACK, every server answers', { timeout: 120_000 }, async ([policy, , listener]) => {
    const nodeId = `grpc-go-${policy}-${process.pid}`;
    const run = runGrpcGoClient(goClient.bin, { xdsPort: fulcrum.xdsPort, nodeId, target: `xds:///${listener}`, count: 90 });
    try {
      const { counts, errors } = await run.result;
      expect(errors, run.stderr().slice(-4_000)).toEqual({});
      for (const s of servers.list) expect(counts[s.id] ?? 0, JSON.stringify(counts)).toBeGreaterThan(0);
      const cds = fulcrum.registry.list().find((r) => r.node.id === nodeId)?.types.get(TYPE.cluster);
      expect(cds?.lastNack).toBeUndefined();
      expect(cds?.ackedVersion).toBeDefined();
    } finally {
      await run.stop();
    }
  });

  test.each(['xds:///sessions', 'xds:///maglev'])('grpc-js-xds 1.14.1 multiplies locality and endpoint weights (pre-A113): the same EDS still splits 25/75 (%s)', { timeout: 120_000 }, async (target) => {
    const client = await startXdsClient({ xdsPort: fulcrum.xdsPort, nodeId: `grpc-js-${process.pid}` });
    try {
      const perCall = Array.from({ length: CALLS }, (_, i) => ({ 'x-user': `user-${i}` }));
      const results = await waitFor(
        async () => {
          const r = await client.call(target, { perCall, concurrency: 4 });
          return r.every((x) => x.server !== undefined) && r;
        },
        { what: `grpc-js ring-hash calls to ${target} to succeed`, timeoutMs: 60_000, intervalMs: 500 },
      );
      // EDS: zone a weight 2 with its endpoint at 6, zone b weight 6 with 3 + 3. grpc-js multiplies:
      // 2 x 6 = 12 against 6 x 3 = 18 per zone-b server, 25%. Unscaled endpoint weights (2; 3, 3)
      // would give 2 x 2 = 4 against 18: ~10%, the squared split this guards against.
      expect(Math.abs(zoneShare(tally(results)) - 0.25), JSON.stringify(tally(results))).toBeLessThan(0.08);
    } finally {
      await client.stop();
    }
  });

  test('a grpc-go NACK names the refused cluster (resource "name"): only it is listed refused, the other stays served', { timeout: 120_000 }, async () => {
    const nodeId = `grpc-go-nack-${process.pid}`;
    const record = () => fulcrum.registry.list().find((r) => r.node.id === nodeId);
    const run = runGrpcGoClient(goClient.bin, { xdsPort: fulcrum.xdsPort, nodeId, target: 'xds:///mixed', count: 30, hold: true });
    try {
      const { counts, errors } = await run.result;
      expect(errors, run.stderr().slice(-4_000)).toEqual({});
      expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(30);
      // One channel, one route table naming both clusters: grpc-go watches both.
      await waitFor(
        () => {
          const cds = record()?.types.get(TYPE.cluster);
          return syncState(cds) === 'SYNCED' && cds?.sentResources.has(LR_CLUSTER) === true && cds.sentResources.has(SPARE_CLUSTER);
        },
        { what: 'grpc-go ACKing both clusters of the mixed listener', timeoutMs: 30_000, intervalMs: 100 },
      );
      await writeConfig(configYaml('MURMUR_HASH_2'));
      const cds = await waitFor(
        ({ note }) => {
          const t = record()?.types.get(TYPE.cluster);
          note({ state: syncState(t), nack: t?.lastNack?.message.slice(0, 300) });
          return syncState(t) === 'NACKED' && t;
        },
        { what: 'grpc-go NACKing the MURMUR_HASH_2 cluster', timeoutMs: 30_000, intervalMs: 100 },
      );
      // grpc-go's words (xdsclient combineErrors): `resource "<name>": <error>`.
      expect(cds.lastNack?.message).toMatch(new RegExp(`resource "${SPARE_CLUSTER}": unsupported ring_hash hash function MURMUR_HASH_2`));
      expect(typeSyncView(cds).rejected).toEqual([SPARE_CLUSTER]);
      // Mended: sent again, ACKed, nothing refused.
      await writeConfig(configYaml('ROUND_ROBIN'));
      await waitFor(() => syncState(record()?.types.get(TYPE.cluster)) === 'SYNCED', { what: 'CDS SYNCED again', timeoutMs: 30_000, intervalMs: 100 });
      expect(typeSyncView(record()?.types.get(TYPE.cluster)).rejected).toBeUndefined();
    } finally {
      await writeConfig(configYaml('ROUND_ROBIN'));
      await run.stop();
    }
  });
});
