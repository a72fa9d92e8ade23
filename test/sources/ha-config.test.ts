import { describe, expect, it } from 'vitest';
import { defaultReplicaId } from '../../src/main.js';
import { ConfigError, DEFAULT_HA, parseConfig } from '../../src/sources/config-file.js';

describe('config: ha', () => {
  it('defaults: lease TTL 3 s, state refresh 5 s, proxy status refresh 10 s, replica id left to the environment', () => {
    expect(parseConfig('{}', 'f.yaml').ha).toEqual({ leaseTtlSeconds: 3, stateRefreshMs: 5_000, proxyStatusRefreshMs: 10_000 });
    expect(parseConfig('ha: { proxyStatusRefreshMs: 2000 }', 'f.yaml').ha.proxyStatusRefreshMs).toBe(2_000);
    expect(parseConfig('ha: { replicaId: fulcrum-0, leaseTtlSeconds: 5 }', 'f.yaml').ha).toEqual({ ...DEFAULT_HA, replicaId: 'fulcrum-0', leaseTtlSeconds: 5 });
  });

  it.each([
    ['ha: { replicaId: "a/b" }', '/ha/replicaId'],
    ['ha: { leaseTtlSeconds: 1 }', '/ha/leaseTtlSeconds'],
    ['ha: { leaseTtlSeconds: 2.5 }', '/ha/leaseTtlSeconds'],
    ['ha: { ttl: 3 }', '/ha/ttl'],
    ['ha: { proxyStatusRefreshMs: 500 }', '/ha/proxyStatusRefreshMs'],
  ])('rejects %s naming %s', (text, path) => {
    try {
      parseConfig(text, 'f.yaml');
      expect.unreachable('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems.map((p) => p.path)).toContain(path);
    }
  });

  it('the replica id comes from FULCRUM_REPLICA_ID, else the hostname', () => {
    expect(defaultReplicaId({ FULCRUM_REPLICA_ID: 'r7' })).toBe('r7');
    expect(defaultReplicaId({})).not.toBe('');
  });
});
