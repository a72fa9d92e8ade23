import { describe, expect, it } from 'vitest';
import type { Catalog } from '../../src/catalog/types.js';
import { WeightArchiveSweep } from '../../src/weights/archive-sweep.js';
import { cluster } from '../catalog/helpers.js';

const catalogOf = (...names: string[]): Catalog => ({ clusters: names.map((n) => cluster(n)), listeners: [], nodeGroups: [] });

/** An archive holding weights for `names`; deleteWeights drops them (or throws once `failing`). */
function archiveOf(...names: string[]): { weighted: Set<string>; failing: boolean; weightedClusters(): string[]; deleteWeights(c: readonly string[]): void } {
  return {
    weighted: new Set(names),
    failing: false,
    weightedClusters() {
      return [...this.weighted];
    },
    deleteWeights(clusters) {
      if (this.failing) throw new Error('disk full');
      for (const c of clusters) this.weighted.delete(c);
    },
  };
}

describe('WeightArchiveSweep', () => {
  it('deletes nothing before every source has its first view, then the archived weights of clusters absent', () => {
    const archive = archiveOf('web', 'discovered', 'gone');
    const sweep = new WeightArchiveSweep(archive, () => undefined);
    sweep.setCatalog(catalogOf('web'));
    expect([...archive.weighted]).toEqual(['web', 'discovered', 'gone']);
    sweep.setCatalog(catalogOf('web', 'discovered'));
    sweep.settle();
    expect([...archive.weighted]).toEqual(['web', 'discovered']);
  });

  it('settled before the first catalog (no discovery): that catalog is swept against', () => {
    const archive = archiveOf('web', 'gone');
    const sweep = new WeightArchiveSweep(archive, () => undefined);
    sweep.settle();
    expect([...archive.weighted]).toEqual(['web', 'gone']);
    sweep.setCatalog(catalogOf('web'));
    expect([...archive.weighted]).toEqual(['web']);
  });

  it('once settled, a cluster leaving the catalog takes its weights; a failed delete is reported, not thrown', () => {
    const archive = archiveOf('a', 'b', 'c');
    const failed: string[][] = [];
    const sweep = new WeightArchiveSweep(archive, (_err, clusters) => failed.push([...clusters]));
    sweep.setCatalog(catalogOf('a', 'b', 'c'));
    sweep.settle();
    sweep.setCatalog(catalogOf('a', 'c'));
    expect([...archive.weighted]).toEqual(['a', 'c']);
    archive.failing = true;
    sweep.setCatalog(catalogOf('a'));
    expect(failed).toEqual([['c']]);
  });
});
