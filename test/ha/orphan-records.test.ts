/**
 * A cluster that leaves the catalog while its owner is dead (SIGKILL, a node lost in a rollout):
 * nobody hands it over, and its published records must not stay in etcd for good (a leak that
 * grows with Kubernetes churn, and a stale state a cluster created later under the name imports).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { haKeys } from '../../src/ha/keys.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { Proc } from '../support/proc.js';
import { scaled, waitFor } from '../support/wait.js';
import { etcdClient, fleetCatalog, startReplica, stopReplica, type TestReplica } from './replicas.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLUSTERS = 8;
const PREFIX = '/fulcrum-ha-orphans';
const keys = haKeys(PREFIX);
const TTL = 2;

describeEtcd('HA: records of a cluster removed while its owner is dead', () => {
  let etcd: EtcdCluster;
  let observer: Etcd3;
  let r1: TestReplica | undefined;
  let r2: Proc | undefined;

  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
    observer = etcdClient(etcd.endpoints);
  }, scaled(120_000));
  afterAll(async () => {
    await r2?.stop('SIGKILL');
    if (r1) await stopReplica(r1).catch(() => undefined);
    observer?.close();
    await etcd?.stop();
  }, scaled(60_000));

  const owner = (c: string): Promise<string | null> => observer.get(keys.owner(c)).string();
  const records = async (c: string): Promise<(string | null)[]> => [await observer.get(keys.weight(c)).string(), await observer.get(keys.servedWeight(c)).string()];

  test('are deleted once its owner\'s lease expired', async () => {
    const names = fleetCatalog(CLUSTERS).clusters.map((c) => c.name);
    r1 = await startReplica('r1', etcd.endpoints, fleetCatalog(CLUSTERS), PREFIX, TTL);
    const env = { ...process.env, HA_ETCD: etcd.endpoints.join(','), HA_PREFIX: PREFIX, HA_ID: 'r2', HA_CLUSTERS: String(CLUSTERS), HA_TTL: String(TTL) };
    const proc = new Proc('replica-r2', spawn(process.execPath, ['--import', 'tsx', 'test/ha/replica-process.ts'], { cwd: repo, env, stdio: 'pipe' }));
    r2 = proc;
    let theirs: string[] = [];
    await waitFor(
      async () => {
        const owners = await Promise.all(names.map(owner));
        theirs = names.filter((_, i) => owners[i] === 'r2');
        return theirs.length > 0 && owners.every((o) => o !== null) && (await Promise.all(theirs.map(records))).every((r) => r[0] !== null);
      },
      { what: `r2 owns some clusters and published them\n${proc.tail()}`, timeoutMs: 60_000, intervalMs: 200 },
    );
    await proc.stop('SIGKILL');
    // The operator deletes r2's clusters meanwhile: r1's catalog loses them.
    const kept = fleetCatalog(CLUSTERS);
    const smaller = { ...kept, clusters: kept.clusters.filter((c) => !theirs.includes(c.name)) };
    r1.adaptive.setCatalog(smaller);
    r1.ha.setCatalog(smaller);
    await waitFor(
      async () => {
        const left = await Promise.all(theirs.map(async (c) => [await owner(c), ...(await records(c))]));
        return left.flat().every((v) => v === null);
      },
      { what: `no owner key nor record left for ${theirs.join(', ')}`, timeoutMs: 30_000, intervalMs: 200 },
    );
    // The clusters still in the catalog keep theirs.
    for (const c of smaller.clusters) expect(await observer.get(keys.weight(c.name)).string(), c.name).not.toBeNull();
  }, scaled(150_000));
});
