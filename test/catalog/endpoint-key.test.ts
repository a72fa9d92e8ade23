import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalAddress } from '../../src/catalog/endpoint-key.js';

/** One IPv6 address, one spelling (reviewer's finding: `::1` and `0::1` were two API endpoints, one Envoy host). */

describe('canonicalAddress', () => {
  it.each([
    ['::1', '::1'],
    ['0::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['0:0::0.0.0.1', '::1'],
    ['FE80::0001', 'fe80::1'],
    ['2001:0db8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    // RFC 5952: the longest zero run is the one compressed, the first of two equal ones; one zero group stays.
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    // IPv4-mapped: the dotted quad (RFC 5952 section 5), however it was written.
    ['::FFFF:C000:0201', '::ffff:192.0.2.1'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
  ])('%s → %s', (spelled, canonical) => {
    expect(canonicalAddress(spelled)).toBe(canonical);
  });

  it('leaves IPv4, hostnames, zone ids and non-addresses as they are (validation reports those)', () => {
    for (const a of ['10.0.0.1', '0.0.0.0', 'Backend.Example', 'fe80::1%eth0', '::g', '']) expect(canonicalAddress(a)).toBe(a);
  });

  it('every spelling of eight groups (padded, upper case, any zero run compressed) comes out as one idempotent, lower-case address', () => {
    const group = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(
      fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), fc.nat(), (groups, pick) => {
        const padded = groups.map((g) => g.toString(16).padStart(4, '0').toUpperCase()).join(':');
        const plain = groups.map((g) => g.toString(16)).join(':');
        const spellings = [padded, plain, compressedAt(groups, pick)];
        const canonical = canonicalAddress(plain);
        for (const s of spellings) expect(canonicalAddress(s), s).toBe(canonical);
        expect(isIPv6(canonical)).toBe(true);
        expect(canonicalAddress(canonical)).toBe(canonical);
        expect(canonical).toBe(canonical.toLowerCase());
      }),
    );
  });
});

/** `groups` with one of its runs of zero groups (chosen by `pick`, not necessarily the longest) written as `::`. */
function compressedAt(groups: readonly number[], pick: number): string {
  const runs: [number, number][] = [];
  groups.forEach((g, i) => {
    if (g !== 0) return;
    const last = runs[runs.length - 1];
    if (last && last[1] === i) last[1] = i + 1;
    else runs.push([i, i + 1]);
  });
  const run = runs[pick % Math.max(runs.length, 1)];
  const hex = groups.map((g) => g.toString(16));
  if (!run) return hex.join(':');
  return `${hex.slice(0, run[0]).join(':')}::${hex.slice(run[1]).join(':')}`;
}
