/**
 * Overrides on discovered clusters across replicas on one etcd: an override written through one
 * replica's store reaches the other's through its watch, as a change event (which is what makes
 * that replica's catalog feed re-layer discovery, see CatalogFeed and withKubernetes), and the
 * other replica then serves the same endpoint state.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { indexOverrides, applyDiscoveredOverrides } from '../../src/catalog/discovered-overrides.js';
import { openEtcdStore, type EtcdStore } from '../../src/catalog/store/etcd-store.js';
import type { StoreChange } from '../../src/catalog/store/index.js';
import { describeEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { waitFor } from '../support/wait.js';
import { cluster, endpoint } from './helpers.js';

describeEtcd('overrides on discovered clusters, two replicas on one etcd', () => {
  let etcd: EtcdCluster;
  const stores: EtcdStore[] = [];
  beforeAll(async () => {
    etcd = await startEtcdCluster(1);
  }, 120_000);
  afterAll(async () => {
    for (const s of stores) await s.close();
    await etcd?.stop();
  });

  it('a drain written on one replica is seen, and applied, on the other', async () => {
    const prefix = `/overrides-${randomBytes(4).toString('hex')}`;
    const [a, b] = await Promise.all([0, 1].map(() => openEtcdStore({ endpoints: [...etcd.endpoints], prefix })));
    stores.push(a as EtcdStore, b as EtcdStore);
    const seen: StoreChange[] = [];
    b?.onChange((c) => seen.push(c));
    const discovered = [cluster('ns/web:http', [endpoint('10.1.0.1'), endpoint('10.1.0.2')])];

    const { revision } = await (a as EtcdStore).putOverride({ cluster: 'ns/web:http', endpoint: { address: '10.1.0.2', port: 8080 } }, { state: 'draining' }, { actor: 'alice' });
    await waitFor(() => seen.some((c) => c.changes.some((x) => x.kind === 'override')), { what: 'the override change event on replica b' });
    expect(seen.at(-1)).toMatchObject({ revision, actor: 'alice', changes: [{ kind: 'override', name: 'ns/web:http/10.1.0.2:8080', action: 'create' }] });
    const served = applyDiscoveredOverrides(discovered, indexOverrides(b?.listOverrides() ?? []));
    expect(served[0]?.endpoints.map((e) => [e.address, e.health])).toEqual([['10.1.0.1', 'HEALTHY'], ['10.1.0.2', 'DRAINING']]);

    // b writes with the revision it read before a's disable: a conflict, and a's write stands.
    await (a as EtcdStore).putOverride({ cluster: 'ns/web:http', endpoint: { address: '10.1.0.2', port: 8080 } }, { state: 'disabled' }, { actor: 'alice', ifMatch: revision });
    await expect((b as EtcdStore).putOverride({ cluster: 'ns/web:http', endpoint: { address: '10.1.0.2', port: 8080 } }, { state: 'active' }, { actor: 'bob', ifMatch: revision })).rejects.toThrow(/revision/);
    await waitFor(() => b?.getOverride('ns/web:http/10.1.0.2:8080')?.value.state === 'disabled', { what: 'b sees the disable' });
  });
}, { timeout: 60_000 });
