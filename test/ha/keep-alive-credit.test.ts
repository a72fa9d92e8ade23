import { describe, expect, it } from 'vitest';
import { KeepAliveCredit } from '../../src/ha/keep-alive-credit.js';

describe('keep-alive credit', () => {
  it('credits each answer to the oldest request unanswered', () => {
    const c = new KeepAliveCredit();
    c.fired(10);
    c.fired(20);
    expect(c.answered()).toBe(10);
    expect(c.answered()).toBe(20);
  });

  it('gives no credit for an answer to no known request, nor for requests on a broken stream', () => {
    const c = new KeepAliveCredit();
    expect(c.answered()).toBeUndefined();
    c.fired(10);
    c.restart();
    c.fired(30);
    expect(c.answered()).toBe(30);
    expect(c.answered()).toBeUndefined();
  });
});
