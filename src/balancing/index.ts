/**
 * fulcrum's balancing room: pure load-balancing algorithms. Nothing here performs I/O or
 * reads a clock; time arrives as `now` (ms) arguments.
 */
export { type Clock, ManualClock } from './clock.js';
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
export { EwmaLatency, type EwmaOptions, EWMA_DEFAULTS } from './ewma.js';
export {
  PidController,
  type PidGains,
  type PidOptions,
  type PidInput,
  type PidStep,
  PID_DEFAULTS,
} from './pid.js';
export {
  HealthTracker,
  type HealthState,
  type HealthOptions,
  type HealthTransition,
  type HealthSnapshot,
  HEALTH_DEFAULTS,
} from './health.js';
export {
  toIntegerWeights,
  toIntegerWeightGroups,
  integerWeightTargets,
  type IntegerWeightOptions,
  MAX_LOCALITY_WEIGHT_SUM,
  DEFAULT_WEIGHT_RESOLUTION,
} from './integer-weights.js';
