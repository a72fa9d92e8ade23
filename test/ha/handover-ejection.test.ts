/**
 * Two in-process replicas on a real etcd: an endpoint the owner ejected for errors stays out of the
 * weights its successor serves after the owner stops (cluster-export.ts carries the ejection). An
 * ejected endpoint gets no traffic, so the successor has no errors of its own to see: without the
 * verdict it published the endpoint HEALTHY until the next reports failed again.
 */
import { afterAll, expect, it } from 'vitest';
import type { Catalog } from '../../src/catalog/types.js';
import { describeEtcd, etcdForBlock } from '../support/etcd-cluster.js';
import { scaled, waitFor } from '../support/wait.js';
import { fleetCatalog, keyOf, startReplica, stopReplica, type TestReplica } from './replicas.js';

const CLUSTER = 'svc-0';
const failing = keyOf(0, 0);

/** One cluster of three endpoints, whose ejections last a minute (longer than the test). */
function catalog(): Catalog {
  const c = fleetCatalog(1);
  return { ...c, clusters: c.clusters.map((x) => ({ ...x, ejection: { baseEjectionMs: 60_000 } })) };
}

describeEtcd('HA: a hand-over keeps an ejected endpoint out', () => {
  const etcd = etcdForBlock(1);
  const replicas: TestReplica[] = [];
  let stopFleet = (): void => undefined;

  afterAll(async () => {
    stopFleet();
    for (const r of replicas) await stopReplica(r).catch(() => undefined);
  }, scaled(30_000));

  const owner = (): TestReplica | undefined => replicas.find((r) => r.alive && r.ha.status().owned.includes(CLUSTER));
  const served = (r: TestReplica): string | undefined => r.adaptive.current().get(CLUSTER)?.get(failing)?.health;

  it('the successor serves it UNHEALTHY from its first tick on', async () => {
    for (const id of ['a', 'b']) replicas.push(await startReplica(id, etcd.etcd.endpoints, catalog(), '/handover-ejection'));
    await waitFor(() => owner() !== undefined, { what: `an owner of ${CLUSTER}`, timeoutMs: 20_000 });
    // Reports every 200 ms, landing on the owner: the failing endpoint fails all it is sent, and is sent nothing while served UNHEALTHY.
    const timer = setInterval(() => {
      const r = owner() ?? replicas.find((x) => x.alive);
      if (r === undefined) return;
      const out = served(r) === 'UNHEALTHY';
      for (let i = 0; i < 3; i++) {
        const key = keyOf(0, i);
        const rps = key === failing && out ? 0 : 100;
        r.store.record(CLUSTER, key, { at: Date.now(), cpu: 0.3, rps, errors: key === failing ? rps : 0 });
      }
    }, 200);
    stopFleet = () => clearInterval(timer);
    const first = owner() as TestReplica;
    const next = replicas.find((r) => r !== first) as TestReplica;
    await waitFor(() => served(first) === 'UNHEALTHY', { what: `${first.id} ejects ${failing}`, timeoutMs: 20_000 });
    // A few reports of no traffic at all: the successor's window will hold nothing against it.
    const ticks = first.ticks;
    await waitFor(() => first.ticks >= ticks + 4, { what: `${first.id} ticks on`, timeoutMs: 20_000 });

    // What the successor serves, watched from its first tick as owner on (every 20 ms; a tick is 500 ms).
    const seen: string[] = [];
    let from: number | undefined;
    const watch = setInterval(() => {
      if (from === undefined && next.ha.status().owned.includes(CLUSTER)) from = next.ticks;
      if (from !== undefined && next.ticks > from) seen.push(served(next) ?? 'HEALTHY');
    }, 20);
    try {
      await stopReplica(first);
      await waitFor(() => from !== undefined && next.ticks >= from + 10, { what: `${next.id} owns ${CLUSTER} and ticks 10 times`, timeoutMs: 30_000 });
    } finally {
      clearInterval(watch);
    }
    expect(seen.length).toBeGreaterThan(0);
    // Before: HEALTHY from the successor's first tick until the reports it then got failed again.
    expect(seen.filter((h) => h !== 'UNHEALTHY')).toEqual([]);
    const x = next.adaptive.explain(CLUSTER)?.explanations.get(failing);
    expect(x?.rules).toContain('ejected');
    expect(x?.ejection?.count).toBe(1);
  }, scaled(90_000));
});
