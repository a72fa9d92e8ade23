import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { comparableAddress, otherSpellingOf, SpellingIndex } from '../../src/catalog/address-spelling.js';

/** One IPv6 address (8 groups) written one of several ways Envoy accepts. */
function spell(groups: readonly number[], style: { full: boolean; upper: boolean; pad: boolean; v4: boolean }): string {
  let parts = groups.map((g) => g.toString(16).padStart(style.pad ? 4 : 1, '0'));
  if (style.v4) parts = [...parts.slice(0, 6), `${(groups[6] as number) >> 8}.${(groups[6] as number) & 255}.${(groups[7] as number) >> 8}.${(groups[7] as number) & 255}`];
  let text = parts.join(':');
  if (!style.full) text = text.replace(/(^|:)(0+(:|$)){2,}/, '::');
  return style.upper ? text.toUpperCase() : text;
}

const style = fc.record({ full: fc.boolean(), upper: fc.boolean(), pad: fc.boolean(), v4: fc.boolean() });
// Few distinct values (zero runs to compress); the second address is the first half the time.
const groups = fc.array(fc.constantFrom(0, 1, 0xdb8, 0xffff), { minLength: 8, maxLength: 8 });

describe('otherSpellingOf', () => {
  it('finds exactly the other spellings of one socket address, whatever the last group says', () => {
    fc.assert(
      fc.property(groups, style, groups, style, fc.boolean(), fc.constantFrom(80, 81), (ga, sa, other, sb, same, port) => {
        const a = spell(ga, sa);
        const b = spell(same ? ga : other, sb);
        const expected = a !== b && comparableAddress(a) === comparableAddress(b) && port === 80;
        expect(otherSpellingOf({ address: a, port: 80 })({ address: b, port })).toBe(expected);
        // An index of a alone (last groups filter), and of a beside one ending in IPv4 (no filter).
        for (const others of [[], [{ address: '2001:db8::1.2.3.4', port: 80 }]]) {
          const index = new SpellingIndex([{ address: a, port: 80 }, ...others]);
          expect(index.twinOf({ address: b, port })?.address === a).toBe(expected);
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('matches the examples Envoy treats as one address', () => {
    const of = (a: string, b: string): boolean => otherSpellingOf({ address: a, port: 1 })({ address: b, port: 1 });
    expect(of('::1', '0::1')).toBe(true);
    expect(of('2001:db8::1', '2001:DB8:0:0:0:0:0:0001')).toBe(true);
    expect(of('::', '0:0:0:0:0:0:0:0')).toBe(true);
    expect(of('::ffff:1.2.3.4', '::ffff:102:304')).toBe(true);
    expect(of('::ffff:102:304', '::FFFF:1.2.3.4')).toBe(true);
    expect(of('::1', '::1')).toBe(false);
    expect(of('::1', '::2')).toBe(false);
    expect(of('::1', '10.0.0.1')).toBe(false);
  });
});
