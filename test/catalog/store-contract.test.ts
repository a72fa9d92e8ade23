import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe } from 'vitest';
import { openEtcdStore } from '../../src/catalog/store/etcd-store.js';
import { openStore } from '../../src/catalog/store/index.js';
import { WriteLane } from '../../src/catalog/store/write-lane.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { cleanupTempDirs, tempDir } from './helpers.js';
import { storeContract } from './store-contract.js';

describe('store contract: sqlite', () => {
  afterAll(cleanupTempDirs);
  storeContract(() => ({ open: async () => openStore(tempDir()) }));
});

// The same contract with every cluster write of more than two endpoints taking the sliced path.
describe('store contract: sqlite behind the write lane, big writes sliced', () => {
  afterAll(cleanupTempDirs);
  storeContract(() => ({ open: async () => new WriteLane(openStore(tempDir()), 2) }));
});

describeEtcd('store contract: etcd (3 members)', () => {
  let etcd: EtcdCluster;
  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
  }, 120_000);
  afterAll(() => etcd?.stop());
  // Every test gets its own prefix: a fresh, empty store on the same cluster.
  storeContract(() => ({
    open: () => openEtcdStore({ endpoints: [...etcd.endpoints], prefix: `/contract-${randomBytes(4).toString('hex')}` }),
  }));
}, { timeout: 60_000 });
