/**
 * Types of the weight engine: what goes in every tick (endpoints, policy, samples, probe
 * results), what comes out (integer weights, published health, explanations), and the
 * safety settings with their defaults.
 *
 * Units: time in ms (caller-supplied, monotonic), cpu as a 0..1 fraction, latency in ms.
 * Weights inside the engine are real numbers in "static units": an endpoint with no
 * controller influence sits at its static weight times one cluster-wide scale (its
 * fair share, see `fairWeight` in stages.ts); only the integer conversion at the end
 * produces what Envoy sees.
 */
import type { HealthOptions, HealthState } from '../health.js';

// --- inputs --------------------------------------------------------------------------------

/**
 * The operator's health for an endpoint (the catalog's HealthStatus values). UNHEALTHY,
 * DRAINING and TIMEOUT take the endpoint out of rotation; the others leave it to the probes.
 */
export type OperatorHealth = 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'TIMEOUT' | 'DEGRADED';

export interface EngineEndpoint {
  /** `address:port`, unique within the cluster. */
  readonly key: string;
  /** Static (operator) weight, >= 1: the starting point and the decay target. */
  readonly weight: number;
  /** Default HEALTHY. */
  readonly health?: OperatorHealth;
  /**
   * Group for integer conversion: Envoy limits each locality's weight sum to 2^32 − 1.
   * Any stable string (e.g. `region/zone/subZone/priority`). Default: one group.
   */
  readonly locality?: string;
  /**
   * Capacity hint for the `inflight` metric: in-flight requests at 100% utilization. When every
   * fresh endpoint of a cluster has one, utilization = inflight / capacity; otherwise it is
   * relative: (inflight / static weight) normalized by the cluster's largest such value.
   */
  readonly capacity?: number;
}

export interface Sample {
  /** When the sample was taken, ms (same clock as `tick(now)`). */
  readonly at: number;
  /** CPU utilization, 0..1 (values above 1, e.g. cgroup overcommit, are accepted). */
  readonly cpu?: number;
  readonly inflight?: number;
  readonly latencyMs?: number;
  readonly errors?: number;
  readonly rps?: number;
  /**
   * From load reports, together or not at all (see tick/stall.ts): successes per second, and the
   * same proxies' in-progress count and completions (successes and errors) per second on the
   * cluster's other endpoints that succeeded some. Read with this sample's rps and inflight,
   * never merged.
   */
  readonly successes?: number;
  readonly peerInflight?: number;
  readonly peerCompletions?: number;
}

export interface ProbeResult {
  readonly ok: boolean;
  readonly at: number;
  readonly latencyMs?: number;
}

// --- policies and safety: domain types, declared with the catalog ---------------------------

export {
  UTILIZATION_METRICS,
  type UtilizationMetric,
  type PidSettings,
  type EwmaSettings,
  type BlendParts,
  type AdaptiveSettings,
  type WeightingPolicy,
  type PolicyKind,
  type SafetySettings,
  type EjectionSettings,
  SAFETY_DEFAULTS,
  EJECTION_DEFAULTS,
  resolveSafety,
  resolveEjection,
} from '../../catalog/policy.js';
import type { EjectionSettings, PidSettings, PolicyKind, SafetySettings, UtilizationMetric } from '../../catalog/policy.js';

/** Defaults for the PID part of a blend that does not name setpoint or metric. */
export const BLEND_PID_DEFAULTS = { setpoint: 'mean', metric: 'cpu-latency' } as const satisfies PidSettings;
export const DEFAULT_PID_METRIC: UtilizationMetric = 'cpu-latency';
export const PID_ACTUATION_GAIN = 1;
export const DEFAULT_ERROR_PENALTY = 1;

// --- safety --------------------------------------------------------------------------------





export interface WeightEngineOptions {
  /** Engine-wide safety settings; `setCluster` may override per cluster. */
  readonly safety?: Partial<SafetySettings>;
  /** Engine-wide ejection settings; `setCluster` may override per cluster. */
  readonly ejection?: Partial<EjectionSettings>;
  /** Passed to every endpoint's HealthTracker (default: 3 failures out, 3 successes back, 5 s backoff). */
  readonly health?: HealthOptions;
  /** Integer the largest weight of a tick maps to (see integer-weights.ts). Default 100,000. */
  readonly integerResolution?: number;
}

export const DEFAULT_INTEGER_RESOLUTION = 100_000;

// --- outputs -------------------------------------------------------------------------------

export type PublishedHealth = 'HEALTHY' | 'UNHEALTHY';

export type Freshness = 'fresh' | 'stale' | 'expired' | 'none';

/** Every rule that changed or held a weight, in the order the stages run (SAFETY_RULES). */
export type SafetyRule = (typeof SAFETY_RULES)[number];

export const SAFETY_RULES = [
  'operator-unhealthy',
  'probe-unhealthy',
  'ejected', // fleet outlier detector: error rate far above its peers', or stalled (see EjectionSettings, tick/stall.ts)
  'fail-static', // every eligible endpoint would be out: all published HEALTHY at static weights
  'joined', // new, returning or re-weighted endpoint: starts at its fair share
  'probation', // back from an ejection or a probed outage (a quarter of its fair share), or a newcomer under a newcomerShare below 1; under a low-load hold, also each tick it climbs back toward its fair share
  'error-penalty', // its error rate lowered its weight
  'peers-near-capacity', // its errors moved less of its load than they would have: its peers are near capacity (tick/error-shift.ts)
  'backlog-drain', // its load report showed its queue growing far past what its peers' time in the system explains: cut past the step limit to drain it, held, or set back from that cut (tick/backlog.ts)
  'latency-penalty', // slower than the cluster median: counted as busier
  'deadband', // within the deadband of the setpoint: left alone
  'low-load-hold', // every endpoint nearly idle: nothing to balance
  'awaiting-sample', // fresh, but no sample since the controller last ran: controller held
  'exploration', // EWMA: unmeasured endpoint weighted optimistically
  'stale-hold',
  'decay',
  'step-limit',
  'floor',
  'ceiling',
  'hysteresis-hold',
] as const;

export interface PidExplanation {
  readonly setpoint: number;
  readonly measurement: number;
  readonly error: number;
  readonly p: number;
  readonly i: number;
  readonly d: number;
  /** Clamped controller output. */
  readonly output: number;
  /** exp(k · output): the factor applied to the weight before normalization. */
  readonly multiplier: number;
  /** False when this tick reused the previous step (no new sample). */
  readonly updated: boolean;
}

export interface EwmaExplanation {
  readonly estimateMs: number | undefined;
  readonly bonusMs: number;
  readonly samples: number;
  /** Relative weight 1 / max(estimate − bonus, floor), before multiplying by the static weight. */
  readonly weight: number;
}

export interface ExplanationInputs {
  readonly utilization?: number;
  /** Smoothed share of failed requests, 0..1 (errors / requests over errorWindowMs). */
  readonly errorRate?: number;
  readonly cpu?: number;
  readonly inflight?: number;
  readonly latencyMs?: number;
  readonly errors?: number;
  readonly rps?: number;
  readonly probeLatencyMs?: number;
}

export interface Explanation {
  readonly policy: PolicyKind;
  readonly health: PublishedHealth;
  /** The HealthTracker's state, or OPERATOR_DISABLED. */
  readonly healthState: HealthState | 'OPERATOR_DISABLED';
  readonly freshness: Freshness;
  readonly sampleAgeMs: number | undefined;
  readonly inputs: ExplanationInputs;
  readonly pid: PidExplanation | undefined;
  readonly ewma: EwmaExplanation | undefined;
  readonly staticWeight: number;
  /** Static weight × cluster scale: the decay target and the unit of floor and ceiling. */
  readonly fairWeight: number;
  /** Real weight published before this tick (the step limit's anchor). */
  readonly previousWeight: number;
  /** What the controller asked for, before any safety rule. */
  readonly rawWeight: number;
  /** After step limit, floor, ceiling and freshness (the engine's internal weight). */
  readonly weight: number;
  /** Real weight published after this tick (== previousWeight on a hysteresis hold). */
  readonly publishedWeight: number;
  readonly integerWeight: number;
  readonly rules: readonly SafetyRule[];
  /** Why the fleet outlier detector ejected it, and until when (ms). */
  readonly ejection?: { readonly reason: string; readonly until: number; readonly count: number };
  /** Human-readable remarks (fail static, why data was unusable, …); usually empty. */
  readonly notes: readonly string[];
}

export interface ClusterTick {
  /** Integer weights (>= 1, per-locality sum <= 2^32 − 1), one per endpoint. */
  readonly weights: ReadonlyMap<string, number>;
  /**
   * UNHEALTHY where the engine keeps an endpoint out (probes, an ejection, out of rotation). One
   * declared out (UNHEALTHY, DRAINING, TIMEOUT) is sent to proxies as declared; here it is
   * HEALTHY unless probes or an ejection would hold it once declared in again (tick/publish.ts).
   */
  readonly health: ReadonlyMap<string, PublishedHealth>;
  /** Whether weights or health differ from the previous tick's output (always true on the first). */
  readonly changed: boolean;
  readonly explanations: ReadonlyMap<string, Explanation>;
  /** True when the fail-static rule fired for this cluster. */
  readonly failStatic: boolean;
  /** The PID setpoint used this tick, when the policy has a PID part and data. */
  readonly setpoint: number | undefined;
}

export interface TickResult {
  readonly now: number;
  readonly clusters: ReadonlyMap<string, ClusterTick>;
}
