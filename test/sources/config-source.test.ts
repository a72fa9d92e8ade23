import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import Database from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, StoreUnavailableError, type SeedResult } from '../../src/catalog/store/index.js';
import { WriteLane } from '../../src/catalog/store/write-lane.js';
import type { Catalog } from '../../src/catalog/types.js';
import { parseConfig } from '../../src/sources/config-file.js';
import { ConfigSource, type ReloadOutcome } from '../../src/sources/config-source.js';
import { waitFor } from '../support/wait.js';

function recorder(conflicts: SeedResult['conflicts'] = []) {
  const seeded: string[][] = [];
  const catalogs: Catalog[] = [];
  const logs: { level: string; msg: string; obj: object }[] = [];
  const outcomes: string[] = [];
  const log = (level: string) => (obj: object, msg: string) => void logs.push({ level, msg, obj });
  return {
    seeded,
    catalogs,
    logs,
    outcomes,
    options: {
      store: {
        seedFromConfig: (catalog: Catalog): SeedResult => {
          seeded.push(catalog.clusters.map((c) => c.name));
          catalogs.push(catalog);
          return { revision: 1, changes: [], conflicts };
        },
      },
      log: { info: log('info'), warn: log('warn'), error: log('error') },
      onReload: (o: ReloadOutcome) => void outcomes.push(o),
      settleMs: 10,
    },
  };
}

describe('ConfigSource', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A source on a file holding cluster `a`, seeding a SQLite store behind the write lane; started. */
  async function sourceOnStore() {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-source-'));
    const path = join(dir, 'fulcrum.yaml');
    await writeFile(path, 'clusters: [{ name: a }]\n');
    const store = new WriteLane(openStore(join(dir, 'data')));
    const r = recorder();
    const source = new ConfigSource(path, { ...r.options, store });
    await source.start();
    return { path, store, r, source };
  }

  it('seeds the store on start and on every valid edit; an invalid edit is logged, counted and ignored', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-source-'));
    const path = join(dir, 'fulcrum.yaml');
    await writeFile(path, 'clusters: [{ name: a }]\n');
    const r = recorder();
    const source = new ConfigSource(path, r.options);
    await source.start();
    try {
      expect(r.seeded).toEqual([['a']]);
      await writeFile(path, 'clusters: [{ name: b }]\n');
      await waitFor(() => r.seeded.length === 2, { what: 'edit seeded', timeoutMs: 20_000 });
      expect(r.seeded[1]).toEqual(['b']);
      await writeFile(path, 'clusters: [{ name: c, lbPolicy: NOPE }]\n');
      await waitFor(() => r.outcomes.includes('rejected'), { what: 'invalid edit counted', timeoutMs: 20_000 });
      expect(r.seeded).toHaveLength(2);
      expect(r.logs.find((l) => l.level === 'error')?.msg).toBe('config edit rejected; serving the last good config');
    } finally {
      source.stop();
    }
    // Stopped: edits are no longer read.
    await writeFile(path, 'clusters: [{ name: d }]\n');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(r.seeded).toHaveLength(2);
  });

  it('an edit the store could not take (etcd unreachable) is seeded again until it is, without another edit', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-source-'));
    const path = join(dir, 'fulcrum.yaml');
    await writeFile(path, 'clusters: [{ name: a }]\n');
    const r = recorder();
    let refusals = 0;
    const seed = r.options.store.seedFromConfig;
    const source = new ConfigSource(path, {
      ...r.options,
      retryMs: { initial: 20, max: 100 },
      store: {
        // The store answers 503 twice, as etcd does while it has no quorum, then takes writes again.
        seedFromConfig: (catalog: Catalog): SeedResult => {
          if (r.seeded.length === 1 && refusals < 2) {
            refusals++;
            throw new StoreUnavailableError('etcd unreachable or without quorum');
          }
          return seed(catalog);
        },
      },
    });
    await source.start();
    try {
      await writeFile(path, 'clusters: [{ name: b }]\n');
      await waitFor(() => r.seeded.length === 2, { what: 'the edit seeded once the store takes writes', timeoutMs: 20_000 });
      expect(refusals).toBe(2);
      expect(r.seeded[1]).toEqual(['b']);
      expect(r.logs.filter((l) => l.level === 'warn').map((l) => l.msg)).toContain('config reload could not be stored yet; retrying');
    } finally {
      source.stop();
    }
  });

  it('a reload the store refuses is counted store_failed once, however often retried, and ok only once stored', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-source-'));
    const path = join(dir, 'fulcrum.yaml');
    await writeFile(path, 'clusters: [{ name: a }]\n');
    const store = new WriteLane(openStore(join(dir, 'data'), { busyTimeoutMs: 20 }));
    const r = recorder();
    const source = new ConfigSource(path, { ...r.options, store, retryMs: { initial: 20, max: 40 } });
    await source.start();
    // Another process holds SQLite's write lock: every seed is refused (SQLITE_BUSY, 503).
    const other = new Database(join(dir, 'data', 'fulcrum.db'));
    other.exec('BEGIN IMMEDIATE');
    try {
      await writeFile(path, 'clusters: [{ name: b }]\n');
      const retried = (): number => r.logs.filter((l) => l.msg === 'config reload could not be stored yet; retrying').length;
      await waitFor(() => retried() >= 3, { what: 'the edit refused and retried', timeoutMs: 20_000 });
      expect(r.outcomes).toEqual(['store_failed']);
      other.exec('ROLLBACK');
      await waitFor(() => store.getCluster('b') !== undefined, { what: 'the edit stored once the lock is gone', timeoutMs: 20_000 });
      await waitFor(() => r.outcomes.length === 2, { what: 'the stored edit counted', timeoutMs: 20_000 });
      expect(r.outcomes).toEqual(['store_failed', 'ok']);
    } finally {
      source.stop();
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
      await store.close();
    }
  });

  it('a reload says which clusters and listeners were added, removed or changed, and warns when server: needs a restart', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-source-'));
    const path = join(dir, 'fulcrum.yaml');
    const listener = 'listeners: [{ name: front, port: 10000, routes: [{ prefix: /, cluster: a }] }]';
    await writeFile(path, `clusters: [{ name: a }, { name: b }]\n${listener}\n`);
    const r = recorder();
    const source = new ConfigSource(path, r.options);
    await source.start();
    try {
      await writeFile(path, `server: { xds: { port: 18001 } }\nclusters: [{ name: a, lbPolicy: RING_HASH }, { name: c }]\n${listener}\n`);
      await waitFor(() => r.seeded.length === 2, { what: 'edit seeded', timeoutMs: 20_000 });
      const reload = r.logs.find((l) => l.msg === 'config reloaded');
      expect(reload?.obj).toMatchObject({ changes: { clusters: { added: ['c'], removed: ['b'], changed: ['a'] } } });
      expect(reload?.obj).not.toHaveProperty('changes.listeners');
      expect(r.logs.find((l) => l.level === 'warn')).toMatchObject({ obj: { keys: ['server.xds'] }, msg: expect.stringContaining('only after a restart') });
      // An edit back to the same catalog says nothing changed; the server edit is still pending.
      await writeFile(path, `server: { xds: { port: 18001 } }\nclusters: [{ name: a, lbPolicy: RING_HASH }, { name: c }]\n${listener} # touched\n`);
      await waitFor(() => r.seeded.length === 3, { what: 'second edit seeded', timeoutMs: 20_000 });
      expect(r.logs.filter((l) => l.msg.startsWith('config reloaded')).at(-1)?.msg).toBe('config reloaded; no cluster, listener or node group changed');
      expect(r.logs.filter((l) => l.level === 'warn')).toHaveLength(2);
    } finally {
      source.stop();
    }
  });

  it("reuses the process's own read while the file is unchanged, and seeds an edit made since", async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-source-'));
    const path = join(dir, 'fulcrum.yaml');
    const text = 'clusters: [{ name: a }]\n';
    await writeFile(path, text);
    const started = { text, config: parseConfig(text, path) };
    const same = recorder();
    const first = new ConfigSource(path, { ...same.options, started });
    await first.start();
    first.stop();
    // The very catalog of the read it was given: not parsed again.
    expect(same.catalogs).toHaveLength(1);
    expect(same.catalogs[0]).toBe(started.config.catalog);
    // Edited between the process's read and the source's start: the file as it is now is seeded,
    // and the server section that changed is one that needs a restart.
    await writeFile(path, 'server: { xds: { port: 18001 } }\nclusters: [{ name: b }]\n');
    const edited = recorder();
    const second = new ConfigSource(path, { ...edited.options, started });
    await second.start();
    second.stop();
    expect(edited.seeded).toEqual([['b']]);
    expect(edited.logs.filter((l) => l.level === 'warn')).toMatchObject([{ obj: { keys: ['server.xds'] }, msg: expect.stringContaining('only after a restart') }]);
  });

  it('fails to start on an invalid file, seeding nothing', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-source-'));
    const path = join(dir, 'fulcrum.yaml');
    await writeFile(path, 'clusters: [{ name: a, lbPolicy: NOPE }]\n');
    const r = recorder();
    await expect(new ConfigSource(path, r.options).start()).rejects.toThrow(`${path}: /clusters/0/lbPolicy`);
    expect(r.seeded).toEqual([]);
  });

  it('warns about each name the file defines but another source owns', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-source-'));
    const path = join(dir, 'fulcrum.yaml');
    await writeFile(path, 'clusters: [{ name: a }]\n');
    const r = recorder([{ kind: 'cluster', name: 'a', owner: 'api' }]);
    const source = new ConfigSource(path, r.options);
    await source.start();
    source.stop();
    expect(r.logs.filter((l) => l.level === 'warn')).toEqual([
      { level: 'warn', obj: { kind: 'cluster', name: 'a', owner: 'api' }, msg: "config file defines a name another source owns; keeping that source's version" },
    ]);
  });

  it('a name the file defines but the API owned is handed to the file when the API deletes it, without another edit', async () => {
    const { path, store, r, source } = await sourceOnStore();
    try {
      const endpoint = { address: '10.0.0.1', port: 80, weight: 1, priority: 0, locality: { region: '', zone: '', subZone: '' }, health: 'HEALTHY' as const };
      await store.putCluster({ name: 'x', lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, http2: false, weighting: { kind: 'static' }, endpoints: [endpoint] }, { actor: 'alice', owner: 'api' });
      await writeFile(path, 'clusters: [{ name: a }, { name: x, endpoints: [{ address: 10.9.9.9, port: 81 }] }]\n');
      await waitFor(() => r.logs.some((l) => l.level === 'warn'), { what: 'the conflict warned about', timeoutMs: 20_000 });
      expect(store.getCluster('x')?.owner).toBe('api');
      // What the API's delete writes in x's place (the file's own a is no hand-over).
      expect(source.takeoverOf('x')).toEqual({ cluster: expect.objectContaining({ name: 'x', endpoints: [expect.objectContaining({ address: '10.9.9.9', port: 81 })] }), actor: 'config-file' });
      expect(source.takeoverOf('a')).toBeUndefined();
      // README: "delete it through the API to hand the name to the file". Without the successor
      // (another writer than the API routes), the seed that follows the delete still hands it over.
      await store.deleteCluster('x', { actor: 'alice', owner: 'api' });
      await waitFor(() => store.getCluster('x')?.owner === 'file', { what: "the file's x stored", timeoutMs: 20_000 });
      expect(store.getCluster('x')?.endpoints.map((e) => `${e.address}:${e.port}`)).toEqual(['10.9.9.9:81']);
    } finally {
      source.stop();
      await store.close();
    }
  });

  it("gives the API's delete of a listener the file defines too the file's definition, and not for a listener refused a socket", async () => {
    const { path, store, r, source } = await sourceOnStore();
    try {
      const route = { domain: '*', prefix: '/', cluster: 'a' };
      await store.putListener({ name: 'edge', kind: 'socket', address: '::', port: 10005, routes: [route] }, { actor: 'alice', owner: 'api' });
      await store.putListener({ name: 'api', kind: 'socket', address: '::', port: 10000, routes: [route] }, { actor: 'alice', owner: 'api' });
      const listeners = '[{ name: edge, port: 10006, routes: [{ cluster: a }] }, { name: ingress, address: "0::0", port: 10000, routes: [{ cluster: a }] }]';
      await writeFile(path, `clusters: [{ name: a }]\nlisteners: ${listeners}\n`);
      await waitFor(() => r.logs.filter((l) => l.level === 'warn').length === 2, { what: 'both conflicts warned about', timeoutMs: 20_000 });
      expect(source.listenerTakeoverOf('edge')).toEqual({ listener: expect.objectContaining({ name: 'edge', port: 10006 }), actor: 'config-file' });
      // A socket's conflict (SeedConflict.boundBy) is no name another source owns; nor is edge a cluster.
      expect(source.listenerTakeoverOf('ingress')).toBeUndefined();
      expect(source.takeoverOf('edge')).toBeUndefined();
    } finally {
      source.stop();
      await store.close();
    }
  });

  it('a file listener refused the socket of an API listener is applied, without another edit, once that listener moves', async () => {
    const { path, store, r, source } = await sourceOnStore();
    try {
      const route = { domain: '*', prefix: '/', cluster: 'a' };
      await store.putListener({ name: 'api', kind: 'socket', address: '::', port: 10000, routes: [route] }, { actor: 'alice', owner: 'api' });
      await writeFile(path, 'clusters: [{ name: a }]\nlisteners: [{ name: ingress, address: "0::0", port: 10000, routes: [{ domain: "*", prefix: /, cluster: a }] }]\n');
      await waitFor(() => r.logs.some((l) => l.level === 'warn'), { what: 'the socket conflict warned about', timeoutMs: 20_000 });
      expect(store.listListeners().map((l) => l.name)).toEqual(['api']);
      await store.putListener({ name: 'api', kind: 'socket', address: '::', port: 10001, routes: [route] }, { actor: 'alice', owner: 'api' });
      await waitFor(() => store.listListeners().some((l) => l.name === 'ingress' && l.owner === 'file'), { what: "the file's listener stored", timeoutMs: 20_000 });
    } finally {
      source.stop();
      await store.close();
    }
  });

  it('applies a large file\'s edit through the store, handing unchanged clusters over as the objects seeded before', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-source-'));
    const path = join(dir, 'fulcrum.yaml');
    // 3 × 600 endpoints, past the write lane's sliced size (and the worker parse's 64 KiB).
    const file = (weight: number): string => {
      const lines = ['clusters:'];
      for (let c = 0; c < 3; c++) {
        lines.push(`  - name: c${c}`, '    endpoints:');
        for (let e = 0; e < 600; e++) lines.push(`      - { address: 10.${c}.${e >> 8}.${e & 255}, port: 8080, weight: ${c === 1 && e === 0 ? weight : 1} }`);
      }
      return `${lines.join('\n')}\n`;
    };
    await writeFile(path, file(1));
    const store = new WriteLane(openStore(join(dir, 'data')));
    const given: Catalog[] = [];
    const starts: boolean[] = [];
    const source = new ConfigSource(path, {
      store: { seedFromConfig: (catalog, opts) => (given.push(catalog), starts.push(opts.atStart === true), store.seedFromConfig(catalog, opts)) },
      log: { info: () => undefined, warn: () => undefined, error: () => undefined },
      settleMs: 10,
    });
    await source.start();
    try {
      expect(store.getCluster('c1')?.endpoints[0]?.weight).toBe(1);
      await writeFile(path, file(7));
      await waitFor(() => store.getCluster('c1')?.endpoints[0]?.weight === 7, { what: 'edit stored', timeoutMs: 30_000 });
      const [first, edit] = given as [Catalog, Catalog];
      expect(edit.clusters[0]).toBe(first.clusters[0]);
      expect(edit.clusters[2]).toBe(first.clusters[2]);
      expect(edit.clusters[1]).not.toBe(first.clusters[1]);
      // The start's seed may be written in one go (nothing is served yet), the edit's not.
      expect(starts).toEqual([true, false]);
      // Only the edited cluster was written.
      expect(store.audit(5).filter((a) => a.revision > 1).map((a) => a.name)).toEqual(['c1']);
    } finally {
      source.stop();
      await store.close();
    }
  });

  it('stops watching the file when its start fails, so nothing keeps the process alive', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fulcrum-source-'));
    const path = join(dir, 'fulcrum.yaml');
    await writeFile(path, 'clusters: [{ name: a }]\n');
    const watches = (): number => process.getActiveResourcesInfo().filter((r) => r === 'FSEventWrap').length;
    const before = watches();
    const source = new ConfigSource(path, {
      store: { seedFromConfig: () => Promise.reject(new Error('etcd unavailable')) },
      log: { info: () => undefined, warn: () => undefined, error: () => undefined },
      settleMs: 10,
    });
    await expect(source.start()).rejects.toThrow('etcd unavailable');
    // A closed watch leaves the list once its handle has closed (a turn or two later).
    await waitFor(() => watches() === before, { what: 'the file watch closed', timeoutMs: 10_000 });
  });
});
