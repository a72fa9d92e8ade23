/**
 * The PID's per-endpoint state of one cluster, as one row of doubles per endpoint position in a
 * single Float64Array: the PID's own weight, whether a new sample awaits the controller, the
 * controller memory (pid.ts), the smoothed measurement and its noise, when the controller last
 * acted, and the last step (for explanations while awaiting a sample).
 *
 * Why rows in one array rather than fields of each EndpointState plus a PidController, its gains
 * and a step object per endpoint: V8 keeps an object's double fields as separate heap numbers, so
 * the PID passes of a 10,000-endpoint tick chased five objects and a dozen scattered heap numbers
 * per endpoint and were memory-bound (bench/RESULTS.md, pid4). A row is two cache lines, and the
 * passes walk rows in position order; with the tick's samples in the frame, the PID stage reads
 * no EndpointState at all.
 *
 * Rows move with their endpoint when a cluster's endpoint set changes (weight-engine.ts copies
 * them by key), so the row of position i always belongs to the cluster's order[i].
 */
import { PID_MEMORY_SLOTS, resetPidMemory, type PidParams } from '../pid.js';
import type { Sample } from './types.js';

/** Controller memory: slots 0..3 of the row (pid.ts). */
export const PR_MEMORY = 0;
/** Smoothed measurement (NaN until the first). */
export const PR_SMOOTHED = PID_MEMORY_SLOTS;
/** Mean absolute gap between a new measurement and the smoothed one. */
export const PR_NOISE = PR_SMOOTHED + 1;
/** `at` of the sample the controller last consumed (NaN: none). */
export const PR_LAST_CONTROL_AT = PR_NOISE + 1;
/** The PID's own weight vector entry (blends only; equals w for a pure PID policy); NaN while not serving. */
export const PR_W = PR_LAST_CONTROL_AT + 1;
/** The last step's setpoint; NaN until the controller has stepped (then the fields below are set too). */
export const PR_SETPOINT = PR_W + 1;
/** The last step's measurement (its error is setpoint − measurement: pid.ts computes it so). */
export const PR_MEASUREMENT = PR_SETPOINT + 1;
/** 1 when a sample carrying a field the policy steers on arrived since the controller last ran. */
export const PR_PENDING = PR_MEASUREMENT + 1;
export const PR_P = PR_PENDING + 1;
export const PR_I = PR_P + 1;
export const PR_D = PR_I + 1;
export const PR_OUTPUT = PR_D + 1;
export const PR_MULTIPLIER = PR_OUTPUT + 1;
/** Doubles per row (16: two 64-byte cache lines). */
export const ROW = 16;

export interface PidRows {
  /** The cluster's controller parameters (gains per tick, output range). */
  readonly params: PidParams;
  /** ROW doubles per endpoint position. */
  readonly rows: Float64Array;
  /**
   * Each endpoint's merged sample as the PID reads it, LATEST_SLOTS per position: its cpu (NaN:
   * none) at LATEST_SLOTS·i + LATEST_CPU, its `at` (NaN: no sample) at + LATEST_AT, and the error
   * rate of its request counts (NaN: none) at + LATEST_ERROR_RATE. Kept here by whatever sets an
   * endpoint's sample (noteSample), not read from the sample: a sample's cpu is a double field,
   * and V8 boxed it into a new heap number on every read that tested it for undefined (one per
   * steered endpoint per tick, bench/RESULTS.md, pid6); and the sample object, allocated when it
   * arrived, was a cache miss per controlled endpoint at 500 clusters × 20 (pid7). The error rate
   * is computed once per sample, not twice per tick (the error term and holdFailing read it).
   */
  readonly latest: Float64Array;
}

export const LATEST_CPU = 0;
export const LATEST_AT = 1;
export const LATEST_ERROR_RATE = 2;
export const LATEST_SLOTS = 3;

/** Rows for n endpoints, all fresh. */
export function newPidRows(params: PidParams, n: number): PidRows {
  const rows = new Float64Array(n * ROW);
  for (let i = 0; i < n; i++) freshRow(rows, i, params);
  return { params, rows, latest: new Float64Array(LATEST_SLOTS * n).fill(Number.NaN) };
}

/** Records endpoint i's merged sample's cpu, time and error rate (call whenever the endpoint's sample changes). */
export function noteSample(p: PidRows, i: number, sample: Sample | undefined): void {
  const o = LATEST_SLOTS * i;
  p.latest[o + LATEST_CPU] = sample?.cpu ?? Number.NaN;
  p.latest[o + LATEST_AT] = sample?.at ?? Number.NaN;
  p.latest[o + LATEST_ERROR_RATE] = sampleErrorRate(sample);
}

/**
 * The error rate of a sample's request counts (NaN without them): what its utilization in the
 * same sample was measured under (tick/pid.ts errorTerm).
 */
function sampleErrorRate(s: Sample | undefined): number {
  const rps = s?.rps;
  return rps !== undefined && rps > 0 && s?.errors !== undefined ? Math.min(1, Math.max(0, s.errors / rps)) : Number.NaN;
}

/** A new endpoint's row: no history, no step. */
export function freshRow(rows: Float64Array, i: number, params: PidParams): void {
  const o = i * ROW;
  rows.fill(0, o, o + ROW);
  resetPidMemory(rows, o + PR_MEMORY, params);
  rows[o + PR_SMOOTHED] = Number.NaN;
  rows[o + PR_LAST_CONTROL_AT] = Number.NaN;
  rows[o + PR_W] = Number.NaN;
  rows[o + PR_SETPOINT] = Number.NaN;
  rows[o + PR_MULTIPLIER] = 1;
}

/** What (re)joining rotation forgets: controller history, the smoothed measurement and the last step (not the noise). */
export function rejoinRow(p: PidRows, i: number): void {
  const o = i * ROW;
  resetPidMemory(p.rows, o + PR_MEMORY, p.params);
  p.rows[o + PR_SETPOINT] = Number.NaN;
  p.rows[o + PR_SMOOTHED] = Number.NaN;
  p.rows[o + PR_LAST_CONTROL_AT] = Number.NaN;
}

/** Sets a row's field. */
export function setCell(rows: Float64Array, i: number, field: number, value: number): void {
  rows[i * ROW + field] = value;
}

/** A row's field. */
export const cell = (rows: Float64Array, i: number, field: number): number => rows[i * ROW + field] as number;
