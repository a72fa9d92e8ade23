import type { Cluster } from '../../src/catalog/types.js';
import type { EndpointOverride, WeightOverrides } from '../../src/catalog/weight-overrides.js';

/**
 * The weight loop's hand-overs, drawn from a seeded `r`, for the random incremental publish tests:
 * new overrides for a few clusters (the others keep their override objects, as the loop hands them
 * over), for most clusters at once (a fleet-wide publication), or the same again in a new map.
 */
export class RandomWeights {
  weights: WeightOverrides | undefined;

  constructor(
    private readonly r: () => number,
    /** One cluster's new overrides. */
    private readonly overridesFor: (c: Cluster) => ReadonlyMap<string, EndpointOverride>,
  ) {}

  few(clusters: readonly Cluster[]): string {
    const next = new Map(this.weights ?? []);
    const names: string[] = [];
    for (let k = 1 + Math.floor(this.r() * 3); k > 0; k--) {
      const c = clusters[Math.floor(this.r() * clusters.length)] as Cluster;
      next.set(c.name, this.overridesFor(c));
      names.push(c.name);
    }
    this.weights = next;
    return `weights of ${names.join(', ')}`;
  }

  most(clusters: readonly Cluster[]): string {
    const next = new Map(this.weights ?? []);
    for (const c of clusters) if (this.r() < 0.8) next.set(c.name, this.overridesFor(c));
    this.weights = next;
    return 'weights of most clusters';
  }

  same(): string {
    this.weights = this.weights === undefined ? undefined : new Map(this.weights);
    return 'the same weights again';
  }
}
