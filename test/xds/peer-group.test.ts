import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, withDefaults, type LimitName } from '../../src/xds/limits.js';
import { peerGroup } from '../../src/xds/peer-group.js';
import { StreamGate } from '../../src/xds/stream-gate.js';

describe('peerGroup: what one peer is for the per-peer limits', () => {
  it('keeps an IPv4 address, and an IPv4-mapped IPv6 address is its IPv4 address', () => {
    expect(peerGroup('10.1.2.3', 64)).toBe('10.1.2.3');
    expect(peerGroup('::ffff:10.1.2.3', 64)).toBe('10.1.2.3');
    expect(peerGroup('::FFFF:127.0.0.1', 64)).toBe('127.0.0.1');
  });

  it('groups IPv6 addresses by their /64, however they are written', () => {
    const group = '2001:db8:1:2::/64';
    for (const address of ['2001:db8:1:2::1', '2001:0db8:0001:0002:ffff:ffff:ffff:ffff', '2001:DB8:1:2:a:b:c:d', '2001:db8:1:2:0:0:1.2.3.4']) {
      expect(peerGroup(address, 64)).toBe(group);
    }
    expect(peerGroup('2001:db8:1:3::1', 64)).toBe('2001:db8:1:3::/64');
    expect(peerGroup('::1', 64)).toBe('::/64');
    expect(peerGroup('fd00::2', 64)).toBe('fd00::/64');
    expect(peerGroup('1:2:3:4:5:6:7:8', 64)).toBe('1:2:3:4::/64');
  });

  it('honours another prefix length; 128 keeps each address; a zone stays in the key', () => {
    expect(peerGroup('2001:db8:1:2:3:4:5:6', 56)).toBe('2001:db8:1::/56');
    expect(peerGroup('2001:db8:1:2ff:3:4:5:6', 60)).toBe('2001:db8:1:2f0::/60');
    expect(peerGroup('2001:db8::5', 128)).toBe('2001:db8::5');
    expect(peerGroup('fe80::1%eth0', 64)).toBe('fe80::/64%eth0');
  });

  it('leaves anything that is not an address as it is', () => {
    expect(peerGroup('unknown', 64)).toBe('unknown');
    expect(peerGroup('', 64)).toBe('');
  });

  it('defaults to each address (128): many Envoys of one cloud subnet or pod range are not one peer unless asked', () => {
    expect(DEFAULT_LIMITS.ipv6PeerPrefixLength).toBe(128);
  });
});

describe('per-peer call limit over IPv6', () => {
  it('counts every address of one /64 as one peer: a new source address does not step around maxStreamsPerPeer', () => {
    const hits: LimitName[] = [];
    const gate = new StreamGate(withDefaults({ maxStreamsPerPeer: 2, ipv6PeerPrefixLength: 64 }), (l) => hits.push(l));
    expect(gate.admitCall('2001:db8:1:2::1')).toBeUndefined();
    expect(gate.admitCall('2001:db8:1:2::2')).toBeUndefined();
    expect(gate.admitCall('2001:db8:1:2:dead:beef:0:3')).toBe('too many calls: server.xds.limits.maxStreamsPerPeer (2) reached');
    // Another /64 is another peer; a call given back from any address of the first frees its place.
    expect(gate.admitCall('2001:db8:1:3::1')).toBeUndefined();
    gate.release('2001:db8:1:2::1');
    expect(gate.admitCall('2001:db8:1:2::99')).toBeUndefined();
    expect(hits).toEqual(['maxStreamsPerPeer']);
    expect(gate.streams).toBe(3);
  });
});
