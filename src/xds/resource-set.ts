import type { XdsTypeUrl } from './envoy-api.js';
import type { EncodedResource } from './resource.js';

/**
 * What the cache takes in: per node group, the encoded resources by type and name. Owned by the
 * cache side; the translator produces it (translator → cache, never back).
 */
export type ResourceSet = ReadonlyMap<XdsTypeUrl, ReadonlyMap<string, EncodedResource>>;

/** The key of the snapshot everyone sees unless a node group selects them. */
export const DEFAULT_GROUP = '*';
