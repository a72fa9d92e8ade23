import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { safetyDefaultsFor } from '../../catalog/policy.js';
import { POLICY_FIELDS, type ClusterSpec, type PolicyOverride, type WriteResult } from '../../catalog/store/index.js';
import { PolicyPatch, PolicyView, type ClusterIn } from '../api-schemas.js';
import { assertApiOwned, patchRetrying, readPreconditions, storeIfMatch, withEtag } from '../preconditions.js';
import { ApiError, applyPolicyPatch, clusterSettingsEntry, endpointEntry, parseClusterBody, policyView, withKeptAffinity } from '../resources.js';
import { Conditional, NameParams, NOT_FOUND, securedRoute, WRITE_ERRORS } from './schema-parts.js';
import { requireCluster, type StoreRoutesOptions } from './store-access.js';

/** /v1/clusters/{name}/policy: a cluster's LB policy, weighting and safety overrides, read and merge-patched. */

/** The policy block of a cluster's settings (what a discovered cluster's policy override holds). */
function policyOverride(spec: ClusterSpec): PolicyOverride {
  const out: Record<string, unknown> = {};
  for (const f of POLICY_FIELDS) if (spec[f] !== undefined) out[f] = spec[f];
  return out as PolicyOverride;
}

/** The built-in safety settings of a cluster, as the view shows them (policy.ts safetyDefaultsFor). */
const safetyDefaultsOf = (c: Pick<ClusterSpec, 'slowStart'>): Record<string, number> => ({
  ...safetyDefaultsFor(c.slowStart !== undefined),
});

/**
 * A discovered cluster's override holds its policy fields alone (POLICY_FIELDS): its Service keeps
 * owning the protection settings (outlier detection, retries, health checks: fulcrum.io/*
 * annotations). A patch of one of those was answered 200 and dropped; now a 409 says where to change it.
 */
function assertPolicyOnly(name: string, patch: Record<string, unknown>): void {
  const policyFields: readonly string[] = POLICY_FIELDS;
  const owned = Object.keys(patch).find((k) => !policyFields.includes(k));
  if (owned === undefined) return;
  throw new ApiError(
    409,
    `${owned} of cluster "${name}" is owned by its Kubernetes Service: change its fulcrum.io/* annotations; ` +
      `a discovered cluster's policy override holds only ${policyFields.filter((f) => f !== 'autoReason' && f !== 'routeHashPolicy').join(', ')}`,
    `/body/${owned}`,
    'DISCOVERED_READ_ONLY',
  );
}

export const policyRoutes: FastifyPluginAsyncTypebox<StoreRoutesOptions> = async (app, { store, actorOf }) => {
  app.get(
    '/v1/clusters/:name/policy',
    {
      schema: securedRoute('clusters', 'A cluster\'s LB policy, weighting policy and safety overrides', {
        params: NameParams,
        response: { 200: PolicyView, ...NOT_FOUND },
      }),
    },
    async (request, reply) => {
      const rec = requireCluster(store, request.params.name);
      return withEtag(reply, rec.revision, 200, policyView(rec, safetyDefaultsOf(rec)));
    },
  );

  /** One read-modify-write, with the revision read as If-Match (the client's own, when it sent one). */
  const patchOnce = async (request: FastifyRequest, name: string, patch: Record<string, unknown>): Promise<WriteResult> => {
    const rec = requireCluster(store, name);
    const discovered = rec.owner === 'kubernetes';
    if (!discovered) assertApiOwned('cluster', name, rec.owner);
    else assertPolicyOnly(name, patch);
    const ifMatch = storeIfMatch(readPreconditions(request.headers), rec.revision, `cluster "${name}"`) ?? rec.revision;
    const merged = applyPolicyPatch(clusterSettingsEntry(rec), patch);
    // The endpoints go along so `auto` sees how many there are; the store is not given them.
    const { endpoints: _endpoints, ...parsed } = parseClusterBody({ ...(merged as ClusterIn), endpoints: rec.endpoints.map(endpointEntry) }, name);
    // `rec` is the cluster as served (a discovered one with its override): its affinity stays while it hashes.
    const input = withKeptAffinity(parsed, () => rec);
    // A discovered cluster's policy is an override: the Service keeps owning the rest (discovered-overrides.ts).
    if (discovered) return await store.putOverride({ cluster: name }, { policy: policyOverride(input) }, { actor: actorOf(request), ifMatch });
    return await store.putCluster(input, { owner: 'api', actor: actorOf(request), ifMatch, intent: 'patch' });
  };

  app.patch(
    '/v1/clusters/:name/policy',
    {
      schema: securedRoute('clusters', 'Adjust lbPolicy, weighting (PID gains, setpoint, EWMA decay, blend) and safety bounds (JSON merge patch; on a Kubernetes-discovered cluster, stored as an override: see /v1/overrides)', {
        params: NameParams,
        headers: Conditional,
        body: PolicyPatch,
        response: { 200: PolicyView, ...WRITE_ERRORS },
      }),
    },
    async (request, reply) => {
      const { name } = request.params;
      const once = () => patchOnce(request, name, request.body as Record<string, unknown>);
      const { revision } = await patchRetrying(request.headers, `cluster "${name}"`, once);
      const rec = requireCluster(store, name);
      return withEtag(reply, revision, 200, policyView(rec, safetyDefaultsOf(rec)));
    },
  );
};
