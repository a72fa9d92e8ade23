import { describe, expect, it } from 'vitest';
import { component, Lifecycle, type Component } from '../../src/runtime/lifecycle.js';

/** A component that records its starts and stops in `log`, and can be told to fail either. */
function part(name: string, log: string[], fail: { start?: boolean; stop?: boolean } = {}): Component {
  return {
    name,
    start: async () => {
      await Promise.resolve();
      if (fail.start) throw new Error(`${name} cannot start`);
      log.push(`start ${name}`);
    },
    stop: () => {
      log.push(`stop ${name}`);
      if (fail.stop) throw new Error(`${name} cannot stop`);
    },
  };
}

describe('Lifecycle', () => {
  it('starts components in order and stops them in reverse', async () => {
    const log: string[] = [];
    const life = new Lifecycle(() => undefined);
    await life.start(part('a', log), part('b', log));
    await life.start(part('c', log));
    expect(life.running).toEqual(['a', 'b', 'c']);
    await life.stop();
    expect(log).toEqual(['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
    expect(life.running).toEqual([]);
  });

  it('a failed start stops exactly what had started, in reverse, and rethrows the start error', async () => {
    const log: string[] = [];
    const life = new Lifecycle(() => undefined);
    await life.start(part('store', log));
    await expect(life.start(part('a', log), part('b', log, { start: true }), part('c', log))).rejects.toThrow('b cannot start');
    expect(log).toEqual(['start store', 'start a', 'stop a', 'stop store']);
    expect(life.running).toEqual([]);
  });

  it('a failing stop is reported and does not keep the others from stopping', async () => {
    const log: string[] = [];
    const failures: string[] = [];
    const life = new Lifecycle((name, err) => failures.push(`${name}: ${(err as Error).message}`));
    await life.start(part('a', log), part('b', log, { stop: true }), part('c', log));
    await life.stop();
    expect(log.filter((l) => l.startsWith('stop'))).toEqual(['stop c', 'stop b', 'stop a']);
    expect(failures).toEqual(['b: b cannot stop']);
  });

  it('stops each component once, however often stop is called', async () => {
    const log: string[] = [];
    const life = new Lifecycle(() => undefined);
    await life.start(part('a', log));
    await Promise.all([life.stop(), life.stop()]);
    await life.stop();
    expect(log).toEqual(['start a', 'stop a']);
  });

  it('guard stops what started when building the next components throws', async () => {
    const log: string[] = [];
    const life = new Lifecycle(() => undefined);
    await life.start(part('store', log));
    await expect(life.guard(() => { throw new Error('bad settings'); })).rejects.toThrow('bad settings');
    expect(log).toEqual(['start store', 'stop store']);
    expect(await new Lifecycle(() => undefined).guard(() => 42)).toBe(42);
  });

  it('component() keeps the methods bound to their object', async () => {
    class Counter {
      n = 0;
      start(): void {
        this.n++;
      }
      async stop(): Promise<void> {
        this.n--;
      }
    }
    const counter = new Counter();
    const c = component('counter', counter);
    await c.start();
    expect(counter.n).toBe(1);
    await c.stop();
    expect(counter.n).toBe(0);
    expect(c.name).toBe('counter');
  });
});
