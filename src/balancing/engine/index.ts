/** The weight engine: policy + samples + probes → integer weights and health, explained. */
export { WeightEngine } from './weight-engine.js';
export { choosePolicy, LOCALITY_TIER_THRESHOLD, type ServiceTraits, type AutoPolicy, type AutoLbPolicy, type HashKey } from '../../catalog/auto-policy.js';
export * from './types.js';
