import { expect, test } from 'vitest';
import { InitialSyncQueue } from '../../src/xds/initial-sync-queue.js';

/** A queue on a fake clock whose deferred turns run when `turn()` is called. */
function rig(budgetMs: number) {
  let now = 0;
  const turns: (() => void)[] = [];
  const queue = new InitialSyncQueue(budgetMs, () => now, (run) => void turns.push(run));
  return {
    queue,
    advance: (ms: number) => void (now += ms),
    turn: (): boolean => {
      const run = turns.shift();
      run?.();
      return run !== undefined;
    },
  };
}

test('tasks run in order, a budget of them per loop turn, and the rest on later turns', () => {
  const { queue, advance, turn } = rig(10);
  const ran: number[] = [];
  for (let i = 0; i < 10; i++) queue.push(() => {
    ran.push(i);
    advance(4); // each first response takes 4 ms
  });
  expect(ran).toEqual([]); // nothing runs in the I/O phase that queued it
  expect(turn()).toBe(true);
  expect(ran).toEqual([0, 1, 2]); // 0, 4, 8 ms started within the 10 ms budget
  expect(queue.waiting).toBe(7);
  while (turn());
  expect(ran).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  expect(queue.waiting).toBe(0);
});

test('a task slower than the budget still runs, one per turn; a task pushed later starts a new turn', () => {
  const { queue, advance, turn } = rig(1);
  const ran: string[] = [];
  queue.push(() => {
    ran.push('slow');
    advance(50);
  });
  queue.push(() => ran.push('next'));
  turn();
  expect(ran).toEqual(['slow']);
  turn();
  expect(ran).toEqual(['slow', 'next']);
  expect(turn()).toBe(false);
  queue.push(() => ran.push('later'));
  expect(turn()).toBe(true);
  expect(ran).toEqual(['slow', 'next', 'later']);
});
