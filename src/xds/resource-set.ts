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
