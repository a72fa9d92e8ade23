/**
 * Data-plane selectors: what Envoy or a proxyless gRPC client does per request, written in
 * TypeScript so bench/algorithms.ts can measure and compare them. fulcrum itself never picks an
 * endpoint for a request; see README.md for why these live in bench/ rather than src/.
 */
export { RoundRobin } from './round-robin.js';
export { SmoothWeightedRoundRobin, type WeightedEntry } from './smooth-weighted-round-robin.js';
export {
  type HashFunction,
  type HashName,
  HASH_FUNCTIONS,
  md5Hash32,
  murmur3Hash32,
  fnv1a32,
} from './hash-functions.js';
export { HashRing, type HashRingOptions, DEFAULT_VIRTUAL_NODES } from './hash-ring.js';
export { LeastConnections } from './least-connections.js';
