import { describe, expect, it } from 'vitest';
import type { Catalog } from '../../src/catalog/types.js';
import { appliedCatalog, changeSummary, compareCatalogs } from '../../src/sources/config-diff.js';
import { parseConfig } from '../../src/sources/config-file.js';

const V1 = `
clusters:
  - { name: a, endpoints: [{ address: 10.0.0.1, port: 80 }] }
  - { name: b, endpoints: [{ address: 10.0.0.2, port: 80 }] }
  - { name: c, endpoints: [{ address: 10.0.0.3, port: 80 }] }
listeners:
  - { name: in, port: 10000, routes: [{ prefix: /, cluster: a }] }
`;
const catalogOf = (text: string): Catalog => parseConfig(text, 'f.yaml').catalog;
const noTurns = async (): Promise<void> => undefined;

describe('compareCatalogs', () => {
  it('says what changed by name and keeps the earlier object of every resource whose JSON did not change', async () => {
    const first = await appliedCatalog(catalogOf(V1), noTurns);
    const next = catalogOf(V1.replace('10.0.0.2', '10.0.0.9').replace('  - { name: c, endpoints: [{ address: 10.0.0.3, port: 80 }] }\n', '  - { name: d }\n'));
    const { changes, applied } = await compareCatalogs(first, next, noTurns);
    expect(changeSummary(changes)).toEqual({ clusters: { added: ['d'], removed: ['c'], changed: ['b'] } });
    const [a, b, d] = applied.catalog.clusters;
    // Parsed again, a is a new object with the same JSON: the one applied before is kept.
    expect(a).toBe(first.catalog.clusters[0]);
    expect(b).toBe(next.clusters[1]);
    expect(d).toBe(next.clusters[2]);
    expect(applied.catalog.listeners[0]).toBe(first.catalog.listeners[0]);
    expect(applied.catalog).toEqual(next);
    // And the next comparison is against what was applied.
    const again = await compareCatalogs(applied, catalogOf(V1), noTurns);
    expect(changeSummary(again.changes)).toEqual({ clusters: { added: ['c'], removed: ['d'], changed: ['b'] } });
    expect(again.applied.catalog.clusters[0]).toBe(first.catalog.clusters[0]);
  });

  it('takes a turn between resources when its turn says so', async () => {
    let turns = 0;
    await compareCatalogs(undefined, catalogOf(V1), async () => void turns++);
    expect(turns).toBe(3 + 1);
  });
});
