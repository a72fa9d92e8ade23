/**
 * The weight engine's stages as small pure functions, so each can be tested alone.
 * The engine (weight-engine.ts) strings them together per cluster per tick.
 */
import {
  BLEND_PID_DEFAULTS,
  UTILIZATION_METRICS,
  type BlendParts,
  type EngineEndpoint,
  type Freshness,
  type OperatorHealth,
  type Sample,
  type SafetySettings,
  type WeightingPolicy,
} from './types.js';

const BLEND_TOLERANCE = 1e-6;

// --- validation ----------------------------------------------------------------------------

export { resolveSafety, resolveEjection } from '../../catalog/policy.js';

/** Fractions of each strategy, validated; pure policies are a blend with one part at 1. */
export interface ResolvedParts {
  readonly pid: number;
  readonly ewma: number;
  readonly static: number;
}

export function policyParts(policy: WeightingPolicy): ResolvedParts {
  switch (policy.kind) {
    case 'static':
      return { pid: 0, ewma: 0, static: 1 };
    case 'pid':
      return { pid: 1, ewma: 0, static: 0 };
    case 'ewma':
      return { pid: 0, ewma: 1, static: 0 };
    case 'blend':
      return blendParts(policy.parts);
  }
}

function blendParts(parts: BlendParts): ResolvedParts {
  const r = { pid: parts.pid ?? 0, ewma: parts.ewma ?? 0, static: parts.static ?? 0 };
  for (const [name, f] of Object.entries(r)) {
    if (!(Number.isFinite(f) && f >= 0 && f <= 1)) throw new RangeError(`blend part ${name} must be in [0, 1], got ${f}`);
  }
  const sum = r.pid + r.ewma + r.static;
  if (Math.abs(sum - 1) > BLEND_TOLERANCE) throw new RangeError(`blend parts must sum to 1, got ${sum}`);
  return r;
}

export function validatePolicy(policy: WeightingPolicy): void {
  const parts = policyParts(policy);
  if (policy.kind === 'pid' || (policy.kind === 'blend' && parts.pid > 0)) {
    const setpoint = policy.setpoint ?? BLEND_PID_DEFAULTS.setpoint;
    if (setpoint !== 'mean' && !(typeof setpoint === 'number' && setpoint >= 0 && setpoint <= 1)) {
      throw new RangeError(`setpoint must be 'mean' or a number in [0, 1], got ${String(setpoint)}`);
    }
    const metric = policy.metric ?? BLEND_PID_DEFAULTS.metric;
    if (!(UTILIZATION_METRICS as readonly string[]).includes(metric)) {
      throw new RangeError(`unknown metric ${String(metric)} (allowed: ${UTILIZATION_METRICS.join(', ')})`);
    }
    const k = policy.actuationGain;
    if (k !== undefined && !(Number.isFinite(k) && k > 0)) throw new RangeError(`actuationGain must be > 0, got ${k}`);
    for (const [name, g] of Object.entries(policy.gains ?? {})) {
      if (!(Number.isFinite(g) && g >= 0)) throw new RangeError(`gain ${name} must be finite and >= 0, got ${g}`);
    }
  }
  validateEwmaSettings(policy);
  if (policy.kind !== 'static') {
    const p = policy.errorPenalty;
    if (p !== undefined && !(Number.isFinite(p) && p >= 0 && p <= 10)) throw new RangeError(`errorPenalty must be in [0, 10], got ${p}`);
  }
}

export function validateEwmaSettings(policy: WeightingPolicy): void {
  if (policy.kind !== 'ewma' && policy.kind !== 'blend') return;
  if (policy.decay !== undefined && !(policy.decay > 0 && policy.decay <= 1)) throw new RangeError(`decay must be in (0, 1], got ${policy.decay}`);
  const b = policy.explorationBonus;
  if (b !== undefined && !(Number.isFinite(b) && b >= 0)) throw new RangeError(`explorationBonus must be >= 0, got ${b}`);
}

export function validateEndpoints(endpoints: readonly EngineEndpoint[]): void {
  const seen = new Set<string>();
  for (const e of endpoints) validateEndpoint(e, seen);
}

/** One endpoint of a cluster; `seen`: the keys before it (it adds its own). */
export function validateEndpoint(e: EngineEndpoint, seen: Set<string>): void {
  if (typeof e.key !== 'string' || e.key === '') throw new RangeError('endpoint key must be a non-empty string');
  if (seen.has(e.key)) throw new RangeError(`duplicate endpoint ${e.key}`);
  seen.add(e.key);
  if (!(Number.isFinite(e.weight) && e.weight >= 1)) throw new RangeError(`endpoint ${e.key}: weight must be >= 1, got ${e.weight}`);
  if (e.capacity !== undefined && !(Number.isFinite(e.capacity) && e.capacity > 0)) {
    throw new RangeError(`endpoint ${e.key}: capacity must be > 0, got ${e.capacity}`);
  }
}

export function validateSample(sample: Sample): void {
  if (!Number.isFinite(sample.at)) throw new RangeError(`sample.at must be finite, got ${sample.at}`);
  // Field by field rather than a loop over their names: this runs for every sample of the fleet.
  checkSampleField('cpu', sample.cpu);
  checkSampleField('inflight', sample.inflight);
  checkSampleField('latencyMs', sample.latencyMs);
  checkSampleField('errors', sample.errors);
  checkSampleField('rps', sample.rps);
  checkSampleField('successes', sample.successes);
  checkSampleField('peerInflight', sample.peerInflight);
  checkSampleField('peerCompletions', sample.peerCompletions);
}

function checkSampleField(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new RangeError(`sample.${name} must be finite and >= 0, got ${v}`);
}

export function isOperatorDisabled(health: OperatorHealth | undefined): boolean {
  return health === 'UNHEALTHY' || health === 'DRAINING' || health === 'TIMEOUT';
}

// --- freshness -----------------------------------------------------------------------------

export function classifyFreshness(ageMs: number | undefined, s: Pick<SafetySettings, 'staleAfterMs' | 'decayAfterMs'>): Freshness {
  if (ageMs === undefined) return 'none';
  if (ageMs <= s.staleAfterMs) return 'fresh';
  if (ageMs <= s.decayAfterMs) return 'stale';
  return 'expired';
}

/**
 * Moves `weight` toward `target` in log space, halving the log-distance every halfLife:
 * multiplicative weights deserve a multiplicative decay (×4 and ÷4 come back equally fast).
 */
export function decayToward(weight: number, target: number, dtMs: number, halfLifeMs: number): number {
  const keep = 2 ** (-Math.max(0, dtMs) / halfLifeMs);
  return target * (weight / target) ** keep;
}

// --- utilization ---------------------------------------------------------------------------

export interface UtilizationInput {
  readonly sample: Sample;
  readonly staticWeight: number;
  readonly capacity: number | undefined;
}

/**
 * Utilization by metric for a set of endpoints (undefined where the sample lacks the metric).
 * inflight: inflight / capacity if every endpoint with an inflight value has a capacity hint;
 * otherwise relative load (inflight / static weight) divided by the largest such value, so the
 * busiest endpoint reads 1. 'max' takes the larger of cpu and the inflight utilization.
 */
export function utilizations(metric: 'cpu' | 'inflight' | 'max', inputs: readonly UtilizationInput[]): (number | undefined)[] {
  let inflight: (number | undefined)[] = [];
  if (metric !== 'cpu') {
    const withInflight = inputs.filter((x) => x.sample.inflight !== undefined);
    const hinted = withInflight.length > 0 && withInflight.every((x) => x.capacity !== undefined);
    if (hinted) {
      inflight = inputs.map((x) => (x.sample.inflight === undefined ? undefined : x.sample.inflight / (x.capacity as number)));
    } else {
      const rel = inputs.map((x) => (x.sample.inflight === undefined ? undefined : x.sample.inflight / x.staticWeight));
      let max = 0;
      for (const r of rel) if (r !== undefined && r > max) max = r;
      inflight = rel.map((r) => (r === undefined ? undefined : max > 0 ? r / max : 0));
    }
  }
  return inputs.map((x, i) => {
    const cpu = x.sample.cpu;
    const inf = inflight[i];
    if (metric === 'cpu') return cpu;
    if (metric === 'inflight') return inf;
    if (cpu === undefined) return inf;
    if (inf === undefined) return cpu;
    return Math.max(cpu, inf);
  });
}

// --- safety --------------------------------------------------------------------------------

export interface Limited {
  readonly value: number;
  readonly fired: boolean;
}

/** Limits `target` to [anchor / ratio, anchor · ratio]. */
export function stepLimit(target: number, anchor: number, ratio: number): Limited {
  const hi = anchor * ratio;
  const lo = anchor / ratio;
  if (target > hi) return { value: hi, fired: true };
  if (target < lo) return { value: lo, fired: true };
  return { value: target, fired: false };
}

/** Clamps to [minRatio · fair, maxRatio · fair]; says which bound fired. */
export function clampToBounds(
  weight: number,
  fair: number,
  minRatio: number,
  maxRatio: number,
): { value: number; rule: 'floor' | 'ceiling' | undefined } {
  const lo = fair * minRatio;
  const hi = fair * maxRatio;
  if (weight < lo) return { value: lo, rule: 'floor' };
  if (weight > hi) return { value: hi, rule: 'ceiling' };
  return { value: weight, rule: undefined };
}

/** Whether any candidate (among `include`d ones, default all) moved by more than `threshold` relative to what is published. */
export function exceedsHysteresis(
  candidate: ArrayLike<number>,
  published: ArrayLike<number>,
  threshold: number,
  include?: ArrayLike<number>,
): boolean {
  for (let i = 0; i < candidate.length; i++) {
    if (include !== undefined && !include[i]) continue;
    // Casts, not `?? 0` (which boxes every double read in V8: see tick/frame.ts `at`); a missing
    // published value reads as 0, i.e. always a move.
    const p = i < published.length ? (published[i] as number) : 0;
    if (Math.abs((candidate[i] as number) / p - 1) > threshold) return true;
  }
  return false;
}
