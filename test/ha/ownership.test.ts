import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Etcd3, Watcher } from 'etcd3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { SAFETY_DEFAULTS } from '../../src/balancing/engine/types.js';
import type { EndpointOverride } from '../../src/catalog/weight-overrides.js';
import { haKeys } from '../../src/ha/keys.js';
import { DEFAULT_LEASE_TTL_SECONDS } from '../../src/ha/replica.js';
import { rendezvousOwner } from '../../src/ha/rendezvous.js';
import type { ServedRecord } from '../../src/ha/weight-share.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { scaled, waitFor } from '../support/wait.js';
import { Proc } from '../support/proc.js';
import { driveFleet, etcdClient, fleetCatalog, keyOf, startReplica, stopReplica, type TestReplica } from './replicas.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const CLUSTERS = 12;
const LONG_TTL = 20;
const PREFIX = '/fulcrum-ha-test';
const keys = haKeys(PREFIX);
const names = Array.from({ length: CLUSTERS }, (_, c) => `svc-${c}`);
const catalog = fleetCatalog(CLUSTERS);

/** new/old per endpoint, max over min: a step limit of r per side bounds it by r² (the integer scale cancels). */
function spread(before: Readonly<Record<string, EndpointOverride>>, after: Readonly<Record<string, EndpointOverride>>): number {
  const q = Object.entries(before).map(([k, o]) => (after[k]?.weight ?? NaN) / (o.weight ?? NaN));
  return Math.max(...q) / Math.min(...q);
}

const ratio = (o: Readonly<Record<string, EndpointOverride>> | ReadonlyMap<string, EndpointOverride> | undefined, c: number): number => {
  // Any ReadonlyMap (the engine publishes positional maps over a cluster's keys, not Map instances), or a record's JSON.
  const isMap = (x: typeof o): x is ReadonlyMap<string, EndpointOverride> => typeof (x as ReadonlyMap<string, EndpointOverride> | undefined)?.get === 'function';
  const get = (k: string): number | undefined => (isMap(o) ? o.get(k)?.weight : o?.[k]?.weight);
  return (get(keyOf(c, 2)) ?? 1) / (get(keyOf(c, 0)) ?? 1);
};

describeEtcd('HA: one weight owner per cluster on a real 3-member etcd', () => {
  let etcd: EtcdCluster;
  let observer: Etcd3;
  let watcher: Watcher;
  /** Every weights record written, in etcd order: the hand-over evidence. */
  const records: { cluster: string; record: ServedRecord }[] = [];
  const replicas: TestReplica[] = [];
  let stopFleet = (): void => undefined;
  const children: Proc[] = [];
  const alive = (): TestReplica[] => replicas.filter((r) => r.alive);
  const ownersOf = (cluster: string): string[] => alive().filter((r) => r.ha.status().owned.includes(cluster)).map((r) => r.id);

  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
    observer = etcdClient(etcd.endpoints);
    // Every publication in etcd order: the overrides at each change (served/), with the state every refresh (weights/).
    watcher = await observer.watch().prefix(`${PREFIX}/ha/`).create();
    watcher.on('put', (kv) => {
      const key = kv.key.toString();
      const dir = [keys.weights, keys.served].find((d) => key.startsWith(d));
      if (dir !== undefined) records.push({ cluster: key.slice(dir.length), record: JSON.parse(kv.value.toString()) as ServedRecord });
    });
    for (const id of ['r1', 'r2', 'r3']) replicas.push(await startReplica(id, etcd.endpoints, catalog, PREFIX));
  }, scaled(120_000));

  afterAll(async () => {
    stopFleet();
    for (const p of children) await p.stop('SIGKILL');
    for (const r of replicas) await stopReplica(r).catch(() => undefined);
    await watcher?.cancel();
    observer?.close();
    await etcd?.stop();
  }, scaled(60_000));

  test('every cluster has exactly one owner, the rendezvous choice, holding the owner key; clusters spread', async () => {
    const ids = replicas.map((r) => r.id);
    await waitFor(() => names.every((c) => ownersOf(c).length === 1 && ownersOf(c)[0] === rendezvousOwner(c, ids)), {
      what: 'one owner per cluster',
      timeoutMs: 20_000,
    });
    for (const c of names) expect(await observer.get(keys.owner(c)).string()).toBe(ownersOf(c)[0]);
    for (const r of replicas) expect(r.ha.status().owned.length, `${r.id} owns some of the ${CLUSTERS} clusters`).toBeGreaterThan(0);
    for (const r of replicas) expect(r.ha.status().live).toEqual(ids);
  }, scaled(30_000));

  test('signals that land only on non-owners steer the owner, and every replica serves the owner\'s weights', async () => {
    const r1 = replicas[0] as TestReplica;
    const target = names.findIndex((c) => ownersOf(c)[0] === r1.id);
    expect(target).toBeGreaterThanOrEqual(0);
    // Everything lands on r2 or r3; for the target cluster never on its owner r1.
    stopFleet = driveFleet(CLUSTERS, (_c, round) => replicas[1 + (round % 2)], (c) => r1.adaptive.current().get(`svc-${c}`));
    await waitFor(
      () => {
        const own = r1.adaptive.current().get(`svc-${target}`);
        const served = replicas.map((r) => JSON.stringify([...(r.adaptive.current().get(`svc-${target}`) ?? [])]));
        return ratio(own, target) > 2.5 && served.every((s) => s === served[0]);
      },
      { what: `svc-${target} steered toward 1:2:4 by r1 and served alike by r2, r3`, timeoutMs: 60_000, intervalMs: 200 },
    );
    // Only the owner ticked it (explanations); the others show the owner's weights (/v1/weights agrees).
    expect(r1.adaptive.explain(`svc-${target}`)?.explanations.size).toBe(3);
    for (const r of replicas.slice(1)) {
      expect(r.adaptive.explain(`svc-${target}`)?.explanations.size).toBe(0);
      // As Maps: the owner's tick holds an ArrayMap view, a replica's a Map of the owner's record.
      expect(new Map(r.adaptive.explain(`svc-${target}`)?.tick.weights)).toEqual(new Map(r1.adaptive.explain(`svc-${target}`)?.tick.weights));
    }
  }, scaled(90_000));

  test('a replica that joins takes its clusters over gracefully; SIGKILLed, they move back within the lease TTL, without a slosh either way', async () => {
    stopFleet();
    const ids = [...replicas.map((r) => r.id), 'r4'];
    const theirs = names.filter((c) => rendezvousOwner(c, ids) === 'r4');
    expect(theirs.length).toBeGreaterThan(0);
    // Signals land only on the in-process replicas: r4 learns everything through etcd.
    stopFleet = driveFleet(CLUSTERS, (c, round) => replicas[(c + round) % 3], (c) => served(`svc-${c}`));
    await waitFor(() => names.every((c, i) => ratio(lastRecord(c)?.overrides, i) > 2), { what: 'every cluster steered toward 1:2:4', timeoutMs: 90_000, intervalMs: 200 });

    const r4 = startProcessReplica('r4');
    await waitFor(async () => (await Promise.all(theirs.map(etcdOwner))).every((o) => o === 'r4'), { what: `r4 owns ${theirs.join(', ')}\n${r4.tail()}`, timeoutMs: 60_000, intervalMs: 200 });
    const byR4 = (r: ServedRecord): boolean => r.owner === 'r4';
    await waitFor(() => theirs.every((c) => firstRecordBy(c, byR4) !== undefined), { what: 'a first publish by r4', timeoutMs: 20_000 });
    for (const c of theirs) expectNoSlosh(c, byR4);
    await waitFor(() => theirs.every((c) => lastRecord(c)?.owner === 'r4' && ratio(lastRecord(c)?.overrides, names.indexOf(c)) > 2), {
      what: 'r4 steering its clusters',
      timeoutMs: 30_000,
      intervalMs: 200,
    });

    const killedAt = Date.now();
    await r4.stop('SIGKILL');
    const tookOver = await waitFor(() => theirs.every((c) => ownersOf(c).length === 1) && Date.now(), { what: 'r4 clusters owned by r1..r3', timeoutMs: 30_000, intervalMs: 50 });
    // The lease expires TTL after r4's last keep-alive (sent every third of it) and etcd reaps it within ~0.5 s.
    expect(tookOver - killedAt).toBeLessThan(DEFAULT_LEASE_TTL_SECONDS * 1000 + scaled(1_500));
    for (const c of names) expect(ownersOf(c), c).toEqual([rendezvousOwner(c, replicas.map((r) => r.id))]);
    const notR4 = (r: ServedRecord): boolean => r.owner !== 'r4';
    await waitFor(() => theirs.every((c) => firstRecordBy(c, notR4) !== undefined), { what: 'a first publish by each successor', timeoutMs: 20_000 });
    for (const c of theirs) expectNoSlosh(c, notR4);
  }, scaled(240_000));

  test('a replica restarted under the same id before its lease expired waits for it, then continues without a slosh', async () => {
    const ids = [...replicas.map((r) => r.id), 'r5'];
    const theirs = names.filter((c) => rendezvousOwner(c, ids) === 'r5');
    expect(theirs.length).toBeGreaterThan(0);
    // A long lease, so that the restarted process (seconds to start) comes up while its predecessor's keys live.
    const first = startProcessReplica('r5', LONG_TTL);
    await waitFor(() => theirs.every((c) => lastRecord(c)?.owner === 'r5' && ratio(lastRecord(c)?.overrides, names.indexOf(c)) > 2), {
      what: `r5 steering ${theirs.join(', ')}\n${first.tail()}`,
      timeoutMs: 90_000,
      intervalMs: 200,
    });
    await first.stop('SIGKILL');
    const old = new Set(theirs.map((c) => lastRecord(c)?.incarnation));
    const second = startProcessReplica('r5', LONG_TTL);
    await waitFor(() => second.output.join('').includes('ready'), { what: `the new r5 registered\n${second.tail()}`, timeoutMs: 30_000 });
    const stillHeld = await Promise.all(theirs.map(etcdOwner));
    expect(stillHeld.some((o) => o === 'r5'), 'the old r5 keys outlive the restart').toBe(true);
    const byNewR5 = (r: ServedRecord): boolean => r.owner === 'r5' && !old.has(r.incarnation);
    await waitFor(() => theirs.every((c) => firstRecordBy(c, byNewR5) !== undefined), { what: `a first publish by the new r5\n${second.tail()}`, timeoutMs: 60_000, intervalMs: 200 });
    for (const c of theirs) expectNoSlosh(c, byNewR5);
    await second.stop('SIGKILL');
    await waitFor(() => theirs.every((c) => ownersOf(c).length === 1), { what: 'r5 clusters back on r1..r3', timeoutMs: 30_000 + LONG_TTL * 1000 });
  }, scaled(300_000));

  test('with etcd quorum lost no replica ticks and the weights hold; with quorum back ownership resumes', async () => {
    const live = alive();
    await etcd.stopMember(0);
    await etcd.stopMember(1);
    await waitFor(() => live.every((r) => r.ha.status().fenced && r.ha.status().owned.length === 0 && r.ha.notReady() !== undefined), {
      what: 'every replica fenced',
      timeoutMs: 15_000,
      intervalMs: 50,
    });
    const held = live.map((r) => ({ r, weights: JSON.stringify(serialize(r)), ticks: r.ticks }));
    // Signals keep arriving (the fleet driver runs): an owner that kept ticking would move weights.
    await waitFor(() => held.every((h) => h.r.ticks >= h.ticks + 6), { what: 'six more engine ticks on each replica', timeoutMs: 20_000 });
    for (const h of held) expect(JSON.stringify(serialize(h.r)), `${h.r.id} kept its weights`).toBe(h.weights);
    for (const h of held) expect(h.r.adaptive.current().size, `${h.r.id} still serves weights`).toBe(CLUSTERS);

    await etcd.startMember(0);
    await etcd.startMember(1);
    await waitFor(() => names.every((c) => ownersOf(c).length === 1) && live.every((r) => !r.ha.status().fenced), {
      what: 'every cluster owned again after quorum returned',
      timeoutMs: 60_000,
      intervalMs: 200,
    });
  }, scaled(150_000));

  test('a cluster that leaves the catalog leaves etcd: no owner key, no weights record', async () => {
    const smaller = fleetCatalog(CLUSTERS - 2);
    for (const r of alive()) {
      r.adaptive.setCatalog(smaller);
      r.ha.setCatalog(smaller);
    }
    const gone = names.slice(CLUSTERS - 2);
    await waitFor(async () => {
      const left = await Promise.all(gone.flatMap((c) => [observer.get(keys.owner(c)).string(), observer.get(keys.weight(c)).string()]));
      return left.every((v) => v === null);
    }, { what: `${gone.join(', ')} removed from etcd`, timeoutMs: 20_000, intervalMs: 200 });
    for (const c of names.slice(0, CLUSTERS - 2)) expect(await observer.get(keys.weight(c)).string(), c).not.toBeNull();
  }, scaled(60_000));

  function served(cluster: string): ReadonlyMap<string, EndpointOverride> | undefined {
    const o = lastRecord(cluster)?.overrides;
    return o === undefined ? undefined : new Map(Object.entries(o));
  }

  function etcdOwner(cluster: string): Promise<string | null> {
    return observer.get(keys.owner(cluster)).string();
  }

  function startProcessReplica(id: string, ttlSeconds = DEFAULT_LEASE_TTL_SECONDS): Proc {
    const env = { ...process.env, HA_ETCD: etcd.endpoints.join(','), HA_PREFIX: PREFIX, HA_ID: id, HA_CLUSTERS: String(CLUSTERS), HA_TTL: String(ttlSeconds) };
    const proc = new Proc(`replica-${id}`, spawn(process.execPath, ['--import', 'tsx', 'test/ha/replica-process.ts'], { cwd: repo, env, stdio: 'pipe' }));
    children.push(proc);
    return proc;
  }

  /** The first record by a writer `isNew` accepts, against the record before it: within the step limit, and not back to static. */
  function expectNoSlosh(cluster: string, isNew: (r: ServedRecord) => boolean): void {
    const first = firstRecordBy(cluster, isNew);
    const previous = first === undefined ? undefined : records.slice(0, first.index).findLast((x) => x.cluster === cluster)?.record;
    expect(previous, `${cluster}: a record before the new writer's`).toBeDefined();
    if (previous === undefined || first === undefined) return;
    expect(isNew(previous)).toBe(false);
    const s = spread(previous.overrides, first.record.overrides);
    expect(s, `${cluster}: ${JSON.stringify(previous.overrides)} → ${JSON.stringify(first.record.overrides)}`).toBeLessThanOrEqual(SAFETY_DEFAULTS.maxStepRatio ** 2 * 1.001);
    expect(ratio(first.record.overrides, names.indexOf(cluster)), `${cluster} did not restart from static`).toBeGreaterThan(1.5);
  }

  /** The first record of the cluster by a writer `isNew` accepts, after the last one by any other writer. */
  function firstRecordBy(cluster: string, isNew: (r: ServedRecord) => boolean): { index: number; record: ServedRecord } | undefined {
    const otherLast = records.findLastIndex((x) => x.cluster === cluster && !isNew(x.record));
    const index = records.findIndex((x, j) => j > otherLast && x.cluster === cluster && isNew(x.record));
    const found = records[index];
    return found === undefined ? undefined : { index, record: found.record };
  }

  function lastRecord(cluster: string): ServedRecord | undefined {
    for (let i = records.length - 1; i >= 0; i--) if (records[i]?.cluster === cluster) return records[i]?.record;
    return undefined;
  }
});

function serialize(r: TestReplica): [string, [string, EndpointOverride][]][] {
  return [...r.adaptive.current()].map(([c, o]) => [c, [...o]]);
}
