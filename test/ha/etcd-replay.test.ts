/**
 * A replica whose watch was cut off while more than 1,000 revisions were written under its prefix
 * catches up through a replay etcd sends in responses of 1,000 revisions, about 100 ms apart, each
 * stamped with etcd's current revision. Until the last of them, the replica must not take that
 * stamp for the revision its view reflects: a guarded write planned in between (the admin API's
 * "address free" check) compared the listeners against the stamp, so a listener written after the
 * first 1,000 revisions, not applied yet, passed the compare, and two listeners bound one address.
 * And a write that waits on a revision no event under the prefix carries is released all the same.
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { StoreChange } from '../../src/catalog/store/index.js';
import { EtcdStore, openEtcdStore } from '../../src/catalog/store/etcd-store.js';
import type { Listener } from '../../src/catalog/types.js';
import { cluster, listener } from '../catalog/helpers.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay.js';
import { scaled, waitFor } from '../support/wait.js';

const API = { actor: 'alice', owner: 'api' } as const;
const PREFIX = '/replay-test';
/** More than one replay response holds (etcd's watchBatchMaxRevs is 1,000 revisions). */
const FILLER_REVISIONS = 1_200;

/** What the test's guard throws, as the admin API's address check does (409 ADDRESS_IN_USE). */
class AddressInUse extends Error {}

describeEtcd('etcd store: a replica catching up through a long watch replay', () => {
  let etcd: EtcdCluster;
  let relay: TcpRelay;
  let direct: Etcd3;
  const open: EtcdStore[] = [];

  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
    const url = new URL(etcd.endpoints[0] as string);
    relay = await startTcpRelay({ host: url.hostname, port: Number(url.port) });
    direct = new Etcd3({ hosts: [...etcd.endpoints] });
  }, scaled(120_000));

  afterAll(async () => {
    for (const s of open) await s.close();
    direct?.close();
    await relay?.close();
    await etcd?.stop();
  }, scaled(60_000));

  /** Writes that no store reads (a key outside its sections), one revision each. */
  const filler = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i += 100) await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, j) => direct.put(`${PREFIX}/filler`).value(String(i + j))));
  };

  test('a guarded write planned while the replay is under way is checked against what the replica applied, not etcd\'s revision', async () => {
    const writer = await openEtcdStore({ endpoints: [...etcd.endpoints], prefix: PREFIX, writeTimeoutMs: scaled(3_000) });
    open.push(writer);
    // The health probe is left out of this (it would refuse writes for a while after the cut).
    const lagging = await openEtcdStore({ endpoints: [relay.url], prefix: PREFIX, writeTimeoutMs: scaled(10_000) }, { probeIntervalMs: 3_600_000 });
    open.push(lagging);
    await writer.putCluster(cluster('web'), API);
    await waitFor(() => lagging.getCluster('web') !== undefined, { what: 'the lagging replica sees web', timeoutMs: scaled(10_000) });

    relay.cut();
    await writer.putCluster(cluster('first'), API);
    await filler(FILLER_REVISIONS);
    const bound: Listener = { ...listener('late', 'web', 9_000), address: '127.0.0.1' };
    const late = await writer.putListener(bound, API);

    // At the first replay response (it holds the change to "first"): what the replica claims, what
    // it holds, and a listener on the same address written then, as the admin API guards it.
    const addressFree = (): void => {
      const user = lagging.listListeners().find((l) => l.address === bound.address && l.port === bound.port);
      if (user) throw new AddressInUse(`${bound.address}:${bound.port} is already used by listener "${user.name}"`);
    };
    let atFirst: { revision: number; holdsLate: boolean; write: Promise<unknown> } | undefined;
    lagging.onChange((c: StoreChange) => {
      if (atFirst !== undefined || !c.changes.some((x) => x.name === 'first')) return;
      const write = lagging.putListener({ ...bound, name: 'twin' }, { ...API, guard: { check: addressFree, reads: { listeners: true } } });
      atFirst = { revision: lagging.revision(), holdsLate: lagging.getListener('late') !== undefined, write: write.then(() => 'written', (err: unknown) => err) };
    });
    relay.restore();
    await waitFor(() => atFirst !== undefined, { what: 'the first replay response applied', timeoutMs: scaled(30_000) });
    const first = atFirst!;

    // The twin's guard is checked again once the replica holds "late", and refuses it.
    expect(await first.write).toBeInstanceOf(AddressInUse);
    // Never a revision whose events it has not applied.
    expect(first.holdsLate || first.revision < late.revision).toBe(true);
    await waitFor(() => writer.getListener('late') !== undefined && lagging.getListener('late') !== undefined, { what: 'both hold late', timeoutMs: scaled(30_000) });
    const onAddress = (await direct.getAll().prefix(`${PREFIX}/listeners/`).keys()).map((k) => k.slice(`${PREFIX}/listeners/`.length));
    expect(onAddress).toEqual(['late']);
  }, scaled(120_000));

  // A transaction that deleted nothing answers with etcd's current revision, here another
  // application's write: no event under the prefix ever carries it, and waiting for the watch
  // alone ran out the write timeout (503) although the replica had caught up.
  test('a prune that finds its entries pruned already by another replica answers once caught up, on an etcd shared with another prefix', async () => {
    const prefix = `${PREFIX}-prune`;
    const writer = await openEtcdStore({ endpoints: [...etcd.endpoints], prefix, writeTimeoutMs: scaled(3_000) });
    open.push(writer);
    const lagging = await openEtcdStore({ endpoints: [relay.url], prefix, writeTimeoutMs: scaled(5_000) }, { probeIntervalMs: 3_600_000 });
    open.push(lagging);
    for (let i = 0; i < 5; i++) await writer.putCluster(cluster(`c-${i}`), API);
    await waitFor(() => lagging.audit().length === 5, { what: 'the lagging replica holds the whole log', timeoutMs: 10_000 });
    relay.cut();
    expect(await writer.pruneAudit(2)).toBe(3);
    await direct.put('/another-application/key').value('x');
    relay.restore();
    // Planned at once, from the entries the replica still holds: the transaction deletes nothing.
    await lagging.pruneAudit(2);
    expect(lagging.audit()).toEqual(writer.audit());
  }, scaled(120_000));
});
