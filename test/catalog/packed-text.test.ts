import { describe, expect, it } from 'vitest';
import { packJoined, packText, TextPacker, unpackText } from '../../src/catalog/store/packed-text.js';

describe('packed audit texts', () => {
  const items = Array.from({ length: 2_500 }, (_, i) => JSON.stringify({ address: `10.0.${i >> 8}.${i & 255}`, port: 8080, note: i % 7 === 0 ? 'zoné ✓' : '' }));
  const head = JSON.stringify({ name: 'big', endpoints: [] });
  const whole = `${head.slice(0, -2)}${items.join(',')}]}`;

  it('packs the joined text exactly, counts its UTF-8 octets, and yields between pieces', async () => {
    let turns = 0;
    const packed = await packJoined(head, head.length - 2, items, () => Promise.resolve(void turns++));
    expect(unpackText(packed.packed, packed.bytes)).toBe(whole);
    expect(packed.bytes).toBe(Buffer.byteLength(whole, 'utf8'));
    expect(packed.bytes).toBeGreaterThan(whole.length); // the non-ASCII notes
    expect(packed.packed.length).toBeLessThan(packed.bytes / 5);
    expect(turns).toBe(2); // three pieces of 1,000 items
    for (const none of [[], [items[0] as string]]) {
      const p = await packJoined(head, head.length - 2, none, () => Promise.resolve());
      expect(JSON.parse(unpackText(p.packed, p.bytes))).toEqual({ name: 'big', endpoints: none.map((x) => JSON.parse(x) as unknown) });
    }
  });

  it('packs a whole text, and an empty packer gives an empty text', async () => {
    const p = await packText(whole);
    expect(unpackText(p.packed, p.bytes)).toBe(whole);
    const empty = await new TextPacker().pack();
    expect(empty.bytes).toBe(0);
    expect(unpackText(empty.packed, empty.bytes)).toBe('');
  });

  it('refuses to inflate more than the row says it holds, and a damaged row is an error, not a crash', async () => {
    const p = await packText(whole);
    expect(() => unpackText(p.packed, p.bytes - 1)).toThrow(/maxOutputLength|buffer|length/i);
    const damaged = Buffer.from(p.packed);
    damaged.fill(0xff, 10, 40);
    expect(() => unpackText(damaged, p.bytes)).toThrow();
  });
});
