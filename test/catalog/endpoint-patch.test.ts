import { describe, expect, it } from 'vitest';
import { withEndpoint } from '../../src/catalog/store/endpoint-patch.js';

const e = (address: string, port: number, weight = 1) => ({ address, port, weight });

describe('withEndpoint', () => {
  const list = [e('10.0.0.1', 80), e('10.0.0.1', 8080), e('10.0.0.20', 80)];

  it('replaces, inserts in (address, port) order as SQLite sorts ASCII, and removes', () => {
    expect(withEndpoint(list, '10.0.0.1', 8080, e('10.0.0.1', 8080, 5))).toEqual([e('10.0.0.1', 80), e('10.0.0.1', 8080, 5), e('10.0.0.20', 80)]);
    expect(withEndpoint(list, '10.0.0.1', 443, e('10.0.0.1', 443))?.map((x) => `${x.address}:${x.port}`)).toEqual(['10.0.0.1:80', '10.0.0.1:443', '10.0.0.1:8080', '10.0.0.20:80']);
    // Byte order, not numeric: "10.0.0.100" sorts before "10.0.0.20".
    expect(withEndpoint(list, '10.0.0.100', 1, e('10.0.0.100', 1))?.map((x) => x.address)).toEqual(['10.0.0.1', '10.0.0.1', '10.0.0.100', '10.0.0.20']);
    expect(withEndpoint(list, '9.0.0.1', 1, e('9.0.0.1', 1))?.at(-1)?.address).toBe('9.0.0.1');
    expect(withEndpoint(list, '10.0.0.1', 80, undefined)).toEqual([e('10.0.0.1', 8080), e('10.0.0.20', 80)]);
    expect(withEndpoint(list, '10.9.9.9', 80, undefined)).toEqual(list);
    expect(list).toHaveLength(3); // never changed in place
  });

  it('declines a non-ASCII address (JS and SQLite orders may differ)', () => {
    expect(withEndpoint(list, 'höst', 80, e('höst', 80))).toBeUndefined();
  });
});
