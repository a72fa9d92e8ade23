import { BLEND_PID_DEFAULTS, DEFAULT_PID_METRIC, type Sample, type UtilizationMetric, type WeightingPolicy } from './types.js';

/** A sample field a policy's controller steers on. */
export type SteeringSignal = 'cpu' | 'inflight' | 'latencyMs';

const BY_METRIC: Readonly<Record<UtilizationMetric, readonly SteeringSignal[]>> = {
  cpu: ['cpu'],
  'cpu-latency': ['cpu'],
  inflight: ['inflight'],
  max: ['cpu', 'inflight'],
  latency: ['latencyMs'],
};

/**
 * The signals a policy steers on: a sample carrying any one of them is fresh data for the
 * endpoint. Empty for static weights. An endpoint that never got one is held at its static
 * weight, and the operator is told which of these to send.
 */
export function steeringSignals(policy: WeightingPolicy): readonly SteeringSignal[] {
  switch (policy.kind) {
    case 'static':
      return [];
    case 'pid':
      return BY_METRIC[policy.metric ?? DEFAULT_PID_METRIC];
    case 'ewma':
      return ['latencyMs'];
    case 'blend': {
      const pid = (policy.parts.pid ?? 0) > 0 ? BY_METRIC[policy.metric ?? BLEND_PID_DEFAULTS.metric] : [];
      const ewma: readonly SteeringSignal[] = (policy.parts.ewma ?? 0) > 0 ? ['latencyMs'] : [];
      return [...new Set([...pid, ...ewma])];
    }
  }
}

/** Whether a sample carries a field the policy's controller reads. */
export function steersOn(policy: WeightingPolicy, s: Sample): boolean {
  // A loop, not some(): this runs for every sample of the fleet.
  for (const k of steeringSignals(policy)) if (s[k] !== undefined) return true;
  return false;
}
