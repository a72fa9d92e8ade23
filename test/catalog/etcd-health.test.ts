import { describe, expect, it } from 'vitest';
import type { StoreHealth } from '../../src/catalog/store/index.js';
import { EtcdHealth } from '../../src/catalog/store/etcd-health.js';

describe('EtcdHealth', () => {
  it('refuses writes after two failed probes or one failed write, and comes back at the next good probe', async () => {
    let answer: Error | undefined;
    const changes: StoreHealth[] = [];
    const h = new EtcdHealth(async () => {
      if (answer) throw answer;
    }, { intervalMs: 60_000, timeoutMs: 1_000, onChange: (x) => changes.push(x) });
    expect(h.current).toEqual({ writable: false, reason: 'not connected to etcd yet' });
    await h.check();
    expect(h.current).toEqual({ writable: true });
    expect(changes).toEqual([]); // starting is not a recovery

    answer = new Error('etcdserver: no leader\nstack');
    await h.check();
    expect(h.current.writable).toBe(true); // one failed probe: a member may just have died
    await h.check();
    expect(h.current).toMatchObject({ writable: false });
    expect(h.current.reason).toMatch(/^etcd unreachable or without quorum: etcdserver: no leader \(last answer \d+\.\d s ago\)$/);

    answer = undefined;
    await h.check();
    expect(h.current).toEqual({ writable: true });
    h.down('deadline exceeded');
    expect(h.current.writable).toBe(false);
    expect(changes.map((c) => c.writable)).toEqual([false, true, false]);
  });

  it('counts a probe that has not answered by its deadline as failed, while the client may still be retrying it', async () => {
    const pending: ((v: unknown) => void)[] = [];
    const h = new EtcdHealth(() => new Promise((resolve) => pending.push(resolve)), { intervalMs: 60_000, timeoutMs: 20 });
    h.up();
    await h.check();
    await h.check();
    expect(h.current).toMatchObject({ writable: false });
    expect(h.current.reason).toMatch(/^etcd unreachable or without quorum: no answer within 20 ms/);
    for (const answer of pending) answer(undefined); // answers after the deadline change nothing
    await Promise.resolve();
    expect(h.current.writable).toBe(false);
  });
});
