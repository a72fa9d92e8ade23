/**
 * A cluster's tick output (integer weights and health per endpoint) → the overrides the translator
 * publishes. At 100,000 endpoints, building them through key lookups (a Map of 100,000 new
 * entries, each weight's health found by key) took ~200 ms in one piece (profile in
 * bench/RESULTS.md, engine3); reading both by position into one array over the cluster's keys
 * takes a few ms, and equal overrides are one shared object.
 */
import { ArrayMap } from '../balancing/engine/indexed-map.js';
import type { ClusterTick } from '../balancing/engine/types.js';
import type { EndpointOverride } from '../catalog/weight-overrides.js';

const UNHEALTHY_ONLY: EndpointOverride = Object.freeze({ health: 'UNHEALTHY' });
/** Shared override objects for the usual integer weights (resolution 1,000 by default). */
const INTERNED_UP_TO = 4_096;
const healthy: EndpointOverride[] = [];
const unhealthy: EndpointOverride[] = [];

function adaptiveOverride(weight: number, isUnhealthy: boolean): EndpointOverride {
  if (!(Number.isInteger(weight) && weight >= 0 && weight <= INTERNED_UP_TO)) return isUnhealthy ? { weight, health: 'UNHEALTHY' } : { weight };
  const table = isUnhealthy ? unhealthy : healthy;
  let o = table[weight];
  if (o === undefined) {
    o = Object.freeze(isUnhealthy ? { weight, health: 'UNHEALTHY' } : { weight });
    table[weight] = o;
  }
  return o;
}

/** Adaptive: every endpoint's weight (and UNHEALTHY where probes failed); static: only UNHEALTHY where probes failed. */
export function buildOverrides(t: ClusterTick, adaptive: boolean): ReadonlyMap<string, EndpointOverride> {
  const w = t.weights;
  const h = t.health;
  if (w instanceof ArrayMap && h instanceof ArrayMap && w.keyList === h.keyList) return positional(w as ArrayMap<number>, h, adaptive);
  const perEndpoint = new Map<string, EndpointOverride>();
  for (const [key, weight] of w) {
    const isUnhealthy = h.get(key) === 'UNHEALTHY';
    if (adaptive) perEndpoint.set(key, adaptiveOverride(weight, isUnhealthy));
    else if (isUnhealthy) perEndpoint.set(key, UNHEALTHY_ONLY);
  }
  return perEndpoint;
}

function positional(w: ArrayMap<number>, h: ArrayMap<unknown>, adaptive: boolean): ReadonlyMap<string, EndpointOverride> {
  const weights = w.valueList;
  const health = h.valueList;
  if (adaptive) {
    const out = new Array<EndpointOverride>(weights.length);
    for (let i = 0; i < weights.length; i++) out[i] = adaptiveOverride(weights[i] as number, health[i] === 'UNHEALTHY');
    return new ArrayMap(w.keyList, w.index, out);
  }
  const perEndpoint = new Map<string, EndpointOverride>();
  for (let i = 0; i < health.length; i++) if (health[i] === 'UNHEALTHY') perEndpoint.set(w.keyList[i] as string, UNHEALTHY_ONLY);
  return perEndpoint;
}
