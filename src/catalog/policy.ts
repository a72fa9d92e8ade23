/**
 * Weighting policies, safety settings and ejection settings: what an operator declares per
 * cluster (config file, API, Kubernetes annotations) about how fulcrum computes its weights.
 * Domain types, so they live with the catalog and every room imports them from here; the weight
 * engine (src/balancing/engine) gives them their meaning and their defaults.
 */


/**
 * What the PID equalizes (or holds at its setpoint):
 * - cpu: reported CPU utilization;
 * - inflight: in-flight requests over capacity (or relative to the busiest endpoint);
 * - max: the larger of cpu and inflight;
 * - latency: latency relative to the cluster's median latency, in utilization units;
 * - cpu-latency (default): cpu plus the latency *excess* over the cluster median (endpoints
 *   slower than their peers look busier; faster ones are not rewarded, so the CPU balance is
 *   left alone). Without latency data it is exactly cpu.
 */
export type UtilizationMetric = 'cpu' | 'inflight' | 'max' | 'latency' | 'cpu-latency';
export const UTILIZATION_METRICS = ['cpu', 'inflight', 'max', 'latency', 'cpu-latency'] as const satisfies readonly UtilizationMetric[];

export interface PidSettings {
  /** 'mean': equalize utilization across the cluster (Robinhood); a number: fixed target in 0..1. */
  readonly setpoint: 'mean' | number;
  /** Default 'cpu-latency'. */
  readonly metric?: UtilizationMetric;
  /** Default: the seed's kp 0.5, ki 0.1, kd 0.05, per tick. */
  readonly gains?: { readonly kp?: number; readonly ki?: number; readonly kd?: number };
  /**
   * k in w ← w · exp(k · output). Default 1 (PID_ACTUATION_GAIN): with the output clamped to
   * [−1, 1] one tick can move a weight by at most e^±k before the step limit.
   */
  readonly actuationGain?: number;
}

export interface EwmaSettings {
  /** Share of a new latency sample at one sample per tick. Default 0.3 (seed). */
  readonly decay?: number;
  /** Numerator of the exploration bonus bonus = explorationBonus / (n + 1), ms. Default 1000. */
  readonly explorationBonus?: number;
}

export interface BlendParts {
  readonly pid?: number;
  readonly ewma?: number;
  readonly static?: number;
}

/** Settings every adaptive policy shares. */
export interface AdaptiveSettings {
  /**
   * How hard errors push an endpoint down. PID: ERROR_SCALE (4) × this × r is added to its
   * measurement, times the share the non-failing endpoints' utilization allows (tick/pid.ts
   * errorTerm, settle); EWMA: the weight is multiplied by successRate^(4 × this). 0 turns
   * that penalty off, not the rest: the PID always counts an endpoint's failures as busy as its
   * answers (base × r / (1 − r), a correction of what its cpu leaves out, not a penalty) and never
   * lets one failing ≥ 5% gain share, and an endpoint without fresh steering data failing above
   * the cluster's mean never rises (tick/freshness.ts); the ejection rules judge errors whatever
   * it is. Default 1.
   */
  readonly errorPenalty?: number;
}

export type WeightingPolicy =
  | { readonly kind: 'static' }
  | ({ readonly kind: 'pid' } & PidSettings & AdaptiveSettings)
  | ({ readonly kind: 'ewma' } & EwmaSettings & AdaptiveSettings)
  | ({
      readonly kind: 'blend';
      /** Fractions >= 0 summing to 1 (±1e-6). */
      readonly parts: BlendParts;
    } & Partial<PidSettings> &
      EwmaSettings &
      AdaptiveSettings);

export type PolicyKind = WeightingPolicy['kind'];

export interface SafetySettings {
  /** Expected tick interval; PID gains are per tick, and the first tick's decay uses it. */
  readonly tickMs: number;
  /** Per tick, a weight moves by at most ×maxStepRatio or ÷maxStepRatio (relative to what was published). */
  readonly maxStepRatio: number;
  /** Floor, as a fraction of the endpoint's fair share (static weight × cluster scale). */
  readonly minWeightRatio: number;
  /** Ceiling, as a multiple of the endpoint's fair share. */
  readonly maxWeightRatio: number;
  /** Publish only if some endpoint's weight moved by more than this relative amount. */
  readonly hysteresis: number;
  /** Samples older than this are stale: the endpoint's weight is held. */
  readonly staleAfterMs: number;
  /** Samples older than this have expired: the weight decays toward the fair share. */
  readonly decayAfterMs: number;
  /** Half-life (in log-weight) of that decay. */
  readonly decayHalfLifeMs: number;
  /**
   * PID deadband, relative to the setpoint: an endpoint whose (smoothed) measurement is within
   * this fraction of the setpoint is left alone, so weights rest instead of chasing noise.
   */
  readonly deadband: number;
  /** Share of a new measurement in the PID's smoothed measurement (1 = no smoothing). */
  readonly smoothing: number;
  /** Low-load hold: while every endpoint's utilization is below this, PID weights do not move. */
  readonly lowLoadHold: number;
  /**
   * The share of its fair share an adaptive cluster's newcomer starts at: an endpoint added while the
   * cluster serves (a scaled-out pod, as cold as a restarted one), at its first tick in rotation. It
   * earns the rest through the controller and the step limit. 1: a whole share at once. Endpoints of
   * a new cluster, or of one rebuilt after a restart, are not newcomers.
   */
  readonly newcomerShare: number;
}

/**
 * fulcrum's own fleet-wide outlier detector, fed by the error counts every signal carries (LRS,
 * reports), and by Envoy's load reports' success counts for hung backends (the stall rule,
 * src/balancing/engine/tick/stall.ts: it has no settings of its own; `minRequests` / 4 is its
 * volume, as the all-failing rule's). It complements Envoy's per-proxy outlier detection: it sees
 * the whole fleet's traffic to an endpoint, not one sidecar's share. Ejected endpoints are published UNHEALTHY for a
 * back-off, then come back on probation at a reduced weight.
 */
export interface EjectionSettings {
  readonly enabled: boolean;
  /** Requests (smoothed over errorWindowMs) an endpoint needs before its error rate is judged. */
  readonly minRequests: number;
  /** All-failing rule: the latest report shows at least this share failing (with >= minRequests / 4). */
  readonly allFailingRatio: number;
  /** Failure-percentage rule: error rate at least this while the cluster median is below half of it. */
  readonly failureRatio: number;
  /**
   * Success-rate rule (Envoy's): success rate below median − max(stdevFactor × σ, minGap), with at
   * least 3 endpoints carrying minRequests.
   */
  readonly successRateStdevFactor: number;
  readonly minGap: number;
  /** Never more than this share of a cluster ejected at once (at least one endpoint if it has 2+). */
  readonly maxEjectedRatio: number;
  /** First ejection; each relapse after a recovery doubles it, up to maxEjectionMs. */
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  /** Half-life of the smoothed request and error counts. */
  readonly errorWindowMs: number;
}


export const SAFETY_DEFAULTS = {
  tickMs: 1000,
  maxStepRatio: 1.25,
  minWeightRatio: 0.05,
  maxWeightRatio: 20,
  hysteresis: 0.05,
  staleAfterMs: 5_000,
  decayAfterMs: 30_000,
  decayHalfLifeMs: 30_000,
  deadband: 0.06,
  smoothing: 0.5,
  lowLoadHold: 0.1,
  // A quarter, as probation after an ejection. Measured with Envoy (bench/RESULTS.md "scale42",
  // scale-out-cold: newcomers 5× slower at first): p99 1.6–1.8 s against 5.3–6.8 s whole under pid
  // and ROUND_ROBIN, 572–573 ms against 1.1 s under auto; warm (scale-out) auto's p99 the same and
  // pid's p50 135–138 → 222–237 ms (the running fleet stays busier while the newcomer earns its share).
  newcomerShare: 0.25,
} as const satisfies SafetySettings;

/** With Envoy's slow start a newcomer joins whole: Envoy ramps it (safetyDefaultsFor). */
const SLOW_START_SAFETY_DEFAULTS: SafetySettings = { ...SAFETY_DEFAULTS, newcomerShare: 1 };

/**
 * The built-in safety settings of a cluster (its overrides apply over them). `slowStart`: Envoy ramps
 * a newcomer itself (Cluster.slowStart), multiplying its time factor into the weight fulcrum
 * publishes; the quarter share on top would start a newcomer at 2.5% of its fair share (0.25 ×
 * Envoy's 10% floor) and leave it at a quarter when Envoy's window ends, so there a newcomer joins
 * whole and Envoy alone does the soft start. An operator's own newcomerShare still applies over it,
 * slowing the newcomer twice.
 */
export function safetyDefaultsFor(slowStart: boolean): SafetySettings {
  return slowStart ? SLOW_START_SAFETY_DEFAULTS : SAFETY_DEFAULTS;
}

export const EJECTION_DEFAULTS = {
  enabled: true,
  minRequests: 20,
  allFailingRatio: 0.95,
  failureRatio: 0.3,
  successRateStdevFactor: 1.9,
  minGap: 0.1,
  maxEjectedRatio: 0.34,
  baseEjectionMs: 10_000,
  maxEjectionMs: 300_000,
  errorWindowMs: 10_000,
} as const satisfies EjectionSettings;

/** The settings in force for `layers` over the defaults; a RangeError names the first bad one. */
export function resolveSafety(...layers: (Partial<SafetySettings> | undefined)[]): SafetySettings {
  const s: SafetySettings = Object.assign({}, SAFETY_DEFAULTS, ...layers.filter((l) => l !== undefined));
  const positive = (name: keyof SafetySettings): void => {
    if (!(Number.isFinite(s[name]) && s[name] > 0)) throw new RangeError(`${name} must be finite and > 0, got ${s[name]}`);
  };
  positive('tickMs');
  positive('decayHalfLifeMs');
  if (!(s.maxStepRatio > 1 && Number.isFinite(s.maxStepRatio))) throw new RangeError(`maxStepRatio must be > 1, got ${s.maxStepRatio}`);
  if (!(s.minWeightRatio > 0 && s.minWeightRatio <= 1)) throw new RangeError(`minWeightRatio must be in (0, 1], got ${s.minWeightRatio}`);
  if (!(s.maxWeightRatio >= 1 && Number.isFinite(s.maxWeightRatio))) throw new RangeError(`maxWeightRatio must be >= 1, got ${s.maxWeightRatio}`);
  if (!(s.hysteresis >= 0 && s.hysteresis < 1)) throw new RangeError(`hysteresis must be in [0, 1), got ${s.hysteresis}`);
  if (!(s.staleAfterMs >= 0)) throw new RangeError(`staleAfterMs must be >= 0, got ${s.staleAfterMs}`);
  if (!(s.decayAfterMs >= s.staleAfterMs)) throw new RangeError(`decayAfterMs must be >= staleAfterMs`);
  if (!(s.deadband >= 0 && s.deadband < 1)) throw new RangeError(`deadband must be in [0, 1), got ${s.deadband}`);
  if (!(s.smoothing > 0 && s.smoothing <= 1)) throw new RangeError(`smoothing must be in (0, 1], got ${s.smoothing}`);
  if (!(s.lowLoadHold >= 0 && s.lowLoadHold < 1)) throw new RangeError(`lowLoadHold must be in [0, 1), got ${s.lowLoadHold}`);
  if (!(s.newcomerShare > 0 && s.newcomerShare <= 1)) throw new RangeError(`newcomerShare must be in (0, 1], got ${s.newcomerShare}`);
  return s;
}

export function resolveEjection(...layers: (Partial<EjectionSettings> | undefined)[]): EjectionSettings {
  const s: EjectionSettings = Object.assign({}, EJECTION_DEFAULTS, ...layers.filter((l) => l !== undefined));
  const ratio = (name: 'allFailingRatio' | 'failureRatio' | 'maxEjectedRatio' | 'minGap'): void => {
    if (!(s[name] > 0 && s[name] <= 1)) throw new RangeError(`ejection.${name} must be in (0, 1], got ${s[name]}`);
  };
  ratio('allFailingRatio');
  ratio('failureRatio');
  ratio('maxEjectedRatio');
  ratio('minGap');
  for (const name of ['minRequests', 'successRateStdevFactor', 'baseEjectionMs', 'errorWindowMs'] as const) {
    if (!(Number.isFinite(s[name]) && s[name] > 0)) throw new RangeError(`ejection.${name} must be finite and > 0, got ${s[name]}`);
  }
  if (!(s.maxEjectionMs >= s.baseEjectionMs)) throw new RangeError('ejection.maxEjectionMs must be >= baseEjectionMs');
  return s;
}

