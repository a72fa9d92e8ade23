import { isIP } from 'node:net';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { CatalogStore, EndpointRecord, EndpointSpec, OperatorState, WriteGuard, WriteResult } from '../../catalog/store/index.js';
import { otherSpellingOf, spelledTwice } from '../../catalog/address-spelling.js';
import { EndpointEntry, EndpointEntryIn, EndpointPatch, IpAddress, Meta, ResourceName } from '../api-schemas.js';
import { patchRetrying, readPreconditions, storeIfMatch, withEtag } from '../preconditions.js';
import { ApiError, endpointEntry, mergePatch, parseEndpointBody } from '../resources.js';
import { Conditional, ConditionalPut, Deleted, NameParams, NOT_FOUND, securedRoute, WRITE_ERRORS } from './schema-parts.js';
import { apiWriteOptions, notFound, requireCluster, requireClusterOwner, type AdminInstance, type StoreRoutesOptions } from './store-access.js';
import type { WeightsSource } from './weights.js';
import { endpointBulkRoute } from './endpoint-bulk.js';
import { VALIDATION_FAILED } from '../errors.js';
import { endpointKey, endpointName as catalogEndpointName } from '../../catalog/endpoint-key.js';
import { probesDecide } from '../../catalog/weight-overrides.js';

/**
 * /v1/clusters/{name}/endpoints: a cluster's endpoints with the weight and health proxies are
 * sent now; single endpoints (or many: endpoint-bulk.ts) added, replaced and removed (API-owned clusters only), and drained,
 * disabled and enabled (any owner's: operator intent layered over the source's declaration).
 */

export interface EndpointRoutesOptions extends StoreRoutesOptions {
  /** Gives the effective (published) weight and health; without it, the declared ones. */
  readonly weights?: WeightsSource;
}

const EndpointStatus = Type.Object(
  {
    ...EndpointEntry.properties,
    revision: Meta.revision,
    updatedAt: Meta.updatedAt,
    effectiveWeight: Type.Optional(
      Type.Number({ description: 'The weight proxies are sent now: the weight engine\'s when it overrides, else the static weight. Absent when disabled.' }),
    ),
    publishedHealth: Type.Optional(
      Type.String({ description: 'The health published now (DRAINING when draining, UNHEALTHY when the engine took it out). UNHEALTHY and TIMEOUT endpoints are left out of what proxies are sent (across priorities, sent as they are); when no endpoint is HEALTHY or UNKNOWN, the best left (DEGRADED, else DRAINING, else every endpoint) is sent UNKNOWN, so that proxyless gRPC, which uses no other health, balances over them as Envoy does. Absent when disabled.' }),
    ),
  },
  { title: 'EndpointStatus' },
);
type EndpointStatus = Static<typeof EndpointStatus>;

const EndpointList = Type.Object({
  cluster: Type.String(),
  revision: Type.Integer({ description: 'The cluster\'s revision (it covers its endpoints)' }),
  count: Type.Integer(),
  endpoints: Type.Array(EndpointStatus),
});

const EndpointParams = Type.Object(
  {
    name: ResourceName,
    address: IpAddress('The endpoint\'s IP address (IPv6 unbracketed; percent-encode it if you like)'),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
  },
  { additionalProperties: false },
);
type EndpointParams = Static<typeof EndpointParams>;

const STATE_ACTIONS = [
  ['drain', 'draining', 'Drain an endpoint: sent as DRAINING, so proxies stop new requests to it (any owner\'s endpoint)'],
  ['disable', 'disabled', 'Disable an endpoint: no longer sent to proxies at all (any owner\'s endpoint)'],
  ['enable', 'active', 'Enable an endpoint again: served as declared (any owner\'s endpoint)'],
] as const satisfies readonly (readonly [string, OperatorState, string])[];

const endpointName = ({ name, address, port }: EndpointParams): string => catalogEndpointName(name, { address, port });
const endpointUrl = ({ name, address, port }: EndpointParams): string => `/v1/clusters/${encodeURIComponent(name)}/endpoints/${encodeURIComponent(address)}/${port}`;

function checkAddress(address: string): void {
  if (isIP(address) === 0) throw new ApiError(400, `"${address}" is not an IP address (Envoy does not resolve EDS hostnames)`, '/params/address');
}

/**
 * 409 when the cluster holds this endpoint's address under another spelling (`0::1` beside `::1`):
 * one host to Envoy, so one weight would be lost. An endpoint already stored as spelled passes (its
 * write makes no new twin). Run by the store where the write commits, so two concurrent writes of
 * two spellings cannot both pass (in etcd the endpoint's write compares its cluster's key).
 */
function spellingGuard(store: CatalogStore, cluster: string, spec: EndpointSpec): WriteGuard {
  const check = (): void => {
    // IPv4 has one spelling Envoy accepts; reading a big cluster is for IPv6 addresses only.
    if (!spec.address.includes(':') || store.getEndpoint(cluster, spec.address, spec.port)) return;
    const twin = store.getCluster(cluster)?.endpoints.find(otherSpellingOf(spec));
    if (twin) throw new ApiError(409, `endpoint ${spec.address}:${spec.port}: cluster ${JSON.stringify(cluster)} holds it as ${twin.address}:${twin.port} (${spelledTwice(spec.address, twin.address)})`, '/params/address', 'ADDRESS_IN_USE');
  };
  return { check, reads: { clusters: [cluster] } };
}

/** What every endpoint route works with; every endpoint in a response goes through `status`. */
function endpointAccess({ store, actorOf, weights }: EndpointRoutesOptions) {
  const getOr404 = ({ name, address, port }: EndpointParams): EndpointRecord => {
    requireClusterOwner(store, name);
    return store.getEndpoint(name, address, port) ?? notFound(`endpoint ${address}:${port} of cluster ${JSON.stringify(name)}`);
  };
  /** The endpoint as the store has it, plus what proxies are sent now (nothing when disabled). */
  const status = (e: EndpointRecord): EndpointStatus => {
    const o = weights?.current().get(e.cluster)?.get(endpointKey(e));
    const base = { ...endpointEntry(e), revision: e.revision, updatedAt: e.updatedAt };
    if (e.state === 'disabled') return base;
    // The translator's rule (publishedEndpoint): a probe's UNHEALTHY never replaces an operator's TIMEOUT, say.
    return { ...base, effectiveWeight: o?.weight ?? e.weight, publishedHealth: e.state === 'draining' ? 'DRAINING' : o?.health && probesDecide(e.health) ? o.health : e.health };
  };
  return { store, actorOf, getOr404, status };
}
type EndpointAccess = ReturnType<typeof endpointAccess>;

/**
 * A port in an endpoint's URL is written in decimal digits. Path parameters are coerced to their
 * schema's type, and the coercion read `1e3`, `09001`, `9001.0` and `+9001` as numbers: a PUT to
 * .../127.0.0.1/1e3 created 127.0.0.1:1000, an endpoint its URL never named (a review's finding).
 * Checked on the raw string, before the coercion.
 */
async function decimalPort(request: FastifyRequest): Promise<void> {
  const raw = (request.params as { port?: unknown }).port;
  if (typeof raw === 'string' && !/^[1-9][0-9]{0,4}$/.test(raw)) {
    throw new ApiError(400, `params/port must be a port number in decimal digits, got "${raw.slice(0, 32)}"`, '/params/port', VALIDATION_FAILED);
  }
}

export const endpointRoutes: FastifyPluginAsyncTypebox<EndpointRoutesOptions> = async (app, options) => {
  app.addHook('preValidation', decimalPort);
  const access = endpointAccess(options);
  endpointReadRoutes(app, access);
  endpointWriteRoutes(app, access);
  endpointBulkRoute(app, options);
  for (const [action, state, summary] of STATE_ACTIONS) endpointStateRoute(app, access, { action, state, summary });
};

function endpointReadRoutes(app: AdminInstance, { store, getOr404, status }: EndpointAccess): void {
  app.get(
    '/v1/clusters/:name/endpoints',
    {
      schema: securedRoute('clusters', 'A cluster\'s endpoints: static and effective weight, declared and published health, operator state', {
        params: NameParams,
        response: { 200: EndpointList, ...NOT_FOUND },
      }),
    },
    async (request, reply) => {
      const rec = requireCluster(store, request.params.name);
      const body = { cluster: rec.name, revision: rec.revision, count: rec.endpoints.length, endpoints: rec.endpoints.map(status) };
      return withEtag(reply, rec.revision, 200, body);
    },
  );

  app.get(
    '/v1/clusters/:name/endpoints/:address/:port',
    {
      schema: securedRoute('clusters', 'One endpoint (its own revision is the ETag for If-Match on its writes)', {
        params: EndpointParams,
        response: { 200: EndpointStatus, ...NOT_FOUND },
      }),
    },
    async (request, reply) => {
      checkAddress(request.params.address);
      const e = getOr404(request.params);
      return withEtag(reply, e.revision, 200, status(e));
    },
  );
}

/** PUT and DELETE of one endpoint: API-owned clusters only. */
function endpointWriteRoutes(app: AdminInstance, { store, actorOf, getOr404, status }: EndpointAccess): void {
  const target = (p: EndpointParams, owner: EndpointRecord['owner'], revision: number | undefined) =>
    ({ kind: 'endpoint' as const, name: endpointName(p), owner, revision, what: `endpoint ${p.address}:${p.port}` });

  app.put(
    '/v1/clusters/:name/endpoints/:address/:port',
    {
      schema: securedRoute('clusters', 'Add or replace one endpoint of an API-owned cluster (body: a config-file endpoint entry)', {
        params: EndpointParams,
        headers: ConditionalPut,
        body: EndpointEntryIn,
        response: { 200: EndpointStatus, 201: EndpointStatus, ...WRITE_ERRORS },
      }),
    },
    async (request, reply) => {
      const p = request.params;
      checkAddress(p.address);
      const owner = requireClusterOwner(store, p.name);
      const existing = store.getEndpoint(p.name, p.address, p.port);
      const options = apiWriteOptions(request, actorOf, target(p, owner, existing?.revision));
      const spec = parseEndpointBody(request.body, p.address, p.port);
      const { revision } = await store.putEndpoint(p.name, spec, { ...options, guard: spellingGuard(store, p.name, spec) });
      if (!existing) reply.header('location', endpointUrl(p));
      return withEtag(reply, revision, existing ? 200 : 201, status(getOr404(p)));
    },
  );

  /** One read-modify-write, conditional on the endpoint's revision read (the client's own If-Match, if sent). */
  const patchOnce = async (p: EndpointParams, request: FastifyRequest<{ Body: Static<typeof EndpointPatch> }>): Promise<WriteResult> => {
    const owner = requireClusterOwner(store, p.name);
    const existing = getOr404(p);
    const options = apiWriteOptions(request, actorOf, target(p, owner, existing.revision));
    const merged = mergePatch(endpointEntry(existing), request.body) as EndpointEntryIn;
    const spec = parseEndpointBody(merged, p.address, p.port);
    return await store.putEndpoint(p.name, spec, { ...options, guard: spellingGuard(store, p.name, spec) });
  };

  // PATCH: the endpoint as stored, merge-patched, then written as its PUT would be: {"weight": 5}
  // changes the weight and keeps the locality, priority and health.
  app.patch(
    '/v1/clusters/:name/endpoints/:address/:port',
    {
      schema: securedRoute('clusters', 'Change some fields of one endpoint of an API-owned cluster and keep the others (JSON merge patch; PUT replaces)', {
        params: EndpointParams,
        headers: Conditional,
        body: EndpointPatch,
        response: { 200: EndpointStatus, ...WRITE_ERRORS },
      }),
    },
    async (request, reply) => {
      const p = request.params;
      checkAddress(p.address);
      const { revision } = await patchRetrying(request.headers, `endpoint ${p.address}:${p.port}`, () => patchOnce(p, request));
      return withEtag(reply, revision, 200, status(getOr404(p)));
    },
  );

  app.delete(
    '/v1/clusters/:name/endpoints/:address/:port',
    {
      schema: securedRoute('clusters', 'Remove one endpoint of an API-owned cluster', {
        params: EndpointParams,
        headers: Conditional,
        response: { 200: Deleted, ...WRITE_ERRORS },
      }),
    },
    async (request) => {
      const p = request.params;
      checkAddress(p.address);
      const owner = requireClusterOwner(store, p.name);
      const options = apiWriteOptions(request, actorOf, target(p, owner, getOr404(p).revision));
      const { revision } = await store.removeEndpoint(p.name, p.address, p.port, options);
      return { deleted: endpointName(p), revision };
    },
  );
}

/** POST .../{action}: operator intent on any owner's endpoint (no ownership check). */
function endpointStateRoute(
  app: AdminInstance,
  { store, actorOf, getOr404, status }: EndpointAccess,
  { action, state, summary }: { action: string; state: OperatorState; summary: string },
): void {
  app.post(
    `/v1/clusters/:name/endpoints/:address/:port/${action}`,
    {
      schema: securedRoute('clusters', summary, {
        params: EndpointParams,
        headers: Conditional,
        response: { 200: EndpointStatus, 404: WRITE_ERRORS[404], 412: WRITE_ERRORS[412], 503: WRITE_ERRORS[503] },
      }),
    },
    async (request, reply) => {
      const p = request.params;
      checkAddress(p.address);
      const e = getOr404(p);
      const ifMatch = storeIfMatch(readPreconditions(request.headers), e.revision, `endpoint ${p.address}:${p.port}`);
      const { revision } = await store.setEndpointState(p.name, p.address, p.port, state, { actor: actorOf(request), ...(ifMatch !== undefined ? { ifMatch } : {}) });
      return withEtag(reply, revision, 200, status(getOr404(p)));
    },
  );
}
