import { isDeepStrictEqual } from 'node:util';
import { endpointKey } from './endpoint-key.js';
import { servedHealth } from './store/ownership.js';
import { POLICY_FIELDS, type OverrideRecord, type PolicyOverride } from './store/override-records.js';
import type { OperatorState } from './store/records.js';
import type { Cluster } from './types.js';

/**
 * Operator overrides on discovered clusters (Kubernetes), layered where discovery joins the
 * catalog, so EDS, the weight engine and /v1/weights all see one endpoint state. Pure.
 *
 * - A policy override replaces the cluster's whole policy block (POLICY_FIELDS: LB policy and its
 *   settings, weighting, safety, ejection), whatever the Service's annotations say, until the
 *   override is deleted; the rest (endpoints, timeouts, protection) stays the Service's.
 * - An endpoint's state shows as the store's own does: `draining` as health DRAINING, `disabled`
 *   left out (servedHealth).
 * - An override whose cluster or endpoint is not discovered now does nothing and is kept: it
 *   applies again when the Service or pod comes back.
 */
export interface DiscoveredOverrides {
  readonly policies: ReadonlyMap<string, PolicyOverride>;
  /** cluster → endpoint key (address:port) → state. */
  readonly states: ReadonlyMap<string, ReadonlyMap<string, OperatorState>>;
}

export const NO_OVERRIDES: DiscoveredOverrides = { policies: new Map(), states: new Map() };

export function indexOverrides(records: readonly OverrideRecord[]): DiscoveredOverrides {
  const policies = new Map<string, PolicyOverride>();
  const states = new Map<string, Map<string, OperatorState>>();
  for (const { target, value } of records) {
    if (value.policy && !target.endpoint) policies.set(target.cluster, value.policy);
    if (value.state && target.endpoint) {
      let m = states.get(target.cluster);
      if (!m) states.set(target.cluster, (m = new Map()));
      m.set(endpointKey(target.endpoint), value.state);
    }
  }
  return { policies, states };
}

/** The cluster with its policy block replaced by the override's. */
export function withPolicy(cluster: Cluster, policy: PolicyOverride | undefined): Cluster {
  if (!policy) return cluster;
  const rest: Record<string, unknown> = { ...cluster };
  for (const f of POLICY_FIELDS) delete rest[f];
  return { ...(rest as Omit<Cluster, (typeof POLICY_FIELDS)[number]>), ...policy };
}

export function applyDiscoveredOverrides(clusters: readonly Cluster[], overrides: DiscoveredOverrides): Cluster[] {
  return clusters.map((c) => overridden(c, overrides.states.get(c.name), overrides.policies.get(c.name)));
}

/**
 * Per discovered cluster, its overridden form made last and the overrides it was made from. The
 * overlay runs on every write and every discovery view, and the stages after it find changed
 * clusters by identity: a new object per overridden cluster each time re-translated them all.
 */
const lastOverridden = new WeakMap<Cluster, { readonly states: ReadonlyMap<string, OperatorState> | undefined; readonly policy: PolicyOverride | undefined; readonly out: Cluster }>();

/** The cluster with its overrides: the object made last time while they are the same, or make the same. */
function overridden(c: Cluster, states: ReadonlyMap<string, OperatorState> | undefined, policy: PolicyOverride | undefined): Cluster {
  if (states === undefined && policy === undefined) return c;
  const last = lastOverridden.get(c);
  if (last !== undefined && last.states === states && last.policy === policy) return last.out;
  const fresh = withPolicy(withStates(c, states), policy);
  const out = last !== undefined && isDeepStrictEqual(last.out, fresh) ? last.out : fresh;
  lastOverridden.set(c, { states, policy, out });
  return out;
}

function withStates(c: Cluster, states: ReadonlyMap<string, OperatorState> | undefined): Cluster {
  if (states === undefined) return c;
  return {
    ...c,
    endpoints: c.endpoints.flatMap((e) => {
      const health = servedHealth(states.get(endpointKey(e)) ?? 'active', e.health);
      return health === undefined ? [] : [health === e.health ? e : { ...e, health }];
    }),
  };
}
