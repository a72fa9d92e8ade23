import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConflictError,
  NotFoundError,
  OwnershipError,
  openStore,
  type Store,
  type StoreChange,
} from '../../src/catalog/store/index.js';
import type { Catalog } from '../../src/catalog/types.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { cleanupTempDirs, cluster, endpoint, listener, sorted, tempDir } from './helpers.js';

const API = { actor: 'alice', owner: 'api' } as const;
const open: Store[] = [];
function fresh(dir = tempDir()): Store {
  const s = openStore(dir);
  open.push(s);
  return s;
}
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  cleanupTempDirs();
});

const FILE_V1 = `
clusters:
  - name: web
    lbPolicy: LEAST_REQUEST
    leastRequest: { choiceCount: 3 }
    weighting: { policy: pid, setpoint: 0.7, metric: cpu, gains: { kp: 0.4 } }
    safety: { maxStepRatio: 2 }
    probe: { kind: http, path: /healthz, intervalMs: 1000, timeoutMs: 200 }
    endpoints:
      - { address: 10.0.0.1, port: 80, weight: 2, priority: 1, locality: { region: eu, zone: a } }
      - { address: "::1", port: 81 }
  - name: sticky
    lbPolicy: RING_HASH
    ringHash: { virtualNodesPerHost: 100, hashFunction: MURMUR_HASH_2 }
    endpoints:
      - { address: 10.0.1.1, port: 80 }
  - name: old
    endpoints: [{ address: 10.0.2.1, port: 80 }]
listeners:
  - name: ingress
    port: 10000
    routes:
      - { prefix: /s, cluster: sticky, hashPolicy: { cookie: { name: sid, ttlSeconds: 60 } } }
      - { domain: api.example.com, prefix: /, cluster: web, timeoutMs: 1500 }
  - name: greeter
    apiListener: true
    routes: [{ cluster: web }]
nodeGroups:
  - { nodeCluster: edge, listeners: [ingress] }
`;

/** v2: "old" is gone, web's weight changes, a new cluster appears, the node group is dropped. */
const FILE_V2 = `
clusters:
  - name: web
    lbPolicy: LEAST_REQUEST
    leastRequest: { choiceCount: 3 }
    weighting: { policy: pid, setpoint: 0.7, metric: cpu, gains: { kp: 0.4 } }
    safety: { maxStepRatio: 2 }
    probe: { kind: http, path: /healthz, intervalMs: 1000, timeoutMs: 200 }
    endpoints:
      - { address: 10.0.0.1, port: 80, weight: 5, priority: 1, locality: { region: eu, zone: a } }
      - { address: "::1", port: 81 }
  - name: sticky
    lbPolicy: RING_HASH
    ringHash: { virtualNodesPerHost: 100, hashFunction: MURMUR_HASH_2 }
    endpoints:
      - { address: 10.0.1.1, port: 80 }
  - name: fresh
listeners:
  - name: ingress
    port: 10000
    routes:
      - { prefix: /s, cluster: sticky, hashPolicy: { cookie: { name: sid, ttlSeconds: 60 } } }
      - { domain: api.example.com, prefix: /, cluster: web, timeoutMs: 1500 }
  - name: greeter
    apiListener: true
    routes: [{ cluster: web }]
`;

const fileCatalog = (text: string): Catalog => parseConfig(text, 'fulcrum.yaml').catalog;

describe('openStore', () => {
  it('creates <dir>/fulcrum.db in WAL mode with synchronous=FULL, foreign keys and a busy timeout', () => {
    const dir = join(tempDir(), 'nested', 'data');
    const s = fresh(dir);
    expect(existsSync(join(dir, 'fulcrum.db'))).toBe(true);
    expect(s.settings()).toMatchObject({ journalMode: 'wal', synchronous: 2, foreignKeys: true, busyTimeoutMs: 5000, schemaVersion: 1 });
    expect(s.catalog()).toEqual({ clusters: [], listeners: [], nodeGroups: [] });
    expect(s.revision()).toBe(0);
  });
});

describe('clusters and endpoints', () => {
  it('round-trips a cluster with its endpoints and every domain field', () => {
    const s = fresh();
    const c = fileCatalog(FILE_V1).clusters[0]!;
    expect(c.weighting.kind).toBe('pid'); // the fixture exercises the policy JSON
    const { revision } = s.putCluster(c, API);
    expect(revision).toBe(1);
    expect(s.catalog().clusters).toEqual(sorted({ clusters: [c], listeners: [], nodeGroups: [] }).clusters);
    const rec = s.getCluster('web')!;
    expect(rec).toMatchObject({ name: 'web', owner: 'api', revision: 1, lbPolicy: 'LEAST_REQUEST', safety: { maxStepRatio: 2 } });
    expect(rec.endpoints.map((e) => [e.address, e.state, e.owner, e.revision])).toEqual([
      ['10.0.0.1', 'active', 'api', 1],
      ['::1', 'active', 'api', 1],
    ]);
  });

  it('update bumps the revision; an identical put is a no-op (same revision, no audit, no event)', () => {
    const s = fresh();
    const events: StoreChange[] = [];
    s.onChange((e) => events.push(e));
    expect(s.putCluster(cluster('a', [endpoint('10.0.0.1')]), API).revision).toBe(1);
    expect(s.putCluster(cluster('a', [endpoint('10.0.0.1')]), API).revision).toBe(1);
    expect(s.putCluster(cluster('a', [endpoint('10.0.0.1')], { http2: true }), API).revision).toBe(2);
    // Without `endpoints` the endpoint set is left alone.
    const { endpoints: _e, ...spec } = cluster('a', [], { http2: true, connectTimeoutMs: 5 });
    expect(s.putCluster(spec, API).revision).toBe(3);
    expect(s.getCluster('a')!.endpoints).toHaveLength(1);
    expect(s.audit().map((a) => [a.action, a.revision])).toEqual([
      ['update', 3],
      ['update', 2],
      ['create', 1],
    ]);
    expect(events.map((e) => e.revision)).toEqual([1, 2, 3]);
  });

  it('endpoint writes bump the endpoint and its cluster; delete cascades', () => {
    const s = fresh();
    s.putCluster(cluster('a'), API);
    expect(s.putEndpoint('a', endpoint('10.0.0.1'), API).revision).toBe(2);
    expect(s.putEndpoint('a', endpoint('10.0.0.2', 81, { weight: 7 }), API).revision).toBe(3);
    expect(s.putEndpoint('a', endpoint('10.0.0.2', 81, { weight: 7 }), API).revision).toBe(3); // no-op
    expect(s.getCluster('a')!.revision).toBe(3);
    expect(s.getEndpoint('a', '10.0.0.1', 8080)!.revision).toBe(2);
    expect(s.removeEndpoint('a', '10.0.0.1', 8080, API).revision).toBe(4);
    expect(s.catalog().clusters[0]!.endpoints.map((e) => [e.address, e.weight])).toEqual([['10.0.0.2', 7]]);
    expect(() => s.removeEndpoint('a', '10.0.0.1', 8080, API)).toThrow(NotFoundError);
    expect(() => s.putEndpoint('nope', endpoint('10.0.0.1'), API)).toThrow(NotFoundError);
    s.deleteCluster('a', API);
    expect(s.getCluster('a')).toBeUndefined();
    expect(s.getEndpoint('a', '10.0.0.2', 81)).toBeUndefined();
    expect(() => s.deleteCluster('a', API)).toThrow(NotFoundError);
  });

  it('operator state: draining is served as DRAINING, disabled is left out; putCluster keeps the state', () => {
    const s = fresh();
    s.putCluster(cluster('a', [endpoint('10.0.0.1'), endpoint('10.0.0.2'), endpoint('10.0.0.3', 8080, { health: 'UNHEALTHY' })]), API);
    s.setEndpointState('a', '10.0.0.1', 8080, 'draining', { actor: 'bob' });
    s.setEndpointState('a', '10.0.0.2', 8080, 'disabled', { actor: 'bob' });
    const health = () => s.catalog().clusters[0]!.endpoints.map((e) => `${e.address}=${e.health}`);
    expect(health()).toEqual(['10.0.0.1=DRAINING', '10.0.0.3=UNHEALTHY']);
    // Re-putting the cluster without states keeps them; an explicit state wins.
    s.putCluster({ ...cluster('a'), endpoints: [endpoint('10.0.0.1'), { ...endpoint('10.0.0.2'), state: 'active' }, endpoint('10.0.0.3')] }, API);
    expect(health()).toEqual(['10.0.0.1=DRAINING', '10.0.0.2=HEALTHY', '10.0.0.3=HEALTHY']);
    const rev = s.revision();
    expect(s.setEndpointState('a', '10.0.0.1', 8080, 'draining', { actor: 'bob' }).revision).toBeLessThanOrEqual(rev); // no-op
    expect(s.revision()).toBe(rev);
    expect(() => s.setEndpointState('a', '10.9.9.9', 1, 'disabled', { actor: 'bob' })).toThrow(NotFoundError);
    // The record keeps the declared health; only the catalog view applies the overlay.
    expect(s.getEndpoint('a', '10.0.0.1', 8080)).toMatchObject({ health: 'HEALTHY', state: 'draining' });
  });

  it('listeners and node groups: put, no-op, delete', () => {
    const s = fresh();
    s.putCluster(cluster('web'), API);
    expect(s.putListener(listener('in', 'web'), API).revision).toBe(2);
    expect(s.putListener(listener('in', 'web'), API).revision).toBe(2);
    expect(s.putListener(listener('in', 'web', 10001), API).revision).toBe(3);
    expect(s.putNodeGroup({ nodeCluster: 'edge', listeners: ['in'], clusters: [] }, API).revision).toBe(4);
    expect(s.catalog()).toEqual({
      clusters: [cluster('web')],
      listeners: [listener('in', 'web', 10001)],
      nodeGroups: [{ nodeCluster: 'edge', listeners: ['in'], clusters: [] }],
    });
    expect(s.getListener('in')).toMatchObject({ owner: 'api', revision: 3, port: 10001 });
    s.deleteNodeGroup('edge', API);
    s.deleteListener('in', API);
    expect(s.catalog().listeners).toEqual([]);
    expect(s.catalog().nodeGroups).toEqual([]);
    expect(() => s.deleteListener('in', API)).toThrow(NotFoundError);
  });

  it('rejects "file" as a writer: file rows are only written by seedFromConfig', () => {
    const s = fresh();
    expect(() => s.putCluster(cluster('a'), { actor: 'x', owner: 'file' as never })).toThrow(TypeError);
  });

  it('state survives close and reopen', () => {
    const dir = tempDir();
    const s = openStore(dir);
    s.putCluster(cluster('a', [endpoint('10.0.0.1')]), API);
    s.setEndpointState('a', '10.0.0.1', 8080, 'draining', { actor: 'bob' });
    const before = s.catalog();
    s.close();
    const t = fresh(dir);
    expect(t.catalog()).toEqual(before);
    expect(t.revision()).toBe(2);
    expect(t.putCluster(cluster('b'), API).revision).toBe(3);
  });
});

describe('optimistic concurrency (If-Match)', () => {
  it('a stale revision throws ConflictError and writes nothing: no row change, no audit, no event', () => {
    const s = fresh();
    const r1 = s.putCluster(cluster('a', [endpoint('10.0.0.1')]), API).revision;
    const r2 = s.putCluster(cluster('a', [endpoint('10.0.0.1')], { connectTimeoutMs: 2 }), { ...API, ifMatch: r1 }).revision;
    expect(r2).toBeGreaterThan(r1);
    const events: StoreChange[] = [];
    s.onChange((e) => events.push(e));
    const snapshot = { cluster: s.getCluster('a'), audit: s.audit(), revision: s.revision() };

    const err = (() => {
      try {
        s.putCluster(cluster('a', [], { connectTimeoutMs: 3 }), { ...API, ifMatch: r1 });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConflictError);
    expect(err).toMatchObject({ status: 409, kind: 'cluster', resource: 'a', expected: r1, actual: r2 });
    expect(() => s.deleteCluster('a', { ...API, ifMatch: r1 })).toThrow(ConflictError);
    expect(() => s.putEndpoint('a', endpoint('10.0.0.1', 8080, { weight: 9 }), { ...API, ifMatch: r1 + 100 })).toThrow(ConflictError);
    expect(() => s.setEndpointState('a', '10.0.0.1', 8080, 'disabled', { actor: 'x', ifMatch: r2 + 1 })).toThrow(ConflictError);

    expect({ cluster: s.getCluster('a'), audit: s.audit(), revision: s.revision() }).toEqual(snapshot);
    expect(events).toEqual([]);

    // The current revision works.
    expect(s.deleteCluster('a', { ...API, ifMatch: r2 }).revision).toBe(r2 + 1);
  });

  it('ifMatch 0 means create-only; revisions are not reused after delete + re-create', () => {
    const s = fresh();
    const r1 = s.putListener(listener('l', 'x'), { ...API, ifMatch: 0 }).revision;
    expect(() => s.putListener(listener('l', 'x', 1), { ...API, ifMatch: 0 })).toThrow(/already exists/);
    s.deleteListener('l', API);
    const r3 = s.putListener(listener('l', 'x'), API).revision;
    expect(r3).toBeGreaterThan(r1);
    expect(() => s.putListener(listener('l', 'x', 2), { ...API, ifMatch: r1 })).toThrow(ConflictError);
    // If-Match on something that does not exist.
    expect(() => s.putCluster(cluster('ghost'), { ...API, ifMatch: 5 })).toThrow(/does not exist/);
  });
});

describe('config file vs API ownership', () => {
  it('seeds file-owned rows and makes the store catalog equal to the file catalog', () => {
    const s = fresh();
    const res = s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' });
    expect(res.conflicts).toEqual([]);
    expect(res.changes).toHaveLength(3 + 2 + 1);
    expect(sorted(s.catalog())).toEqual(sorted(fileCatalog(FILE_V1)));
    expect(s.listClusters().every((c) => c.owner === 'file')).toBe(true);
    // Re-applying an unchanged file is invisible.
    const rev = s.revision();
    const audits = s.audit().length;
    expect(s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' })).toEqual({ revision: rev, changes: [], conflicts: [] });
    expect(s.audit()).toHaveLength(audits);
  });

  it('file-owned resources are read-only through the API, except endpoint operator state', () => {
    const s = fresh();
    s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' });
    expect(() => s.putCluster(cluster('web'), API)).toThrow(OwnershipError);
    expect(() => s.putCluster(cluster('web'), API)).toThrow(/config file/);
    expect(() => s.deleteCluster('web', API)).toThrow(OwnershipError);
    expect(() => s.putEndpoint('web', endpoint('10.0.0.9'), API)).toThrow(OwnershipError);
    expect(() => s.removeEndpoint('web', '10.0.0.1', 80, API)).toThrow(OwnershipError);
    expect(() => s.putListener(listener('ingress', 'web'), API)).toThrow(OwnershipError);
    expect(() => s.deleteNodeGroup('edge', { actor: 'k8s', owner: 'kubernetes' })).toThrow(OwnershipError);
    // Draining a file-defined endpoint is allowed and survives a reload that keeps the endpoint.
    s.setEndpointState('web', '10.0.0.1', 80, 'draining', { actor: 'bob' });
    s.seedFromConfig(fileCatalog(FILE_V2), { actor: 'config-file' });
    expect(s.getEndpoint('web', '10.0.0.1', 80)).toMatchObject({ state: 'draining', weight: 5 });
  });

  it('a reload deletes file-owned resources the file dropped and never touches API-owned ones', () => {
    const s = fresh();
    s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' });
    s.putCluster(cluster('mine', [endpoint('10.1.0.1')]), API);
    s.putListener(listener('mine', 'mine', 20000), API);
    s.saveWeights('old', new Map([['10.0.2.1:80', 3]]));

    const res = s.seedFromConfig(fileCatalog(FILE_V2), { actor: 'config-file' });
    expect(res.conflicts).toEqual([]);
    expect(res.changes).toEqual(
      expect.arrayContaining([
        { kind: 'cluster', name: 'web', action: 'update' },
        { kind: 'cluster', name: 'fresh', action: 'create' },
        { kind: 'cluster', name: 'old', action: 'delete' },
        { kind: 'node-group', name: 'edge', action: 'delete' },
      ]),
    );
    expect(res.changes).toHaveLength(4);
    expect(s.getCluster('old')).toBeUndefined();
    expect(s.loadWeights().has('old')).toBe(false);
    expect(s.getCluster('mine')).toMatchObject({ owner: 'api', revision: 2 });
    expect(s.getListener('mine')).toMatchObject({ owner: 'api' });
    const names = s.catalog().clusters.map((c) => c.name);
    expect(names).toEqual(['fresh', 'mine', 'sticky', 'web']);
  });

  it('the API cannot create a name the file owns; a file name the API already owns is skipped and reported', () => {
    const s = fresh();
    s.putCluster(cluster('web', [endpoint('10.9.9.9')]), API);
    const res = s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' });
    expect(res.conflicts).toEqual([{ kind: 'cluster', name: 'web', owner: 'api' }]);
    expect(s.getCluster('web')).toMatchObject({ owner: 'api', endpoints: [expect.objectContaining({ address: '10.9.9.9' })] });
    expect(() => s.putCluster(cluster('sticky'), API)).toThrow(OwnershipError);
    // Handing the name over: delete it through the API, the next reload creates it from the file.
    s.deleteCluster('web', API);
    expect(s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' }).conflicts).toEqual([]);
    expect(s.getCluster('web')).toMatchObject({ owner: 'file', lbPolicy: 'LEAST_REQUEST' });
  });

  it('kubernetes and api do not edit each other', () => {
    const s = fresh();
    s.putCluster(cluster('k'), { actor: 'kubernetes', owner: 'kubernetes' });
    expect(() => s.putCluster(cluster('k'), API)).toThrow(/owned by the kubernetes source/);
    expect(() => s.putEndpoint('k', endpoint('10.0.0.1'), API)).toThrow(OwnershipError);
    s.putEndpoint('k', endpoint('10.0.0.1'), { actor: 'kubernetes', owner: 'kubernetes' });
    s.setEndpointState('k', '10.0.0.1', 8080, 'disabled', { actor: 'bob' });
    expect(s.catalog().clusters[0]!.endpoints).toEqual([]);
  });
});

describe('audit', () => {
  it('records actor, action, kind, name and before/after in the same transaction as the write', () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const dir = tempDir();
    const s = openStore(dir, { now: () => new Date((now += 1000)) });
    open.push(s);
    s.putCluster(cluster('a', [endpoint('10.0.0.1')]), API);
    s.putCluster(cluster('a', [endpoint('10.0.0.1')], { connectTimeoutMs: 250 }), { ...API, actor: 'bob' });
    s.setEndpointState('a', '10.0.0.1', 8080, 'draining', { actor: 'carol' });
    s.deleteCluster('a', API);

    const rows = s.audit();
    expect(rows.map((r) => [r.actor, r.action, r.kind, r.name, r.revision])).toEqual([
      ['alice', 'delete', 'cluster', 'a', 4],
      ['carol', 'set-state', 'endpoint', 'a/10.0.0.1:8080', 3],
      ['bob', 'update', 'cluster', 'a', 2],
      ['alice', 'create', 'cluster', 'a', 1],
    ]);
    const [del, state, upd, create] = rows as [(typeof rows)[0], (typeof rows)[0], (typeof rows)[0], (typeof rows)[0]];
    expect(create.before).toBeNull();
    expect(create.after).toMatchObject({ name: 'a', owner: 'api', revision: 1, connectTimeoutMs: 1000, endpoints: [{ address: '10.0.0.1' }] });
    expect(upd.before).toMatchObject({ connectTimeoutMs: 1000, revision: 1 });
    expect(upd.after).toMatchObject({ connectTimeoutMs: 250, revision: 2 });
    expect(state.before).toMatchObject({ state: 'active' });
    expect(state.after).toMatchObject({ state: 'draining', revision: 3 });
    expect(del.before).toMatchObject({ connectTimeoutMs: 250, revision: 3 });
    expect(del.after).toBeNull();
    expect(create.at).toBe('2026-01-01T00:00:01.000Z');

    // Paging and pruning.
    expect(s.audit(2).map((r) => r.revision)).toEqual([4, 3]);
    expect(s.audit(2, rows[1]!.id).map((r) => r.revision)).toEqual([2, 1]);
    expect(s.pruneAudit(1)).toBe(3);
    expect(s.audit().map((r) => r.revision)).toEqual([4]);
  });
});

describe('change events', () => {
  it('fire after commit, once per transaction, and a throwing listener does not undo the write', () => {
    const errors: unknown[] = [];
    const s = openStore(tempDir(), { onListenerError: (e) => errors.push(e) });
    open.push(s);
    const seen: Array<[StoreChange, number | undefined]> = [];
    const off = s.onChange((e) => {
      // Committed: a fresh connection already sees it.
      const other = new Database(s.file, { readonly: true });
      try {
        const row = other.prepare('SELECT revision FROM clusters WHERE name = ?').get('a') as { revision: number } | undefined;
        seen.push([e, row?.revision]);
      } finally {
        other.close();
      }
    });
    s.onChange(() => {
      throw new Error('boom');
    });
    s.putCluster(cluster('a'), API);
    expect(() => s.putCluster(cluster('a'), { ...API, ifMatch: 99 })).toThrow(ConflictError);
    s.seedFromConfig(fileCatalog(FILE_V1), { actor: 'config-file' });
    expect(seen.map(([e, r]) => [e.revision, e.actor, e.changes.length, r])).toEqual([
      [1, 'alice', 1, 1],
      [2, 'config-file', 6, 1],
    ]);
    expect(errors).toHaveLength(2);
    off();
    s.deleteCluster('a', API);
    expect(seen).toHaveLength(2);
  });
});

describe('published weights', () => {
  it('round-trips, replaces per cluster, and survives reopen', () => {
    const dir = tempDir();
    const s = openStore(dir);
    s.saveWeights('web', new Map([['10.0.0.1:80', 10], ['10.0.0.2:80', 30]]));
    s.saveAllWeights(new Map([['api', new Map([['[::1]:81', 1]])]]));
    s.saveWeights('web', new Map([['10.0.0.2:80', 25]]));
    expect(s.revision()).toBe(0); // derived state: no revision, no audit
    expect(s.audit()).toEqual([]);
    s.close();
    const t = fresh(dir);
    expect(t.loadWeights()).toEqual(
      new Map([
        ['api', new Map([['[::1]:81', 1]])],
        ['web', new Map([['10.0.0.2:80', 25]])],
      ]),
    );
    expect(() => t.saveWeights('web', new Map([['x', 1.5]]))).toThrow();
    expect(t.loadWeights().get('web')).toEqual(new Map([['10.0.0.2:80', 25]])); // failed save rolled back
  });
});
