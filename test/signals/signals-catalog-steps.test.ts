import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Signals } from '../../src/signals/signals.js';
import type { Catalog } from '../../src/catalog/types.js';
import { cluster, endpoint } from '../catalog/helpers.js';

const ip = (i: number): string => `10.2.${i >> 8}.${i & 255}`;
const catalogOf = (from: number, to: number): Catalog => ({
  clusters: [cluster('small', [endpoint('10.9.0.1')]), cluster('big', Array.from({ length: to - from }, (_, j) => endpoint(ip(from + j))))],
  listeners: [],
  nodeGroups: [],
});
/** Whether a report for the big cluster's endpoint i is accepted (the signals know it). */
const knows = (s: Signals, i: number): boolean => s.ingest({ samples: [{ cluster: 'big', endpoint: `${ip(i)}:8080`, rps: 1 }] }).accepted === 1;

describe('Signals.setCatalogSteps', () => {
  it('knows the old endpoints until its last step, then exactly what setCatalog gives', () => {
    const [stepped, whole] = [0, 1].map(() => new Signals({ log: pino({ level: 'silent' }), lrsIntervalMs: 10_000 })) as [Signals, Signals];
    for (const s of [stepped, whole]) s.setCatalog(catalogOf(0, 3_000));
    const next = catalogOf(1_000, 4_000);
    const steps = stepped.setCatalogSteps(next, 500);
    let count = 0;
    for (let step = steps.next(); step.done !== true; step = steps.next()) {
      count++;
      expect([knows(stepped, 10), knows(stepped, 3_500)]).toEqual([true, false]);
    }
    whole.setCatalog(next);
    expect(count).toBeGreaterThanOrEqual(6);
    for (const i of [10, 999, 1_000, 2_999, 3_000, 3_999, 4_000]) expect(knows(stepped, i)).toBe(knows(whole, i));
    expect(knows(stepped, 3_500)).toBe(true);
    for (const s of [stepped, whole]) s.stop();
  });
});

describe('Signals.setCatalog after a write (the same cluster names)', () => {
  const report = (s: Signals, c: string, e: string): boolean => s.ingest({ samples: [{ cluster: c, endpoint: e, rps: 1 }] }).accepted === 1;
  const three = (web: string[]): Catalog => ({
    clusters: [cluster('api', [endpoint('10.1.0.1')]), cluster('web', web.map((ip) => endpoint(ip))), cluster('zeta', [endpoint('10.3.0.1')])],
    listeners: [],
    nodeGroups: [],
  });

  it('re-reads only the changed cluster: its removed endpoint forgotten, its new one known, the others untouched, as a fresh Signals sees it', () => {
    const s = new Signals({ log: pino({ level: 'silent' }), lrsIntervalMs: 10_000 });
    const before = three(['10.2.0.1', '10.2.0.2']);
    s.setCatalog(before);
    expect(report(s, 'web', '10.2.0.2:8080')).toBe(true);
    expect(report(s, 'api', '10.1.0.1:8080')).toBe(true);
    // One write: `web` is a new object at its place, `api` and `zeta` the same objects.
    const after: Catalog = { ...before, clusters: [before.clusters[0], cluster('web', [endpoint('10.2.0.1'), endpoint('10.2.0.3')]), before.clusters[2]] as Catalog['clusters'] };
    s.setCatalog(after);
    expect(s.store.latest('web', '10.2.0.2:8080')).toBeUndefined();
    expect(s.store.latest('api', '10.1.0.1:8080')).toBeDefined();
    const fresh = new Signals({ log: pino({ level: 'silent' }), lrsIntervalMs: 10_000 });
    fresh.setCatalog(after);
    for (const [c, e] of [['web', '10.2.0.1:8080'], ['web', '10.2.0.2:8080'], ['web', '10.2.0.3:8080'], ['api', '10.1.0.1:8080'], ['zeta', '10.3.0.1:8080'], ['nope', '10.9.0.1:8080']] as const) {
      expect(report(s, c, e), `${c} ${e}`).toBe(report(fresh, c, e));
    }
    expect(report(s, 'web', '10.2.0.3:8080')).toBe(true);
    // Then a cluster removed (names change): found by name, it is forgotten; the others keep their samples.
    const removed = { ...after, clusters: after.clusters.filter((c) => c.name !== 'zeta') };
    s.setCatalog(removed);
    expect(report(s, 'zeta', '10.3.0.1:8080')).toBe(false);
    expect(s.store.latest('zeta', '10.3.0.1:8080')).toBeUndefined();
    expect(s.store.latest('api', '10.1.0.1:8080')).toBeDefined();
    // And one added in the middle of the order, and the removed one back: known, as a fresh Signals knows them.
    const added: Catalog = { ...removed, clusters: [removed.clusters[0], cluster('mid', [endpoint('10.4.0.1')]), ...removed.clusters.slice(1), cluster('zeta', [endpoint('10.3.0.2')])] as Catalog['clusters'] };
    s.setCatalog(added);
    const fresher = new Signals({ log: pino({ level: 'silent' }), lrsIntervalMs: 10_000 });
    fresher.setCatalog(added);
    for (const [c, e] of [['mid', '10.4.0.1:8080'], ['zeta', '10.3.0.1:8080'], ['zeta', '10.3.0.2:8080'], ['web', '10.2.0.3:8080'], ['api', '10.1.0.1:8080']] as const) {
      expect(report(s, c, e), `${c} ${e}`).toBe(report(fresher, c, e));
    }
    expect(s.store.latest('web', '10.2.0.3:8080')).toBeDefined();
    fresher.stop();
    // A probed cluster deleted: its endpoints are no longer probed.
    const probe = { kind: 'tcp' as const, path: '', intervalMs: 1_000, timeoutMs: 500 };
    const probed: Catalog = { ...added, clusters: added.clusters.map((c) => (c.name === 'mid' ? { ...c, probe } : c)) };
    s.setCatalog(probed);
    expect(s.probeTargets).toBe(1);
    s.setCatalog({ ...probed, clusters: probed.clusters.filter((c) => c.name !== 'mid') });
    expect(s.probeTargets).toBe(0);
    for (const x of [s, fresh]) x.stop();
  });
});

describe('Signals after an endpoint write that keeps every address and port', () => {
  const zone = (z: string) => ({ region: 'r', zone: z, subZone: '' });
  const web = (weights: number[], zones: string[]): Catalog => ({
    clusters: [cluster('web', weights.map((w, i) => ({ ...endpoint(`10.2.0.${i + 1}`), weight: w, locality: zone(zones[i] as string) })))],
    listeners: [],
    nodeGroups: [],
  });
  const members = (s: Signals) => ['a', 'b', 'c'].map((z) => s.localityMembers('web', zone(z)));

  it('splits locality loads by the new weights and localities, as a fresh Signals does', () => {
    const s = new Signals({ log: pino({ level: 'silent' }), lrsIntervalMs: 10_000 });
    s.setCatalog(web([1, 1, 3], ['a', 'b', 'b']));
    expect(members(s)).toEqual([[{ key: '10.2.0.1:8080', weight: 1 }], [{ key: '10.2.0.2:8080', weight: 1 }, { key: '10.2.0.3:8080', weight: 3 }], []]);
    for (const next of [web([1, 1, 5], ['a', 'b', 'b']), web([2, 1, 5], ['a', 'a', 'c']), web([2, 4, 5], ['a', 'a', 'c'])]) {
      s.setCatalog(next);
      const fresh = new Signals({ log: pino({ level: 'silent' }), lrsIntervalMs: 10_000 });
      fresh.setCatalog(next);
      expect(members(s)).toEqual(members(fresh));
      fresh.stop();
    }
    expect(members(s)).toEqual([[{ key: '10.2.0.1:8080', weight: 2 }, { key: '10.2.0.2:8080', weight: 4 }], [], [{ key: '10.2.0.3:8080', weight: 5 }]]);
    s.stop();
  });
  it('attributes a locality gRPC clients were sent for one endpoint to that endpoint alone', () => {
    const s = new Signals({ log: pino({ level: 'silent' }), lrsIntervalMs: 10_000 });
    s.setCatalog(web([1, 1, 3], ['a', 'b', 'b']));
    const own = (z: string, key: string) => s.localityMembers('web', { ...zone(z), subZone: `@${key}` });
    expect(own('b', '10.2.0.3:8080')).toEqual([{ key: '10.2.0.3:8080', weight: 3 }]);
    // Named in a locality it is not in, or not an endpoint of the cluster: nobody's.
    expect(own('a', '10.2.0.3:8080')).toEqual([]);
    expect(own('b', '10.9.9.9:8080')).toEqual([]);
    // Moved to another locality: found there, no longer in the old one.
    s.setCatalog(web([1, 1, 3], ['a', 'b', 'a']));
    expect(own('a', '10.2.0.3:8080')).toEqual([{ key: '10.2.0.3:8080', weight: 3 }]);
    expect(own('b', '10.2.0.3:8080')).toEqual([]);
    s.stop();
  });

  it('finds each of a big zone\'s endpoints a gRPC report names in linear time', () => {
    // A gRPC client's report names every endpoint of a split cluster: with a scan of the zone per
    // name, 30,000 endpoints in one zone took ~10 s of one report (seconds more under load).
    const n = 30_000;
    const s = new Signals({ log: pino({ level: 'silent' }), lrsIntervalMs: 10_000 });
    s.setCatalog({ clusters: [cluster('big', Array.from({ length: n }, (_, i) => endpoint(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, 8080, { locality: zone('a') })))], listeners: [], nodeGroups: [] });
    const names = Array.from({ length: n }, (_, i) => ({ ...zone('a'), subZone: `@10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:8080` }));
    const started = performance.now();
    let found = 0;
    for (const name of names) found += s.localityMembers('big', name).length;
    expect(found).toBe(n);
    expect(performance.now() - started).toBeLessThan(2_000);
    s.stop();
  });
});
