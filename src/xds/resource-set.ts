import { withValues } from '../balancing/engine/indexed-map.js';
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

/** How a translator's map of one type came from its previous one: the names set or deleted since. */
export interface Derivation {
  readonly base: Resources;
  readonly names: ReadonlySet<string>;
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

/**
 * Per map, how it came from its base, of either kind in one table. One step only: a base's own
 * record would keep every earlier map alive through the chain, so marking a map forgets its
 * base's record, whichever kind it was (two tables let a create and an endpoint write, in
 * turn, chain every map since the start).
 */
const records = new WeakMap<Resources, Derivation | PositionalDerivation>();

function mark(map: Resources, record: Derivation | PositionalDerivation): void {
  records.delete(record.base);
  records.set(map, record);
}

/**
 * Records that `map` is `base` with only `names` set or deleted, so the cache, which took in
 * `base` last time, compares those names instead of every resource (one endpoint write at 100k
 * endpoints touches 2 of 2,000). A map without a record is compared whole.
 */
export function markDerived(map: Resources, derivation: Derivation): void {
  mark(map, derivation);
}

export function derivationOf(map: Resources): Derivation | undefined {
  const r = records.get(map);
  return r !== undefined && 'names' in r ? r : undefined;
}

export function markPositional(map: Resources, derivation: PositionalDerivation): void {
  mark(map, derivation);
}

export function positionalOf(map: Resources): PositionalDerivation | undefined {
  const r = records.get(map);
  return r !== undefined && 'from' in r ? r : undefined;
}

/**
 * `base` with `changes` set in place (their names are in it): `base` itself when each is the
 * resource it holds, else a positional copy (withValues: one array, not a Map) marked derived
 * from `base` (the translator's maps after a write, a node group's selection from them).
 */
export function replacedIn(base: Resources, changes: ReadonlyMap<string, EncodedResource>): Resources {
  let same = true;
  for (const [name, r] of changes) same &&= base.get(name) === r;
  if (same) return base;
  const out = withValues(base, changes);
  markDerived(out, { base, names: new Set(changes.keys()) });
  return out;
}
