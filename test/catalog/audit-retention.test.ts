import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { AuditRetention } from '../../src/catalog/audit-retention.js';
import { auditKeepLastOf } from '../../src/catalog/store/store-config.js';
import { toStoreConfig } from '../../src/sources/store-schema.js';

/** A log of `entries` ids 1..n that prunes as the stores do; records each call and the turns taken between. */
function fakeLog(entries: number) {
  const ids = Array.from({ length: entries }, (_, i) => i + 1);
  const calls: string[] = [];
  return {
    ids,
    calls,
    store: {
      pruneAudit(keepLast: number, maxRows: number): number {
        const n = Math.min(Math.max(0, ids.length - keepLast), maxRows);
        ids.splice(0, n);
        calls.push(`prune ${n}`);
        return n;
      },
    },
    turn: async () => void calls.push('turn'),
  };
}

const log = pino({ level: 'silent' });

describe('AuditRetention', () => {
  it('deletes the oldest beyond keepLast in batches, a turn of the event loop between two', async () => {
    const f = fakeLog(25);
    const r = new AuditRetention({ store: f.store, keepLast: 5, batch: 8, log, turn: f.turn });
    expect(await r.run()).toBe(20);
    expect(f.ids).toEqual([21, 22, 23, 24, 25]);
    expect(f.calls).toEqual(['prune 8', 'turn', 'prune 8', 'turn', 'prune 4']);
    expect(await r.run()).toBe(0);
  });

  it('keepLast 0 keeps everything: start prunes nothing', async () => {
    const f = fakeLog(10);
    const r = new AuditRetention({ store: f.store, keepLast: 0, log });
    r.start();
    await r.stop();
    expect(f.calls).toEqual([]);
  });

  it('a failing store is retried at the next pass', async () => {
    let fail = true;
    const f = fakeLog(10);
    const store = { pruneAudit: (k: number, m: number) => (fail ? Promise.reject(new Error('etcd unreachable')) : f.store.pruneAudit(k, m)) };
    const r = new AuditRetention({ store, keepLast: 4, log, turn: f.turn });
    expect(await r.run()).toBe(0);
    fail = false;
    expect(await r.run()).toBe(6);
  });

  it('by default keeps 100,000 entries on SQLite and 10,000 on etcd (every replica holds them in memory), or what store.auditKeepLast says', () => {
    expect(auditKeepLastOf(toStoreConfig(undefined))).toBe(100_000);
    expect(auditKeepLastOf(toStoreConfig({ kind: 'etcd', etcd: { endpoints: ['http://127.0.0.1:2379'] } }))).toBe(10_000);
    expect(auditKeepLastOf(toStoreConfig({ kind: 'sqlite', auditKeepLast: 0 }))).toBe(0);
    expect(auditKeepLastOf(toStoreConfig({ kind: 'etcd', etcd: { endpoints: ['http://127.0.0.1:2379'] }, auditKeepLast: 500 }))).toBe(500);
  });
});
