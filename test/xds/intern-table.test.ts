import { describe, expect, it } from 'vitest';
import { InternTable } from '../../src/xds/intern-table.js';

describe('InternTable', () => {
  it('hands out one value per key while it is held', () => {
    const t = new InternTable<{ n: number }>(100);
    let made = 0;
    const a = t.get('names', () => ({ n: ++made }));
    expect(t.get('names', () => ({ n: ++made }))).toBe(a);
    expect(made).toBe(1);
    expect(t.retainedChars).toBe(5);
  });

  it('never holds more key characters than its bound (plus one key): many large distinct keys start it over', () => {
    const max = 1 << 20;
    const t = new InternTable<string>(max);
    const big = 300_000;
    let peak = 0;
    const handedOut: string[] = [];
    for (let i = 0; i < 40; i++) {
      const key = `${i}:`.padEnd(big, 'x');
      handedOut.push(t.get(key, () => key));
      peak = Math.max(peak, t.retainedChars);
    }
    expect(peak).toBeLessThanOrEqual(max);
    expect(t.size).toBeLessThanOrEqual(Math.floor(max / big));
    // What was handed out before a restart is still the caller's (immutable, just no longer shared).
    expect(handedOut[0]?.startsWith('0:')).toBe(true);
  });
});
