/** The weight engine: policy + samples + probes → integer weights and health, explained. */
export { WeightEngine } from './weight-engine.js';
export * from './types.js';
