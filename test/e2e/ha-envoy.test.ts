/**
 * Issue 9 end to end: three fulcrum processes (the real command) on a real 3-member etcd, two
 * real Envoys (one SotW, one Delta) bootstrapped with all three replicas (the HA example
 * bootstraps), and backends of unequal capacity reporting ORCA load through Envoy's LRS.
 */
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { poissonLoad } from '../../examples/backends/poisson-load.js';
import { startCapacityBackends, type CapacityBackends } from '../support/capacity-backends.js';
import { describeEnvoy, dumpLogsOnFailure, startEnvoy, type EnvoyHandle } from '../support/envoy.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { freePorts } from '../support/ports.js';
import { startReplicas, type ReplicaSet } from '../support/replicas.js';
import { scaled, waitFor } from '../support/wait.js';

const REPORT_TOKEN = 'ha-report-token';

/** The load reports (LRS) carry the report token, as a deployed sidecar's bootstrap would. */
function withReportToken(bootstrap: Record<string, unknown>): void {
  const services = (bootstrap.cluster_manager as { load_stats_config?: { grpc_services?: Record<string, unknown>[] } } | undefined)?.load_stats_config?.grpc_services;
  if (!services?.length) throw new Error('the HA example bootstrap has no load_stats_config grpc_services');
  for (const s of services) s.initial_metadata = [{ key: 'authorization', value: `Bearer ${REPORT_TOKEN}` }];
}

const TYPES = ['CDS', 'EDS', 'LDS', 'RDS'] as const;
const MODES = ['sotw', 'delta'] as const;
type Mode = (typeof MODES)[number];

interface ProxyEntry {
  nodeId: string;
  replica: string;
  types: Record<(typeof TYPES)[number], { state: string }>;
}

/** The step limit's ratio per tick (the default maxStepRatio). */
const STEP_RATIO = 1.25;

/** A weight record under <prefix>/ha/weights/ (with the owner's state) or served/ (without). */
interface Published {
  owner: string;
  at: number;
  overrides: Record<string, { weight?: number }>;
  state?: { endpoints?: Record<string, { drain?: { back?: number }; ewma?: { count?: number } }> };
}

/** The most load samples any endpoint's controller read between two state records (its EWMA's count of samples). */
function samplesReadSince(from: Published | undefined, to: Published | undefined): number {
  let most = 0;
  for (const [k, e] of Object.entries(to?.state?.endpoints ?? {})) {
    const before = from?.state?.endpoints?.[k]?.ewma?.count;
    const after = e.ewma?.count;
    if (typeof before === 'number' && typeof after === 'number') most = Math.max(most, after - before);
  }
  return most;
}

/** How far drains under way in either record may move weights past the step limit: the product over endpoints of the larger factor back. */
function drainFactors(...records: (Published | undefined)[]): number {
  const back = new Map<string, number>();
  for (const r of records) {
    for (const [k, e] of Object.entries(r?.state?.endpoints ?? {})) {
      const b = e.drain?.back;
      if (typeof b === 'number' && b > 1) back.set(k, Math.max(back.get(k) ?? 1, b));
    }
  }
  return [...back.values()].reduce((f, b) => f * b, 1);
}

interface Load {
  ok: number;
  stop(): Promise<void>;
}

describeEtcd('HA end to end (etcd)', () => describeEnvoy('three fulcrum replicas on etcd, two Envoys, ORCA backends', () => {
  let etcd: EtcdCluster;
  let fleet: ReplicaSet;
  let backends: CapacityBackends;
  const envoys = new Map<Mode, EnvoyHandle>();
  const loads: Load[] = [];
  /** Each failed request, in order: its outcome (status), when it was sent (ms since the loads started) and how long it took, so a failing run says why. */
  const failureLog: string[] = [];
  const listenerPorts = new Map<Mode, number>();
  const prefix = `/ha-e2e-${randomBytes(4).toString('hex')}`;

  const envoy = (mode: Mode): EnvoyHandle => {
    const e = envoys.get(mode);
    if (!e) throw new Error(`no ${mode} Envoy`);
    return e;
  };
  for (const mode of MODES) dumpLogsOnFailure(() => envoys.get(mode));

  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
    backends = await startCapacityBackends([{ capacityRps: 40 }, { capacityRps: 80 }, { capacityRps: 160 }]);
    const [sotwPort, deltaPort] = (await freePorts(2)) as [number, number];
    listenerPorts.set('sotw', sotwPort).set('delta', deltaPort);
    const listener = (name: string, port: number) => ({ name, address: '127.0.0.1', port, routes: [{ prefix: '/', cluster: 'web' }] });
    const config = {
      server: { loadReporting: { intervalMs: 500 }, engine: { tickMs: 500 } },
      // History compacted every 10 s (in turns), so every scenario below also runs across compactions.
      store: { kind: 'etcd', etcd: { endpoints: etcd.endpoints, prefix, writeTimeoutMs: 2_000, compactEveryMs: 10_000 } },
      clusters: [
        {
          name: 'web',
          weighting: { policy: 'pid', setpoint: 'mean', metric: 'cpu' },
          endpoints: backends.list.map((b) => ({ address: '127.0.0.1', port: b.port, weight: 1 })),
        },
      ],
      listeners: [listener('in-sotw', sotwPort), listener('in-delta', deltaPort)],
      nodeGroups: [
        { nodeCluster: 'sotw', listeners: ['in-sotw'] },
        { nodeCluster: 'delta', listeners: ['in-delta'] },
      ],
    };
    // Tokens are configured (the admin API's), so load reports need the report role: the Envoys present it.
    fleet = await startReplicas({ count: 3, config: stringify(config), env: { FULCRUM_REPORT_TOKEN: REPORT_TOKEN } });
    for (const mode of MODES) {
      const e = await startEnvoy({ mode, xdsPort: 0, xdsReplicaPorts: fleet.xdsPorts, nodeId: `envoy-${mode}`, nodeCluster: mode, patchBootstrap: withReportToken });
      envoys.set(mode, e);
      await e.waitForListener(`in-${mode}`, scaled(30_000));
    }
    const loadsStarted = performance.now();
    for (const mode of MODES) {
      const load: Load = { ok: 0, stop: async () => undefined };
      const loop = poissonLoad({
        url: `http://127.0.0.1:${listenerPorts.get(mode) ?? 0}/`,
        rps: 50,
        onResult: (r) => {
          if (r.outcome === 'ok') load.ok++;
          else failureLog.push(`${mode}: ${r.outcome}${r.status ? ` ${r.status}` : ''} sent at ${Math.round(r.sentAt - loadsStarted)} ms, after ${Math.round(r.ms)} ms`);
        },
      });
      load.stop = () => loop.stop();
      loads.push(load);
    }
  }, scaled(240_000));

  afterAll(async () => {
    await Promise.all(loads.map((l) => l.stop()));
    await Promise.all([...envoys.values()].map((e) => e.stop()));
    await fleet?.stop();
    await backends?.close();
    await etcd?.stop();
  }, scaled(60_000));

  /** /v1/proxies of replica i (throws with the replica's logs when it does not answer). */
  const proxies = async (i: number): Promise<ProxyEntry[]> => {
    const res = await fleet.api(i, 'GET', '/v1/proxies');
    if (res.status !== 200) throw new Error(`replica ${i} /v1/proxies: ${res.status}`);
    return (res.json as { proxies: ProxyEntry[] }).proxies;
  };
  const synced = (p: ProxyEntry | undefined): boolean => p !== undefined && TYPES.every((t) => p.types[t].state === 'SYNCED');
  const failures = (): string[] => failureLog;
  const failedRequests = (): number => failureLog.length;
  const servedRequests = (): number => loads.reduce((n, l) => n + l.ok, 0);

  it('lists every proxy of the fleet, SYNCED, with the replica it is connected to, on every running replica', async () => {
    for (let i = 0; i < 3; i++) {
      const listed = await waitFor(
        async () => {
          const all = await proxies(i);
          return MODES.every((m) => synced(all.find((p) => p.nodeId === `envoy-${m}`))) ? all : undefined;
        },
        { what: `replica ${i} lists both Envoys SYNCED`, timeoutMs: scaled(15_000) },
      );
      expect(listed.map((p) => p.nodeId).sort()).toEqual(['envoy-delta', 'envoy-sotw']);
      for (const p of listed) expect(fleet.replicas.map((r) => r.id)).toContain(p.replica);
    }
    expect(servedRequests()).toBeGreaterThan(0);
    expect(failures()).toEqual([]);
  });

  it('serves weights that follow capacity, identically to both Envoys, and every replica sends the same ones', async () => {
    const envoyWeights = async (mode: Mode): Promise<number[]> => {
      const hosts = (await envoy(mode).clusterStatuses()).web?.hosts ?? [];
      return backends.list.map((b) => hosts.find((h) => h.address === b.key)?.weight ?? 0);
    };
    // The owner (wherever it is) moves weights towards capacity 1:2:4 from signals that land on
    // whichever replica each Envoy reports to.
    const converged = await waitFor(
      async () => {
        const [s, d] = await Promise.all([envoyWeights('sotw'), envoyWeights('delta')]);
        const moved = (s[2] ?? 0) > 1.5 * (s[0] ?? 0);
        return moved && JSON.stringify(s) === JSON.stringify(d) ? s : undefined;
      },
      { what: 'weights moved towards capacity, equal on both Envoys', timeoutMs: scaled(60_000), intervalMs: 500 },
    );
    expect(converged[2]).toBeGreaterThan(converged[0] ?? 0);
    const sent = async (i: number) => {
      const res = await fleet.api(i, 'GET', '/v1/clusters/web/endpoints');
      return JSON.stringify((res.json as { endpoints?: { port: number; weight?: number }[] }).endpoints?.map((e) => [e.port, e.weight]));
    };
    await waitFor(async () => new Set(await Promise.all([0, 1, 2].map(sent))).size === 1, {
      what: 'the three replicas send the same weights',
      timeoutMs: scaled(10_000),
    });
    // /v1/weights agrees too (a non-owner shows what the owner published).
    const explained = async (i: number) => {
      const res = await fleet.api(i, 'GET', '/v1/weights/web');
      return JSON.stringify((res.json as { endpoints?: { endpoint: string; weight?: number }[] }).endpoints?.map((e) => [e.endpoint, e.weight]));
    };
    await waitFor(async () => new Set(await Promise.all([0, 1, 2].map(explained))).size === 1, {
      what: '/v1/weights agrees on the three replicas',
      timeoutMs: scaled(10_000),
    });
  });

  it('concurrent If-Match writes on two replicas: exactly one wins', async () => {
    const body = { lbPolicy: 'ROUND_ROBIN', endpoints: [{ address: '10.7.0.1', port: 80 }] };
    const created = await fleet.api(0, 'PUT', '/v1/clusters/race', body);
    expect([200, 201]).toContain(created.status);
    const etag = created.headers.get('etag') ?? '';
    await waitFor(async () => (await fleet.api(1, 'GET', '/v1/clusters/race')).headers.get('etag') === etag, { what: 'replica 1 sees the cluster', timeoutMs: scaled(10_000) });
    const results = await Promise.all(
      [0, 1].map((i) => fleet.api(i, 'PUT', '/v1/clusters/race', { ...body, endpoints: [{ address: `10.7.0.${i + 2}`, port: 80 }] }, { 'if-match': etag })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 412]);
  });

  it('an admin write on one replica is served by the Envoys connected to the others', async () => {
    const on = new Set((await proxies(0)).map((p) => p.replica));
    // Write on a replica no Envoy is connected to, when there is one.
    const writer = Math.max(0, fleet.replicas.findIndex((r) => !on.has(r.id)));
    const target = backends.list[0];
    if (!target) throw new Error('no backend');
    const drain = await fleet.api(writer, 'POST', `/v1/clusters/web/endpoints/127.0.0.1/${target.port}/drain`);
    expect(drain.status).toBe(200);
    for (const mode of MODES) {
      await waitFor(
        async () => {
          const host = (await envoy(mode).clusterStatuses()).web?.hosts.find((h) => h.address === target.key);
          return host !== undefined && /draining/i.test(host.health_flags);
        },
        { what: `${mode} Envoy sees the endpoint draining`, timeoutMs: scaled(10_000) },
      );
    }
    expect((await fleet.api((writer + 1) % 3, 'POST', `/v1/clusters/web/endpoints/127.0.0.1/${target.port}/enable`)).status).toBe(200);
    for (const mode of MODES) {
      await waitFor(async () => (await envoy(mode).clusterStatuses()).web?.hosts.find((h) => h.address === target.key)?.healthy === true, {
        what: `${mode} Envoy sees the endpoint enabled again`,
        timeoutMs: scaled(10_000),
      });
    }
  });

  it('SIGKILL the replica an Envoy is on: it is SYNCED on another in < 5 s, nothing resent, no request failed', async () => {
    const before = await proxies(0);
    const sotwOn = before.find((p) => p.nodeId === 'envoy-sotw')?.replica;
    const victim = fleet.replicas.findIndex((r) => r.id === sotwOn);
    expect(victim).toBeGreaterThanOrEqual(0);
    const moved = MODES.filter((m) => before.find((p) => p.nodeId === `envoy-${m}`)?.replica === sotwOn);
    const statsBefore = new Map(await Promise.all(moved.map(async (m) => [m, await envoy(m).stats('^(cluster_manager\\.cds|listener_manager\\.lds)\\.update_')] as const)));
    const failedBefore = failedRequests();

    const killedAt = Date.now();
    await fleet.kill(victim);
    const survivor = (victim + 1) % 3;
    await waitFor(
      async () => {
        const now = await proxies(survivor);
        // The dead replica's entry stays listed until its lease expires: look for the new stream.
        return moved.every((m) => now.some((p) => p.nodeId === `envoy-${m}` && p.replica !== sotwOn && synced(p)));
      },
      { what: `${moved.join(', ')} SYNCED on another replica`, timeoutMs: scaled(15_000), intervalMs: 100 },
    );
    const movedMs = Date.now() - killedAt;
    console.log(`[ha-envoy] ${moved.join('+')} SYNCED on another replica ${movedMs} ms after the SIGKILL`);
    expect(movedMs).toBeLessThan(5_000);
    for (const m of moved) {
      const after = await envoy(m).stats('^(cluster_manager\\.cds|listener_manager\\.lds)\\.update_');
      const was = statsBefore.get(m) ?? {};
      // Versions are content hashes: the new replica recognized what Envoy held and sent no CDS/LDS.
      for (const k of ['cluster_manager.cds.update_success', 'listener_manager.lds.update_success']) expect(after[k], `${m} ${k}`).toBe(was[k]);
      for (const k of ['cluster_manager.cds.update_rejected', 'listener_manager.lds.update_rejected']) expect(after[k] ?? 0, `${m} ${k}`).toBe(0);
    }
    // The dead replica's proxy status leaves the listing when its lease expires.
    await waitFor(async () => (await proxies(survivor)).every((p) => p.replica !== sotwOn), {
      what: 'the dead replica\'s proxies gone from the listing',
      timeoutMs: scaled(20_000),
    });
    expect(failures().slice(failedBefore)).toEqual([]);
  });

  it('a replica restarted on an empty disk rebuilds everything from etcd', async () => {
    const dead = fleet.replicas.findIndex((r) => !r.running);
    expect(dead).toBeGreaterThanOrEqual(0);
    await fleet.start(dead, { emptyDisk: true });
    const list = async (i: number) => JSON.stringify((await fleet.api(i, 'GET', '/v1/clusters')).json);
    const other = (dead + 1) % 3;
    await waitFor(async () => (await list(dead)) === (await list(other)), { what: 'the same clusters as the others', timeoutMs: scaled(10_000) });
    expect(await list(dead)).toContain('"web"');
  });

  it('SIGKILL a replica in the middle of a stream of API writes: every write that got a 200 is in etcd', async () => {
    const writer = 2;
    const acked: string[] = [];
    let stop = false;
    const stream = (async () => {
      for (let n = 0; !stop; n++) {
        const name = `burst-${n}`;
        const res = await fleet.api(writer, 'PUT', `/v1/clusters/${name}`, { lbPolicy: 'ROUND_ROBIN', endpoints: [{ address: '10.9.0.1', port: 80 }] }).catch(() => undefined);
        if (res === undefined) return;
        if (res.status === 200 || res.status === 201) acked.push(name);
      }
    })();
    await waitFor(() => acked.length >= 5, { what: 'a few acknowledged writes', timeoutMs: scaled(20_000) });
    await fleet.kill(writer);
    stop = true;
    await stream;
    const reader = (writer + 1) % 3;
    const listed = new Set((((await fleet.api(reader, 'GET', '/v1/clusters')).json as { clusters?: { name: string }[] }).clusters ?? []).map((c) => c.name));
    expect(listed.has('web')).toBe(true);
    for (const name of acked) expect(listed.has(name), `${name} answered 200 but is not in etcd`).toBe(true);
    await fleet.start(writer);
  });

  it('SIGKILL the owner of a cluster under traffic: another owns it within the TTL, its first weights within the step limit, no request failed', async () => {
    const client = new Etcd3({ hosts: [...etcd.endpoints], dialTimeout: 2_000 });
    let victim = -1;
    try {
      // The owner writes web's overrides to served/ at every change, and with its state to weights/ every few seconds: the newer one is what is served.
      const publications = [`${prefix}/ha/weights/web`, `${prefix}/ha/served/web`];
      const read = async (): Promise<Published | undefined> => {
        const kvs = (await Promise.all(publications.map((k) => client.get(k).exec()))).flatMap((r) => r.kvs);
        const newest = kvs.sort((a, b) => Number(b.mod_revision) - Number(a.mod_revision))[0];
        return newest === undefined ? undefined : (JSON.parse(newest.value.toString()) as Published);
      };
      const owner = await waitFor(async () => (await client.get(`${prefix}/ha/owners/web`).string()) ?? undefined, { what: 'web has an owner', timeoutMs: scaled(10_000) });
      victim = fleet.replicas.findIndex((r) => r.id === owner);
      expect(victim).toBeGreaterThanOrEqual(0);
      await waitFor(async () => (await read())?.owner === owner, { what: 'the owner published', timeoutMs: scaled(10_000) });
      const failedBefore = failedRequests();
      // Follow every publication: the last by the old owner (and its last with its state), the first by the new one.
      let last = await read();
      const stateKv = (await client.get(publications[0] ?? '').exec()).kvs[0];
      let lastState = stateKv === undefined ? undefined : (JSON.parse(stateKv.value.toString()) as Published);
      let first: Published | undefined;
      const watcher = await client.watch().prefix(`${prefix}/ha/`).create();
      watcher.on('put', (kv) => {
        if (!publications.includes(kv.key.toString())) return;
        const rec = JSON.parse(kv.value.toString()) as Published;
        if (rec.owner !== owner) first ??= rec;
        else {
          last = rec;
          if (rec.state !== undefined) lastState = rec;
        }
      });
      const killedAt = Date.now();
      await fleet.kill(victim);
      const next = await waitFor(async () => {
        const o = await client.get(`${prefix}/ha/owners/web`).string();
        return o !== null && o !== owner ? o : undefined;
      }, { what: 'a new owner for web', timeoutMs: scaled(15_000), intervalMs: 50 });
      const ownedMs = Date.now() - killedAt;
      await waitFor(() => first, { what: 'the new owner publishes', timeoutMs: scaled(15_000), intervalMs: 50 });
      const publishedMs = Date.now() - killedAt;
      await watcher.cancel();
      // The new owner continued from the old one's last state record, and its first record (a
      // hand-over's carries its state) says how many load samples its controller has read since.
      expect(lastState?.state, 'the old owner wrote its state').toBeDefined();
      expect(first?.state, 'the new owner\'s first record carries its state').toBeDefined();
      const sampled = samplesReadSince(lastState, first);
      const runs = Math.max(1, sampled);
      console.log(`[ha-envoy] owner ${owner} SIGKILLed: ${next} owns web after ${ownedMs} ms, publishes after ${publishedMs} ms, its controller having read ${sampled} new sample(s)`);
      expect(ownedMs).toBeLessThan(5_000);
      // No slosh: the new owner continued from the old one's state. Each run of its controller
      // before its first record moves a weight one step at most (1.25 either way, so a share 1.25²),
      // but for a backlog drain, which cuts or restores past it (tick/backlog.ts).
      const before = last?.overrides ?? {};
      const after = first?.overrides ?? {};
      const keys = Object.keys(before).filter((k) => before[k]?.weight !== undefined && after[k]?.weight !== undefined);
      expect(keys.length).toBe(backends.list.length);
      const bound = STEP_RATIO ** (2 * runs) * drainFactors(lastState, first);
      const share = (o: Record<string, { weight?: number }>, k: string) => (o[k]?.weight ?? 0) / keys.reduce((n, x) => n + (o[x]?.weight ?? 0), 0);
      const ratios = keys.map((k) => share(after, k) / share(before, k)).map((r) => Math.max(r, 1 / r));
      console.log(`[ha-envoy] shares moved at most ×${Math.max(...ratios).toFixed(3)} (bound ×${bound.toFixed(3)})`);
      for (const k of keys) {
        const ratio = share(after, k) / share(before, k);
        expect(Math.max(ratio, 1 / ratio), `${k}: ${share(before, k)} → ${share(after, k)} in ${runs} run(s)\nlast: ${JSON.stringify(last)}\nfirst: ${JSON.stringify(first)}`).toBeLessThanOrEqual(bound + 1e-9);
      }
      expect(failures().slice(failedBefore)).toEqual([]);
    } finally {
      client.close();
      // The scenarios after this one need all three replicas, whatever happened here.
      if (victim >= 0 && !fleet.replicas[victim]?.running) await fleet.start(victim);
    }
  });

  it('the etcd leader down changes nothing; two members down: not ready, writes 503, Envoys keep routing; back: everything resumes', async () => {
    const put = (i: number, name: string) => fleet.api(i, 'PUT', `/v1/clusters/${name}`, { lbPolicy: 'ROUND_ROBIN', endpoints: [{ address: '10.8.0.1', port: 80 }] });
    const failedBefore = failedRequests();
    const leader = await etcd.leader();
    const second = leader === 0 ? 1 : 0;
    try {
      await etcd.stopMember(leader);
      // Until a new leader is elected the others answer "leader changed" or hold the write; the
      // client retries across the election (etcd-client.ts) instead of answering 503, which it did
      // once in CI (2026-12-03) and in 5 of 32 leader kills under load.
      const written = await put(0, 'quorum-1');
      expect([200, 201], `${JSON.stringify(written.json)}\n${fleet.logs()}\n${etcd.logs()}`).toContain(written.status);
      const servedBefore = servedRequests();
      await etcd.stopMember(second);
      await waitFor(async () => (await fleet.api(0, 'GET', '/readyz')).status === 503, { what: 'replica 0 not ready without quorum', timeoutMs: scaled(20_000) });
      const refused = await put(1, 'quorum-2');
      expect(refused.status).toBe(503);
      await waitFor(() => servedRequests() > servedBefore + 100, { what: 'traffic through the Envoys without quorum', timeoutMs: scaled(20_000) });
      expect(failures().slice(failedBefore)).toEqual([]);
    } finally {
      // The scenario after this one needs the quorum back, whatever happened here.
      for (const m of [leader, second]) await etcd.startMember(m);
    }
    for (let i = 0; i < 3; i++) await fleet.waitReady(i, scaled(60_000));
    expect([200, 201]).toContain((await put(2, 'quorum-3')).status);
    expect(failures().slice(failedBefore)).toEqual([]);
  });

  it('the replicas compact etcd\'s history in turns, keeping the last interval of it', async () => {
    const client = new Etcd3({ hosts: [...etcd.endpoints], dialTimeout: 2_000 });
    try {
      const readable = (revision: number): Promise<boolean> =>
        client.get(`${prefix}/any`).revision(String(revision)).exec().then(
          () => true,
          (err: Error) => (/compacted/.test(err.message) ? false : Promise.reject(err)),
        );
      const now = Number((await client.get(`${prefix}/any`).exec()).header.revision);
      await waitFor(() => readable(now).then((ok) => !ok), { what: 'history compacted past the present revision', timeoutMs: scaled(60_000), intervalMs: 1_000 });
      // Whatever the last compaction kept is there: the compacted revision is below the latest.
      const latest = Number((await client.get(`${prefix}/any`).exec()).header.revision);
      expect(await readable(latest)).toBe(true);
      expect(await client.get(`${prefix}/compaction`).exists()).toBe(true);
    } finally {
      client.close();
    }
  });
}, { timeout: scaled(120_000) }));
