/**
 * What the engine remembers between ticks, per cluster and per endpoint. Only weight-engine.ts
 * creates and replaces these; the tick stages (tick/*.ts) read them and update the fields their
 * stage owns.
 */
import type { EwmaLatency } from '../ewma.js';
import type { HealthTracker } from '../health.js';
import type { PidController, PidStep } from '../pid.js';
import type { ErrorWindow } from './error-window.js';
import type { ResolvedParts } from './stages.js';
import type {
  EjectionSettings,
  OperatorHealth,
  ProbeResult,
  PublishedHealth,
  Sample,
  SafetySettings,
  UtilizationMetric,
  WeightingPolicy,
} from './types.js';

export interface PidConfig {
  readonly setpoint: 'mean' | number;
  readonly metric: UtilizationMetric;
  readonly k: number;
  readonly gains: { kp?: number; ki?: number; kd?: number };
}

export interface EndpointState {
  readonly key: string;
  staticWeight: number;
  operatorHealth: OperatorHealth | undefined;
  locality: string;
  capacity: number | undefined;
  readonly tracker: HealthTracker;
  pid: PidController;
  /** The last PID step and what went with it (kept for explanations while awaiting a sample). */
  pidStep: PidStep | undefined;
  pidSetpoint: number;
  pidMeasurement: number;
  pidMultiplier: number;
  /** Mean absolute gap between a new measurement and the smoothed one (tick/pid.ts). */
  noise: number;
  /** The PID's smoothed measurement (undefined until the first). */
  smoothed: number | undefined;
  /** `at` of the sample the PID last consumed. */
  lastControlAt: number | undefined;
  /** The policy's EWMA (with exploration bonus). */
  ewma: EwmaLatency;
  /** Plain smoothed latency for the PID's latency metrics (no bonus). */
  latency: EwmaLatency;
  readonly errors: ErrorWindow;
  /** Every field's latest value, merged across sources. */
  sample: Sample | undefined;
  /** When a field the policy steers on last arrived: the freshness reference. */
  steerAt: number | undefined;
  /** Counts samples carrying a steering field (the controller runs once per new one). */
  sampleSeq: number;
  usedSeq: number;
  lastProbe: ProbeResult | undefined;
  /** Internal weight (static units × scale); undefined while not serving. */
  w: number | undefined;
  /** Weight published (real); the step limit's anchor. */
  pub: number | undefined;
  /** PID's own weight vector entry (blends only; equals w for a pure PID policy). */
  pidW: number | undefined;
  wasServing: boolean;
  /** seedWeights() was called and no sample has arrived yet. */
  seeded: boolean;
  /** First tick after seeding: the reference time for freshness until the first sample. */
  seededAt: number | undefined;
  readonly ejection: EjectionState;
}

/** The fleet outlier detector's memory of one endpoint. */
export interface EjectionState {
  /** Ejected until then (ms); undefined when not ejected. */
  until: number | undefined;
  reason: string;
  /** Doublings earned: raised by a relapse after a recovery, reset after a long clean stretch. */
  level: number;
  /** Ejections so far (for explanations). */
  count: number;
  /** Set at release; cleared once the endpoint served enough clean traffic (it "came back"). */
  onProbation: boolean;
  /** Released this tick: rejoins at a reduced weight. */
  releasedNow: boolean;
  /** When the last ejection ended (for the level's reset). */
  releasedAt: number | undefined;
}

export interface ClusterState {
  readonly name: string;
  readonly policy: WeightingPolicy;
  readonly parts: ResolvedParts;
  readonly pidConfig: PidConfig;
  readonly errorPenalty: number;
  readonly ewmaKey: string;
  readonly safety: SafetySettings;
  readonly ejection: EjectionSettings;
  readonly order: readonly EndpointState[];
  readonly byKey: ReadonlyMap<string, EndpointState>;
  readonly index: ReadonlyMap<string, number>;
  readonly keys: readonly string[];
  readonly statics: number[];
  /** Integer-conversion groups (localities): group of each endpoint and its position in it. */
  readonly groupOf: number[];
  readonly posInGroup: number[];
  readonly groupSizes: readonly number[];
  lastTickAt: number | undefined;
  lastWeights: Map<string, number> | undefined;
  lastHealth: Map<string, PublishedHealth> | undefined;
  lastServing: number[] | undefined;
  lastFailStatic: boolean;
  /** Set by setCluster/seedWeights: forces a publish on the next tick. */
  dirty: boolean;
}
