/**
 * Operator overrides on clusters the store does not hold (Kubernetes-discovered ones): an
 * endpoint's operator state (drain / disable) or a cluster's balancing policy, keyed by the
 * discovered names, so they apply again whenever the Service or pod is discovered again.
 */
import { endpointName } from '../endpoint-key.js';
import type { ClusterSpec, OperatorState } from './records.js';

/** The cluster settings a policy override replaces as a block (see applyDiscoveredOverrides). */
export const POLICY_FIELDS = [
  'lbPolicy',
  'leastRequest',
  'slowStart',
  'ringHash',
  'maglev',
  'clientSideWeightedRoundRobin',
  'weighting',
  'safety',
  'ejection',
  'autoReason',
  // `auto` affinity resolves to RING_HASH plus the hash policy of the routes to the cluster: without
  // it the override hashed every request on nothing.
  'routeHashPolicy',
] as const satisfies readonly (keyof ClusterSpec)[];

export type PolicyOverride = Pick<ClusterSpec, 'lbPolicy' | 'weighting'> & Partial<Pick<ClusterSpec, (typeof POLICY_FIELDS)[number]>>;

/** What an override targets: a cluster (policy) or one of its endpoints (operator state). */
export type OverrideTarget =
  | { readonly cluster: string; readonly endpoint?: undefined }
  | { readonly cluster: string; readonly endpoint: { readonly address: string; readonly port: number } };

/** Exactly one of the two: `state` on an endpoint target, `policy` on a cluster target. */
export interface OverrideValue {
  readonly state?: OperatorState;
  readonly policy?: PolicyOverride;
}

export interface OverrideRecord {
  /** `cluster` or `cluster/address:port` (endpointName): the key and the audit log's name. */
  readonly name: string;
  readonly target: OverrideTarget;
  readonly value: OverrideValue;
  /** Store revision of its last change: the discovered cluster's or endpoint's ETag. */
  readonly revision: number;
  readonly updatedAt: string;
}

export interface OverrideOptions {
  readonly actor: string;
  /** As WriteOptions.ifMatch: 0 = must not exist yet. */
  readonly ifMatch?: number;
}

export function overrideName(target: OverrideTarget): string {
  return target.endpoint ? endpointName(target.cluster, target.endpoint) : target.cluster;
}

/** Refuses a value that does not fit its target (a programming error: the admin API builds both). */
export function checkOverride(target: OverrideTarget, value: OverrideValue): void {
  const ok = target.endpoint ? value.state !== undefined && value.policy === undefined : value.policy !== undefined && value.state === undefined;
  if (!ok) throw new TypeError(`override of ${overrideName(target)}: an endpoint takes a state, a cluster a policy`);
}
