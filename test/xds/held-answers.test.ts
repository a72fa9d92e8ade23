import { describe, expect, it } from 'vitest';
import { HeldAnswers } from '../../src/xds/held-answers.js';

/** HeldAnswers in front of a queue that runs each task at once, held until `open()`. */
function heldUntilOpened() {
  const queued: string[] = [];
  let open!: () => void;
  const until = new Promise<void>((resolve) => (open = resolve));
  return { queued, held: new HeldAnswers({ push: (t) => t() }, until), open, until };
}

describe('HeldAnswers', () => {
  it('passes tasks straight on when nothing is awaited', () => {
    const queued: string[] = [];
    const held = new HeldAnswers({ push: (t) => t() }, undefined);
    held.push(() => queued.push('a'));
    expect(queued).toEqual(['a']);
  });

  it('holds tasks until the promise settles, then queues them in arrival order; later ones go straight on', async () => {
    const { queued, held, open, until } = heldUntilOpened();
    held.push(() => queued.push('a'));
    held.push(() => queued.push('b'));
    await Promise.resolve();
    expect(queued).toEqual([]);
    open();
    await until;
    await Promise.resolve();
    expect(queued).toEqual(['a', 'b']);
    held.push(() => queued.push('c'));
    expect(queued).toEqual(['a', 'b', 'c']);
  });

  it('a task dropped while held (its stream closed) is neither kept nor run', async () => {
    const { queued, held, open, until } = heldUntilOpened();
    held.push(() => queued.push('a'));
    const drop = held.push(() => queued.push('b'));
    expect(held.size).toBe(2);
    drop();
    expect(held.size).toBe(1);
    open();
    await until;
    await Promise.resolve();
    expect(queued).toEqual(['a']);
    expect(held.size).toBe(0);
  });

  it('a rejected promise releases them too (a proxy is never held for ever by a failure)', async () => {
    const queued: string[] = [];
    const until = Promise.reject(new Error('no'));
    const held = new HeldAnswers({ push: (t) => t() }, until);
    held.push(() => queued.push('a'));
    await until.catch(() => undefined);
    await Promise.resolve();
    expect(queued).toEqual(['a']);
  });
});
