import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe } from 'vitest';
import { openEtcdStore, type EtcdStore } from '../../src/catalog/store/etcd-store.js';
import { openStore, type Store } from '../../src/catalog/store/index.js';
import { cleanupTempDirs, tempDir } from '../catalog/helpers.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { auditContract } from './audit-contract.js';

/** The audit log's API view and byte bounds, on both stores. */

describe('audit in the API\'s shapes: sqlite', () => {
  const open: Store[] = [];
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });
  afterAll(cleanupTempDirs);
  auditContract(async () => {
    const s = openStore(tempDir());
    open.push(s);
    return s;
  }, 20_000);
});

describeEtcd('audit in the API\'s shapes: etcd', () => {
  let etcd: EtcdCluster;
  const open: EtcdStore[] = [];
  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
  }, 120_000);
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });
  afterAll(() => etcd?.stop());
  // etcd refuses a transaction over 1.5 MiB: a change (value + audit entry) of 2,000 endpoints fits.
  auditContract(async () => {
    const s = await openEtcdStore({ endpoints: [...etcd.endpoints], prefix: `/audit-${randomBytes(4).toString('hex')}` });
    open.push(s);
    return s;
  }, 2_000);
}, { timeout: 60_000 });
