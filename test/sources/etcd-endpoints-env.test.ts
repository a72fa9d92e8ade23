import { describe, expect, it } from 'vitest';
import type { StoreConfig } from '../../src/catalog/store/etcd-client.js';
import { withEtcdEndpointsFromEnv } from '../../src/sources/etcd-endpoints-env.js';

const etcd = (extra: Partial<Extract<StoreConfig, { kind: 'etcd' }>['etcd']> = {}): StoreConfig => ({
  kind: 'etcd',
  etcd: { endpoints: ['http://file:2379'], prefix: '/fulcrum', ...extra },
});

describe('FULCRUM_ETCD_ENDPOINTS', () => {
  it('replaces the file\'s endpoints, trimming blanks', () => {
    const out = withEtcdEndpointsFromEnv(etcd(), { FULCRUM_ETCD_ENDPOINTS: ' http://a:2379, http://b:2379 ,' });
    expect(out).toEqual({ kind: 'etcd', etcd: { endpoints: ['http://a:2379', 'http://b:2379'], prefix: '/fulcrum' } });
  });

  it('changes nothing when unset or empty', () => {
    expect(withEtcdEndpointsFromEnv(etcd(), {})).toEqual(etcd());
    expect(withEtcdEndpointsFromEnv({ kind: 'sqlite' }, { FULCRUM_ETCD_ENDPOINTS: '' })).toEqual({ kind: 'sqlite' });
  });

  it('refuses what the config file would refuse, naming the variable', () => {
    const bad: [StoreConfig, string, RegExp][] = [
      [{ kind: 'sqlite' }, 'http://a:2379', /store.kind is not etcd/],
      [etcd(), 'a:2379', /FULCRUM_ETCD_ENDPOINTS: "a:2379" is not an etcd client URL/],
      [etcd(), 'http://a:2379,https://b:2379', /mixes http and https/],
      [etcd(), 'https://a:2379', /need store.etcd.tls.ca/],
      [etcd({ tls: { ca: '/ca' } }), 'http://a:2379', /tls needs https/],
    ];
    for (const [store, value, error] of bad) expect(() => withEtcdEndpointsFromEnv(store, { FULCRUM_ETCD_ENDPOINTS: value })).toThrow(error);
    expect(withEtcdEndpointsFromEnv(etcd({ tls: { ca: '/ca' } }), { FULCRUM_ETCD_ENDPOINTS: 'https://a:2379' })).toMatchObject({ etcd: { endpoints: ['https://a:2379'] } });
  });
});
