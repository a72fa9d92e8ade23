import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import YAML from 'yaml';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { encodeLoadStatsRequest, LRS_METHOD_PATH } from '../../src/signals/lrs-codec.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { scaled, waitFor } from '../support/wait.js';
import { etcdClient } from './replicas.js';

/** The wiring in main.ts: two fulcrums given one etcd share the clusters and serve the same weights. */
const CLUSTERS = ['web', 'api', 'auth', 'search', 'cart', 'pay'];
const endpoints = ['127.0.0.1:7001', '127.0.0.1:7002'];

describeEtcd('two fulcrum replicas on one etcd (main.ts wiring)', () => {
  let etcd: EtcdCluster;
  let dir: string;
  const clients: Etcd3[] = [];
  const fulcrums: Fulcrum[] = [];
  let feed: NodeJS.Timeout | undefined;

  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-ha-'));
    for (const id of ['a', 'b']) {
      const configPath = join(dir, `${id}.yaml`);
      await writeFile(configPath, YAML.stringify({
        ha: { replicaId: id },
        // reportLoad's proxies report every 200 ms, ten times as often as fulcrum asks (2 s).
        server: { xds: { limits: { loadReportBurst: 1_000 } } },
        clusters: CLUSTERS.map((name) => ({
          name,
          weighting: { policy: 'pid', metric: 'cpu' },
          endpoints: endpoints.map((e) => ({ address: '127.0.0.1', port: Number(e.split(':')[1]), weight: 1 })),
        })),
      }));
      const client = etcdClient(etcd.endpoints);
      clients.push(client);
      fulcrums.push(await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminAddress: '127.0.0.1', engineTickMs: 200, logger: pino({ level: 'silent' }), etcd: { client, prefix: '/fulcrum' } }));
    }
  }, scaled(120_000));

  afterAll(async () => {
    clearInterval(feed);
    for (const f of fulcrums) await f.stop();
    for (const c of clients) c.close();
    await etcd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, scaled(60_000));

  const ready = async (f: Fulcrum): Promise<{ status: number; body: string }> => {
    const res = await fetch(`http://127.0.0.1:${f.adminPort}/readyz`);
    return { status: res.status, body: await res.text() };
  };

  test('each cluster has one owner; reports sent to one replica steer the weights both serve', async () => {
    const [a, b] = fulcrums as [Fulcrum, Fulcrum];
    const owned = (): (readonly string[])[] => fulcrums.map((f) => f.ha?.status().owned ?? []);
    await waitFor(() => owned().flat().sort().join() === [...CLUSTERS].sort().join(), { what: 'every cluster owned once', timeoutMs: 20_000 });
    // Every report goes to b, whatever the owner.
    feed = setInterval(() => {
      b.signals.ingest({ reporter: 't', samples: CLUSTERS.flatMap((cluster) => [
        { cluster, endpoint: endpoints[0], time: Date.now(), cpu: 0.9 },
        { cluster, endpoint: endpoints[1], time: Date.now(), cpu: 0.3 },
      ]) });
    }, 200);
    await waitFor(() => CLUSTERS.every((c) => {
      const [wa, wb] = [a, b].map((f) => endpoints.map((e) => f.adaptive.current().get(c)?.get(e)?.weight ?? 0));
      return (wa?.[1] ?? 0) > 2 * (wa?.[0] ?? 1) && JSON.stringify(wa) === JSON.stringify(wb);
    }), { what: 'both replicas serve the same steered weights for every cluster', timeoutMs: 60_000, intervalMs: 200 });
    expect(a.ha?.status().live).toEqual(['a', 'b']);
  }, scaled(90_000));

  /** One proxy's LRS stream to `f`, reporting `issued` requests and `inflight` to endpoints[0] of 'web' every 200 ms (1 s intervals). */
  function reportLoad(f: Fulcrum, issued: number, inflight: number): () => void {
    const client = new grpc.Client(`127.0.0.1:${f.xdsPort}`, grpc.credentials.createInsecure());
    const call = client.makeBidiStreamRequest(LRS_METHOD_PATH, (b: Buffer) => b, (b: Buffer) => b);
    call.on('error', () => undefined);
    call.write(encodeLoadStatsRequest({ node: { id: `proxy-${issued}`, client_features: ['envoy.lrs.supports_send_all_clusters'] } }));
    const [address, port] = (endpoints[0] as string).split(':');
    const report = encodeLoadStatsRequest({
      cluster_stats: [{
        cluster_name: 'web',
        load_report_interval: { seconds: 1 },
        upstream_locality_stats: [{ upstream_endpoint_stats: [{ address: { socket_address: { address, port_value: Number(port) } }, total_issued_requests: issued, total_requests_in_progress: inflight }] }],
      }],
    });
    const timer = setInterval(() => call.write(report), 200);
    return () => {
      clearInterval(timer);
      call.end();
      client.close();
    };
  }

  test("load reports (LRS) reaching two replicas are summed at the cluster's owner, never one replica's part for the whole", async () => {
    const owner = fulcrums.find((f) => f.ha?.status().owned.includes('web'));
    if (owner === undefined) throw new Error('web has no owner');
    // Proxies on both replicas: 10 requests/s and 2 in flight through a, 30 and 5 through b.
    const stops = [reportLoad(fulcrums[0] as Fulcrum, 10, 2), reportLoad(fulcrums[1] as Fulcrum, 30, 5)];
    try {
      const lrsAtOwner = (since: number) => owner.signals.store.samples('web', endpoints[0] as string).filter((s) => s.source === 'lrs' && s.at > since);
      await waitFor(() => lrsAtOwner(0).some((s) => s.rps === 40 && s.inflight === 7), { what: "the owner's sample summing both replicas' proxies", timeoutMs: 20_000, intervalMs: 100 });
      // From then on every sample the owner's engine gets is the whole fleet's (before: 10, 30,
      // 10… as each replica's part arrived).
      const from = owner.signals.store.now();
      await waitFor(() => lrsAtOwner(from).length >= 5, { what: 'five more LRS samples at the owner', timeoutMs: 20_000, intervalMs: 100 });
      expect(lrsAtOwner(from).map((s) => [s.rps, s.inflight])).toEqual(lrsAtOwner(from).map(() => [40, 7]));
    } finally {
      for (const stop of stops) stop();
    }
  }, scaled(60_000));

  test('cut off from etcd a replica reports itself not ready and keeps its weights; it recovers on its own', async () => {
    for (const f of fulcrums) expect((await ready(f)).status).toBe(200);
    await etcd.stopMember(0);
    await etcd.stopMember(1);
    clearInterval(feed);
    for (const f of fulcrums) {
      const r = await waitFor(async () => { const r = await ready(f); return r.status === 503 && r; }, { what: 'not ready without etcd', timeoutMs: 15_000 });
      expect(r.body).toMatch(/etcd/);
      expect(f.adaptive.current().size).toBe(CLUSTERS.length);
    }
    await etcd.startMember(0);
    await etcd.startMember(1);
    for (const f of fulcrums) await waitFor(async () => (await ready(f)).status === 200, { what: 'ready again', timeoutMs: 60_000, intervalMs: 200 });
  }, scaled(120_000));
});
