/**
 * A cluster's memory of the endpoints that left it with a back-off still running. All of an
 * endpoint's state lives on it, keyed by its `host:port`; without this memory an endpoint removed
 * and re-added under the same key started fresh, so a backend that keeps failing and being listed
 * again (a pod deleted and recreated at the same address, an EndpointSlice entry that comes and
 * goes, a config file edit, an admin PUT) escaped the doubling back-off and got traffic every time
 * it came back.
 *
 * What comes back with the key: the fleet outlier detector's EjectionState (still ejected, and
 * published UNHEALTHY, until its back-off ends, then probation; a relapse keeps doubling; a back-off
 * that ended while it was away is released as it would have been, and the endpoint judged on its
 * first report) and the probes' HealthTracker (down until its retry, then RECOVERING; a relapse
 * keeps doubling): what the backend at that address did wrong, which a restart does not undo. What
 * does not: the PID's memory, the EWMA and latency estimators, the merged sample and the load-report
 * flow, the error window and the weights. They describe how the process that left behaved under
 * load, and the one listed again is another (restarted, cold): it joins as a newcomer (newcomerShare,
 * or probation's quarter when its resumed ejection ends in a tick).
 *
 * Written only when endpoints leave and read only when keys join (WeightEngine's install), never
 * in a tick. Bounded in time and in size: an entry's ejection part is kept no longer than its
 * back-off's end plus the window in which a relapse still doubles (maxEjectionMs after the last
 * release: tick/ejection.ts) and never longer than maxEjectionMs after the endpoint left, the
 * probes' part no longer than the probes' maxBackoffMs after it left; and a cluster keeps at most
 * MAX_DEPARTED entries, the oldest departure out first (a churning or hostile source listing ever
 * new keys cannot grow it).
 *
 * Time is the engine's: the `now` of its latest tick (no clock of its own; setCluster takes none).
 * The ejection parts travel in a cluster's export (cluster-export.ts: a replica taking the cluster
 * over adopts them in place of its own, which are stale); the probes' parts stay with each replica,
 * whose own probes wrote them. Not kept over a restart.
 */
import type { HealthTracker } from '../health.js';
import { ejectionRoom, inRotation } from './tick/ejection.js';
import type { EjectionState, EndpointState } from './state.js';
import type { EjectionSettings } from './types.js';
import { NEW_ENDPOINT } from './carried-rows.js';

/** Departed endpoints a cluster remembers at most. */
export const MAX_DEPARTED = 1_024;

/** What a departed key brings back, and until when (ms) each part is still worth bringing. */
interface Departed {
  readonly ejection: EjectionState | undefined;
  readonly ejectionUntil: number;
  readonly tracker: HealthTracker | undefined;
  readonly trackerUntil: number;
}

/** How long after an endpoint left each part of its memory may last (ms). */
export interface DepartedLimits {
  /** The cluster's ejection.maxEjectionMs. */
  readonly ejectionMs: number;
  /** The probes' maxBackoffMs. */
  readonly probeMs: number;
}

/** One cluster's memory, in the order the endpoints left (a Map keeps insertion order). */
export class DepartedMemory {
  private readonly entries = new Map<string, Departed>();

  get size(): number {
    return this.entries.size;
  }

  /** The keys remembered, oldest departure first. */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  /**
   * Remembers the endpoints that left at `now` with something worth bringing back. Those of one
   * write are taken in key order, so which goes first when the memory is full does not depend on
   * where they stood in the cluster.
   */
  remember(leavers: readonly EndpointState[], now: number, limits: DepartedLimits): void {
    const kept: [string, Departed][] = [];
    for (const e of leavers) {
      const d = departedOf(e, now, limits);
      if (d !== undefined) kept.push([e.key, d]);
    }
    kept.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    // More than the memory holds (a source replacing its whole list): only the last would stay.
    for (const [key, d] of kept.length > MAX_DEPARTED ? kept.slice(-MAX_DEPARTED) : kept) {
      // A key that left before and came back is as recent as its latest departure.
      this.entries.delete(key);
      this.entries.set(key, d);
    }
    this.evict(now);
  }

  /** What `key` brings back at `now`, taken out of the memory (undefined: nothing). */
  take(key: string, now: number): { ejection: EjectionState | undefined; tracker: HealthTracker | undefined } | undefined {
    const d = this.entries.get(key);
    if (d === undefined) return undefined;
    this.entries.delete(key);
    const ejection = d.ejectionUntil > now ? d.ejection : undefined;
    const tracker = d.trackerUntil > now ? d.tracker : undefined;
    return ejection === undefined && tracker === undefined ? undefined : { ejection, tracker };
  }

  /** The ejection parts still due at `now`, oldest departure first: each key's state and until when it is kept (a cluster's export). */
  ejections(now: number): { readonly key: string; readonly ejection: EjectionState; readonly until: number }[] {
    const out: { key: string; ejection: EjectionState; until: number }[] = [];
    for (const [key, d] of this.entries) if (d.ejection !== undefined && d.ejectionUntil > now) out.push({ key, ejection: d.ejection, until: d.ejectionUntil });
    return out;
  }

  /**
   * Takes `adopted` (another engine's, translated to this one's time: cluster-export.ts) as the
   * memory's ejection parts, in their order after the entries kept: this engine's own ejection
   * parts are dropped (what it remembers of an ownership before), its probes' parts kept.
   */
  adoptEjections(adopted: readonly { readonly key: string; readonly ejection: EjectionState; readonly until: number }[], now: number): void {
    for (const [key, d] of this.entries) {
      if (d.tracker === undefined) this.entries.delete(key);
      else if (d.ejection !== undefined) this.entries.set(key, { ...d, ejection: undefined, ejectionUntil: Number.NEGATIVE_INFINITY });
    }
    for (const a of adopted) {
      const d = this.entries.get(a.key);
      this.entries.delete(a.key);
      this.entries.set(a.key, { tracker: d?.tracker, trackerUntil: d?.trackerUntil ?? Number.NEGATIVE_INFINITY, ejection: a.ejection, ejectionUntil: a.until });
    }
    this.evict(now);
  }

  /** Forgets what the probes said (the cluster's probe was taken off: WeightEngine.forgetProbes). */
  forgetProbes(): void {
    for (const [key, d] of this.entries) {
      if (d.ejection === undefined) this.entries.delete(key);
      else if (d.tracker !== undefined) this.entries.set(key, { ...d, tracker: undefined, trackerUntil: Number.NEGATIVE_INFINITY });
    }
  }

  /** Drops the oldest departures beyond MAX_DEPARTED, and expired ones from the front. */
  private evict(now: number): void {
    for (const [key, d] of this.entries) {
      if (this.entries.size <= MAX_DEPARTED && Math.max(d.ejectionUntil, d.trackerUntil) > now) break;
      this.entries.delete(key);
    }
  }
}

/** What of an endpoint leaving at `now` is worth remembering; undefined: nothing. */
function departedOf(e: EndpointState, now: number, limits: DepartedLimits): Departed | undefined {
  const j = e.ejection;
  // Ejected: until the back-off's end plus the relapse window, at most maxEjectionMs after it left.
  // Released: the relapse window (maxEjectionMs from the release: tick/ejection.ts resets the level then).
  const since = j === undefined ? undefined : (j.until ?? j.releasedAt);
  const ejectionUntil = since === undefined ? Number.NEGATIVE_INFINITY : Math.min(now, since) + limits.ejectionMs;
  const t = e.tracker;
  const trackerUntil = t !== undefined && t.holdsBackoff(now) ? now + limits.probeMs : Number.NEGATIVE_INFINITY;
  const ejection = ejectionUntil > now ? j : undefined;
  const tracker = trackerUntil > now ? t : undefined;
  if (ejection === undefined && tracker === undefined) return undefined;
  return { ejection, ejectionUntil, tracker, trackerUntil };
}

/**
 * The endpoints of a cluster's old order that are not in its new one (`from`: each new position's
 * old position, NEW_ENDPOINT for a joiner: carried-rows.ts).
 */
export function leaversOf(old: readonly EndpointState[], from: Int32Array): EndpointState[] {
  const stays = new Uint8Array(old.length);
  let kept = 0;
  for (let i = 0; i < from.length; i++) {
    const f = from[i] as number;
    if (f !== NEW_ENDPOINT) {
      stays[f] = 1;
      kept++;
    }
  }
  const out: EndpointState[] = [];
  if (kept === old.length) return out;
  for (let p = 0; p < old.length; p++) if (stays[p] === 0) out.push(old[p] as EndpointState);
  return out;
}

/**
 * Gives the joiners of a new order (`from[i]` NEW_ENDPOINT) what the memory holds of their keys,
 * at `now` (the engine's time). A resumed ejection counts against the cluster's maxEjectedRatio as
 * any other and never takes out the last endpoint that could serve (tick/ejection.ts judge): those
 * beyond the room, the shortest back-offs first, are released now (releasedAway).
 */
export function resumeDeparted(memory: DepartedMemory, order: readonly EndpointState[], from: Int32Array, s: EjectionSettings, now: number): void {
  const held: EndpointState[] = [];
  for (let i = 0; i < order.length; i++) {
    if (from[i] !== NEW_ENDPOINT) continue;
    const e = order[i] as EndpointState;
    const back = memory.take(e.key, now);
    if (back === undefined) continue;
    if (back.tracker !== undefined) e.tracker = back.tracker;
    const j = (e.ejection = back.ejection);
    if (j?.until === undefined) continue;
    if (j.until > now) held.push(e);
    // Its back-off ended while it was away: released then.
    else releasedAway(j, j.until);
  }
  for (const e of beyondRoom(order, held, s, now)) releasedAway(e.ejection as EjectionState, now);
}

/**
 * Of the endpoints of `order` whose ejection is taken up at `now` (`held`, each ejected past
 * `now`: a departed key's resumed, or one a hand-over brought), those beyond the cluster's room
 * (tick/ejection.ts ejectionRoom): the room counts the other endpoints ejected then, and never takes
 * out the last that could serve. The longest back-off left keeps its room (equal ones in key
 * order); the caller releases the others.
 */
export function beyondRoom(order: readonly EndpointState[], held: EndpointState[], s: EjectionSettings, now: number): EndpointState[] {
  if (held.length === 0) return [];
  // Ejected now: the held ones too, so the room is among them.
  const taken = new Set(held);
  let already = -held.length;
  let mayServe = 0;
  for (const e of order) {
    if (ejectedAt(e, now)) already++;
    if (inRotation(e, now) && (!ejectedAt(e, now) || taken.has(e))) mayServe++;
  }
  const room = ejectionRoom(order.length, already, mayServe, s);
  held.sort((a, b) => untilOf(b) - untilOf(a) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return held.slice(room);
}

/**
 * A resumed ejection that ends at `at` (not after now): released as tick/ejection.ts release does,
 * on probation, its level kept, but for its error rows, fresh since it joined (release resets them,
 * which would drop the reports it sent since it was listed again), and for probation's quarter share:
 * it joins as a newcomer, at newcomerShare, and is judged on its first report as one.
 */
function releasedAway(j: EjectionState, at: number): void {
  j.until = undefined;
  j.onProbation = true;
  j.releasedNow = false;
  j.releasedAt = at;
}

const untilOf = (e: EndpointState): number => e.ejection?.until ?? Number.NEGATIVE_INFINITY;

/** Ejected past `now` (an ejection that ended by then is released at the next tick). */
const ejectedAt = (e: EndpointState, now: number): boolean => e.ejection?.until !== undefined && e.ejection.until > now;
