/**
 * etcd restored from an older backup (or rebuilt empty), without `--bump-revision`: its revisions
 * start again below those a replica has seen. The replica's watch resumed from the revision after
 * the last it had applied, in etcd's future: etcd held back every event until its revision got
 * there, and meanwhile the replica served what the restore undid, missed every new write, and
 * took its own writes as applied the moment etcd answered.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Etcd3 } from 'etcd3';
import { EtcdStore, openEtcdStore, type WatchState } from '../../src/catalog/store/etcd-store.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { cluster } from '../catalog/helpers.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { scaled, waitFor } from '../support/wait.js';

const API = { actor: 'alice', owner: 'api' } as const;
const PREFIX = '/restore-test';

describeEtcd('etcd store: etcd restored to an earlier revision', () => {
  let etcd: EtcdCluster;
  const open: EtcdStore[] = [];

  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
  }, scaled(120_000));

  afterAll(async () => {
    for (const s of open) await s.close();
    await etcd?.stop();
  }, scaled(60_000));

  const replica = async (): Promise<EtcdStore> => {
    const s = await openEtcdStore({ endpoints: [...etcd.endpoints], prefix: PREFIX, writeTimeoutMs: scaled(3_000) }, { probeIntervalMs: 250 });
    open.push(s);
    return s;
  };

  test('a replica lists again and follows the restored etcd: what the restore undid goes, new writes arrive, its own writes are read back', async () => {
    const [writer, survivor] = [await replica(), await replica()];
    for (let i = 0; i < 20; i++) await writer.putCluster(cluster(`old-${i}`), API);
    await waitFor(() => survivor.getCluster('old-19') !== undefined, { what: 'the survivor sees every old cluster', timeoutMs: 10_000 });

    const before = survivor.revision();
    // The restore: etcd comes back with nothing (a backup older than any of these writes).
    await etcd.stopMember(0, 'SIGTERM');
    await rm(path.join(etcd.dir, 'm0'), { recursive: true, force: true });
    await etcd.startMember(0);
    const restored = await replica();
    const { revision } = await restored.putCluster(cluster('after'), API);
    expect(revision).toBeLessThan(before);

    await waitFor(() => survivor.getCluster('after') !== undefined && survivor.getCluster('old-0') === undefined, {
      what: 'the survivor holds what etcd holds',
      timeoutMs: 20_000,
    });
    await waitFor(() => survivor.health().writable, { what: 'the survivor writable again', timeoutMs: 20_000 });
    await survivor.putCluster(cluster('mine'), API);
    expect(survivor.getCluster('mine')).toBeDefined();
    expect(survivor.listClusters().map((c) => c.name)).toEqual(['after', 'mine']);
  }, scaled(120_000));

  test('after a restore that reuses revisions, a seed compares the file again, and the rewind is logged once', async () => {
    const prefix = '/restore-seed-test';
    const states: WatchState[] = [];
    const survivor = await openEtcdStore({ endpoints: [...etcd.endpoints], prefix, writeTimeoutMs: scaled(3_000) }, { probeIntervalMs: 250, onWatch: (state) => states.push(state) });
    open.push(survivor);
    const raw = new Etcd3({ hosts: [...etcd.endpoints] });
    try {
      // A restored etcd starts again at revision 1: the seed lands well above that.
      for (let i = 0; i < 10; i++) await raw.put('/restore-seed-pad').value('x').exec();
      const file = parseConfig('clusters: [{ name: f, endpoints: [{ address: 10.0.0.1, port: 80 }] }]\n', 'fulcrum.yaml').catalog;
      await survivor.seedFromConfig(file, { actor: 'config-file' });
      const seededAt = survivor.getCluster('f')?.revision ?? 0;
      const key = `${prefix}/clusters/f`;
      const foreign = JSON.parse((await raw.get(key).string()) ?? '{}') as { endpoints: { port: number }[] };
      foreign.endpoints = foreign.endpoints.map((e) => ({ ...e, port: 81 }));
      // The survivor applies revisions well past the seed's, so etcd restored below them is a rewind.
      let last = 0;
      for (let i = 0; i < 20; i++) last = Number((await raw.put(`${prefix}/pad-${i}`).value('x').exec()).header.revision);
      await waitFor(() => survivor.revision() >= last, { what: 'the survivor past the seed', timeoutMs: 10_000 });

      // Restored from nothing, without --bump-revision: another value of f lands at the very revision the seed found.
      await etcd.stopMember(0, 'SIGTERM');
      await rm(path.join(etcd.dir, 'm0'), { recursive: true, force: true });
      await etcd.startMember(0);
      let revision = 0;
      while (revision < seededAt - 1) revision = Number((await raw.put('/restore-seed-pad').value('x').exec()).header.revision);
      expect(Number((await raw.put(key).value(JSON.stringify(foreign)).exec()).header.revision)).toBe(seededAt);
      await waitFor(() => survivor.getCluster('f')?.endpoints[0]?.port === 81, { what: 'the survivor holds the restored value', timeoutMs: 20_000 });
      await waitFor(() => survivor.health().writable, { what: 'the survivor writable again', timeoutMs: 20_000 });

      // The same file seeded again (a reload hands unchanged clusters over as the same objects).
      await survivor.seedFromConfig(file, { actor: 'config-file' });
      expect(survivor.getCluster('f')?.endpoints.map((e) => e.port)).toEqual([80]);
      await waitFor(() => states.at(-1) === 'watching' && states.includes('rewound'), { what: 'the rewind told, then the watch back', timeoutMs: 20_000 });
      expect(states.filter((s, i) => s === states[i - 1])).toEqual([]);
    } finally {
      raw.close();
    }
  }, scaled(120_000));
});
