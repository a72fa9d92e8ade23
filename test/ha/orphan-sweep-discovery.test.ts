/**
 * The orphan sweep (replica.ts sweepOrphans) against Kubernetes discovery after a restart.
 * Discovered clusters are not stored: until discovery's first view, a replica's catalog lacks
 * them. Their published records, left by the previous process's hand-over (no owner key), are
 * the state a restart must not lose ("the last published weights are persisted so a restart
 * does not slosh traffic back to static weights"): the API server being away for a while must
 * not have them taken for the records of clusters that were removed.
 */
import type { Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { haKeys } from '../../src/ha/keys.js';
import { startFulcrum, type Fulcrum } from '../../src/main.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { scaled, waitFor } from '../support/wait.js';
import { balancedService, fakeApiKubeconfig, fakeApiServer, readySlices, type FakeApiState } from '../kubernetes/fake-api-server.js';
import { etcdClient } from './replicas.js';

const DISCOVERED = 'shop/web:http';
/** Longer than the sweep's grace (10 s) with room for its 1 s passes. */
const API_AWAY_MS = 16_000;

describeEtcd('HA orphan sweep while Kubernetes discovery has not synced', () => {
  let etcd: EtcdCluster;
  let observer: Etcd3;
  let dir: string;
  let api: Server | undefined;
  let fulcrum: Fulcrum | undefined;

  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
    observer = etcdClient(etcd.endpoints);
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-orphan-discovery-'));
  }, scaled(120_000));
  afterAll(async () => {
    await fulcrum?.stop();
    api?.closeAllConnections();
    api?.close();
    observer?.close();
    await etcd?.stop();
    await rm(dir, { recursive: true, force: true });
  }, scaled(60_000));

  it("keeps a discovered cluster's records while the API server is away after a restart", async () => {
    const prefix = `/orphans-${randomBytes(4).toString('hex')}`;
    const keys = haKeys(prefix);
    // What the previous process's hand-over left: records, no owner key.
    const record = JSON.stringify({ replica: 'previous', incarnation: 'previous', at: Date.now(), weights: { '10.0.0.1:8080': 7, '10.0.0.2:8080': 3 } });
    await observer.put(keys.weight(DISCOVERED)).value(record).exec();
    await observer.put(keys.servedWeight(DISCOVERED)).value(record).exec();
    const state: FakeApiState = { up: false, services: [balancedService('shop', 'web')], slices: readySlices('shop', 'web', ['10.0.0.1', '10.0.0.2']) };
    api = await fakeApiServer(state);
    const configPath = join(dir, 'fulcrum.yaml');
    const store = { kind: 'etcd', etcd: { endpoints: etcd.endpoints, prefix } };
    await writeFile(configPath, stringify({ store, kubernetes: { enabled: true, kubeconfig: await fakeApiKubeconfig(dir, api) } }));
    fulcrum = await startFulcrum({ configPath, xdsPort: 0, xdsAddress: '127.0.0.1', adminAddress: '127.0.0.1', logger: pino({ level: 'silent' }), auth: { adminTokens: [], readTokens: [] } });

    // The API server away for longer than the sweep's grace: the records must stay all along.
    const until = Date.now() + API_AWAY_MS;
    let gone = false;
    await waitFor(
      async () => {
        gone = (await observer.get(keys.weight(DISCOVERED)).string()) === null;
        return gone || Date.now() >= until;
      },
      { what: 'the API server away', timeoutMs: scaled(API_AWAY_MS * 2), intervalMs: 200 },
    );
    expect(gone, `${DISCOVERED}'s weights record deleted before discovery synced`).toBe(false);
    state.up = true;
    await fulcrum.settled;
    expect(await observer.get(keys.weight(DISCOVERED)).string()).not.toBeNull();
  }, scaled(120_000));
});
