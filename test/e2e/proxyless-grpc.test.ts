/**
 * Proxyless gRPC end to end: the real gRPC xDS client (@grpc/grpc-js-xds, in a child process)
 * dials `xds:///<listener>` and resolves through fulcrum's LDS (api_listener) → RDS → CDS → EDS
 * to local gRPC servers, with ROUND_ROBIN, RING_HASH and MAGLEV (its ring-hash fallback), and
 * follows a live config edit.
 *
 * Set FULCRUM_E2E_GRPC_TRACE=1 to print the client's xDS trace (GRPC_TRACE=xds_client,xds_resolver)
 * even when the tests pass; it is printed on failure regardless.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test, type TestContext } from 'vitest';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { TYPE, type XdsTypeUrl } from '../../src/xds/envoy-api.js';
import { typeSyncView } from '../../src/admin/views.js';
import { describeProxy, syncState, type ProxyRecord } from '../../src/xds/proxy-status.js';
import { loadAssignmentResource } from '../../src/xds/translate-clusters.js';
import { startGrpcServers, type GrpcTestServer, type GrpcTestServers } from '../support/grpc-whoami.js';
import { startXdsClient, tally, type CallResult, type XdsClientHandle } from '../support/grpc-xds.js';
import { replaceFile } from '../support/replace-file.js';
import { waitFor, scaled } from '../support/wait.js';

const GREETER = 'xds:///greeter';
const SESSIONS = 'xds:///sessions';
const NODE_ID = `proxyless-e2e-${process.pid}`;
const TYPES: Record<'LDS' | 'RDS' | 'CDS' | 'EDS', XdsTypeUrl> = {
  LDS: TYPE.listener,
  RDS: TYPE.route,
  CDS: TYPE.cluster,
  EDS: TYPE.endpoint,
};

/**
 * The test's config. `rrPolicy`: the greeter cluster's lbPolicy (`MURMUR_HASH_2`: RING_HASH with
 * that hash function, which gRPC refuses); `sessionsPolicy`: the x-user-hashed cluster's.
 */
const SLOW_START = ' with slowStart';
type SlowStartPolicy = `${'ROUND_ROBIN' | 'LEAST_REQUEST'}${typeof SLOW_START}`;

function configYaml(
  rr: readonly GrpcTestServer[],
  rh: readonly GrpcTestServer[],
  rrPolicy: 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'MURMUR_HASH_2' | SlowStartPolicy = 'ROUND_ROBIN',
  sessionsPolicy: 'RING_HASH' | 'MAGLEV' = 'RING_HASH',
): string {
  const endpoints = (list: readonly GrpcTestServer[]) =>
    list.map((s) => `      - { address: ${s.host}, port: ${s.port} }`).join('\n');
  const greeterPolicy =
    rrPolicy === 'MURMUR_HASH_2'
      ? 'RING_HASH\n    ringHash: { hashFunction: MURMUR_HASH_2 }'
      : rrPolicy.endsWith(SLOW_START)
        ? `${rrPolicy.slice(0, -SLOW_START.length)}\n    slowStart: { windowMs: 10000, aggression: 2, minWeightPercent: 20 }`
        : rrPolicy;
  const sessions = sessionsPolicy === 'RING_HASH' ? 'RING_HASH\n    ringHash: { virtualNodesPerHost: 160 }' : 'MAGLEV';
  return `# written by test/e2e/proxyless-grpc.test.ts
server:
  xds: { debounceQuietMs: 20, debounceMaxMs: 200 }
clusters:
  - name: greeter-backends
    lbPolicy: ${greeterPolicy}
    http2: true
    endpoints:
${endpoints(rr)}
  - name: sessions-backends
    lbPolicy: ${sessions}
    http2: true
    endpoints:
${endpoints(rh)}
listeners:
  - name: greeter
    apiListener: true
    routes:
      - { prefix: /, cluster: greeter-backends }
  - name: sessions
    apiListener: true
    routes:
      - { prefix: /, cluster: sessions-backends, hashPolicy: { header: x-user } }
`;
}

let dir: string;
let configPath: string;
let rr: GrpcTestServers;
let rh: GrpcTestServers;
let fulcrum: Fulcrum;
let client: XdsClientHandle;

function writeConfig(text: string): Promise<void> {
  return replaceFile(configPath, text);
}

function proxyRecord(): ProxyRecord | undefined {
  return fulcrum.registry.list().find((r) => r.node.id === NODE_ID);
}

/** Per xDS type: sync state and the resource names last sent to the client. */
function syncSummary(record: ProxyRecord | undefined): Record<string, { state: string; names: string[]; nack?: string }> {
  const out: Record<string, { state: string; names: string[]; nack?: string }> = {};
  if (!record) return out;
  for (const [short, url] of Object.entries(TYPES)) {
    const t = record.types.get(url);
    out[short] = {
      state: syncState(t),
      names: [...(t?.sentResources.keys() ?? [])].sort(),
      ...(t?.lastNack ? { nack: t.lastNack.message } : {}),
    };
  }
  return out;
}

/** All four types SYNCED (sent and ACKed), each including the expected resource names. */
function syncedWith(record: ProxyRecord | undefined, expected: Record<keyof typeof TYPES, string[]>): boolean {
  const summary = syncSummary(record);
  return Object.entries(expected).every(([short, names]) => {
    const s = summary[short];
    return s !== undefined && s.state === 'SYNCED' && names.every((n) => s.names.includes(n));
  });
}

const servedBy = (results: readonly CallResult[]): Set<string> =>
  new Set(results.flatMap((r) => (r.server !== undefined ? [r.server] : [])));
const failures = (results: readonly CallResult[]): CallResult[] => results.filter((r) => r.server === undefined);

/** On failure, show what the client and the registry saw: that is where a NACK or a resolution error shows up. */
function diagnoseOnFailure(ctx: TestContext): void {
  ctx.onTestFailed(() => {
    const record = proxyRecord();
    const status = record ? describeProxy(record) : fulcrum.registry.list().map(describeProxy);
    console.error(
      [
        `--- proxy status (registry): ${JSON.stringify(status, null, 2)}`,
        `--- grpc-xds-client trace (summary, tail):`,
        client.traceSummary(20_000),
      ].join('\n'),
    );
  });
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'fulcrum-proxyless-'));
  configPath = path.join(dir, 'fulcrum.yaml');
  rr = await startGrpcServers(3, 'rr');
  rh = await startGrpcServers(3, 'rh');
  await writeConfig(configYaml(rr.list, rh.list));
  fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', logger: pino({ level: 'silent' }) });
  client = await startXdsClient({
    xdsPort: fulcrum.xdsPort,
    nodeId: NODE_ID,
    trace: 'xds_client,xds_resolver,cds_balancer,priority',
  });
}, scaled(60_000));

afterAll(async () => {
  if (process.env.FULCRUM_E2E_GRPC_TRACE && client) console.error(client.stderr());
  await client?.stop();
  await fulcrum?.stop();
  await rr?.close();
  await rh?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
}, scaled(60_000));

describe('proxyless gRPC (@grpc/grpc-js-xds) through fulcrum', () => {
  test('preflight: every EDS locality carries a load_balancing_weight (gRPC drops localities without one)', async () => {
    // grpc-js-xds (gRFC A27) skips a LocalityLbEndpoints whose load_balancing_weight is unset, so
    // without it every call fails with "priority policy has empty priority list" although
    // LDS/RDS/CDS/EDS are all ACKed. Checked here first so the cause is named, not just the symptom.
    const { catalog } = parseConfig(configYaml(rr.list, rh.list), 'proxyless.yaml');
    for (const cluster of catalog.clusters) {
      const cla = loadAssignmentResource(cluster) as { endpoints: { load_balancing_weight?: { value?: number } }[] };
      for (const locality of cla.endpoints) {
        const weight = locality.load_balancing_weight?.value;
        expect(weight, `cluster ${cluster.name}: locality load_balancing_weight`).toBeGreaterThanOrEqual(1);
      }
    }
  });

  test('ROUND_ROBIN: calls spread over all three servers; LDS/RDS/CDS/EDS all ACKed', async (ctx) => {
    diagnoseOnFailure(ctx);
    // The channel starts IDLE and round_robin only picks READY subchannels, so the first calls may all
    // land on whichever server connected first: wait until a small batch reaches every server.
    await waitFor(
      async ({ note }) => {
        const results = await client.call(GREETER, { count: 9 });
        note(tally(results));
        return servedBy(results).size === 3 && failures(results).length === 0;
      },
      { what: 'round-robin calls to reach all three servers', timeoutMs: 45_000, intervalMs: 200 },
    );

    const results = await client.call(GREETER, { count: 60 });
    const counts = tally(results);
    expect(failures(results), JSON.stringify(counts)).toEqual([]);
    expect(Object.keys(counts).sort()).toEqual(['rr-0', 'rr-1', 'rr-2']);
    for (const s of rr.list) {
      expect(counts[s.id] ?? 0, `${s.id} share of 60: ${JSON.stringify(counts)}`).toBeGreaterThanOrEqual(12);
    }
    // The servers agree with the client about who answered.
    expect(rr.list.reduce((n, s) => n + s.count, 0)).toBeGreaterThanOrEqual(60);

    // The client is a registered proxy with every type sent and ACKed (SYNCED), no NACK.
    const record = await waitFor(
      ({ note }) => {
        const r = proxyRecord();
        note(syncSummary(r));
        const expected = { LDS: ['greeter'], RDS: ['greeter'], CDS: ['greeter-backends'], EDS: ['greeter-backends'] };
        return syncedWith(r, expected) && r;
      },
      { what: 'the proxyless client to be SYNCED on LDS/RDS/CDS/EDS', timeoutMs: 15_000 },
    );
    const view = describeProxy(record) as {
      nodeCluster: string;
      userAgent: string;
      protocol: string;
      types: Record<string, { state: string; lastNack?: unknown }>;
    };
    expect(view.nodeCluster).toBe('proxyless');
    expect(view.userAgent).toMatch(/gRPC Node/);
    expect(view.protocol).toBe('sotw');
    for (const short of Object.keys(TYPES)) {
      expect(view.types[short]?.state, short).toBe('SYNCED');
      expect(view.types[short]?.lastNack, short).toBeUndefined();
    }
  }, scaled(60_000));

  test('RING_HASH on x-user: one server per user, users spread over several servers', async (ctx) => {
    diagnoseOnFailure(ctx);
    await expectAffinity();
  }, scaled(60_000));

  test('MAGLEV (auto\'s affinity policy at 1000+ endpoints): gRPC takes its ring-hash fallback, ACKed, one server per user', async (ctx) => {
    diagnoseOnFailure(ctx);
    const cdsBefore = proxyRecord()?.types.get(TYPE.cluster)?.ackedVersion;
    await writeConfig(configYaml(rr.list, rh.list, 'ROUND_ROBIN', 'MAGLEV'));
    try {
      // Sent as lb_policy MAGLEV, grpc-js NACKed it ("unsupported lb_policy: MAGLEV") and kept the ring hash it had.
      await waitFor(
        ({ note }) => {
          const cds = proxyRecord()?.types.get(TYPE.cluster);
          note({ cds: syncState(cds), ackedVersion: cds?.ackedVersion, nack: cds?.lastNack?.message });
          return cds !== undefined && cds.lastNack === undefined && syncState(cds) === 'SYNCED' && cds.ackedVersion !== cdsBefore;
        },
        { what: 'the MAGLEV cluster ACKed', timeoutMs: 30_000, intervalMs: 100 },
      );
      await expectAffinity();
    } finally {
      await writeConfig(configYaml(rr.list, rh.list));
    }
    await waitFor(() => syncState(proxyRecord()?.types.get(TYPE.cluster)) === 'SYNCED', { what: 'CDS SYNCED on RING_HASH again', timeoutMs: 30_000, intervalMs: 100 });
  }, scaled(60_000));

  /** Every user's calls reach one server, the same each time, and the users spread over several. */
  async function expectAffinity(): Promise<void> {
    const users = Array.from({ length: 20 }, (_, i) => `user-${i}`);
    const byUser = (results: readonly CallResult[], perCall: readonly Record<string, string>[]) => {
      const map = new Map<string, Set<string>>();
      results.forEach((r, i) => {
        const user = perCall[i]?.['x-user'] ?? '?';
        const set = map.get(user) ?? new Set<string>();
        set.add(r.server ?? `error ${r.code}: ${r.error}`);
        map.set(user, set);
      });
      return map;
    };

    // First pass (also the warm-up: ring_hash connects a server's subchannel on first pick and queues the call).
    const first = await waitFor(
      async ({ note }) => {
        const perCall = users.map((u) => ({ 'x-user': u }));
        const results = await client.call(SESSIONS, { perCall });
        note(tally(results));
        return failures(results).length === 0 && byUser(results, perCall);
      },
      { what: 'ring-hash calls to succeed for every user', timeoutMs: 45_000, intervalMs: 200 },
    );
    const home = new Map([...first].map(([u, s]) => [u, [...s][0] ?? '?']));

    // Then every user five more times, interleaved and concurrent: always the same server.
    const perCall = Array.from({ length: 5 }, () => users.map((u) => ({ 'x-user': u }))).flat();
    const results = await client.call(SESSIONS, { perCall, concurrency: 4 });
    expect(failures(results)).toEqual([]);
    for (const r of results) expect(r.seen?.['x-user']).toMatch(/^user-\d+$/);
    const again = byUser(results, perCall);
    for (const u of users) expect([...(again.get(u) ?? [])], `servers for ${u}`).toEqual([home.get(u)]);

    const distinct = new Set(home.values());
    expect(distinct.size, `servers used by 20 users: ${JSON.stringify(Object.fromEntries(home))}`).toBeGreaterThan(1);
    for (const s of distinct) expect(rh.list.map((x) => x.id)).toContain(s);

    await waitFor(
      ({ note }) => {
        const r = proxyRecord();
        note(syncSummary(r));
        return syncedWith(r, {
          LDS: ['greeter', 'sessions'],
          RDS: ['greeter', 'sessions'],
          CDS: ['greeter-backends', 'sessions-backends'],
          EDS: ['greeter-backends', 'sessions-backends'],
        });
      },
      { what: 'both targets SYNCED on LDS/RDS/CDS/EDS', timeoutMs: 15_000 },
    );
  }

  test('live update: an endpoint removed from the config file stops receiving calls', async (ctx) => {
    diagnoseOnFailure(ctx);
    const [kept0, kept1, removed] = rr.list;
    if (!kept0 || !kept1 || !removed) throw new Error('need three round-robin servers');
    const edsBefore = proxyRecord()?.types.get(TYPE.endpoint)?.ackedVersion;

    await writeConfig(configYaml([kept0, kept1], rh.list));

    // The new EDS version is sent and ACKed, and the channel stops picking the removed server.
    await waitFor(
      async ({ note }) => {
        const eds = proxyRecord()?.types.get(TYPE.endpoint);
        const results = await client.call(GREETER, { count: 6 });
        note({ eds: syncState(eds), ackedVersion: eds?.ackedVersion, edsBefore, calls: tally(results) });
        return (
          eds !== undefined &&
          syncState(eds) === 'SYNCED' &&
          eds.ackedVersion !== edsBefore &&
          failures(results).length === 0 &&
          !servedBy(results).has(removed.id)
        );
      },
      { what: `calls to stop reaching ${removed.id} after its endpoint is removed`, timeoutMs: 30_000, intervalMs: 100 },
    );

    const removedBefore = removed.count;
    const results = await client.call(GREETER, { count: 40 });
    const counts = tally(results);
    expect(failures(results), JSON.stringify(counts)).toEqual([]);
    expect(counts[removed.id], JSON.stringify(counts)).toBeUndefined();
    expect(removed.count).toBe(removedBefore);
    expect(counts[kept0.id] ?? 0, JSON.stringify(counts)).toBeGreaterThanOrEqual(10);
    expect(counts[kept1.id] ?? 0, JSON.stringify(counts)).toBeGreaterThanOrEqual(10);
  }, scaled(60_000));

  // Neither policy exists in grpc-js: sent as lb_policy, the whole Cluster was NACKed ("unsupported
  // lb_policy"); sent as load_balancing_policy, grpc-js takes the round-robin fallback. Nor has it
  // Envoy's slow start: under LEAST_REQUEST it rides in the typed policy grpc-js skips; a
  // ROUND_ROBIN cluster is sent to gRPC without it (src/xds/grpc-clusters.ts).
  test.for(['LEAST_REQUEST', 'RANDOM', `ROUND_ROBIN${SLOW_START}`, `LEAST_REQUEST${SLOW_START}`] as const)('%s: grpc-js, which has no such policy, ACKs the cluster and takes round robin', { timeout: scaled(60_000) }, async (policy, ctx) => {
    diagnoseOnFailure(ctx);
    const cdsBefore = proxyRecord()?.types.get(TYPE.cluster)?.ackedVersion;
    await writeConfig(configYaml(rr.list, rh.list, policy));
    await waitFor(
      async ({ note }) => {
        const cds = proxyRecord()?.types.get(TYPE.cluster);
        const results = await client.call(GREETER, { count: 9 });
        note({ cds: syncState(cds), ackedVersion: cds?.ackedVersion, nack: cds?.lastNack?.message, calls: tally(results) });
        return cds !== undefined && syncState(cds) === 'SYNCED' && cds.ackedVersion !== cdsBefore && failures(results).length === 0 && servedBy(results).size === 3;
      },
      { what: `the ${policy} cluster ACKed and calls on all three servers`, timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(proxyRecord()?.types.get(TYPE.cluster)?.lastNack).toBeUndefined();
    const counts = tally(await client.call(GREETER, { count: 60 }));
    for (const s of rr.list) expect(counts[s.id] ?? 0, `${s.id} share of 60: ${JSON.stringify(counts)}`).toBeGreaterThanOrEqual(12);
  });

  test('a NACK names the refused cluster by its position ("resource index"): only it is listed refused, and calls go on', async (ctx) => {
    diagnoseOnFailure(ctx);
    // Both clusters are in the client's CDS state (the RING_HASH test dialed the sessions listener).
    expect([...(proxyRecord()?.types.get(TYPE.cluster)?.sentResources.keys() ?? [])].sort()).toEqual(['greeter-backends', 'sessions-backends']);
    // Ring hash on MURMUR_HASH_2 is Envoy's only: grpc-js refuses the cluster and keeps the one it had.
    await writeConfig(configYaml(rr.list, rh.list, 'MURMUR_HASH_2'));
    const cds = await waitFor(
      ({ note }) => {
        const t = proxyRecord()?.types.get(TYPE.cluster);
        note({ state: syncState(t), nack: t?.lastNack?.message });
        return t !== undefined && syncState(t) === 'NACKED' && t;
      },
      { what: 'the MURMUR_HASH_2 cluster NACKed', timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(cds.lastNack?.message).toMatch(/resource index \d+/);
    expect(cds.lastNack?.message).toMatch(/hash_function: MURMUR_HASH_2/);
    expect(typeSyncView(cds).rejected).toEqual(['greeter-backends']);
    const results = await client.call(GREETER, { count: 9 });
    expect(failures(results), JSON.stringify(tally(results))).toEqual([]);
    // Mended: sent again, ACKed, nothing refused.
    await writeConfig(configYaml(rr.list, rh.list));
    await waitFor(() => syncState(proxyRecord()?.types.get(TYPE.cluster)) === 'SYNCED', { what: 'CDS SYNCED again', timeoutMs: 30_000, intervalMs: 100 });
    expect(typeSyncView(proxyRecord()?.types.get(TYPE.cluster)).rejected).toBeUndefined();
  }, scaled(60_000));
});
