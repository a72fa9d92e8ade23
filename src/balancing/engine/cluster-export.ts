/**
 * A cluster's controller state as plain JSON, so that another process (a replica taking over the
 * cluster) continues where the last owner stopped instead of restarting from static weights.
 *
 * What travels: per endpoint the internal, published and PID weights, the PID memory, the EWMA
 * estimators, the smoothed measurement and its noise, and the latest merged sample; per cluster
 * the integer weights last published. What does not: probe health and ejections (each replica
 * probes every endpoint itself, and the fleet detector re-learns from the error window within a
 * few reports), and the error window (rebuilt from the next reports).
 *
 * Import is lenient: endpoints the importer does not know are ignored, endpoints missing from the
 * export keep their own state (they join at their fair share on the next tick), and a malformed
 * entry is skipped rather than half applied.
 */
import type { EwmaMemory } from '../ewma.js';
import { pidMemorySnapshot, restorePidMemory, type PidMemory } from '../pid.js';
import { cell, noteSample, PR_PENDING, PR_SETPOINT, PR_W, setCell, PR_LAST_CONTROL_AT, PR_MEMORY, PR_NOISE, PR_SMOOTHED, ROW, type PidRows } from './pid-rows.js';
import { isSet, UNSET, type ClusterState, type EndpointState } from './state.js';
import { forgetNewcomers, HW_PUB, HW_ROW, HW_SERVED, HW_W, restoreHeldRow } from './held-weights.js';
import type { Sample } from './types.js';

export const CLUSTER_EXPORT_VERSION = 1;

export interface ExportedEndpoint {
  readonly w: number;
  readonly pub: number;
  readonly pidW: number | null;
  readonly smoothed: number | null;
  readonly noise: number;
  readonly pid: PidMemory;
  readonly ewma: EwmaMemory;
  readonly latency: EwmaMemory;
  readonly sample: Sample | null;
  readonly steerAt: number | null;
}

export interface ExportedClusterState {
  readonly version: typeof CLUSTER_EXPORT_VERSION;
  /** The integer weights last published, by endpoint key. */
  readonly weights: Readonly<Record<string, number>>;
  /** Serving endpoints only: the others rejoin at their fair share anyway. */
  readonly endpoints: Readonly<Record<string, ExportedEndpoint>>;
}

/** The state of a cluster that has ticked at least once; undefined before its first tick. */
export function exportCluster(c: ClusterState): ExportedClusterState | undefined {
  if (c.lastWeights === undefined) return undefined;
  const endpoints: Record<string, ExportedEndpoint> = {};
  const rows = c.pidRows.rows;
  c.order.forEach((e, i) => {
    const o = i * HW_ROW;
    const [w, pub] = [c.held[o + HW_W] as number, c.held[o + HW_PUB] as number];
    if (c.held[o + HW_SERVED] !== 1 || !isSet(w) || !isSet(pub)) return;
    const smoothed = cell(rows, i, PR_SMOOTHED);
    const pidW = cell(rows, i, PR_W);
    endpoints[e.key] = {
      w,
      pub,
      pidW: isSet(pidW) ? pidW : null,
      smoothed: isSet(smoothed) ? smoothed : null,
      noise: cell(rows, i, PR_NOISE),
      pid: pidMemorySnapshot(rows, i * ROW + PR_MEMORY),
      ewma: e.ewma.snapshot(),
      latency: e.latency.snapshot(),
      sample: e.sample ?? null,
      steerAt: e.steerAt ?? null,
    };
  });
  return { version: CLUSTER_EXPORT_VERSION, weights: Object.fromEntries(c.lastWeights), endpoints };
}

/**
 * Continues from an export: the next tick starts from the exported published weights (the step
 * limit's anchor) and controller memory, and publishes (the cluster is marked dirty). Returns the
 * number of endpoints restored.
 */
export function importCluster(c: ClusterState, state: ExportedClusterState, now?: number): number {
  if (state.version !== CLUSTER_EXPORT_VERSION) throw new RangeError(`cluster state version ${String(state.version)} is not ${CLUSTER_EXPORT_VERSION}`);
  let restored = 0;
  // A hand-over is a restart for newcomers (held-weights.ts): what this engine marked is stale news.
  forgetNewcomers(c.held);
  for (const [key, x] of Object.entries(state.endpoints)) {
    const i = c.index.get(key);
    const e = i === undefined ? undefined : c.order[i];
    if (i === undefined || e === undefined || !usable(x)) continue;
    restoreRow(c.pidRows, i, x);
    restoreHeldRow(c.held, i, x.w, x.pub);
    // The exported sample was consumed by the last owner: the controller waits for a new one.
    if (restoreEndpoint(e, now === undefined ? x : notAfter(x, now, c.safety.staleAfterMs))) {
      setCell(c.pidRows.rows, i, PR_PENDING, 0);
      noteSample(c.pidRows, i, e.sample);
    }
    restored++;
  }
  // The first tick after a hand-over counts as one tick (dt, step limit), however long the gap.
  c.lastTickAt = undefined;
  c.dirty = true;
  return restored;
}

function usable(x: ExportedEndpoint): boolean {
  const positive = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v > 0;
  return positive(x.w) && positive(x.pub) && (x.pidW === null || positive(x.pidW)) && typeof x.pid === 'object' && typeof x.ewma === 'object' && typeof x.latency === 'object';
}

/** The PID part of an endpoint's import (its row in pid-rows.ts). */
function restoreRow(p: PidRows, i: number, x: ExportedEndpoint): void {
  const o = i * ROW;
  p.rows[o + PR_SMOOTHED] = x.smoothed !== null && Number.isFinite(x.smoothed) ? x.smoothed : UNSET;
  p.rows[o + PR_NOISE] = Number.isFinite(x.noise) && x.noise >= 0 ? x.noise : 0;
  restorePidMemory(p.rows, o + PR_MEMORY, p.params, x.pid);
  p.rows[o + PR_SETPOINT] = UNSET;
  p.rows[o + PR_W] = x.pidW ?? x.w;
  // Unknown: the first step after the hand-over is one tick's worth (see tick/pid.ts stepTicks).
  p.rows[o + PR_LAST_CONTROL_AT] = UNSET;
}

/**
 * The export with no time later than `now` (the importer's clock). The exporter's clock may run
 * ahead of the importer's: adopted as they are, its times made the importer refuse every sample of
 * its own (older than the adopted one) and read the adopted data as fresh for as long as the skew,
 * so a failing endpoint went unseen (a review: 10 minutes ahead, 0 of 40 samples taken). A time
 * from the future says nothing of when it was: it is taken as `ago` before now, old enough for
 * anything the importer measures to replace it, fresh enough to be held rather than decayed.
 */
function notAfter(x: ExportedEndpoint, now: number, ago: number): ExportedEndpoint {
  const at = (t: number | null): number | null => (t !== null && t > now ? now - ago : t);
  return {
    ...x,
    sample: x.sample !== null && x.sample.at > now ? { ...x.sample, at: now - ago } : x.sample,
    steerAt: at(x.steerAt),
    ewma: { ...x.ewma, lastAt: at(x.ewma.lastAt) },
    latency: { ...x.latency, lastAt: at(x.latency.lastAt) },
  };
}

/** Restores the endpoint's state but the PID's and the held weights; true when it adopted the exported sample. */
function restoreEndpoint(e: EndpointState, x: ExportedEndpoint): boolean {
  e.seeded = false;
  e.seededAt = undefined;
  e.ewma.restore(x.ewma);
  e.latency.restore(x.latency);
  if (x.steerAt !== null && Number.isFinite(x.steerAt)) e.steerAt = Math.max(e.steerAt ?? x.steerAt, x.steerAt);
  if (x.sample === null || (e.sample !== undefined && e.sample.at > x.sample.at)) return false; // a newer local sample stays pending
  e.sample = x.sample;
  e.fieldAt = undefined; // each field as old as the adopted sample
  return true;
}
