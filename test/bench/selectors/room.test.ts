import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import * as selectors from '../../../bench/selectors/index.js';
import { describePureRoom } from '../../support/purity.js';

// The ring hashes with MD5 for ketama compatibility; nothing else is loaded from outside.
describePureRoom('bench/selectors', fileURLToPath(new URL('../../../bench/selectors/', import.meta.url)), { builtins: ['node:crypto'] });

describe('bench/selectors', () => {
  it('exports every selector and hash from index.ts', () => {
    for (const name of ['RoundRobin', 'SmoothWeightedRoundRobin', 'HashRing', 'LeastConnections', 'murmur3Hash32', 'md5Hash32', 'fnv1a32']) {
      expect(selectors, name).toHaveProperty(name);
    }
  });
});
