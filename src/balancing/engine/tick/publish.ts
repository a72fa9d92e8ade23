/**
 * Stages 7–8: hysteresis (publish only if some endpoint moved more than `hysteresis` relative to
 * what is published, or the set, health or fail-static status changed; on a hold the internal
 * weights keep moving, so small corrections accumulate until worth a push, and the published
 * integers are reused exactly), then integer conversion and published health.
 */
import { toIntegerWeightsByGroup } from '../../integer-weights.js';
import { ArrayMap, sameEntries } from '../indexed-map.js';
import { valueOr, type ClusterState, type EndpointState } from '../state.js';
import { HW_PUB, HW_ROW, HW_SERVED, HW_W, NEWCOMER } from '../held-weights.js';
import { exceedsHysteresis } from '../stages.js';
import type { PublishedHealth } from '../types.js';
import { H_DISABLED, mark, ruleBit, type Frame } from './frame.js';
import { PR_W, setCell } from '../pid-rows.js';

const R_HYSTERESIS = ruleBit('hysteresis-hold');

export interface Published {
  readonly weights: ReadonlyMap<string, number>;
  readonly health: ReadonlyMap<string, PublishedHealth>;
  readonly changed: boolean;
}

/** Decides whether to push, records what the next tick must know, and converts to integers. */
export function publish(c: ClusterState, f: Frame, resolution: number): Published {
  const d = decide(c, f);
  keepRange(c, f, d, 0, f.n);
  return finish(c, f, d, resolution);
}

/** publish in steps of about `chunk` endpoints (a cluster's tick in steps: weight-engine.ts). */
export function* publishSteps(c: ClusterState, f: Frame, resolution: number, chunk: number): Generator<void, Published, void> {
  const d = decide(c, f);
  for (let from = 0; from < f.n; from += chunk) {
    yield;
    keepRange(c, f, d, from, Math.min(f.n, from + chunk));
  }
  yield;
  return finish(c, f, d, resolution);
}

interface Decision {
  readonly healthChanged: boolean;
  readonly push: boolean;
  readonly syncPid: boolean;
}

function decide(c: ClusterState, f: Frame): Decision {
  // Not dirty, HW_SERVED is what the last tick's serving vector says (only setCluster, seedWeights
  // and imports write it otherwise, and they mark the cluster dirty): the gate's count stands in
  // for comparing with that vector, cold by now.
  const servingMoved = c.dirty || f.servingMoved !== 0 ? servingChanged(c, f) : c.lastServing === undefined || c.lastHealth === undefined;
  // A declared-out endpoint's health follows its probes and ejections, which move without the serving vector.
  const healthChanged = servingMoved || (f.declaredOut > 0 && declaredOutMoved(c, f));
  const structural = c.dirty || healthChanged || c.lastWeights === undefined || f.failStatic !== c.lastFailStatic;
  const push = structural || exceedsHysteresis(f.cand, f.prevPub, c.safety.hysteresis, f.serving);
  // A pure PID policy's own vector is the weight itself (and so is everyone's, failing static).
  return { healthChanged, push, syncPid: c.parts.pid === 1 || f.failStatic };
}

function finish(c: ClusterState, f: Frame, d: Decision, resolution: number): Published {
  const weights = d.push || c.lastWeights === undefined ? toIntegers(c, f.pub, resolution) : c.lastWeights;
  const changed = d.healthChanged || !sameEntries(weights, c.lastWeights);
  const health = !d.healthChanged && c.lastHealth !== undefined ? c.lastHealth : healthOf(c, f);
  return { weights, health, changed };
}

/** Endpoints from..to: their internal (and, on a push, published) weight, and what the next tick knows of this one. */
function keepRange(c: ClusterState, f: Frame, r: Decision, from: number, to: number): void {
  const held = c.held;
  for (let i = from; i < to; i++) {
    const o = i * HW_ROW;
    const serving = f.serving[i] === 1;
    if (serving) {
      const w = f.cand[i] as number;
      held[o + HW_W] = w;
      if (r.push) held[o + HW_PUB] = w;
      else if (w !== f.prevPub[i] as number) mark(f, i, R_HYSTERESIS);
      if (r.syncPid) setCell(c.pidRows.rows, i, PR_W, w);
    }
    // What the next tick knows of this one, written in this pass rather than another over the states; a
    // newcomer stays one until it first serves (a pod listed not ready, then ready).
    held[o + HW_SERVED] = serving ? 1 : held[o + HW_SERVED] === NEWCOMER ? NEWCOMER : 0;
    f.pub[i] = valueOr(held[o + HW_PUB] as number, 0);
  }
}

function servingChanged(c: ClusterState, f: Frame): boolean {
  const last = c.lastServing;
  if (last === undefined || last.length !== f.n || c.lastHealth === undefined) return true;
  for (let i = 0; i < f.n; i++) if (last[i] !== f.serving[i]) return true;
  return false;
}

/**
 * UNHEALTHY where the engine keeps an endpoint out: by its probes or an ejection, or (failing
 * neither) out of rotation. An endpoint declared out (UNHEALTHY, DRAINING, TIMEOUT) is out of
 * rotation too, but proxies are sent its declared health whatever this says (publishedEndpoint),
 * so this says what holds once the declaration allows it in again: HEALTHY unless probes or an
 * ejection hold it out. Saying UNHEALTHY for the declaration itself outlived it: a pod ready again
 * stayed out until the next tick, ~1 s (bench/kube-churn.ts, bench/RESULTS.md "kube33").
 */
function healthOf(c: ClusterState, f: Frame): ArrayMap<PublishedHealth> {
  const health = new Array<PublishedHealth>(f.n);
  for (let i = 0; i < f.n; i++) health[i] = healthAt(c, f, i);
  return new ArrayMap(c.keys, c.index, health);
}

function healthAt(c: ClusterState, f: Frame, i: number): PublishedHealth {
  if (f.serving[i]) return 'HEALTHY';
  // Declared out: held by probes or an ejection? (The gate does not ask for such an endpoint.)
  if (f.healthCode[i] !== H_DISABLED) return 'UNHEALTHY';
  const e = c.order[i] as EndpointState;
  const heldOut = (e.tracker !== undefined && e.tracker.state(f.now) !== 'AVAILABLE') || e.ejection?.until !== undefined;
  return heldOut ? 'UNHEALTHY' : 'HEALTHY';
}

/** Whether a declared-out endpoint's health (healthAt) is not what was published last. */
function declaredOutMoved(c: ClusterState, f: Frame): boolean {
  const last = c.lastHealth;
  if (!(last instanceof ArrayMap) || last.keyList !== c.keys) return true;
  const published = last.valueList;
  for (let i = 0; i < f.n; i++) if (f.healthCode[i] === H_DISABLED && published[i] !== healthAt(c, f, i)) return true;
  return false;
}

/** One scale for the cluster, rounding per locality (integer-weights.ts), aligned with its endpoints. */
function toIntegers(c: ClusterState, pub: readonly number[], resolution: number): ArrayMap<number> {
  return new ArrayMap(c.keys, c.index, toIntegerWeightsByGroup(pub, c.groupOf, c.groupCount, { resolution }));
}
