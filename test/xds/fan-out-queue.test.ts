import { expect, test } from 'vitest';
import { FanOutQueue } from '../../src/xds/fan-out-queue.js';

interface Fake {
  readonly name: string;
  onCacheChange(): void;
}

/** A queue of slice `size` whose deferred turns run when `turn()` is called; `woken` logs wake-ups in order. */
function rig(size: number, closed: ReadonlySet<string> = new Set()) {
  const woken: string[] = [];
  const errors: string[] = [];
  const turns: (() => void)[] = [];
  const queue = new FanOutQueue<Fake>(
    size,
    (s) => !closed.has(s.name),
    (s, err) => void errors.push(`${s.name}: ${String(err)}`),
    (run) => void turns.push(run),
  );
  const stream = (name: string, fail = false): Fake => ({
    name,
    onCacheChange: () => {
      woken.push(name);
      if (fail) throw new Error('boom');
    },
  });
  const turn = (): boolean => {
    const run = turns.shift();
    run?.();
    return run !== undefined;
  };
  return { queue, woken, errors, stream, turn, pendingTurns: () => turns.length };
}

test('the first slice is woken at once, the rest a slice per turn, each stream once, in order', () => {
  const { queue, woken, stream, turn, pendingTurns } = rig(2);
  const s = ['a', 'b', 'c', 'd', 'e'].map((n) => stream(n));
  queue.wake(s);
  expect(woken).toEqual(['a', 'b']);
  expect(queue.size).toBe(3);
  expect(pendingTurns()).toBe(1);
  expect(turn()).toBe(true);
  expect(woken).toEqual(['a', 'b', 'c', 'd']);
  expect(turn()).toBe(true);
  expect(woken).toEqual(['a', 'b', 'c', 'd', 'e']);
  expect(queue.size).toBe(0);
  expect(turn()).toBe(false); // nothing left: no further turn was asked for
});

test('a fleet no larger than a slice is woken inside the change, with no deferred turn', () => {
  const { queue, woken, stream, pendingTurns } = rig(3);
  queue.wake([stream('a'), stream('b'), stream('c')]);
  expect(woken).toEqual(['a', 'b', 'c']);
  expect(pendingTurns()).toBe(0);
});

test('a change while streams wait: waiting ones keep their place (woken once), woken ones are queued again', () => {
  const { queue, woken, stream, turn } = rig(2);
  const [a, b, c, d] = [stream('a'), stream('b'), stream('c'), stream('d')] as const;
  queue.wake([a, b, c, d]); // a, b now; c, d wait
  queue.wake([a, c, d]); // a again after d; c and d once
  expect(queue.size).toBe(3);
  turn();
  expect(woken).toEqual(['a', 'b', 'c', 'd']);
  turn();
  expect(woken).toEqual(['a', 'b', 'c', 'd', 'a']);
  expect(queue.size).toBe(0);
});

test('closed streams are skipped and a failing wake-up does not stop the slice', () => {
  const { queue, woken, errors, stream, turn } = rig(2, new Set(['b']));
  queue.wake([stream('a', true), stream('b'), stream('c'), stream('d')]);
  turn();
  expect(woken).toEqual(['a', 'c', 'd']);
  expect(errors).toEqual(['a: Error: boom']);
});

test('work held with afterPush runs at once when idle, after the last slice when streams wait', () => {
  const { queue, woken, stream, turn } = rig(1);
  const ran: string[] = [];
  queue.afterPush(() => ran.push('idle'));
  expect(ran).toEqual(['idle']);
  queue.wake([stream('a'), stream('b'), stream('c')]);
  queue.afterPush(() => ran.push(`ack after ${woken.join('')}`));
  queue.afterPush(() => ran.push('second'));
  turn();
  expect(ran).toEqual(['idle']);
  turn();
  expect(ran).toEqual(['idle', 'ack after abc', 'second']);
});

test('clear forgets waiting streams and held work (the server stops)', () => {
  const { queue, woken, stream, turn } = rig(1);
  const ran: string[] = [];
  queue.wake([stream('a'), stream('b')]);
  queue.afterPush(() => ran.push('held'));
  queue.clear();
  turn();
  expect(woken).toEqual(['a']);
  expect(ran).toEqual([]);
  expect(queue.size).toBe(0);
});
