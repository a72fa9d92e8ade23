import { describe, expect, it } from 'vitest';
import { WriteLanes } from '../../src/catalog/store/write-lanes.js';

/** A task that finishes when told to, recording when it started. */
function gate(log: string[], name: string): { task: () => Promise<string>; open: () => void; fail: (err: Error) => void } {
  let open = (): void => undefined;
  let fail = (_err: Error): void => undefined;
  const task = () =>
    new Promise<string>((resolve, reject) => {
      log.push(`start ${name}`);
      open = () => resolve(name);
      fail = reject;
    });
  return { task, open: () => open(), fail: (err) => fail(err) };
}

const turn = () => new Promise((r) => setImmediate(r));

describe('write lanes', () => {
  it('runs a lane\'s tasks one after another, in order, and other lanes beside them', async () => {
    const lanes = new WriteLanes();
    const log: string[] = [];
    const [a1, a2, b1] = [gate(log, 'a1'), gate(log, 'a2'), gate(log, 'b1')];
    const p1 = lanes.run('a', a1.task);
    const p2 = lanes.run('a', a2.task);
    const p3 = lanes.run('b', b1.task);
    await turn();
    expect(log).toEqual(['start a1', 'start b1']);
    a1.open();
    expect(await p1).toBe('a1');
    await turn();
    expect(log).toEqual(['start a1', 'start b1', 'start a2']);
    a2.open();
    b1.open();
    expect(await Promise.all([p2, p3])).toEqual(['a2', 'b1']);
    await turn();
    expect(lanes.size).toBe(0);
  });

  it('a failed task rejects its own promise only; the next in its lane still runs', async () => {
    const lanes = new WriteLanes();
    const log: string[] = [];
    const [x, y] = [gate(log, 'x'), gate(log, 'y')];
    const px = lanes.run('a', x.task);
    const py = lanes.run('a', y.task);
    await turn();
    x.fail(new Error('lost'));
    await expect(px).rejects.toThrow('lost');
    await turn();
    expect(log).toEqual(['start x', 'start y']);
    y.open();
    expect(await py).toBe('y');
  });

  it('a task that throws at once is a rejection, not an exception of run', async () => {
    const lanes = new WriteLanes();
    const p = lanes.run('a', () => Promise.reject(new Error('refused')));
    await expect(p).rejects.toThrow('refused');
    expect(await lanes.run('a', () => Promise.resolve(1))).toBe(1);
  });
});
