/**
 * Endpoint weights reach proxyless gRPC clients. gRPC balances localities by their weight and
 * ignores endpoint weights inside one (gRFC A27/A52), so sent Envoy's assignment a 1:3 cluster
 * was split 50/50 by grpc-go and @grpc/grpc-js-xds alike. fulcrum sends gRPC clients (told by
 * node.user_agent_name) every endpoint of such a cluster as a locality of its own, weighted as the
 * endpoint (src/xds/grpc-assignments.ts): the split follows the weights, and follows a change of
 * them on the open channel. The clients' per-locality load reports are then each one endpoint's,
 * and are attributed to it exactly: a backend failing every call is singled out and taken out
 * (fulcrum's fleet ejection), where before grpc-go's errors were spread over the whole locality and
 * every peer looked as bad as it. Needs the Go client binary (scripts/build-grpc-go-client.sh):
 * skipped locally without it, a failure under CI.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { locateGrpcGoClient, runGrpcGoClient, type GrpcGoResult, type GrpcGoRun } from '../support/grpc-go.js';
import { startGrpcServers, type GrpcTestServers } from '../support/grpc-whoami.js';
import { startXdsClient, tally, type XdsClientHandle } from '../support/grpc-xds.js';
import { replaceFile } from '../support/replace-file.js';
import { peakRps, reportedLoadOfEvery } from '../support/peak-rps.js';
import { describeRequiring } from '../support/requires.js';
import { waitFor } from '../support/wait.js';

const CLUSTER = 'weighted-backends';
const TARGET = 'xds:///weighted';
const FAILING_CLUSTER = 'failing-backends';
const FAILING_TARGET = 'xds:///failing';
const ORCA_CLUSTER = 'orca-backends';
const ORCA_TARGET = 'xds:///orca';
/** A 1:3 ROUND_ROBIN cluster with Envoy's slow start, which gRPC clients are sent without (src/xds/grpc-clusters.ts). */
const SLOW_CLUSTER = 'slow-start-backends';
const SLOW_TARGET = 'xds:///slow-start';
const goClient = locateGrpcGoClient();

describeRequiring('the grpc-go proxyless client', goClient, 'endpoint weights reach proxyless gRPC clients', () => {
  let dir: string;
  let servers: GrpcTestServers;
  /** Three servers of an adaptive cluster; the first fails every call in the last test. */
  let failing: GrpcTestServers;
  /** Two servers of a PID cluster that report their CPU (ORCA) on every answer. */
  let orca: GrpcTestServers;
  let fulcrum: Fulcrum;
  let configPath: string;
  let jsClient: XdsClientHandle | undefined;
  let maxRps: ReadonlyMap<string, number> = new Map();

  const configYaml = (weights: readonly [number, number]): string =>
    YAML.stringify({
      server: { xds: { debounceQuietMs: 20, debounceMaxMs: 200 }, loadReporting: { intervalMs: 500, endpointMetrics: ['cpu_utilization'] } },
      clusters: [
        { name: CLUSTER, lbPolicy: 'ROUND_ROBIN', http2: true, endpoints: servers.list.map((s, i) => ({ address: s.host, port: s.port, weight: weights[i] })) },
        { name: FAILING_CLUSTER, lbPolicy: 'ROUND_ROBIN', http2: true, weighting: { policy: 'pid' }, endpoints: failing.list.map((s) => ({ address: s.host, port: s.port })) },
        { name: ORCA_CLUSTER, lbPolicy: 'ROUND_ROBIN', http2: true, weighting: { policy: 'pid', metric: 'cpu' }, endpoints: orca.list.map((s) => ({ address: s.host, port: s.port })) },
        {
          name: SLOW_CLUSTER, lbPolicy: 'ROUND_ROBIN', slowStart: { windowMs: 10_000 }, http2: true,
          endpoints: servers.list.map((s, i) => ({ address: s.host, port: s.port, weight: [1, 3][i] })),
        },
      ],
      listeners: [
        { name: 'weighted', apiListener: true, routes: [{ prefix: '/', cluster: CLUSTER }] },
        { name: 'failing', apiListener: true, routes: [{ prefix: '/', cluster: FAILING_CLUSTER }] },
        { name: 'orca', apiListener: true, routes: [{ prefix: '/', cluster: ORCA_CLUSTER }] },
        { name: 'slow-start', apiListener: true, routes: [{ prefix: '/', cluster: SLOW_CLUSTER }] },
      ],
    });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'fulcrum-grpc-weights-'));
    servers = await startGrpcServers(2, 'w');
    failing = await startGrpcServers(3, 'f');
    orca = await startGrpcServers(2, 'o', { orca: true });
    configPath = path.join(dir, 'fulcrum.yaml');
    await writeFile(configPath, configYaml([1, 3]));
    fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminPort: 0, logger: pino({ level: 'silent' }) });
    maxRps = peakRps(fulcrum, CLUSTER);
  }, 60_000);

  afterAll(async () => {
    await jsClient?.stop();
    await fulcrum?.stop();
    await servers?.close();
    await failing?.close();
    await orca?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  const shareOf = (counts: Record<string, number>, i: number): number => {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    return (counts[servers.list[i]?.id ?? '?'] ?? 0) / Math.max(1, total);
  };

  test('grpc-go splits calls 1:3 by endpoint weight, and its load reports are attributed to each endpoint exactly', { timeout: 180_000 }, async () => {
    const run = runGrpcGoClient(goClient.bin, { xdsPort: fulcrum.xdsPort, nodeId: `grpc-go-weights-${process.pid}`, target: TARGET, count: 800, hold: true });
    try {
      const { counts, errors } = await run.result;
      expect(errors, run.stderr().slice(-4_000)).toEqual({});
      // Sent Envoy's form (one locality of weight 4), grpc-go gave the weight-1 server ~50%.
      expect(Math.abs(shareOf(counts, 0) - 0.25), JSON.stringify(counts)).toBeLessThan(0.08);
      await reportedLoadOfEvery(maxRps, servers.list, 'grpc-go');
      const scrape = await fulcrum.metrics.registry.getSingleMetricAsString('fulcrum_lrs_report_entries_total');
      expect(scrape).toMatch(/granularity="locality",result="exact"} [1-9]/);
      expect(scrape).not.toMatch(/granularity="locality",result="(spread|dropped)"} [1-9]/);
    } finally {
      await run.stop();
    }
  });

  // Sent the typed RoundRobin that carries Envoy's slow start, grpc-go and grpc-js-xds alike built
  // round robin alone, which weighs no locality, and split this cluster 50/50.
  test('a ROUND_ROBIN cluster with Envoy\'s slow start still splits 1:3 in grpc-go and grpc-js-xds', { timeout: 180_000 }, async () => {
    const run = runGrpcGoClient(goClient.bin, { xdsPort: fulcrum.xdsPort, nodeId: `grpc-go-slow-${process.pid}`, target: SLOW_TARGET, count: 800 });
    try {
      const { counts, errors } = await run.result;
      expect(errors, run.stderr().slice(-4_000)).toEqual({});
      expect(Math.abs(shareOf(counts, 0) - 0.25), JSON.stringify(counts)).toBeLessThan(0.08);
    } finally {
      await run.stop();
    }
    const client = await startXdsClient({ xdsPort: fulcrum.xdsPort, nodeId: `grpc-js-slow-${process.pid}` });
    try {
      await waitFor(async () => {
        const counts = tally(await client.call(SLOW_TARGET, { count: 20 }));
        return servers.list.every((s) => (counts[s.id] ?? 0) > 0);
      }, { what: 'grpc-js calls to reach both servers', timeoutMs: 45_000, intervalMs: 200 });
      const counts = tally(await client.call(SLOW_TARGET, { count: 400 }));
      expect(Math.abs(shareOf(counts, 0) - 0.25), JSON.stringify(counts)).toBeLessThan(0.08);
    } finally {
      await client.stop();
    }
  });

  test('grpc-js-xds splits calls 1:3, then 3:1 once the weights change, on the same channel, while Envoys keep their form', { timeout: 180_000 }, async () => {
    const nodeId = `grpc-js-weights-${process.pid}`;
    jsClient = await startXdsClient({ xdsPort: fulcrum.xdsPort, nodeId });
    const client = jsClient;
    // Until both subchannels are READY, gRPC picks among the ready localities only.
    await waitFor(async ({ note }) => {
      const counts = tally(await client.call(TARGET, { count: 20 }));
      note(counts);
      return servers.list.every((s) => (counts[s.id] ?? 0) > 0);
    }, { what: 'calls to reach both servers', timeoutMs: 45_000, intervalMs: 200 });
    const first = tally(await client.call(TARGET, { count: 400 }));
    expect(Math.abs(shareOf(first, 0) - 0.25), JSON.stringify(first)).toBeLessThan(0.08);

    await replaceFile(configPath, configYaml([3, 1]));
    const after = await waitFor(async ({ note }) => {
      const counts = tally(await client.call(TARGET, { count: 400 }));
      note(counts);
      return Math.abs(shareOf(counts, 0) - 0.75) < 0.08 && counts;
    }, { what: 'the split to follow the new weights (3:1)', timeoutMs: 60_000, intervalMs: 200 });
    expect(Object.values(after).reduce((a, b) => a + b, 0)).toBe(400);

    // The client is served gRPC's form: each endpoint its own locality; an Envoy's view of the same group is one locality.
    const dump = (await (await fetch(`http://127.0.0.1:${fulcrum.adminPort}/v1/config_dump?node=${nodeId}&type=EDS`)).json()) as {
      form?: string;
      types: { EDS?: { resources: { name: string; resource: { endpoints?: unknown[] } }[] } };
    };
    expect(dump.form).toBe('grpc');
    expect(dump.types.EDS?.resources.find((r) => r.name === CLUSTER)?.resource.endpoints).toHaveLength(2);
    const envoyForm = fulcrum.cache.snapshotFor('').resources(TYPE.endpoint).get(CLUSTER);
    const grpcForm = fulcrum.cache.snapshotFor('', 'grpc').resources(TYPE.endpoint).get(CLUSTER);
    expect(envoyForm?.version).not.toBe(grpcForm?.version);
  });

  /**
   * grpc-go runs of 200 calls each on the failing cluster, one after another, until `done` holds
   * for one (`reachedFailing`: the attempts the first server saw during the run: the route's
   * retries on UNAVAILABLE hide them from the client). Each run stays up (its load reports
   * flowing) until the next one has answered.
   */
  async function goRunsUntil(what: string, done: (r: GrpcGoResult, reachedFailing: number) => boolean, target = FAILING_TARGET): Promise<void> {
    let previous: GrpcGoRun | undefined;
    let n = 0;
    try {
      await waitFor(async ({ note }) => {
        const before = failing.list[0]?.count ?? 0;
        const run = runGrpcGoClient(goClient.bin, { xdsPort: fulcrum.xdsPort, nodeId: `grpc-go-runs-${process.pid}-${n++}`, target, count: 200, hold: true });
        const result = await run.result;
        const reachedFailing = (failing.list[0]?.count ?? 0) - before;
        await previous?.stop();
        previous = run;
        note({ ...result, reachedFailing });
        return done(result, reachedFailing);
      }, { what, timeoutMs: 90_000, intervalMs: 200 });
    } finally {
      await previous?.stop();
    }
  }

  test('a backend failing every call is singled out by grpc-go\'s load reports and taken out, then let back once it answers', { timeout: 240_000 }, async () => {
    failing.fail(0, true);
    // grpc-go reports per locality only: sent one locality, its errors were spread over all three
    // endpoints, every peer looked as bad as the failing one, and a third of the calls kept reaching
    // it (each then retried on another server: the calls succeed, at the cost of a retry each).
    // 200 calls without one attempt on it: taken out (at the weight floor, 5% of its share, ~1e-4 odds).
    await goRunsUntil('a run of calls without one attempt on the failing server', (r, reachedFailing) => Object.keys(r.errors).length === 0 && reachedFailing === 0);
    failing.fail(0, false);
    await goRunsUntil('the recovered server to get calls again (after its ejection, on probation)', (r) => (r.counts['f-0'] ?? 0) > 0);
  });

  test('the adaptive loop closes for grpc-go: a backend reporting 0.9 CPU (ORCA) beside one at 0.3 is given less of the calls', { timeout: 240_000 }, async () => {
    orca.reportCpu(0, 0.9);
    orca.reportCpu(1, 0.3);
    // ORCA → grpc-go's load reports (gRFC A85, per locality: now per endpoint) → PID toward the
    // mean utilization → the gRPC form's locality weights → grpc-go's pick. Sent Envoy's form,
    // grpc-go kept 50/50 whatever the weights.
    await goRunsUntil('the busy server\'s share of a run to fall below 30%', (r) => (r.counts['o-0'] ?? 0) < 0.3 * 200 && (r.counts['o-1'] ?? 0) > 0, ORCA_TARGET);
  });
});
