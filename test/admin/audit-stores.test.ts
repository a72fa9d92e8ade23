import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe } from 'vitest';
import { openEtcdStore, type EtcdStore } from '../../src/catalog/store/etcd-store.js';
import { openStore, type CatalogStore, type Store } from '../../src/catalog/store/index.js';
import { WriteLane } from '../../src/catalog/store/write-lane.js';
import { cleanupTempDirs, tempDir } from '../catalog/helpers.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { auditContract } from './audit-contract.js';

/** The audit log's API view and byte bounds, on both stores. */

/** SQLite as the test opens it: `wrap` decides whether writes go through the write lane. */
function sqliteAudit(wrap: (s: Store) => CatalogStore): void {
  const open: Store[] = [];
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });
  afterAll(cleanupTempDirs);
  auditContract(async () => {
    const s = openStore(tempDir());
    open.push(s);
    return wrap(s);
  }, 20_000);
}

describe('audit in the API\'s shapes: sqlite', () => sqliteAudit((s) => s));

// As fulcrum runs the SQLite store: writes over the lane's sliced size are sliced, their audit texts packed.
describe('audit in the API\'s shapes: sqlite through the write lane (big writes sliced, texts packed)', () => sqliteAudit((s) => new WriteLane(s)));

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
