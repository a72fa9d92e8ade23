import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/catalog/store/index.js';
import { OverrideIndex } from '../../src/catalog/override-index.js';
import { cleanupTempDirs, cluster, endpoint, tempDir } from './helpers.js';

const API = { actor: 'alice', owner: 'api' } as const;
const open: Store[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  cleanupTempDirs();
});

describe('OverrideIndex', () => {
  it('reads the overrides again only after an override changed', () => {
    const store = openStore(tempDir());
    open.push(store);
    let reads = 0;
    const counted = { listOverrides: () => (reads++, store.listOverrides()), onChange: store.onChange.bind(store) };
    const index = new OverrideIndex(counted);
    expect(index.current().states.size).toBe(0);
    store.putCluster(cluster('web', [endpoint('10.0.0.1')]), API);
    store.putEndpoint('web', endpoint('10.0.0.2'), API);
    expect(index.current().states.size).toBe(0);
    expect(reads).toBe(1); // other writes keep the index
    store.putOverride({ cluster: 'svc', endpoint: { address: '10.1.0.1', port: 80 } }, { state: 'draining' }, { actor: 'alice' });
    expect(index.current().states.get('svc')?.get('10.1.0.1:80')).toBe('draining');
    expect(reads).toBe(2);
    store.deleteOverride(store.listOverrides()[0]?.name ?? '', { actor: 'alice' });
    expect(index.current().states.size).toBe(0);
    expect(reads).toBe(3);
    index.close();
  });
});
