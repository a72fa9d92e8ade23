import { isIP } from 'node:net';
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SAFETY_DEFAULTS, type ClusterTick, type Explanation } from '../balancing/engine/types.js';
import { ConflictError, type ClusterRecord, type EndpointRecord, type OperatorState, type Owner, type ResourceKind, type Store } from '../catalog/store/index.js';
import { endpointKey, endpointName } from '../catalog/endpoint-key.js';
import type { EndpointOverride, WeightOverrides } from '../catalog/weight-overrides.js';
import { ReportBody, ReportResponse, REPORT_BODY_LIMIT_BYTES } from '../signals/report-schema.js';
import {
  AUTH_ERRORS,
  AuditPage,
  AuditQuery,
  ClusterIn,
  ClusterList,
  ClusterView,
  Deleted,
  EndpointEntryIn,
  EndpointList,
  EndpointParams,
  EndpointStatus,
  ExplanationSchema,
  ListenerIn,
  ListenerList,
  ListenerView,
  NameParams,
  PolicyPatch,
  PolicyView,
  WeightsParams,
  WeightsView,
  WRITE_ERRORS,
} from './api-schemas.js';
import { assertApiOwned, etag, hasPreconditions, readPreconditions, storeIfMatch } from './preconditions.js';
import {
  ApiError,
  applyPolicyPatch,
  clusterSettingsEntry,
  clusterView,
  endpointEntry,
  listenerView,
  parseClusterBody,
  parseEndpointBody,
  parseListenerBody,
  policyView,
} from './resources.js';
import { ERRORS } from './schemas.js';

/**
 * The admin API's resources: clusters, their endpoints and policies, listeners (all in the
 * durable store), the weight engine's current weights with explanations, metric reports, and the
 * audit log. Each group registers only when its dependency is given.
 *
 * Status codes: 200 (201 when a PUT created), 400 bad input (with the field's JSON pointer),
 * 404 unknown name, 409 owned by another source / still referenced / address in use, 412 failed
 * If-Match or If-None-Match (nothing written), 413 body too large.
 */

/** What the admin API needs of the weight engine adapter (AdaptiveWeights). */
export interface WeightsSource {
  explain(cluster: string): { tick: ClusterTick; explanations: ReadonlyMap<string, Explanation> } | undefined;
  /** What is published instead of the operator's weights; without it, effective weights come from explain(). */
  current?(): WeightOverrides;
}

export type ReportsIngest = (body: unknown) => { accepted: number; rejected: { index: number; field: string; reason: string }[] };

export interface ResourceDeps {
  readonly store?: Store;
  readonly weights?: WeightsSource;
  readonly reports?: ReportsIngest;
  /** The audit actor of a request (set by the auth hook). */
  readonly actorOf: (request: FastifyRequest) => string;
}

const Conditional = Type.Object({
  'if-match': Type.Optional(Type.String({ description: 'Write only if the resource\'s ETag is one of these ("*": it exists); else 412' })),
});
const ConditionalPut = Type.Object({
  'if-match': Type.Optional(Type.String({ description: 'Write only if the resource\'s ETag is one of these ("*": it exists); else 412' })),
  'if-none-match': Type.Optional(Type.String({ description: '"*": create only; 412 if the resource exists' })),
});
const NoQuery = Type.Object({}, { additionalProperties: false });
const SECURE = [{ bearerAuth: [] }];
const SAFETY_DEFAULT_VALUES: Record<string, number> = { ...SAFETY_DEFAULTS };


/** Numbers that JSON cannot carry (NaN, ±Infinity) are dropped rather than crash the serializer. */
function finite(value: unknown): unknown {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (Array.isArray(value)) return value.map(finite);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const f = finite(v);
      if (f !== undefined) out[k] = f;
    }
    return out;
  }
  return value;
}

function withEtag<T>(reply: FastifyReply, revision: number, status: number, body: T): FastifyReply {
  return reply.code(status).header('etag', etag(revision)).send(body);
}

export function resourceRoutes(deps: ResourceDeps): FastifyPluginCallbackTypebox {
  return (app, _options, done) => {
    const { store, weights, reports } = deps;

    /** Published weight and health per endpoint key, as the translator applies them. */
    const overridesOf = (c: ClusterRecord): ReadonlyMap<string, EndpointOverride> | undefined => {
      if (!weights) return undefined;
      if (weights.current) return weights.current().get(c.name);
      const ex = weights.explain(c.name);
      if (!ex) return undefined;
      const adaptive = c.weighting?.kind !== 'static';
      const out = new Map<string, EndpointOverride>();
      for (const [key, w] of ex.tick.weights) {
        const unhealthy = ex.tick.health.get(key) === 'UNHEALTHY';
        out.set(key, { ...(adaptive ? { weight: w } : {}), ...(unhealthy ? { health: 'UNHEALTHY' as const } : {}) });
      }
      return out;
    };

    const endpointStatus = (e: EndpointRecord, overrides: ReturnType<typeof overridesOf>) => {
      const o = overrides?.get(endpointKey(e));
      return {
        ...endpointEntry(e),
        revision: e.revision,
        updatedAt: e.updatedAt,
        ...(e.state === 'disabled'
          ? {}
          : { effectiveWeight: o?.weight ?? e.weight, publishedHealth: e.state === 'draining' ? 'DRAINING' : (o?.health ?? e.health) }),
      };
    };

    if (store) {
      const getCluster = (name: string): ClusterRecord => {
        const rec = store.getCluster(name);
        if (!rec) throw new ApiError(404, `cluster ${JSON.stringify(name)} does not exist`, undefined, 'NOT_FOUND');
        return rec;
      };
      const getEndpoint = (cluster: string, address: string, port: number): EndpointRecord => {
        getCluster(cluster);
        const e = store.getEndpoint(cluster, address, port);
        if (!e) throw new ApiError(404, `endpoint ${address}:${port} of cluster ${JSON.stringify(cluster)} does not exist`, undefined, 'NOT_FOUND');
        return e;
      };
      const checkAddress = (address: string): void => {
        if (isIP(address) === 0) throw new ApiError(400, `"${address}" is not an IP address (Envoy does not resolve EDS hostnames)`, '/params/address');
      };
      /** Ownership first, then the client's preconditions: the options every API write gives the store. */
      const writeOptions = (request: FastifyRequest, kind: ResourceKind, name: string, owner: Owner | undefined, revision: number | undefined, what: string) => {
        assertApiOwned(kind, name, owner);
        const ifMatch = storeIfMatch(readPreconditions(request.headers), revision, what);
        return { owner: 'api' as const, actor: deps.actorOf(request), ...(ifMatch !== undefined ? { ifMatch } : {}) };
      };

      // ── clusters ──────────────────────────────────────────────────────────────────────────────

      app.get(
        '/v1/clusters',
        { schema: { tags: ['clusters'], summary: 'Every cluster, with its endpoints', security: SECURE, querystring: NoQuery, response: { 200: ClusterList, ...AUTH_ERRORS, ...ERRORS } } },
        async () => {
          const clusters = store.listClusters().map(clusterView);
          return { count: clusters.length, clusters };
        },
      );

      app.get(
        '/v1/clusters/:name',
        {
          schema: {
            tags: ['clusters'],
            summary: 'One cluster, as a config-file entry plus owner and revision (ETag)',
            security: SECURE,
            params: NameParams,
            querystring: NoQuery,
            response: { 200: ClusterView, ...AUTH_ERRORS, 404: WRITE_ERRORS[404], ...ERRORS },
          },
        },
        async (request, reply) => {
          const rec = getCluster(request.params.name);
          return withEtag(reply, rec.revision, 200, clusterView(rec));
        },
      );

      app.put(
        '/v1/clusters/:name',
        {
          schema: {
            tags: ['clusters'],
            summary: 'Create or replace a cluster (body: a config-file cluster entry; without endpoints, the endpoints are kept)',
            security: SECURE,
            params: NameParams,
            querystring: NoQuery,
            headers: ConditionalPut,
            body: ClusterIn,
            response: { 200: ClusterView, 201: ClusterView, ...AUTH_ERRORS, ...WRITE_ERRORS, ...ERRORS },
          },
        },
        async (request, reply) => {
          const { name } = request.params;
          const existing = store.getCluster(name);
          const options = writeOptions(request, 'cluster', name, existing?.owner, existing?.revision, `cluster "${name}"`);
          const input = parseClusterBody(request.body, name);
          const { revision } = store.putCluster(input, options);
          const rec = getCluster(name);
          if (!existing) reply.header('location', `/v1/clusters/${encodeURIComponent(name)}`);
          return withEtag(reply, revision, existing ? 200 : 201, clusterView(rec));
        },
      );

      app.delete(
        '/v1/clusters/:name',
        {
          schema: {
            tags: ['clusters'],
            summary: 'Delete a cluster, its endpoints and its weights (409 while a listener or node group references it)',
            security: SECURE,
            params: NameParams,
            querystring: NoQuery,
            headers: Conditional,
            response: { 200: Deleted, ...AUTH_ERRORS, ...WRITE_ERRORS, ...ERRORS },
          },
        },
        async (request) => {
          const { name } = request.params;
          const rec = getCluster(name);
          const options = writeOptions(request, 'cluster', name, rec.owner, rec.revision, `cluster "${name}"`);
          const listeners = store.listListeners().filter((l) => l.routes.some((r) => r.cluster === name)).map((l) => l.name);
          const groups = store.listNodeGroups().filter((g) => g.clusters.includes(name)).map((g) => g.nodeCluster);
          if (listeners.length > 0 || groups.length > 0) {
            const by = [
              ...(listeners.length > 0 ? [`listener${listeners.length > 1 ? 's' : ''} ${listeners.map((l) => JSON.stringify(l)).join(', ')}`] : []),
              ...(groups.length > 0 ? [`node group${groups.length > 1 ? 's' : ''} ${groups.map((g) => JSON.stringify(g)).join(', ')}`] : []),
            ].join(' and ');
            throw new ApiError(409, `cluster "${name}" is still referenced by ${by}; remove those references first`, undefined, 'REFERENCED');
          }
          const { revision } = store.deleteCluster(name, options);
          return { deleted: name, revision };
        },
      );

      // ── endpoints ─────────────────────────────────────────────────────────────────────────────

      app.get(
        '/v1/clusters/:name/endpoints',
        {
          schema: {
            tags: ['clusters'],
            summary: 'A cluster\'s endpoints: static and effective weight, declared and published health, operator state',
            security: SECURE,
            params: NameParams,
            querystring: NoQuery,
            response: { 200: EndpointList, ...AUTH_ERRORS, 404: WRITE_ERRORS[404], ...ERRORS },
          },
        },
        async (request, reply) => {
          const rec = getCluster(request.params.name);
          const overrides = overridesOf(rec);
          return withEtag(reply, rec.revision, 200, {
            cluster: rec.name,
            revision: rec.revision,
            count: rec.endpoints.length,
            endpoints: rec.endpoints.map((e) => endpointStatus(e, overrides)),
          });
        },
      );

      app.get(
        '/v1/clusters/:name/endpoints/:address/:port',
        {
          schema: {
            tags: ['clusters'],
            summary: 'One endpoint (its own revision is the ETag for If-Match on its writes)',
            security: SECURE,
            params: EndpointParams,
            querystring: NoQuery,
            response: { 200: EndpointStatus, ...AUTH_ERRORS, 404: WRITE_ERRORS[404], ...ERRORS },
          },
        },
        async (request, reply) => {
          const { name, address, port } = request.params;
          checkAddress(address);
          const e = getEndpoint(name, address, port);
          return withEtag(reply, e.revision, 200, endpointStatus(e, overridesOf(getCluster(name))));
        },
      );

      app.put(
        '/v1/clusters/:name/endpoints/:address/:port',
        {
          schema: {
            tags: ['clusters'],
            summary: 'Add or replace one endpoint of an API-owned cluster (body: a config-file endpoint entry)',
            security: SECURE,
            params: EndpointParams,
            querystring: NoQuery,
            headers: ConditionalPut,
            body: EndpointEntryIn,
            response: { 200: EndpointStatus, 201: EndpointStatus, ...AUTH_ERRORS, ...WRITE_ERRORS, ...ERRORS },
          },
        },
        async (request, reply) => {
          const { name, address, port } = request.params;
          checkAddress(address);
          const cluster = getCluster(name);
          const existing = store.getEndpoint(name, address, port);
          const options = writeOptions(request, 'endpoint', endpointName(name, { address, port }), cluster.owner, existing?.revision, `endpoint ${address}:${port}`);
          const spec = parseEndpointBody(request.body, address, port);
          const { revision } = store.putEndpoint(name, spec, options);
          const e = getEndpoint(name, address, port);
          if (!existing) reply.header('location', `/v1/clusters/${encodeURIComponent(name)}/endpoints/${encodeURIComponent(address)}/${port}`);
          return withEtag(reply, revision, existing ? 200 : 201, endpointStatus(e, overridesOf(getCluster(name))));
        },
      );

      app.delete(
        '/v1/clusters/:name/endpoints/:address/:port',
        {
          schema: {
            tags: ['clusters'],
            summary: 'Remove one endpoint of an API-owned cluster',
            security: SECURE,
            params: EndpointParams,
            querystring: NoQuery,
            headers: Conditional,
            response: { 200: Deleted, ...AUTH_ERRORS, ...WRITE_ERRORS, ...ERRORS },
          },
        },
        async (request) => {
          const { name, address, port } = request.params;
          checkAddress(address);
          const cluster = getCluster(name);
          const e = getEndpoint(name, address, port);
          const options = writeOptions(request, 'endpoint', endpointName(name, { address, port }), cluster.owner, e.revision, `endpoint ${address}:${port}`);
          const { revision } = store.removeEndpoint(name, address, port, options);
          return { deleted: endpointName(name, { address, port }), revision };
        },
      );

      const stateRoute = (action: 'drain' | 'disable' | 'enable', state: OperatorState, summary: string): void => {
        app.post(
          `/v1/clusters/:name/endpoints/:address/:port/${action}`,
          {
            schema: {
              tags: ['clusters'],
              summary,
              security: SECURE,
              params: EndpointParams,
              querystring: NoQuery,
              headers: Conditional,
              response: { 200: EndpointStatus, ...AUTH_ERRORS, 404: WRITE_ERRORS[404], 412: WRITE_ERRORS[412], ...ERRORS },
            },
          },
          async (request, reply) => {
            const { name, address, port } = request.params;
            checkAddress(address);
            const e = getEndpoint(name, address, port);
            const ifMatch = storeIfMatch(readPreconditions(request.headers), e.revision, `endpoint ${address}:${port}`);
            const { revision } = store.setEndpointState(name, address, port, state, {
              actor: deps.actorOf(request),
              ...(ifMatch !== undefined ? { ifMatch } : {}),
            });
            return withEtag(reply, revision, 200, endpointStatus(getEndpoint(name, address, port), overridesOf(getCluster(name))));
          },
        );
      };
      stateRoute('drain', 'draining', 'Drain an endpoint: sent as DRAINING, so proxies stop new requests to it (any owner\'s endpoint)');
      stateRoute('disable', 'disabled', 'Disable an endpoint: no longer sent to proxies at all (any owner\'s endpoint)');
      stateRoute('enable', 'active', 'Enable an endpoint again: served as declared (any owner\'s endpoint)');

      // ── policy ────────────────────────────────────────────────────────────────────────────────

      app.get(
        '/v1/clusters/:name/policy',
        {
          schema: {
            tags: ['clusters'],
            summary: 'A cluster\'s LB policy, weighting policy and safety overrides',
            security: SECURE,
            params: NameParams,
            querystring: NoQuery,
            response: { 200: PolicyView, ...AUTH_ERRORS, 404: WRITE_ERRORS[404], ...ERRORS },
          },
        },
        async (request, reply) => {
          const rec = getCluster(request.params.name);
          return withEtag(reply, rec.revision, 200, policyView(rec, SAFETY_DEFAULT_VALUES));
        },
      );

      app.patch(
        '/v1/clusters/:name/policy',
        {
          schema: {
            tags: ['clusters'],
            summary: 'Adjust lbPolicy, weighting (PID gains, setpoint, EWMA decay, blend) and safety bounds (JSON merge patch)',
            security: SECURE,
            params: NameParams,
            querystring: NoQuery,
            headers: Conditional,
            body: PolicyPatch,
            response: { 200: PolicyView, ...AUTH_ERRORS, ...WRITE_ERRORS, ...ERRORS },
          },
        },
        async (request, reply) => {
          const { name } = request.params;
          const pre = readPreconditions(request.headers);
          const patch = request.body as Record<string, unknown>;
          // Read-modify-write with the revision read as If-Match; without the client's own
          // precondition, a concurrent writer just means: read again and re-apply.
          for (let attempt = 0; ; attempt++) {
            const rec = getCluster(name);
            assertApiOwned('cluster', name, rec.owner);
            const ifMatch = storeIfMatch(pre, rec.revision, `cluster "${name}"`) ?? rec.revision;
            const merged = applyPolicyPatch(clusterSettingsEntry(rec), patch);
            // The endpoints go along so `auto` sees how many there are; the store is not given them.
            const { endpoints: _endpoints, ...input } = parseClusterBody({ ...(merged as ClusterIn), endpoints: rec.endpoints.map(endpointEntry) }, name);
            try {
              const { revision } = store.putCluster(input, { owner: 'api', actor: deps.actorOf(request), ifMatch });
              return withEtag(reply, revision, 200, policyView(getCluster(name), SAFETY_DEFAULT_VALUES));
            } catch (err) {
              if (!(err instanceof ConflictError) || hasPreconditions(pre) || attempt >= 4) throw err;
            }
          }
        },
      );

      // ── listeners ─────────────────────────────────────────────────────────────────────────────

      const getListener = (name: string) => {
        const rec = store.getListener(name);
        if (!rec) throw new ApiError(404, `listener ${JSON.stringify(name)} does not exist`, undefined, 'NOT_FOUND');
        return rec;
      };

      app.get(
        '/v1/listeners',
        { schema: { tags: ['listeners'], summary: 'Every listener', security: SECURE, querystring: NoQuery, response: { 200: ListenerList, ...AUTH_ERRORS, ...ERRORS } } },
        async () => {
          const listeners = store.listListeners().map(listenerView);
          return { count: listeners.length, listeners };
        },
      );

      app.get(
        '/v1/listeners/:name',
        {
          schema: {
            tags: ['listeners'],
            summary: 'One listener, as a config-file entry plus owner and revision (ETag)',
            security: SECURE,
            params: NameParams,
            querystring: NoQuery,
            response: { 200: ListenerView, ...AUTH_ERRORS, 404: WRITE_ERRORS[404], ...ERRORS },
          },
        },
        async (request, reply) => {
          const rec = getListener(request.params.name);
          return withEtag(reply, rec.revision, 200, listenerView(rec));
        },
      );

      app.put(
        '/v1/listeners/:name',
        {
          schema: {
            tags: ['listeners'],
            summary: 'Create or replace a listener (body: a config-file listener entry; routes must name existing clusters)',
            security: SECURE,
            params: NameParams,
            querystring: NoQuery,
            headers: ConditionalPut,
            body: ListenerIn,
            response: { 200: ListenerView, 201: ListenerView, ...AUTH_ERRORS, ...WRITE_ERRORS, ...ERRORS },
          },
        },
        async (request, reply) => {
          const { name } = request.params;
          const existing = store.getListener(name);
          const options = writeOptions(request, 'listener', name, existing?.owner, existing?.revision, `listener "${name}"`);
          const listener = parseListenerBody(request.body, name, store.listClusters().map((c) => c.name));
          if (listener.kind === 'socket') {
            const clash = store.listListeners().find((l) => l.name !== name && l.kind === 'socket' && l.address === listener.address && l.port === listener.port);
            if (clash) throw new ApiError(409, `${listener.address}:${listener.port} is already used by listener "${clash.name}"`, '/body/port', 'ADDRESS_IN_USE');
          }
          const { revision } = store.putListener(listener, options);
          if (!existing) reply.header('location', `/v1/listeners/${encodeURIComponent(name)}`);
          return withEtag(reply, revision, existing ? 200 : 201, listenerView(getListener(name)));
        },
      );

      app.delete(
        '/v1/listeners/:name',
        {
          schema: {
            tags: ['listeners'],
            summary: 'Delete an API-owned listener',
            security: SECURE,
            params: NameParams,
            querystring: NoQuery,
            headers: Conditional,
            response: { 200: Deleted, ...AUTH_ERRORS, ...WRITE_ERRORS, ...ERRORS },
          },
        },
        async (request) => {
          const { name } = request.params;
          const rec = getListener(name);
          const options = writeOptions(request, 'listener', name, rec.owner, rec.revision, `listener "${name}"`);
          const { revision } = store.deleteListener(name, options);
          return { deleted: name, revision };
        },
      );

      // ── audit ─────────────────────────────────────────────────────────────────────────────────

      app.get(
        '/v1/audit',
        {
          schema: {
            tags: ['audit'],
            summary: 'Every change to desired state, newest first, with the record before and after',
            security: SECURE,
            querystring: AuditQuery,
            response: { 200: AuditPage, ...AUTH_ERRORS, ...ERRORS },
          },
        },
        async (request) => {
          const limit = request.query.limit ?? 100;
          const entries = store.audit(limit, request.query.before);
          const last = entries[entries.length - 1];
          return { entries, ...(entries.length === limit && last && last.id > 1 ? { nextBefore: last.id } : {}) };
        },
      );
    }

    // ── weights ─────────────────────────────────────────────────────────────────────────────────

    if (weights) {
      app.get(
        '/v1/weights/:cluster',
        {
          schema: {
            tags: ['weights'],
            summary: 'The weights a cluster\'s endpoints are published with, each with its explanation (inputs, setpoint, error, P/I/D terms, safety rules)',
            security: SECURE,
            params: WeightsParams,
            querystring: NoQuery,
            response: { 200: WeightsView, ...AUTH_ERRORS, 404: WRITE_ERRORS[404], ...ERRORS },
          },
        },
        async (request) => {
          const { cluster } = request.params;
          const ex = weights.explain(cluster);
          const rec = store?.getCluster(cluster);
          if (!ex) {
            if (!rec) throw new ApiError(404, `no weights for cluster ${JSON.stringify(cluster)}: unknown cluster, or the engine has not run yet`, undefined, 'NOT_FOUND');
            return {
              cluster,
              computed: false,
              policy: rec.weighting?.kind ?? 'static',
              failStatic: false,
              endpoints: rec.endpoints
                .filter((e) => e.state !== 'disabled')
                .map((e) => ({ endpoint: endpointKey(e), staticWeight: e.weight, weight: e.weight, health: e.state === 'draining' ? 'DRAINING' : e.health })),
            };
          }
          const first = ex.explanations.values().next().value;
          const policy = rec?.weighting?.kind ?? first?.policy;
          const endpoints = [...ex.tick.weights].map(([key, integer]) => {
            const explanation = ex.explanations.get(key);
            const staticWeight = explanation?.staticWeight;
            const weight = policy === 'static' && staticWeight !== undefined ? staticWeight : integer;
            return {
              endpoint: key,
              ...(staticWeight !== undefined ? { staticWeight } : {}),
              weight,
              ...(ex.tick.health.has(key) ? { health: ex.tick.health.get(key) } : {}),
              ...(explanation ? { explanation: finite(explanation) as Static<typeof ExplanationSchema> } : {}),
            };
          });
          return {
            cluster,
            computed: true,
            ...(policy !== undefined ? { policy } : {}),
            failStatic: ex.tick.failStatic,
            ...(ex.tick.setpoint !== undefined && Number.isFinite(ex.tick.setpoint) ? { setpoint: ex.tick.setpoint } : {}),
            endpoints: finite(endpoints) as typeof endpoints,
          };
        },
      );
    }

    // ── reports ─────────────────────────────────────────────────────────────────────────────────

    if (reports) {
      app.post(
        '/v1/reports',
        {
          bodyLimit: REPORT_BODY_LIMIT_BYTES,
          schema: {
            tags: ['signals'],
            summary: 'Ingest a batch of per-endpoint load samples (200 even when some samples are rejected: see rejected)',
            security: SECURE,
            querystring: NoQuery,
            body: ReportBody,
            response: { 200: ReportResponse, ...AUTH_ERRORS, ...ERRORS },
          },
        },
        async (request) => reports(request.body),
      );
    }

    done();
  };
}
