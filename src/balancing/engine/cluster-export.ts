/**
 * A cluster's controller state as plain JSON, so that another process (a replica taking over the
 * cluster) continues where the last owner stopped instead of restarting from static weights.
 *
 * What travels: per endpoint the internal, published and PID weights, the PID memory, the EWMA
 * estimators, the smoothed measurement and its noise, the latest merged sample, and whether it is
 * earning its share back (held-weights.ts HW_EARN); per cluster the integer weights last published;
 * and the fleet outlier detector's verdicts: every endpoint's ejection state (still ejected, its
 * back-off level, probation, its last release) and the ejection parts of the departed memory
 * (departed.ts). Without them the new owner published an ejected endpoint HEALTHY at its whole fair
 * share until its own error window caught up (an ejected endpoint gets no traffic, so no errors to
 * see), and a flapping endpoint's doubling back-off restarted at the base at every hand-over. And a
 * backlog drain under way (tick/backlog.ts: its factor back to the controller's weight, its
 * report's age, whether a report cleared it): handed over mid-drain, an endpoint goes back on the
 * new owner's first report without a backlog, as on the old owner's; without it, it climbed back
 * from the drain at the controller's pace (handover-drain.test.ts: 10 s from half its share).
 *
 * What does not: probe health (each replica probes every endpoint itself), the error window and the
 * load-report flow (rebuilt from the next reports), and the newcomer marks of endpoints that have
 * not served yet (held-weights.ts NEWCOMER: the first tick after an import is a cluster's first,
 * whose joiners take their whole share; see forgetNewcomers), and a backlog share the controller
 * has not read yet (exportedDrain: the next report is read anew).
 *
 * Times travel as durations from the export's `at` (the exporter's clock) and restart at the
 * importer's now: another replica's clock may be skewed by any amount, while a record is at most
 * `stateRefreshMs` plus a lease old (ha/weight-share.ts). An imported ejection so lasts what it had
 * left, never less (a skewed clock releases nothing early) and never more than the record's age
 * longer, and never beyond the importer's maxEjectionMs; the importer's maxEjectedRatio holds
 * (those beyond its room are released at its next tick, shortest back-off first), and it never
 * ejects the last endpoint that could serve. A drain's report is as old at the import as at the
 * export, and one already stale (staleAfterMs) is dropped (importDrain).
 *
 * Import is lenient: endpoints the importer does not know are ignored, endpoints missing from the
 * export keep their own state (they join at their fair share on the next tick), and a malformed
 * entry is skipped rather than half applied. The fields added since version 1 first shipped (`at`,
 * `ejections`, `departed`, an endpoint's `earning` and `drain`) are optional: an importer that
 * predates them ignores them, and an export without them leaves the importer's own ejections as
 * they were (and its endpoints climb back from a drain at the controller's pace, as before).
 */
import type { EwmaMemory } from '../ewma.js';
import { pidMemorySnapshot, restorePidMemory, type PidMemory } from '../pid.js';
import { cell, noteSample, PR_PENDING, PR_SETPOINT, PR_W, setCell, PR_LAST_CONTROL_AT, PR_MEMORY, PR_NOISE, PR_SMOOTHED, ROW, type PidRows } from './pid-rows.js';
import { isSet, UNSET, type ClusterState, type EjectionState, type EndpointState } from './state.js';
import { forgetNewcomers, HW_EARN, HW_PUB, HW_ROW, HW_SERVED, HW_W, restoreHeldRow } from './held-weights.js';
import { beyondRoom, DepartedMemory } from './departed.js';
import { underWay, type BacklogDrain } from './tick/backlog.js';
import type { EjectionSettings, SafetySettings, Sample } from './types.js';

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
  /** Earning back the share it started below (held-weights.ts HW_EARN); absent: not. */
  readonly earning?: true;
  /** A backlog drain under way (tick/backlog.ts); absent: none, or an export without `at`. */
  readonly drain?: ExportedDrain;
}

/** A backlog drain under way (tick/backlog.ts BacklogDrain), its time as a duration back from the export's `at`. */
export interface ExportedDrain {
  /** The factor from its PID weight (`pidW`) back to the controller's own: above 1. */
  readonly back: number;
  /** The load report that drained it (or, once cleared, that cleared it) came this long before `at` (ms). */
  readonly reportMsAgo: number;
  /** A report newer than the drain's showed no backlog: it goes back on the controller's next run. */
  readonly cleared?: true;
}

/**
 * The fleet outlier detector's memory of an endpoint (state.ts EjectionState), its times as
 * durations back from or on from the export's `at`.
 */
export interface ExportedEjection {
  /** Still ejected for this long (ms); absent: not ejected. */
  readonly forMs?: number;
  /** Why it is ejected (explanations); only while it is. */
  readonly reason?: string;
  readonly level: number;
  readonly count: number;
  readonly onProbation: boolean;
  /** Its last ejection ended this long before `at` (ms); absent: never released. */
  readonly releasedMsAgo?: number;
}

/** A departed key's ejection (departed.ts), and how much longer the memory keeps it (ms from `at`). */
export interface ExportedDeparture extends ExportedEjection {
  readonly keptMs: number;
}

export interface ExportedClusterState {
  readonly version: typeof CLUSTER_EXPORT_VERSION;
  /** The integer weights last published, by endpoint key. */
  readonly weights: Readonly<Record<string, number>>;
  /** Serving endpoints only: the others rejoin at their fair share anyway. */
  readonly endpoints: Readonly<Record<string, ExportedEndpoint>>;
  /** The exporter's time the durations below count from. */
  readonly at?: number;
  /** Every endpoint with an ejection state, by key (serving or not). */
  readonly ejections?: Readonly<Record<string, ExportedEjection>>;
  /** The departed memory's ejection parts, oldest departure first. */
  readonly departed?: Readonly<Record<string, ExportedDeparture>>;
}

/** Levels beyond this double nothing more (baseEjectionMs × 2^64 is past any maxEjectionMs). */
const MAX_LEVEL = 64;
/** An imported reason longer than this is not one the engine wrote. */
const MAX_REASON = 1_024;

/**
 * The state of a cluster that has ticked at least once; undefined before its first tick. `clock`:
 * the engine's time (its latest tick), from which the ejections' durations count when the cluster
 * has not ticked since an import.
 */
export function exportCluster(c: ClusterState, clock = Number.NEGATIVE_INFINITY): ExportedClusterState | undefined {
  if (c.lastWeights === undefined) return undefined;
  const endpoints: Record<string, ExportedEndpoint> = {};
  const rows = c.pidRows.rows;
  const at = Math.max(c.lastTickAt ?? Number.NEGATIVE_INFINITY, clock);
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
      ...(c.held[o + HW_EARN] === 1 ? { earning: true as const } : {}),
      ...exportedDrain(e.drain, at),
    };
  });
  const state: ExportedClusterState = { version: CLUSTER_EXPORT_VERSION, weights: Object.fromEntries(c.lastWeights), endpoints };
  return Number.isFinite(at) ? { ...state, ...exportEjections(c, at) } : state;
}

/**
 * An endpoint's drain, when one is under way (its factor back set) and the export has a time to
 * count from. A share the controller has not read yet does not travel: the importer's controller
 * waits for a sample newer than the exported one (importCluster), and the next load report, read
 * before it, recomputes the share from its own backlog (or none); a cut past the step limit is
 * taken on that fresh report, not on the last owner's.
 */
function exportedDrain(d: BacklogDrain | undefined, at: number): { drain?: ExportedDrain } {
  if (!underWay(d) || !Number.isFinite(at)) return {};
  return { drain: { back: d.back, reportMsAgo: Math.max(0, at - d.at), ...(d.cleared ? { cleared: true as const } : {}) } };
}

/** The cluster's ejection states and departed memory as of `at`. */
function exportEjections(c: ClusterState, at: number): Pick<ExportedClusterState, 'at' | 'ejections' | 'departed'> {
  const ejections: Record<string, ExportedEjection> = {};
  for (const e of c.order) if (e.ejection !== undefined) ejections[e.key] = exportedEjection(e.ejection, at);
  const departed: Record<string, ExportedDeparture> = {};
  for (const d of c.departed?.ejections(at) ?? []) departed[d.key] = { ...exportedEjection(d.ejection, at), keptMs: d.until - at };
  return { at, ejections, departed };
}

function exportedEjection(j: EjectionState, at: number): ExportedEjection {
  return {
    ...(j.until !== undefined ? { forMs: Math.max(0, j.until - at), reason: j.reason } : {}),
    level: j.level,
    count: j.count,
    onProbation: j.onProbation,
    ...(j.releasedAt !== undefined ? { releasedMsAgo: Math.max(0, at - j.releasedAt) } : {}),
  };
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
  // Without a time of its own or the exporter's, a duration starts nowhere: the ejections and drains stay out.
  const base = now ?? state.at;
  const clock = typeof base === 'number' && Number.isFinite(base) ? base : undefined;
  for (const [key, x] of Object.entries(recordOf(state.endpoints) ?? {}) as [string, ExportedEndpoint][]) {
    const i = c.index.get(key);
    const e = i === undefined ? undefined : c.order[i];
    if (i === undefined || e === undefined || !usable(x)) continue;
    restoreRow(c.pidRows, i, x);
    restoreHeldRow(c.held, i, x.w, x.pub, x.earning === true);
    // The exported sample was consumed by the last owner: the controller waits for a new one.
    if (restoreEndpoint(e, now === undefined ? x : notAfter(x, now, c.safety.staleAfterMs))) {
      setCell(c.pidRows.rows, i, PR_PENDING, 0);
      noteSample(c.pidRows, i, e.sample);
    }
    importDrain(c, e, x.drain, clock);
    restored++;
  }
  c.draining = c.order.reduce((n, e) => n + (e.drain !== undefined ? 1 : 0), 0);
  if (clock !== undefined) importEjections(c, state, clock);
  // The first tick after a hand-over counts as one tick (dt, step limit), however long the gap.
  c.lastTickAt = undefined;
  c.dirty = true;
  return restored;
}

/**
 * A restored endpoint's drain: the export's when it carries a valid one whose report is still fresh
 * at `now` (the controller lets a drain go without a way back once its reports are stale: tick/
 * backlog.ts drainOrRestore), in place of any of the importer's own under way (of an ownership
 * before, whose factor back was of a PID weight the import replaced). A backlog share the importer
 * noted itself and its controller has not read yet stays pending: the controller reads it, fresh,
 * on its next run.
 */
function importDrain(c: ClusterState, e: EndpointState, x: unknown, now: number | undefined): void {
  const d = now === undefined ? undefined : drainOf(x, now, c.safety);
  if (d !== undefined) e.drain = d;
  else if (underWay(e.drain)) e.drain = undefined;
}

/**
 * An exported drain as the importer's at `now`, or undefined when malformed (untrusted), stale or
 * none. Its factor back is above 1 (a drain cuts below the controller's weight; at or below 1 it
 * would bring nothing back, or cut on the way back), and restores at most the importer's ceiling
 * over its floor (maxWeightRatio / minWeightRatio, 400 by default: from its floor, a factor as
 * large already reaches past its ceiling, where the clamps stop it anyway); a larger one is taken
 * as that. Its report as long before `now` as before the export (the record's own age, as for the
 * ejections, is unknown across clocks).
 */
function drainOf(x: unknown, now: number, s: SafetySettings): BacklogDrain | undefined {
  if (typeof x !== 'object' || x === null) return undefined;
  const { back, reportMsAgo, cleared } = x as Partial<Record<keyof ExportedDrain, unknown>>;
  if (typeof back !== 'number' || !(back > 1 && back < Number.POSITIVE_INFINITY)) return undefined;
  if (typeof reportMsAgo !== 'number' || !(reportMsAgo >= 0 && reportMsAgo <= s.staleAfterMs)) return undefined;
  if (cleared !== undefined && typeof cleared !== 'boolean') return undefined;
  return { share: Number.NaN, at: now - reportMsAgo, back: Math.min(back, s.maxWeightRatio / s.minWeightRatio), cleared: cleared === true };
}

/**
 * The export's ejections, as of `now` (the importer's time), in place of the importer's own: an
 * endpoint the exporter knew (in its published weights) takes the exported state, or none when the
 * export has none for it; the importer's state of an ownership before is stale. A departed key of
 * the exporter's that this cluster lists (the catalog's change reached the two at other times)
 * resumes its ejection, as departed.ts does. Then the cluster's room: those beyond it are released
 * at the next tick (on probation, at a quarter of their share). Each part only when the export
 * carries it.
 */
function importEjections(c: ClusterState, state: ExportedClusterState, now: number): void {
  const s = c.ejection;
  const ejections = recordOf(state.ejections);
  const departed = recordOf(state.departed);
  if (ejections !== undefined) {
    const known = recordOf(state.weights) ?? {};
    const held: EndpointState[] = [];
    for (const e of c.order) {
      const mine = Object.hasOwn(ejections, e.key) ? ejections[e.key] : departed !== undefined && Object.hasOwn(departed, e.key) ? departed[e.key] : undefined;
      if (mine === undefined) {
        if (Object.hasOwn(known, e.key)) e.ejection = undefined;
        continue;
      }
      // Malformed: skipped, the importer's own state stays.
      const j = ejectionOf(mine, now, s);
      if (j === undefined) continue;
      e.ejection = j;
      if (j.until !== undefined && j.until > now) held.push(e);
    }
    // Released at the next tick, as a back-off that ends then.
    for (const e of beyondRoom(c.order, held, s, now)) (e.ejection as EjectionState).until = now;
  }
  if (departed !== undefined) adoptDeparted(c, departed, now);
}

/** The exported departed memory's ejection parts (keys the cluster lists aside: importEjections took them), in place of the importer's. */
function adoptDeparted(c: ClusterState, departed: Readonly<Record<string, unknown>>, now: number): void {
  const s = c.ejection;
  const adopted: { key: string; ejection: EjectionState; until: number }[] = [];
  for (const [key, x] of Object.entries(departed)) {
    if (c.index.has(key)) continue;
    const j = ejectionOf(x, now, s);
    const kept = (x as Partial<ExportedDeparture>).keptMs;
    if (j === undefined || typeof kept !== 'number' || !(kept > 0 && kept < Number.POSITIVE_INFINITY)) continue;
    adopted.push({ key, ejection: j, until: now + Math.min(kept, s.maxEjectionMs) });
  }
  if (adopted.length === 0 && c.departed === undefined) return;
  c.departed ??= new DepartedMemory();
  c.departed.adoptEjections(adopted, now);
}

/**
 * An exported ejection as the importer's state at `now`, or undefined when malformed (untrusted:
 * another version's, corrupted, or a hostile writer's). Its remaining back-off restarts at `now`,
 * never beyond maxEjectionMs; its release is as long before `now` as before the export.
 */
function ejectionOf(x: unknown, now: number, s: EjectionSettings): EjectionState | undefined {
  if (typeof x !== 'object' || x === null) return undefined;
  const { forMs, reason, level, count, onProbation, releasedMsAgo } = x as Partial<Record<keyof ExportedEjection, unknown>>;
  const duration = (v: unknown): v is number | undefined => v === undefined || (typeof v === 'number' && v >= 0 && v < Number.POSITIVE_INFINITY);
  if ((reason !== undefined && (typeof reason !== 'string' || reason.length > MAX_REASON)) || typeof onProbation !== 'boolean') return undefined;
  if (!Number.isSafeInteger(level) || (level as number) < 0 || (level as number) > MAX_LEVEL || !Number.isSafeInteger(count) || (count as number) < 0) return undefined;
  if (!duration(forMs) || !duration(releasedMsAgo)) return undefined;
  return {
    until: forMs === undefined ? undefined : now + Math.min(forMs, s.maxEjectionMs),
    reason: reason ?? '',
    level: level as number,
    count: count as number,
    onProbation,
    releasedNow: false,
    releasedAt: releasedMsAgo === undefined ? undefined : now - releasedMsAgo,
  };
}

/** `v` when it is a JSON object (not an array, not null). */
function recordOf(v: unknown): Readonly<Record<string, unknown>> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function usable(x: ExportedEndpoint): boolean {
  if (typeof x !== 'object' || x === null) return false;
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
