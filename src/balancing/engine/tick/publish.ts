/**
 * Stages 7–8: hysteresis (publish only if some endpoint moved more than `hysteresis` relative to
 * what is published, or the set, health or fail-static status changed; on a hold the internal
 * weights keep moving, so small corrections accumulate until worth a push, and the published
 * integers are reused exactly), then integer conversion and published health.
 */
import { toIntegerWeightGroups } from '../../integer-weights.js';
import type { ClusterState, EndpointState } from '../state.js';
import { exceedsHysteresis } from '../stages.js';
import type { PublishedHealth } from '../types.js';
import { at, mark, ruleBit, type Frame } from './frame.js';

const R_HYSTERESIS = ruleBit('hysteresis-hold');

export interface Published {
  readonly weights: Map<string, number>;
  readonly health: Map<string, PublishedHealth>;
  readonly changed: boolean;
}

export function publish(c: ClusterState, f: Frame, resolution: number): Published {
  const healthChanged = servingChanged(c, f);
  const structural = c.dirty || healthChanged || c.lastWeights === undefined || f.failStatic !== c.lastFailStatic;
  const push = structural || exceedsHysteresis(f.cand, f.prevPub, c.safety.hysteresis, f.serving);
  for (let i = 0; i < f.n; i++) {
    const e = c.order[i] as EndpointState;
    if (f.serving[i]) {
      e.w = at(f.cand, i);
      if (push) e.pub = e.w;
      else if (e.w !== at(f.prevPub, i)) mark(f, i, R_HYSTERESIS);
    }
    f.pub[i] = e.pub ?? 0;
  }
  const weights = push || c.lastWeights === undefined ? toIntegers(c, f.pub, resolution) : c.lastWeights;
  const changed = healthChanged || !sameWeights(weights, c.lastWeights);
  const health = !healthChanged && c.lastHealth !== undefined ? c.lastHealth : healthOf(c, f);
  return { weights, health, changed };
}

function servingChanged(c: ClusterState, f: Frame): boolean {
  const last = c.lastServing;
  if (last === undefined || last.length !== f.n || c.lastHealth === undefined) return true;
  for (let i = 0; i < f.n; i++) if (last[i] !== f.serving[i]) return true;
  return false;
}

function sameWeights(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number> | undefined): boolean {
  if (b === undefined || a.size !== b.size) return false;
  if (a === b) return true;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

function healthOf(c: ClusterState, f: Frame): Map<string, PublishedHealth> {
  const health = new Map<string, PublishedHealth>();
  for (let i = 0; i < f.n; i++) health.set(c.keys[i] as string, f.serving[i] ? 'HEALTHY' : 'UNHEALTHY');
  return health;
}

function toIntegers(c: ClusterState, pub: number[], resolution: number): Map<string, number> {
  const groups: number[][] = c.groupSizes.map((size) => new Array<number>(size).fill(0));
  for (let i = 0; i < pub.length; i++) {
    const g = groups[at(c.groupOf, i)];
    if (g !== undefined) g[at(c.posInGroup, i)] = at(pub, i);
  }
  const ints = toIntegerWeightGroups(groups, { resolution });
  const out = new Map<string, number>();
  for (let i = 0; i < pub.length; i++) out.set(c.keys[i] as string, ints[at(c.groupOf, i)]?.[at(c.posInGroup, i)] ?? 1);
  return out;
}
