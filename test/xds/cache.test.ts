import { createHash } from 'node:crypto';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import type { Catalog } from '../../src/catalog/types.js';
import { setVersion, subscription, XdsCache } from '../../src/xds/cache.js';
import { TYPE } from '../../src/xds/envoy-api.js';
import { translate } from '../../src/xds/translator.js';

const catalog = (weight: number, extra = false): Catalog => ({
  clusters: [
    { name: 'a', lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' as const }, endpoints: [{ address: '10.0.0.1', port: 80, weight, priority: 0, health: 'HEALTHY', locality: { region: '', zone: '', subZone: '' } }] },
    ...(extra ? [{ name: 'b', lbPolicy: 'ROUND_ROBIN' as const, connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' as const }, endpoints: [] }] : []),
  ],
  listeners: [],
  nodeGroups: [{ nodeCluster: 'edge', listeners: [], clusters: ['b'] }],
});

describe('XdsCache', () => {
  it('versions resources by content and keeps unchanged ones', () => {
    const cache = new XdsCache();
    cache.update(translate(catalog(1)));
    const s1 = cache.snapshotFor('');
    const a1 = s1.resources(TYPE.cluster).get('a');
    const e1 = s1.resources(TYPE.endpoint).get('a');
    expect(a1?.version).toBe(a1?.hash);

    cache.update(translate(catalog(5)));
    const s2 = cache.snapshotFor('');
    expect(s2.seq).toBeGreaterThan(s1.seq);
    expect(s2.version).not.toBe(s1.version);
    // The cluster did not change: same object, same version. Its endpoints did.
    expect(s2.resources(TYPE.cluster).get('a')).toBe(a1);
    expect(s2.resources(TYPE.endpoint).get('a')?.version).not.toBe(e1?.version);
  });

  it('serves a gRPC client its form of the group when there is one, else Envoy\'s', () => {
    const cache = new XdsCache();
    const weighted = { ...catalog(1, true), clusters: catalog(1, true).clusters.map((c) => (c.name === 'a' ? { ...c, endpoints: [...c.endpoints, { ...c.endpoints[0], port: 81, weight: 3 }] } : c)) } as Catalog;
    cache.update(translate(weighted));
    expect(cache.snapshotFor('', 'grpc')).toBe(cache.snapshotFor(''));
    cache.update(translate(weighted, undefined, undefined, { grpc: true }));
    const grpc = cache.snapshotFor('anything', 'grpc');
    expect(grpc).not.toBe(cache.snapshotFor(''));
    expect(grpc.resources(TYPE.endpoint).get('a')?.version).not.toBe(cache.snapshotFor('').resources(TYPE.endpoint).get('a')?.version);
    expect(grpc.resources(TYPE.cluster).get('a')?.version).toBe(cache.snapshotFor('').resources(TYPE.cluster).get('a')?.version);
    // A node group's gRPC form, not the default group's.
    expect(cache.snapshotFor('edge', 'grpc')).not.toBe(grpc);
    expect([...cache.snapshotFor('edge', 'grpc').resources(TYPE.cluster).keys()]).toEqual(['b']);
  });

  it('gives two replicas (or two process starts) with the same content identical versions and bytes', () => {
    const a = new XdsCache();
    const b = new XdsCache();
    // b reached the same state by another path: history must not leak into versions.
    a.update(translate(catalog(1, true)));
    b.update(translate(catalog(9)));
    b.update(translate(catalog(1, true)));
    for (const group of ['', 'edge']) {
      const [sa, sb] = [a.snapshotFor(group), b.snapshotFor(group)];
      expect(sb.version).toBe(sa.version);
      for (const type of Object.values(TYPE)) {
        const versions = (s: typeof sa) => [...s.resources(type)].map(([n, r]) => [n, r.version, Buffer.from(r.deltaBytes).toString('hex')]);
        expect(versions(sb)).toEqual(versions(sa));
        const sub = subscription(type, true, []);
        expect(Buffer.from(sb.sotwBody(type, sub).bytes)).toEqual(Buffer.from(sa.sotwBody(type, sub).bytes));
      }
    }
    expect(a.snapshotFor('').seq).not.toBe(b.snapshotFor('').seq);
  });

  it('gives different content different versions', () => {
    const a = new XdsCache();
    const b = new XdsCache();
    a.update(translate(catalog(1, true)));
    b.update(translate(catalog(2, true)));
    expect(b.snapshotFor('').version).not.toBe(a.snapshotFor('').version);
    const eds = subscription(TYPE.endpoint, true, []);
    expect(b.snapshotFor('').sotwBody(TYPE.endpoint, eds).version).not.toBe(a.snapshotFor('').sotwBody(TYPE.endpoint, eds).version);
    // The default group and the edge group hold different clusters: different snapshot versions.
    expect(a.snapshotFor('edge').version).not.toBe(a.snapshotFor('').version);
  });

  it('notifies only for groups whose content changed', () => {
    const cache = new XdsCache();
    const heard: string[][] = [];
    cache.subscribe((g) => heard.push([...g].sort()));
    cache.update(translate(catalog(1, true)));
    expect(heard.pop()).toEqual(['*', 'edge']);
    cache.update(translate(catalog(1, true)));
    expect(heard).toHaveLength(0);
    // Endpoint of cluster a changes: the edge group only holds b, so it is not disturbed.
    cache.update(translate(catalog(2, true)));
    expect(heard.pop()).toEqual(['*']);
  });

  it('falls back to the default group for unknown node clusters', () => {
    const cache = new XdsCache();
    cache.update(translate(catalog(1, true)));
    expect([...cache.snapshotFor('nobody').resources(TYPE.cluster).keys()].sort()).toEqual(['a', 'b']);
    expect([...cache.snapshotFor('edge').resources(TYPE.cluster).keys()]).toEqual(['b']);
  });

  it('memoizes SotW bodies so identical subscriptions share one buffer', () => {
    const cache = new XdsCache();
    cache.update(translate(catalog(1, true)));
    const s = cache.snapshotFor('');
    const x = s.sotwBody(TYPE.endpoint, subscription(TYPE.endpoint, false, ['b', 'a']));
    const y = s.sotwBody(TYPE.endpoint, subscription(TYPE.endpoint, false, ['a', 'b', 'a']));
    expect(y).toBe(x);
    expect(x.names).toEqual(['a', 'b']);
    expect(s.sotwBody(TYPE.endpoint, subscription(TYPE.endpoint, false, ['a'])).version).not.toBe(x.version);
    // A subscription naming something absent resolves to the same body as one without it.
    const withMissing = s.sotwBody(TYPE.endpoint, subscription(TYPE.endpoint, false, ['a', 'b', 'missing']));
    expect(withMissing).toBe(x);
    expect(s.sotwBody(TYPE.endpoint, subscription(TYPE.endpoint, true, []))).toBe(x);
  });

  it('builds incremental EDS updates carrying only the changed resources', () => {
    const cache = new XdsCache();
    cache.update(translate(catalog(1, true)));
    const sub = subscription(TYPE.endpoint, false, ['a', 'b']);
    const before = cache.snapshotFor('').sotwBody(TYPE.endpoint, sub);
    cache.update(translate(catalog(7, true)));
    const snap = cache.snapshotFor('');
    const after = snap.sotwBody(TYPE.endpoint, sub);
    const update = snap.sotwUpdate(TYPE.endpoint, before, after);
    expect(update?.names).toEqual(['a']);
    expect(update?.version).toBe(after.version);
    expect(snap.sotwUpdate(TYPE.endpoint, before, after)).toBe(update);
    expect(snap.sotwUpdate(TYPE.endpoint, after, after)).toBeUndefined();
  });

  it('versions a set by the sum of its resources\' versions, whatever their order; a body still knows the version earlier releases gave it; the body bytes', () => {
    // What earlier releases sent as version_info: a hash of the names and versions in order. A
    // proxy reconnecting after an upgrade announces it (sotw-stream resumes on it).
    const hashed = (rows: string[][]): string => {
      const h = createHash('sha256');
      for (const row of rows) {
        for (const field of row) h.update(field).update('\0');
        h.update('\n');
      }
      return h.digest('base64url').slice(0, 16);
    };
    // Each version's 96 bits as three words, added word by word modulo 2^32.
    const summed = (versions: string[]): string => {
      const words = [0, 0, 0];
      for (const v of versions) {
        const bits = Buffer.from(v, 'base64url');
        expect(bits.length).toBe(12);
        for (let k = 0; k < 3; k++) words[k] = (words[k]! + bits.readUInt32BE(4 * k)) >>> 0;
      }
      const out = Buffer.alloc(12);
      words.forEach((w, k) => out.writeUInt32BE(w, 4 * k));
      return out.toString('base64url');
    };
    const cache = new XdsCache();
    cache.update(translate(catalog(3, true)));
    const snap = cache.snapshotFor('');
    const resources = [...snap.resources(TYPE.endpoint).values()];
    expect(snap.typeVersion(TYPE.endpoint)).toBe(summed(resources.map((r) => r.version)));
    expect(snap.typeVersion(TYPE.endpoint)).toBe(setVersion([...resources].reverse()));
    const types = [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route];
    expect(snap.version).toBe(hashed(types.map((type) => [type, summed([...snap.resources(type).values()].map((r) => r.version))])));
    const body = snap.sotwBody(TYPE.endpoint, subscription(TYPE.endpoint, true, []));
    expect(body.version).toBe(summed(resources.map((r) => r.version)));
    expect(body.legacyVersion).toBe(hashed(resources.map((r) => [r.name, r.version])));
    // version_info, each Any, type_url: the bytes the body was always encoded to.
    const w = protobuf.Writer.create().uint32(10).string(body.version);
    for (const r of resources) w.uint32(18).bytes(r.anyBytes);
    expect(Buffer.from(body.bytes).equals(Buffer.from(w.uint32(34).string(TYPE.endpoint).finish()))).toBe(true);
    expect(body.names).toEqual(resources.map((r) => r.name));
    expect([...body.versions]).toEqual(resources.map((r) => [r.name, r.version]));
  });
});
