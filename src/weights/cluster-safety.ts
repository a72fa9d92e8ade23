import { safetyDefaultsFor, SAFETY_DEFAULTS, type SafetySettings } from '../catalog/policy.js';
import type { Cluster } from '../catalog/types.js';

/**
 * The safety overrides a catalog cluster gives the engine: its own, over the built-in defaults of its
 * LB policy where they differ from the engine's (newcomerShare under LEAST_REQUEST: policy.ts).
 */
export function clusterSafety(c: Pick<Cluster, 'lbPolicy' | 'safety'>): Partial<SafetySettings> | undefined {
  const share = safetyDefaultsFor(c.lbPolicy).newcomerShare;
  if (share === SAFETY_DEFAULTS.newcomerShare || c.safety?.newcomerShare !== undefined) return c.safety;
  return { ...c.safety, newcomerShare: share };
}
