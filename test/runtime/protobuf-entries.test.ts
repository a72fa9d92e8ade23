import { describe, expect, it } from 'vitest';
import { countEntries, holdsMoreThan, type EntryShape } from '../../src/runtime/protobuf-entries.js';

/** field 3, empty, `n` times: two bytes an entry, the smallest an entry can be. */
const emptyEntries = (n: number): Uint8Array => Uint8Array.from({ length: 2 * n }, (_, i) => (i % 2 === 0 ? 0x1a : 0x00));
const SHAPE: EntryShape = { 3: undefined };

describe('protobuf entries counted from tags', () => {
  it('counts two-byte entries up to one past the limit', () => {
    expect(countEntries(emptyEntries(50), SHAPE, 100)).toBe(50);
    expect(countEntries(emptyEntries(500), SHAPE, 100)).toBe(101);
  });

  it('holdsMoreThan: true just past the limit, false at it', () => {
    expect(holdsMoreThan(emptyEntries(101), SHAPE, 100)).toBe(true);
    expect(holdsMoreThan(emptyEntries(100), SHAPE, 100)).toBe(false);
  });

  it('holdsMoreThan does not read a message too short to hold more than the limit', () => {
    // Not protobuf (a length running past the message): counting would throw; at 2 × limit bytes it is not read.
    const garbage = Uint8Array.of(0x1a, 0x7f, 0x00, 0x00);
    expect(() => countEntries(garbage, SHAPE, 2)).toThrow(RangeError);
    expect(holdsMoreThan(garbage, SHAPE, 2)).toBe(false);
  });
});
