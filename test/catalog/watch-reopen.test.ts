import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Watcher } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { reopenWhenStuck } from '../../src/catalog/store/watch-reopen.js';
import { waitFor } from '../support/wait.js';

/** A watcher as etcd3 makes one: an emitter holding its manager. */
function watcherOn(state: number): { watcher: Watcher; failures: Error[]; manager: { state: number } } {
  const failures: Error[] = [];
  const manager = { state, handleError: (err: Error) => failures.push(err) };
  const watcher = Object.assign(new EventEmitter(), { manager }) as unknown as Watcher;
  return { watcher, failures, manager };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a watch stream that does not come back', () => {
  it('is failed through its manager once disconnected longer than the wait, and again while it stays so', async () => {
    const { watcher, failures } = watcherOn(2);
    reopenWhenStuck(watcher, 20);
    watcher.emit('disconnected', new Error('keepalive'));
    await waitFor(() => failures.length >= 2, { what: 'two reopenings', timeoutMs: 2_000, intervalMs: 5 });
    expect(failures[0]?.message).toMatch(/not connected again within 20 ms/);
    watcher.emit('connected', {});
    const seen = failures.length;
    await pause(80);
    expect(failures).toHaveLength(seen);
  });

  it('is left alone when it connects in time, while its manager waits out a back-off, and once ended', async () => {
    const quick = watcherOn(2);
    reopenWhenStuck(quick.watcher, 40);
    quick.watcher.emit('disconnected', new Error('x'));
    quick.watcher.emit('connected', {});
    const idle = watcherOn(0);
    reopenWhenStuck(idle.watcher, 20);
    idle.watcher.emit('disconnected', new Error('x'));
    const ended = watcherOn(2);
    reopenWhenStuck(ended.watcher, 20);
    ended.watcher.emit('disconnected', new Error('x'));
    ended.watcher.emit('end');
    await pause(120);
    expect([quick.failures, idle.failures, ended.failures]).toEqual([[], [], []]);
  });

  it('reaches what etcd3 has: a watcher keeps its manager, whose handleError ends the stream (a new etcd3 must keep this, or the wait above never fires)', () => {
    const require = createRequire(import.meta.url);
    const lib = require('etcd3/lib/watch') as { Watcher: new (m: object, ns: object, req: object) => { manager: unknown }; WatchManager: { prototype: Record<string, unknown> } };
    const manager = { attach: () => undefined };
    expect(new lib.Watcher(manager, { unprefix: (k: unknown) => k }, {}).manager).toBe(manager);
    expect(typeof lib.WatchManager.prototype.handleError).toBe('function');
  });
});
