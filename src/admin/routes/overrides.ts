import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import { endpointKey } from '../../catalog/endpoint-key.js';
import type { CatalogStore, OverrideRecord } from '../../catalog/store/index.js';
import { Meta, OperatorState } from '../api-schemas.js';
import { readPreconditions, storeIfMatch, withEtag } from '../preconditions.js';
import { clusterSettingsEntry } from '../resources.js';
import { Conditional, Deleted, NameParams, NOT_FOUND, securedRoute, WRITE_ERRORS } from './schema-parts.js';
import { notFound, type StoreRoutesOptions } from './store-access.js';

/**
 * /v1/overrides: what operators changed on Kubernetes-discovered clusters (endpoint drains and
 * disables, policy changes). Written through the endpoint and policy routes; listed here, with
 * whether they apply now, and deleted here (the Service's own settings apply again). Overrides
 * are never removed automatically: one whose Service or pod is gone applies again when it comes back.
 */

const OverrideView = Type.Object(
  {
    name: Type.String({ description: 'The discovered cluster, or `cluster/address:port` for an endpoint' }),
    cluster: Type.String(),
    endpoint: Type.Optional(Type.String({ description: 'address:port, for an endpoint override' })),
    state: Type.Optional(OperatorState),
    policy: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'The policy block that replaces the Service\'s (lbPolicy, weighting, safety...)' })),
    applies: Type.Boolean({ description: 'Whether its cluster (and endpoint) is discovered now; an override that does not apply is kept for when it comes back' }),
    revision: Meta.revision,
    updatedAt: Meta.updatedAt,
  },
  { title: 'Override' },
);
type OverrideView = Static<typeof OverrideView>;
const OverrideList = Type.Object({ count: Type.Integer(), overrides: Type.Array(OverrideView) });

function overrideView(store: CatalogStore, o: OverrideRecord): OverrideView {
  const cluster = store.getCluster(o.target.cluster);
  const discovered = cluster?.owner === 'kubernetes';
  const ep = o.target.endpoint;
  const applies = discovered && (!ep || cluster.endpoints.some((e) => e.address === ep.address && e.port === ep.port));
  const policy = o.value.policy ? clusterSettingsEntry({ ...o.value.policy, name: o.target.cluster, connectTimeoutMs: 0, http2: false }) : undefined;
  const { name: _n, connectTimeoutMs: _c, http2: _h, ...policyFields } = policy ?? {};
  return {
    name: o.name,
    cluster: o.target.cluster,
    ...(ep ? { endpoint: endpointKey(ep) } : {}),
    ...(o.value.state ? { state: o.value.state } : {}),
    ...(policy ? { policy: policyFields } : {}),
    applies,
    revision: o.revision,
    updatedAt: o.updatedAt,
  };
}

export const overrideRoutes: FastifyPluginAsyncTypebox<StoreRoutesOptions> = async (app, { store, actorOf }) => {
  const getOr404 = (name: string): OverrideRecord => store.getOverride(name) ?? notFound(`override ${JSON.stringify(name)}`);

  app.get('/v1/overrides', { schema: securedRoute('clusters', 'Operator overrides on Kubernetes-discovered clusters and endpoints', { response: { 200: OverrideList } }) }, async () => {
    const overrides = store.listOverrides().map((o) => overrideView(store, o));
    return { count: overrides.length, overrides };
  });

  app.get(
    '/v1/overrides/:name',
    { schema: securedRoute('clusters', 'One override (percent-encode the slashes of its name)', { params: NameParams, response: { 200: OverrideView, ...NOT_FOUND } }) },
    async (request, reply) => {
      const o = getOr404(request.params.name);
      return withEtag(reply, o.revision, 200, overrideView(store, o));
    },
  );

  app.delete(
    '/v1/overrides/:name',
    {
      schema: securedRoute('clusters', 'Delete an override: the Service\'s own policy or the endpoint\'s discovered state applies again', {
        params: NameParams,
        headers: Conditional,
        response: { 200: Deleted, 404: WRITE_ERRORS[404], 412: WRITE_ERRORS[412], 503: WRITE_ERRORS[503] },
      }),
    },
    async (request) => {
      const { name } = request.params;
      const ifMatch = storeIfMatch(readPreconditions(request.headers), getOr404(name).revision, `override "${name}"`);
      const { revision } = await store.deleteOverride(name, { actor: actorOf(request), ...(ifMatch !== undefined ? { ifMatch } : {}) });
      return { deleted: name, revision };
    },
  );
};
