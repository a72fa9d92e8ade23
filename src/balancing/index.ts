/**
 * fulcrum's balancing room: pure load-balancing algorithms. Nothing here performs I/O or
 * reads a clock; time arrives as `now` (ms) arguments. The data-plane selectors (round robin,
 * smooth WRR, hash ring, least connections) live in bench/selectors: only benchmarks use them.
 */
export { type Clock, ManualClock } from './clock.js';
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
