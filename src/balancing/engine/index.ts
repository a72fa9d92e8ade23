/** The weight engine: policy + samples + probes → integer weights and health, explained. */
export { WeightEngine } from './weight-engine.js';
export * from './types.js';
export { CLUSTER_EXPORT_VERSION, type ExportedClusterState, type ExportedDeparture, type ExportedDrain, type ExportedEjection, type ExportedEndpoint } from './cluster-export.js';
