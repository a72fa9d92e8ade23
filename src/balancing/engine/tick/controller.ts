/**
 * Stage 3, the controller: the policy's parts (PID, EWMA, static) each yield a weight vector over
 * the serving endpoints, and the target is their fraction-weighted sum of shares. Failing static,
 * the target is the fair share. A pure policy's vector already sums to the previous total.
 */
import type { ClusterState } from '../state.js';
import { F_FRESH, filled, type Frame } from './frame.js';
import { runEwma } from './ewma.js';
import { runPid, runPidWhole } from './pid.js';

/** Fills f.raw; returns the PID setpoint when there is one. */
export function runController(c: ClusterState, f: Frame): number | undefined {
  const x = pidVector(c, f);
  return otherParts(c, f, x, x === undefined ? undefined : runPidWhole(c, f, x));
}

/** runController with the PID's passes in steps of about `chunk` endpoints (tick/pid.ts). */
export function* runControllerSteps(c: ClusterState, f: Frame, chunk: number): Generator<void, number | undefined, void> {
  const x = pidVector(c, f);
  return otherParts(c, f, x, x === undefined ? undefined : yield* runPid(c, f, x, chunk));
}

/** The vector the PID part writes (f.raw itself for a pure policy); undefined without one, or failing static. */
function pidVector(c: ClusterState, f: Frame): number[] | undefined {
  if (f.failStatic || !(c.parts.pid > 0)) return undefined;
  // A pure policy writes its vector straight into f.raw (no vector per tick to copy from).
  return c.parts.pid === 1 ? f.raw : filled(f.n);
}

/** The EWMA and static parts and the mix, after the PID part (`pid`, its vector); returns the setpoint. */
function otherParts(c: ClusterState, f: Frame, pid: number[] | undefined, setpoint: number | undefined): number | undefined {
  if (f.failStatic) {
    for (let i = 0; i < f.n; i++) f.raw[i] = f.serving[i] ? (f.fair[i] as number) : 0;
    return undefined;
  }
  // A pure PID policy wrote f.raw itself: nothing to run or mix (no list of vectors per cluster per tick).
  if (c.parts.pid === 1 && !(c.parts.ewma > 0)) return setpoint;
  const pure = c.parts.pid === 1 || c.parts.ewma === 1 || c.parts.static === 1;
  const vectors: { part: number; x: number[] }[] = [];
  if (pid !== undefined) vectors.push({ part: c.parts.pid, x: pid });
  if (c.parts.ewma > 0) vectors.push({ part: c.parts.ewma, x: runEwma(c, f, pure ? f.raw : filled(f.n)) });
  if (c.parts.static > 0) vectors.push({ part: c.parts.static, x: f.fair });
  if (!pure || c.parts.static === 1) mix(f, vectors);
  return setpoint;
}

/**
 * The parts' vectors, each scaled to the fresh endpoints' weights before this tick, mixed. Only the
 * fresh ones: the freshness override (tick/freshness.ts) holds or decays the others, as a pure PID
 * leaves them out of its normalization. Counted in, an endpoint whose reports had stopped took what
 * the parts still said of it into the sum while keeping its held weight, so each tick its peers
 * gained what it was held above that, and its share fell from 0.11 to 0.07 (fair 0.2) instead of
 * holding, then decaying toward its fair share (blend-freshness.test.ts).
 */
function mix(f: Frame, vectors: readonly { part: number; x: number[] }[]): void {
  const only = vectors.length === 1 ? vectors[0] : undefined;
  if (only !== undefined) {
    for (let i = 0; i < f.n; i++) if (f.serving[i]) f.raw[i] = only.x[i] as number;
    return;
  }
  let anchor = 0;
  for (let i = 0; i < f.n; i++) {
    if (!f.serving[i]) continue;
    // The sum below starts from zero (the frame is recycled unreset); the others' weight is the override's.
    f.raw[i] = mixed(f, i) ? 0 : (f.prevW[i] as number);
    if (mixed(f, i)) anchor += f.prevW[i] as number;
  }
  for (const { part, x } of vectors) {
    let sx = 0;
    for (let i = 0; i < f.n; i++) if (mixed(f, i)) sx += x[i] as number;
    if (!(sx > 0)) continue;
    const m = (part * anchor) / sx;
    for (let i = 0; i < f.n; i++) if (mixed(f, i)) f.raw[i] = (f.raw[i] as number) + (x[i] as number) * m;
  }
}

/** Whether endpoint i is in the mix: serving, with fresh steering data. */
const mixed = (f: Frame, i: number): boolean => f.serving[i] === 1 && f.freshness[i] === F_FRESH;
