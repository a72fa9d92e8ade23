/**
 * The etcd store across replicas, on a real 3-member etcd: a write on one replica is seen on the
 * others; racing If-Match writes give one success and one conflict; concurrent writers lose
 * nothing; replicas seeding the same file at once converge with one write each; killing the
 * leader under a write only delays it; quorum loss refuses writes (503) while reads keep being
 * served; quorum back resumes everything without a restart; a replica with nothing local
 * rebuilds everything from etcd; the admin API's rules about other resources (a listener's
 * address and clusters, a deleted cluster's references) hold under racing requests.
 */
import { randomBytes } from 'node:crypto';
import { Etcd3, GRPCUnavailableError } from 'etcd3';
import { wrap, type CircuitBreakerPolicy, type IPolicy } from 'cockatiel';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { ConflictError, StoreLimitError, StoreUnavailableError, type StoreChange } from '../../src/catalog/store/index.js';
import { EtcdStore, openEtcdStore } from '../../src/catalog/store/etcd-store.js';
import { etcdClientOptions, unaryCallPolicy } from '../../src/catalog/store/etcd-client.js';
import { cluster, endpoint, listener } from '../catalog/helpers.js';
import { FILE_V1, fileCatalog } from '../catalog/store-contract.js';
import { buildAdminApp, type AdminApp } from '../../src/admin/app.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { XdsCache } from '../../src/xds/cache.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { scaled, waitFor } from '../support/wait.js';

const API = { actor: 'alice', owner: 'api' } as const;

describeEtcd('etcd store: several replicas on one etcd', () => {
  let etcd: EtcdCluster;
  const open: EtcdStore[] = [];
  let prefix = '';
  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
  }, 120_000);
  afterAll(() => etcd?.stop());
  const apps: AdminApp[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    for (const s of open.splice(0)) await s.close();
  });

  /** A replica on this test's prefix. */
  const replica = async (): Promise<EtcdStore> => {
    const s = await openEtcdStore({ endpoints: [...etcd.endpoints], prefix, writeTimeoutMs: scaled(3_000) }, { probeIntervalMs: 250 });
    open.push(s);
    return s;
  };
  const replicas = async (n: number): Promise<EtcdStore[]> => {
    prefix = `/ha-${randomBytes(4).toString('hex')}`;
    return Promise.all(Array.from({ length: n }, () => replica()));
  };

  it('a write on one replica is seen on the others, with the same revision and a change event', async () => {
    const [a, b] = (await replicas(2)) as [EtcdStore, EtcdStore];
    const seen: StoreChange[] = [];
    b.onChange((c) => seen.push(c));
    const { revision } = await a.putCluster(cluster('web', [endpoint('10.0.0.1')]), API);
    await waitFor(() => b.getCluster('web')?.revision === revision, { what: 'B sees the write', timeoutMs: scaled(10_000) });
    expect(seen).toEqual([{ revision, actor: 'alice', changes: [{ kind: 'cluster', name: 'web', action: 'create' }] }]);
    expect(b.catalog()).toEqual(a.catalog());
    expect(b.audit()).toEqual(a.audit());
  });

  it('racing If-Match writes on two replicas: exactly one wins, the other gets a conflict', async () => {
    const [a, b] = (await replicas(2)) as [EtcdStore, EtcdStore];
    for (let round = 0; round < 5; round++) {
      const { revision } = await a.putCluster(cluster('web', [endpoint('10.0.0.1')], { connectTimeoutMs: 100 + round }), API);
      await waitFor(() => b.getCluster('web')?.revision === revision, { what: 'B caught up', timeoutMs: scaled(10_000) });
      const results = await Promise.allSettled([
        a.putCluster(cluster('web', [endpoint('10.0.0.1')], { connectTimeoutMs: 1000 }), { ...API, actor: 'a', ifMatch: revision }),
        b.putCluster(cluster('web', [endpoint('10.0.0.2')], { connectTimeoutMs: 2000 }), { ...API, actor: 'b', ifMatch: revision }),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(lost[0]!.reason).toBeInstanceOf(ConflictError);
      // The winner's write is what both replicas hold; exactly one audit entry for it.
      const winner = results[0]!.status === 'fulfilled' ? 'a' : 'b';
      await waitFor(() => a.getCluster('web')?.revision === b.getCluster('web')?.revision, { what: 'replicas agree', timeoutMs: scaled(10_000) });
      expect(a.getCluster('web')?.connectTimeoutMs).toBe(winner === 'a' ? 1000 : 2000);
      expect(a.audit(1)[0]).toMatchObject({ actor: winner, action: 'update' });
    }
  });

  it('concurrent writers without If-Match lose no update (endpoints added on two replicas are both kept)', async () => {
    const [a, b] = (await replicas(2)) as [EtcdStore, EtcdStore];
    const { revision } = await a.putCluster(cluster('web'), API);
    await waitFor(() => b.getCluster('web')?.revision === revision, { what: 'B caught up', timeoutMs: scaled(10_000) });
    await Promise.all([
      ...[1, 2, 3, 4].map((i) => a.putEndpoint('web', endpoint(`10.0.1.${i}`), API)),
      ...[1, 2, 3, 4].map((i) => b.putEndpoint('web', endpoint(`10.0.2.${i}`), API)),
    ]);
    await waitFor(() => a.getCluster('web')?.revision === b.getCluster('web')?.revision, { what: 'replicas agree', timeoutMs: scaled(10_000) });
    expect(a.getCluster('web')!.endpoints).toHaveLength(8);
    expect(a.audit().filter((e) => e.kind === 'endpoint')).toHaveLength(8);
  });

  // A review's finding: writers racing on one cluster re-planned at once, collided again, and
  // after eight lost races a write was answered 503 "cannot take writes" with etcd healthy.
  it('24 writers on one cluster, on two replicas, without If-Match: every write succeeds, none lost', async () => {
    const [a, b] = (await replicas(2)) as [EtcdStore, EtcdStore];
    const { revision } = await a.putCluster(cluster('busy'), API);
    await waitFor(() => b.getCluster('busy')?.revision === revision, { what: 'B caught up', timeoutMs: scaled(10_000) });
    const writes = [a, b].flatMap((store, r) => Array.from({ length: 12 }, (_, i) => store.putEndpoint('busy', endpoint(`10.9.${r}.${i + 1}`), API)));
    const results = await Promise.allSettled(writes);
    expect(results.filter((x) => x.status === 'rejected').map((x) => String((x as PromiseRejectedResult).reason))).toEqual([]);
    await waitFor(() => a.getCluster('busy')?.revision === b.getCluster('busy')?.revision, { what: 'replicas agree', timeoutMs: scaled(10_000) });
    expect(a.getCluster('busy')!.endpoints).toHaveLength(24);
  });

  /** The admin API over a replica, as fulcrum serves it. */
  const adminOn = (store: EtcdStore): AdminApp => {
    const app = buildAdminApp({ registry: new ProxyRegistry(), cache: new XdsCache(), metrics: new Metrics({ processMetrics: false }), ready: () => ({ ready: true, reasons: [] }), store });
    apps.push(app);
    return app;
  };
  const send = async (app: AdminApp, method: 'PUT' | 'DELETE', url: string, body?: object) => {
    const res = await app.inject({ method, url, ...(body !== undefined ? { payload: body } : {}) });
    return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
  };

  // The review's finding: the API checked these rules on its replica's mirror before the write, and
  // the transaction compared the written key only, so both racing requests passed and committed.
  it('the admin API on two replicas, or on one: a listener PUT racing the DELETE of its cluster, or two listeners on one address, never both applied', async () => {
    const [a, b] = (await replicas(2)) as [EtcdStore, EtcdStore];
    const [apiA, apiB] = [adminOn(a), adminOn(b)];
    for (const [round, [first, second]] of [[apiA, apiB], [apiA, apiA]].entries()) {
      const web = `web-${round}`;
      const { revision } = await a.putCluster(cluster(web), API);
      await waitFor(() => b.getCluster(web)?.revision === revision, { what: 'B caught up', timeoutMs: scaled(10_000) });
      const [put, del] = await Promise.all([send(first!, 'PUT', `/v1/listeners/front-${round}`, { port: 11_000 + round, routes: [{ cluster: web }] }), send(second!, 'DELETE', `/v1/clusters/${web}`)]);
      // The loser gets the answer it would have got had the winner committed first.
      if (put.status === 201) {
        expect(del).toEqual({ status: 409, body: expect.objectContaining({ code: 'REFERENCED', message: `cluster "${web}" is still referenced by listener "front-${round}"; remove those references first` }) });
      } else {
        expect(put).toEqual({ status: 400, body: expect.objectContaining({ path: '/body/routes/0/cluster', message: `unknown cluster "${web}"` }) });
        expect(del.status).toBe(200);
      }

      const port = 12_000 + round;
      const both = await Promise.all([first!, second!].map((api, i) => send(api, 'PUT', `/v1/listeners/bind-${round}-${i}`, { address: '127.0.0.1', port, routes: [] })));
      expect(both.map((r) => r.status).sort()).toEqual([201, 409]);
      const winner = both[0]!.status === 201 ? `bind-${round}-0` : `bind-${round}-1`;
      expect(both.find((r) => r.status === 409)?.body).toMatchObject({ code: 'ADDRESS_IN_USE', path: '/body/port', message: `127.0.0.1:${port} is already used by listener "${winner}"` });
    }
    await waitFor(() => a.revision() === b.revision(), { what: 'replicas agree', timeoutMs: scaled(10_000) });
    const listeners = b.listListeners();
    expect(listeners.flatMap((l) => l.routes.map((r) => r.cluster)).filter((c) => !b.getCluster(c))).toEqual([]);
    expect(new Set(listeners.map((l) => `${l.address}:${l.port}`)).size).toBe(listeners.length);
  });

  it('two spellings of one IPv6 address written at once, on two replicas or on one: one endpoint, one listener, the other 409', async () => {
    const [a, b] = (await replicas(2)) as [EtcdStore, EtcdStore];
    const [apiA, apiB] = [adminOn(a), adminOn(b)];
    for (const [round, [first, second]] of [[apiA, apiB], [apiA, apiA]].entries()) {
      const name = `v6-${round}`;
      const { revision } = await a.putCluster(cluster(name, [endpoint('10.0.0.1', 80)]), API);
      await waitFor(() => b.getCluster(name)?.revision === revision, { what: 'B caught up', timeoutMs: scaled(10_000) });
      const spellings = ['fd00::1', 'fd00:0:0::1'];
      const both = await Promise.all([first!, second!].map((api, i) => send(api, 'PUT', `/v1/clusters/${name}/endpoints/${encodeURIComponent(spellings[i]!)}/80`, {})));
      expect(both.map((r) => r.status).sort()).toEqual([201, 409]);
      expect(both.find((r) => r.status === 409)?.body).toMatchObject({ code: 'ADDRESS_IN_USE', path: '/params/address' });
      const listeners = await Promise.all([first!, second!].map((api, i) => send(api, 'PUT', `/v1/listeners/v6-${round}-${i}`, { address: ['::', '0::0'][i], port: 13_000 + round, routes: [] })));
      expect(listeners.map((r) => r.status).sort()).toEqual([201, 409]);
      await waitFor(() => a.revision() === b.revision(), { what: 'replicas agree', timeoutMs: scaled(10_000) });
      expect(b.getCluster(name)?.endpoints.filter((e) => e.port === 80 && e.address.startsWith('fd00'))).toHaveLength(1);
    }
  });

  it('three replicas seeding the same file at once converge: one write per resource, identical state', async () => {
    const stores = await replicas(3);
    const results = await Promise.all(stores.map((s) => s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' })));
    expect(results.flatMap((r) => r.changes)).toHaveLength(3 + 1 + 1);
    const last = Math.max(...results.map((r) => r.revision));
    await waitFor(() => stores.every((s) => s.revision() >= last), { what: 'all caught up', timeoutMs: scaled(10_000) });
    for (const s of stores) {
      expect(s.catalog()).toEqual(stores[0]!.catalog());
      expect(s.audit()).toHaveLength(5);
    }
    // Seeding again anywhere changes nothing.
    expect((await stores[1]!.seedFromConfig(fileCatalog(FILE_V1))).changes).toEqual([]);
  });

  it('a replica started with nothing local rebuilds everything from etcd', async () => {
    const [a] = (await replicas(1)) as [EtcdStore];
    await a.seedFromConfig(fileCatalog(FILE_V1));
    await a.putListener(listener('mine', 'web', 20000), API);
    await a.setEndpointState('web', '10.0.0.1', 80, 'draining', { actor: 'bob' });
    await a.saveAllWeights(new Map([['web', new Map([['10.0.0.1:80', 40]])]]));
    const fresh = await replica();
    expect(fresh.catalog()).toEqual(a.catalog());
    expect(fresh.listClusters()).toEqual(a.listClusters());
    expect(fresh.audit()).toEqual(a.audit());
    expect(fresh.loadWeights()).toEqual(a.loadWeights());
    expect(fresh.revision()).toBeGreaterThanOrEqual(a.revision());
  });

  it('prunes the audit log to the newest entries, on every replica', async () => {
    const [a, b] = (await replicas(2)) as [EtcdStore, EtcdStore];
    for (let i = 0; i < 5; i++) await a.putCluster(cluster('web', [], { connectTimeoutMs: 100 + i }), API);
    const newest = a.audit(2);
    await waitFor(() => b.audit().length === 5, { what: 'B caught up', timeoutMs: scaled(10_000) });
    expect(await b.pruneAudit(2)).toBe(3);
    expect(b.audit()).toEqual(newest);
    await waitFor(() => a.audit().length === 2, { what: 'A sees the pruned log', timeoutMs: scaled(10_000) });
    expect(a.audit()).toEqual(newest);
  });

  it('prunes at most maxRows of the oldest audit entries per call', async () => {
    const [a] = (await replicas(1)) as [EtcdStore];
    for (let i = 0; i < 5; i++) await a.putCluster(cluster('web', [], { connectTimeoutMs: 100 + i }), API);
    const all = a.audit();
    expect(await a.pruneAudit(1, 3)).toBe(3);
    expect(a.audit()).toEqual(all.slice(0, 2));
    expect(await a.pruneAudit(1, 3)).toBe(1);
    expect(a.audit()).toEqual(all.slice(0, 1));
  });

  it('a write too large for one etcd request is refused with a clear error, before it is sent', async () => {
    const [a] = (await replicas(1)) as [EtcdStore];
    const many = Array.from({ length: 8_000 }, (_, i) => endpoint(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 8080, { locality: { region: 'r'.repeat(60), zone: 'z'.repeat(60), subZone: '' } }));
    const err = await a.putCluster(cluster('huge', many), API).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreLimitError);
    expect((err as Error).message).toMatch(/cluster "huge" is \d+ bytes once stored, over the store's limit/);
    expect(a.getCluster('huge')).toBeUndefined();
  });

  it('a config file of many clusters, each well within one request but more than one together, is seeded whole', async () => {
    const [a] = (await replicas(1)) as [EtcdStore];
    // 40 clusters of 300 endpoints: ~60 KB each once stored (twice that with its audit entry), ~5 MB in all.
    const clusters = Array.from({ length: 40 }, (_, c) => cluster(`svc-${c}`, Array.from({ length: 300 }, (_, i) => endpoint(`10.${c}.${i >> 8}.${i & 255}`))));
    const result = await a.seedFromConfig({ clusters, listeners: [], nodeGroups: [] });
    expect(result.changes.length).toBe(40);
    expect(a.listClusters().map((c) => c.endpoints.length)).toEqual(clusters.map(() => 300));
  });

  it('a replica whose watch fell behind a compaction lists again, reports the difference and keeps watching', async () => {
    const [writer] = (await replicas(1)) as [EtcdStore];
    // The lagging replica talks to member 0 only, so stopping member 0 cuts it off.
    const lagging = await openEtcdStore({ endpoints: [etcd.endpoints[0]!], prefix }, { probeIntervalMs: 250 });
    open.push(lagging);
    const changes: StoreChange[] = [];
    lagging.onChange((c) => changes.push(c));
    await writer.putCluster(cluster('a'), API);
    await waitFor(() => lagging.getCluster('a') !== undefined, { what: 'lagging replica sees a', timeoutMs: scaled(10_000) });
    await etcd.stopMember(0);
    await writer.putCluster(cluster('b'), API);
    await writer.deleteCluster('a', API);
    const admin = new Etcd3({ hosts: [etcd.endpoints[1]!, etcd.endpoints[2]!] });
    try {
      await admin.kv.compact({ revision: String(writer.revision()), physical: true });
    } finally {
      admin.close();
    }
    await etcd.startMember(0);
    await waitFor(() => lagging.getCluster('b') !== undefined && lagging.getCluster('a') === undefined, {
      what: 'lagging replica re-listed after the compaction',
      timeoutMs: scaled(60_000),
    });
    expect(changes.at(-1)).toMatchObject({ actor: 'etcd-resync' });
    expect(changes.at(-1)?.changes).toEqual(expect.arrayContaining([{ kind: 'cluster', name: 'b', action: 'update' }, { kind: 'cluster', name: 'a', action: 'delete' }]));
    // And it watches again.
    const { revision } = await writer.putCluster(cluster('c'), API);
    await waitFor(() => lagging.getCluster('c')?.revision === revision, { what: 'lagging replica sees c', timeoutMs: scaled(30_000) });
  });

  it('the leader killed under a write: the write commits once a new leader is elected, twice over', async () => {
    const [a, b] = (await replicas(2)) as [EtcdStore, EtcdStore];
    await a.putCluster(cluster('web', [endpoint('10.0.0.1')]), API);
    for (let round = 0; round < 2; round++) {
      const leader = await etcd.leader();
      await etcd.stopMember(leader);
      // Until the election is over, the others answer "leader changed" or hold the write: a
      // client that retried without pausing answered 503 in 5 of 32 such kills under load.
      const written = await a.putCluster(cluster('web', [endpoint('10.0.0.1')], { connectTimeoutMs: 100 + round }), API).catch((e: unknown) => e);
      expect(written, `round ${round}, leader m${leader} killed: ${String(written)}\n${etcd.logs()}`).not.toBeInstanceOf(Error);
      const { revision } = written as { revision: number };
      await waitFor(() => b.getCluster('web')?.revision === revision, { what: 'B sees the write', timeoutMs: scaled(30_000) });
      await etcd.startMember(leader);
      await waitFor(() => a.health().writable && b.health().writable, { what: 'both writable again', timeoutMs: scaled(30_000) });
    }
  });

  it('a transaction whose answer was lost and that the client sent again is not a conflict: If-Match PUT and DELETE succeed, audited once', async () => {
    prefix = `/ha-${randomBytes(4).toString('hex')}`;
    const settings = { endpoints: [...etcd.endpoints], prefix, writeTimeoutMs: scaled(3_000) };
    // The next unary call reaches etcd and applies, then its answer is lost as in an election
    // ("leader changed"); the client's own policy sends it again.
    let loseNext = false;
    const loseAnswer = {
      execute: async (fn: (ctx: { signal: AbortSignal }) => unknown, signal: AbortSignal) => {
        const answer = await fn({ signal });
        if (!loseNext) return answer;
        loseNext = false;
        throw new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: leader changed');
      },
    } as unknown as IPolicy;
    const options = etcdClientOptions(settings);
    const client = new Etcd3({ ...options, faultHandling: { ...options.faultHandling, global: wrap(unaryCallPolicy(scaled(6_000)), loseAnswer) } });
    const s = new EtcdStore(client, settings, { probeIntervalMs: 3_600_000 });
    try {
      await s.start();
      const { revision: created } = await s.putCluster(cluster('web', [endpoint('10.0.0.1')]), API);
      loseNext = true;
      const { revision: updated } = await s.putCluster(cluster('web', [endpoint('10.0.0.2')]), { ...API, ifMatch: created });
      expect(loseNext).toBe(false);
      expect(s.getCluster('web')).toMatchObject({ revision: updated, endpoints: [{ address: '10.0.0.2' }] });
      loseNext = true;
      await s.deleteCluster('web', API);
      expect(loseNext).toBe(false);
      expect(s.getCluster('web')).toBeUndefined();
      expect(s.audit(100).filter((e) => e.name === 'web').map((e) => e.action).sort()).toEqual(['create', 'delete', 'update']);
    } finally {
      await s.close();
    }
  });

  it('quorum lost: writes refused with a reason, reads still served; quorum back: writes resume without a restart', async () => {
    const [a, b] = (await replicas(2)) as [EtcdStore, EtcdStore];
    await a.seedFromConfig(fileCatalog(FILE_V1));
    await waitFor(() => b.getCluster('web') !== undefined, { what: 'B caught up', timeoutMs: scaled(10_000) });
    const before = b.catalog();

    await etcd.stopMember(1);
    // One member down: nothing changes (writes commit, the other replica sees them).
    const { revision: oneDown } = await a.putCluster(cluster('one-down'), API);
    await waitFor(() => b.getCluster('one-down')?.revision === oneDown, { what: 'B sees the write made with one member down', timeoutMs: scaled(30_000) });
    await etcd.stopMember(2);
    await waitFor(() => !a.health().writable && !b.health().writable, { what: 'replicas notice the lost quorum', timeoutMs: scaled(30_000) });
    expect(a.health().reason).toMatch(/etcd unreachable or without quorum/);
    const refused = await b.putCluster(cluster('split-brain'), API).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StoreUnavailableError);
    expect(refused).toMatchObject({ status: 503, code: 'STORE_UNAVAILABLE' });
    expect(b.catalog().clusters.map((c) => c.name)).toEqual([...before.clusters.map((c) => c.name), 'one-down'].sort());

    await etcd.startMember(1);
    await etcd.startMember(2);
    await waitFor(() => a.health().writable && b.health().writable, { what: 'replicas writable again', timeoutMs: scaled(60_000) });
    const { revision } = await b.putCluster(cluster('after'), API);
    await waitFor(() => a.getCluster('after')?.revision === revision, { what: 'A sees B\'s write (watch resumed)', timeoutMs: scaled(30_000) });
    expect(a.getCluster('split-brain')).toBeUndefined();
  });

  it('quorum lost: the member still up is never skipped (the health probe\'s spent deadlines are not its fault), and a write goes through once quorum is back', async () => {
    prefix = `/ha-${randomBytes(4).toString('hex')}`;
    const settings = { endpoints: [...etcd.endpoints], prefix, writeTimeoutMs: scaled(3_000) };
    const options = etcdClientOptions(settings);
    const skips = new Map<string, number>();
    const host = (h: string): IPolicy => {
      const p = options.faultHandling?.host?.(h) as CircuitBreakerPolicy;
      p.onBreak(() => skips.set(h, (skips.get(h) ?? 0) + 1));
      return p;
    };
    const client = new Etcd3({ ...options, faultHandling: { ...options.faultHandling, host } });
    const s = new EtcdStore(client, settings, { probeIntervalMs: 250 });
    const [live, ...dead] = etcd.endpoints as [string, string, string];
    let stopped = false;
    try {
      await s.start();
      await etcd.stopMember(1);
      await etcd.stopMember(2);
      stopped = true;
      await waitFor(() => !s.health().writable, { what: 'the store notices the lost quorum', timeoutMs: scaled(30_000) });
      // Each dead member skipped twice: more than one 5 s skip of probes every 250 ms, each with a
      // deadline its retries outlived (before the fix the live member was skipped within ~3 s).
      await waitFor(() => dead.every((h) => (skips.get(h) ?? 0) >= 2), { what: 'both dead members skipped twice', timeoutMs: scaled(60_000) });
      expect(skips.get(live)).toBeUndefined();
      await etcd.startMember(1);
      await etcd.startMember(2);
      stopped = false;
      await waitFor(() => s.health().writable, { what: 'writable again', timeoutMs: scaled(60_000) });
      await s.putCluster(cluster('after-quorum'), API);
      expect(skips.get(live)).toBeUndefined();
    } finally {
      await s.close();
      if (stopped) await Promise.all([etcd.startMember(1), etcd.startMember(2)]);
    }
  });
}, { timeout: 120_000 });
