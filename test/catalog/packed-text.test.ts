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

  it('keeps multi-byte and surrogate-pair characters whole across the segments zlib is handed', async () => {
    // 64 Ki UTF-16 units per segment: a pair straddling each boundary, in a text of several segments.
    const unit = 64 * 1024;
    for (const shift of [0, 1, 2]) {
      const filler = 'é'.repeat(unit - 1 - shift);
      const text = `${filler}😀${'a'.repeat(unit - 3)}😀✓${'ü'.repeat(2 * unit + 5)}`;
      const p = await packText(text);
      expect(unpackText(p.packed, p.bytes)).toBe(text);
      expect(p.bytes).toBe(Buffer.byteLength(text, 'utf8'));
    }
  });

  it('packs texts of many pieces, several packers at once', async () => {
    const texts = Array.from({ length: 4 }, (_, k) => Array.from({ length: 9_000 }, (_, i) => JSON.stringify({ k, i, zone: 'zoné-✓' })));
    const packed = await Promise.all(texts.map((t) => packJoined(head, head.length - 2, t, () => new Promise((r) => setImmediate(r)))));
    packed.forEach((p, k) => {
      const expected = `${head.slice(0, -2)}${(texts[k] as string[]).join(',')}]}`;
      expect(unpackText(p.packed, p.bytes)).toBe(expected);
      expect(p.bytes).toBe(Buffer.byteLength(expected, 'utf8'));
    });
  });

  it('allocates scratch buffers and the deflated output, not a buffer per piece and a copy of the whole', async () => {
    // ~4.6 MB, a 20k-endpoint record's text: before, ~9 MB of ArrayBuffers (bench/RESULTS.md "external22").
    const many = Array.from({ length: 20_000 }, (_, i) => JSON.stringify({ address: `10.1.${i >> 8}.${i & 255}`, port: 8080, weight: 1 + (i % 9), priority: 0, health: 'HEALTHY', locality: { region: 'eu-west-1', zone: `eu-west-1${'abc'[i % 3]}`, subZone: '' }, metadata: { pad: 'x'.repeat(100) } }));
    const before = process.memoryUsage().arrayBuffers;
    const p = await packJoined(head, head.length - 2, many, () => Promise.resolve());
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(p.bytes).toBeGreaterThan(4_000_000);
    // Garbage not yet collected counts too, so this bounds what the packing allocated.
    expect(grown).toBeLessThan(p.bytes / 4);
  });

  it('a zlib failure with writes pending rejects the add and the pack (never hangs); a second add meanwhile is refused', async () => {
    const packer = new TextPacker();
    const first = packer.add('a'.repeat(200_000));
    await expect(packer.add('b')).rejects.toThrow(/previous add/);
    await first;
    // zlib reports an error for a write in flight, as its native handle does (onerror, and the
    // write's own callback never called): Node then calls no pending write's callback either.
    const deflater = (packer as unknown as { stream(): { _handle: { write: (...args: unknown[]) => void; onerror: (m: string, errno: number, code: string) => void } } }).stream();
    const handle = deflater._handle;
    handle.write = function failing(this: typeof handle) {
      setImmediate(() => this.onerror('zlib failed', -2, 'Z_STREAM_ERROR'));
    };
    await expect(packer.add('c'.repeat(5 * 65_536))).rejects.toThrow(/zlib failed/);
    await expect(packer.pack()).rejects.toThrow(/zlib failed/);
    // A caller's turn that fails mid-text gives its own error.
    await expect(packJoined(head, head.length - 2, items, () => Promise.reject(new Error('turn failed')))).rejects.toThrow(/turn failed/);
  });

  it('refuses to inflate more than the row says it holds, and a damaged row is an error, not a crash', async () => {
    const p = await packText(whole);
    expect(() => unpackText(p.packed, p.bytes - 1)).toThrow(/maxOutputLength|buffer|length/i);
    const damaged = Buffer.from(p.packed);
    damaged.fill(0xff, 10, 40);
    expect(() => unpackText(damaged, p.bytes)).toThrow();
  });
});
