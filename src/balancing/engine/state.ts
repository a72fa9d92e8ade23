/**
 * What the engine remembers between ticks, per cluster and per endpoint. Only weight-engine.ts
 * creates and replaces these; the tick stages (tick/*.ts) read them and update the fields their
 * stage owns.
 */
import type { EwmaLatency } from '../ewma.js';
import type { HealthTracker } from '../health.js';
import type { DepartedMemory } from './departed.js';
import type { PidRows } from './pid-rows.js';
import type { Frame } from './tick/frame.js';
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
import type { BacklogDrain } from './tick/backlog.js';

/**
 * "No value" for the numbers an endpoint's state rewrites every tick (w, pub): NaN rather
 * than undefined. A field that ever held undefined is a tagged field in V8, so every number written to it is a new heap object (one per endpoint per field per tick,
 * each outliving the tick); a field that only ever holds numbers is updated in place.
 */
export const UNSET = Number.NaN;

/** Whether a numeric state field holds a value (is not UNSET). */
export const isSet = (x: number): boolean => x === x;

/** The field's value, or `fallback` when UNSET. */
export const valueOr = (x: number, fallback: number): number => (x === x ? x : fallback);

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
  /**
   * The two below are created when first needed (a probe result, an ejection): until then the
   * endpoint is AVAILABLE and never ejected, which is what a fresh object would say, and a tick
   * reads nothing more of it. At 500 clusters × 20
   * endpoints each of these objects read per endpoint per tick was a cache miss (bench/RESULTS.md,
   * pid7).
   */
  tracker: HealthTracker | undefined;
  /** The policy's EWMA (with exploration bonus). */
  ewma: EwmaLatency;
  /** Plain smoothed latency for the PID's latency metrics (no bonus). */
  latency: EwmaLatency;
  /** Every field's latest value, merged across sources. */
  sample: Sample | undefined;
  /** When each field of `sample` was taken (undefined until the first sample): see newerFields. */
  fieldAt: FieldTimes | undefined;
  /** When a field the policy steers on last arrived: the freshness reference. */
  steerAt: number | undefined;
  lastProbe: ProbeResult | undefined;
  /** seedWeights() was called and no sample has arrived yet. */
  seeded: boolean;
  /** First tick after seeding: the reference time for freshness until the first sample. */
  seededAt: number | undefined;
  ejection: EjectionState | undefined;
  /** The latest load-report sample with success counts (tick/stall.ts), as it came. */
  flow: Sample | undefined;
  /** The in-progress count of the flow sample before it (NaN: none). */
  flowPrevInflight: number;
  /** A backlog drain pending or under way (tick/backlog.ts). */
  drain: BacklogDrain | undefined;
}

/**
 * When each of an endpoint's sample fields was last taken (ms; -Infinity: never). `traffic` is rps
 * and errors together (errors without rps count for nothing). Sources stamp samples on clocks of
 * their own moments: load reports when they are flushed, an agent when it measured, so an agent's
 * cpu measured before a flush arrives after it and is still the newest cpu there is.
 */
export interface FieldTimes {
  cpu: number;
  inflight: number;
  latencyMs: number;
  traffic: number;
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
  /** The PID stage's per-endpoint state, by position (pid-rows.ts). */
  readonly pidRows: PidRows;
  /** Each endpoint's internal and published weight and whether it served, by position (held-weights.ts). */
  readonly held: Float64Array;
  /** Each endpoint's smoothed request and error counts, by position (error-window.ts). */
  readonly errors: Float64Array;
  /**
   * Some sample with request counts was folded into `errors` (or into the rows of the cluster's
   * previous endpoint set): until then every row is fresh, and a tick reads none of them (a fleet
   * without request counts does not pay for a cold vector per cluster per tick).
   */
  errorsSeen: boolean;
  /**
   * How many endpoints' flow samples could show a stall (tick/stall.ts mayStall), kept as samples
   * arrive: while none can, the outlier detector reads no endpoint's flow.
   */
  stallCandidates: number;
  /** How many endpoints have a backlog drain pending or under way (tick/backlog.ts): while none, the controller reads none. */
  draining: number;
  /**
   * The endpoints that left with a back-off running, for their keys to resume it if listed again
   * (departed.ts); undefined until one has. A hand-over's import may create it (cluster-export.ts).
   */
  departed: DepartedMemory | undefined;
  readonly errorPenalty: number;
  readonly ewmaKey: string;
  readonly safety: SafetySettings;
  readonly ejection: EjectionSettings;
  readonly order: readonly EndpointState[];
  readonly byKey: ReadonlyMap<string, EndpointState>;
  readonly index: ReadonlyMap<string, number>;
  readonly keys: readonly string[];
  readonly statics: number[];
  /** Integer-conversion groups (localities): the group of each endpoint, and how many groups. */
  readonly groupOf: number[];
  readonly groupCount: number;
  lastTickAt: number | undefined;
  lastWeights: ReadonlyMap<string, number> | undefined;
  lastHealth: ReadonlyMap<string, PublishedHealth> | undefined;
  lastServing: number[] | undefined;
  lastFailStatic: boolean;
  /** Set by setCluster/seedWeights: forces a publish on the next tick. */
  dirty: boolean;
  /** The last tick's frame, and the one before it (recycled by the next tick: tick/frame.ts). */
  readonly frames: { last: Frame | undefined; spare: Frame | undefined };
}
