import type { XdsTypeUrl } from './envoy-api.js';
import type { EncodedResource } from './resource.js';

/**
 * What the cache takes in: per node group, the encoded resources by type and name. Owned by the
 * cache side; the translator produces it (translator → cache, never back).
 */
export type ResourceSet = ReadonlyMap<XdsTypeUrl, ReadonlyMap<string, EncodedResource>>;

/** The key of the snapshot everyone sees unless a node group selects them. */
export const DEFAULT_GROUP = '*';

/** How a translator's map of one type came from its previous one: the names set or deleted since. */
export interface Derivation {
  readonly base: ReadonlyMap<string, EncodedResource>;
  readonly names: ReadonlySet<string>;
}

const derivations = new WeakMap<ReadonlyMap<string, EncodedResource>, Derivation>();

/**
 * Records that `map` is `base` with only `names` set or deleted, so the cache, which took in
 * `base` last time, compares those names instead of every resource (one endpoint write at 100k
 * endpoints touches 2 of 2,000). A map without a record is compared whole.
 */
export function markDerived(map: ReadonlyMap<string, EncodedResource>, derivation: Derivation): void {
  // One step only: the base's own record would keep every earlier map alive through the chain.
  derivations.delete(derivation.base);
  derivations.set(map, derivation);
}

export function derivationOf(map: ReadonlyMap<string, EncodedResource>): Derivation | undefined {
  return derivations.get(map);
}

/**
 * How a translator's positional map came from its previous one when clusters were created or
 * deleted (names added or removed, so not a Derivation): `from[i]` is the position in `base`
 * whose resource sits at position i, or -1 for a name `base` did not have. The cache then takes
 * each carried resource's versioned form from its previous map by position (at 10,000 clusters,
 * a lookup and two hash reads per name were most of such a publish).
 */
export interface PositionalDerivation {
  readonly base: ReadonlyMap<string, EncodedResource>;
  readonly from: Int32Array;
}

const positionals = new WeakMap<ReadonlyMap<string, EncodedResource>, PositionalDerivation>();

export function markPositional(map: ReadonlyMap<string, EncodedResource>, derivation: PositionalDerivation): void {
  // One step only, as markDerived: no chain keeping earlier maps alive.
  positionals.delete(derivation.base);
  positionals.set(map, derivation);
}

export function positionalOf(map: ReadonlyMap<string, EncodedResource>): PositionalDerivation | undefined {
  return positionals.get(map);
}
