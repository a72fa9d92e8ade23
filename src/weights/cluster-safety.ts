import { safetyDefaultsFor, SAFETY_DEFAULTS, type SafetySettings } from '../catalog/policy.js';
import type { Cluster } from '../catalog/types.js';

/**
 * The safety overrides a catalog cluster gives the engine: its own, over the cluster's built-in
 * defaults where they differ from the engine's (a newcomer joins whole with Envoy's slow start:
 * policy.ts safetyDefaultsFor).
 */
export function clusterSafety(c: Pick<Cluster, 'safety' | 'slowStart'>): Partial<SafetySettings> | undefined {
  const share = safetyDefaultsFor(c.slowStart !== undefined).newcomerShare;
  if (share === SAFETY_DEFAULTS.newcomerShare || c.safety?.newcomerShare !== undefined) return c.safety;
  return { ...c.safety, newcomerShare: share };
}
