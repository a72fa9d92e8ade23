/**
 * A write the SQLite store fails (its fsync, another connection's lock, a full disk) answers with
 * what happened, not a bare "internal error": the operator must know whether to retry, and
 * whether the change was applied.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { buildAdminApp, type AdminApp } from '../../src/admin/app.js';
import { openStore } from '../../src/catalog/store/index.js';
import { storeFailure } from '../../src/catalog/store/sqlite-failures.js';
import { WriteLane } from '../../src/catalog/store/write-lane.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { XdsCache } from '../../src/xds/cache.js';
import { ProxyRegistry } from '../../src/xds/proxy-status.js';
import { cleanupTempDirs, tempDir } from '../catalog/helpers.js';

afterAll(cleanupTempDirs);

function appOver(lane: WriteLane): AdminApp {
  return buildAdminApp({
    registry: new ProxyRegistry(),
    cache: new XdsCache(),
    metrics: new Metrics({ processMetrics: false }),
    ready: () => ({ ready: true, reasons: [] }),
    store: lane,
  });
}

const PUT_WEB = { method: 'PUT', url: '/v1/clusters/web', payload: { endpoints: [{ address: '10.0.0.1', port: 80 }] } } as const;

describe('store failures through the admin API', () => {
  const closing: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const close of closing.splice(0).reverse()) await close();
  });

  it('a write whose fsync fails says it is applied and served but not known durable', async () => {
    const lane = new WriteLane(openStore(tempDir(), { flushWal: () => Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })) }));
    const app = appOver(lane);
    closing.push(() => lane.close(), () => app.close());
    const res = await app.inject(PUT_WEB);
    expect(res.statusCode).toBe(500);
    expect(res.json()).toMatchObject({ code: 'NOT_DURABLE' });
    expect(res.json().message).toContain('the change is applied and served, but the store could not make it durable');
    expect(res.json().message).toContain('EIO');
  });

  it('a write SQLite refuses (another process holds its write lock) answers 503 with the cause, and writes nothing', async () => {
    const dir = tempDir();
    const lane = new WriteLane(openStore(dir, { busyTimeoutMs: 20 }));
    const app = appOver(lane);
    const other = new Database(join(dir, 'fulcrum.db'));
    closing.push(() => lane.close(), () => app.close(), () => void other.close());
    other.exec('BEGIN IMMEDIATE');
    const res = await app.inject(PUT_WEB);
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(res.json().message).toMatch(/SQLITE_BUSY/);
    expect(res.json().message).toContain('nothing was written');
    other.exec('ROLLBACK');
    expect((await app.inject({ method: 'GET', url: '/v1/clusters/web' })).statusCode).toBe(404);
    expect((await app.inject(PUT_WEB)).statusCode).toBe(201);
  });

  it('names a full disk, a read-only or failing file, and leaves other errors as they are', () => {
    const sqlite = (message: string, code: string) => new Database.SqliteError(message, code);
    expect(String(storeFailure(sqlite('database or disk is full', 'SQLITE_FULL')))).toMatch(/the disk is full .*SQLITE_FULL.*nothing was written/);
    expect(String(storeFailure(sqlite('attempt to write a readonly database', 'SQLITE_READONLY')))).toMatch(/SQLITE_READONLY.*nothing was written/);
    expect(String(storeFailure(sqlite('disk I/O error', 'SQLITE_IOERR_WRITE')))).toMatch(/SQLITE_IOERR_WRITE.*nothing was written/);
    const bug = new TypeError('x is undefined');
    expect(storeFailure(bug)).toBe(bug);
    const constraint = sqlite('CHECK constraint failed', 'SQLITE_CONSTRAINT_CHECK');
    expect(storeFailure(constraint)).toBe(constraint);
  });
});
