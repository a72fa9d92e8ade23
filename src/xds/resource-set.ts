import type { XdsTypeUrl } from './envoy-api.js';
import type { EncodedResource } from './resource.js';

/**
 * What the cache takes in: per node group, the encoded resources by type and name. Owned by the
 * cache side; the translator produces it (translator → cache, never back).
 */
export type ResourceSet = ReadonlyMap<XdsTypeUrl, ReadonlyMap<string, EncodedResource>>;

/** The key of the snapshot everyone sees unless a node group selects them. */
export const DEFAULT_GROUP = '*';

type Resources = ReadonlyMap<string, EncodedResource>;

/**
 * Per map, how it came from its base. One step only: a base's own record would keep every
 * earlier map alive through the chain, so marking a map forgets its base's record.
 */
class OneStepRecords<D extends { readonly base: Resources }> {
  private readonly records = new WeakMap<Resources, D>();

  mark(map: Resources, record: D): void {
    this.records.delete(record.base);
    this.records.set(map, record);
  }

  of(map: Resources): D | undefined {
    return this.records.get(map);
  }
}

/** How a translator's map of one type came from its previous one: the names set or deleted since. */
export interface Derivation {
  readonly base: Resources;
  readonly names: ReadonlySet<string>;
}

const derivations = new OneStepRecords<Derivation>();

/**
 * Records that `map` is `base` with only `names` set or deleted, so the cache, which took in
 * `base` last time, compares those names instead of every resource (one endpoint write at 100k
 * endpoints touches 2 of 2,000). A map without a record is compared whole.
 */
export function markDerived(map: Resources, derivation: Derivation): void {
  derivations.mark(map, derivation);
}

export function derivationOf(map: Resources): Derivation | undefined {
  return derivations.of(map);
}

/**
 * How a translator's positional map came from its previous one when clusters were created or
 * deleted (names added or removed, so not a Derivation): `from[i]` is the position in `base`
 * whose resource sits at position i, or -1 for a name `base` did not have. The cache then takes
 * each carried resource's versioned form from its previous map by position (at 10,000 clusters,
 * a lookup and two hash reads per name were most of such a publish).
 */
export interface PositionalDerivation {
  readonly base: Resources;
  readonly from: Int32Array;
}

const positionals = new OneStepRecords<PositionalDerivation>();

export function markPositional(map: Resources, derivation: PositionalDerivation): void {
  positionals.mark(map, derivation);
}

export function positionalOf(map: Resources): PositionalDerivation | undefined {
  return positionals.of(map);
}
