import { STATUS_CODES } from 'node:http';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyPluginCallbackTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { StoreError, type Store } from '../catalog/store/index.js';
import type { XdsCache } from '../xds/cache.js';
import { PUSH_ORDER, SHORT_TYPE, type XdsTypeUrl } from '../xds/envoy-api.js';
import type { ProxyRecord, ProxyRegistry } from '../xds/proxy-status.js';
import { DEFAULT_GROUP } from '../xds/translator.js';
import {
  ConfigDump,
  ConfigDumpQuery,
  ERRORS,
  Health,
  NODE_ID_MAX,
  ProxyDetail,
  ProxyList,
  ProxyParams,
  NotReady,
  Ready,
  type ErrorResponse,
  type ShortType,
} from './schemas.js';
import { byNode, configDumpView, proxyView } from './views.js';
import { resourceRoutes, type ReportsIngest, type WeightsSource } from './api-routes.js';
import { Authorizer, type AuthConfig } from './auth.js';
import { ApiError } from './resources.js';
import { toOpenApi30 } from './openapi.js';
import { dashboardRoutes } from './dashboard.js';

/**
 * The admin HTTP API: health and readiness probes, Prometheus metrics, operator views of the xDS
 * state (connected proxies, what each is sent), and, when their dependencies are given, the
 * desired-state resources (clusters, endpoints, policies, listeners: see api-routes.ts), the
 * weight engine's explanations, metric reports and the audit log. Every route has a TypeBox
 * schema for its input and output; the OpenAPI document is generated from them.
 *
 * Input never produces a 500: validation failures are 400s naming the field, unknown names 404s,
 * conflicts 409s, failed preconditions 412s; only a bug reaches the 500 path, and that is logged.
 *
 * Authentication: bearer tokens with roles (see auth.ts); with no token configured, open.
 */

export interface Readiness {
  readonly ready: boolean;
  readonly reasons: string[];
}

export interface AdminDeps {
  readonly registry: Pick<ProxyRegistry, 'list'>;
  readonly cache: Pick<XdsCache, 'snapshotFor'>;
  /** The Prometheus registry's text exposition. */
  readonly metrics: { readonly contentType: string; render(): Promise<string> };
  /** Whether fulcrum can serve (config loaded, gRPC listening); reasons when not. */
  ready(): Readiness;
  readonly log?: Logger;
  /** Shown in the OpenAPI document. */
  readonly version?: string;
  /** Request body limit in bytes (default 1 MiB). */
  readonly bodyLimit?: number;
  /** The durable store: enables /v1/clusters (endpoints, policy), /v1/listeners, /v1/audit. */
  readonly store?: Store;
  /** The weight engine adapter (AdaptiveWeights): enables /v1/weights/{cluster} and effective weights. */
  readonly weights?: WeightsSource;
  /** Report ingestion (signals' ingestReports bound to its deps): enables POST /v1/reports. */
  readonly reports?: ReportsIngest;
  /** Bearer tokens; absent or all lists empty: no authentication. */
  readonly auth?: AuthConfig;
  /** Serve HTTPS with this PEM certificate chain and private key (contents, not paths); absent: plain HTTP. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
}

const URL_OF = Object.fromEntries(Object.entries(SHORT_TYPE).map(([url, short]) => [short, url])) as Record<ShortType, XdsTypeUrl>;
const NoQuery = Type.Object({}, { additionalProperties: false });

function errorBody(status: number, message: string, path?: string, code?: string): ErrorResponse {
  return { error: STATUS_CODES[status] ?? 'Error', message, ...(path !== undefined ? { path } : {}), ...(code !== undefined ? { code } : {}) };
}

/** fastify's validation error, as `{ error, message, path }`; path is a JSON pointer such as `/querystring/node`. */
function validationPath(err: FastifyError): string {
  const first = err.validation?.[0];
  let path = `/${err.validationContext ?? 'request'}${first?.instancePath ?? ''}`;
  const params = (first?.params ?? {}) as Record<string, unknown>;
  if (typeof params.missingProperty === 'string') path += `/${params.missingProperty}`;
  else if (typeof params.additionalProperty === 'string') path += `/${params.additionalProperty}`;
  return path;
}

function onError(err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err.validation) return reply.code(400).send(errorBody(400, err.message, validationPath(err)));
  if (err instanceof ApiError) return reply.code(err.statusCode).send(errorBody(err.statusCode, err.message, err.path, err.code));
  // The store's refusals: an If-Match the store found stale is a failed precondition (412), not a 409.
  if ((err as unknown) instanceof StoreError) {
    const e = err as unknown as StoreError;
    const status = e.code === 'REVISION_MISMATCH' ? 412 : e.status;
    return reply.code(status).send(errorBody(status, e.message, undefined, e.code));
  }
  const status = err.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    // Codes of our own errors (e.g. a report batch's TOO_LARGE); fastify's FST_* codes are noise.
    const code = typeof err.code === 'string' && !err.code.startsWith('FST_') ? err.code : undefined;
    return reply.code(status).send(errorBody(status, err.message, undefined, code));
  }
  request.log.error({ err, method: request.method, url: request.url.slice(0, 512) }, 'admin request failed');
  return reply.code(500).send(errorBody(500, 'internal error'));
}

export function buildAdminApp(deps: AdminDeps) {
  const app = Fastify({
    // null: plain HTTP (fastify's https overload, so the instance type does not depend on the option).
    https: deps.tls ? { cert: deps.tls.cert, key: deps.tls.key } : null,
    ...(deps.log ? { loggerInstance: deps.log.child({ component: 'admin' }) } : { logger: false }),
    bodyLimit: deps.bodyLimit ?? 1024 * 1024,
    // Probes and scrapes every few seconds would drown the log; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    // A slow client cannot hold a request open forever.
    requestTimeout: 30_000,
    // Node ids longer than the schema allows must reach validation (a 400), not miss the route (a 404).
    routerOptions: { maxParamLength: NODE_ID_MAX * 3 + 16 },
    // Unknown fields are errors (400 naming them), as in the config file, not silently dropped.
    ajv: { customOptions: { removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const auth = new Authorizer(deps.auth);
  const actors = new WeakMap<FastifyRequest, string>();
  // onRequest: before the body is read, so an unauthenticated client cannot make fulcrum parse megabytes.
  app.addHook('onRequest', async (request, reply) => {
    const decision = auth.decide(request.method, request.url.split('?')[0] ?? '', request.headers.authorization);
    if (decision.ok) {
      actors.set(request, decision.actor);
      return;
    }
    if (decision.challenge) reply.header('www-authenticate', decision.challenge);
    return reply.code(decision.status).send(errorBody(decision.status, decision.message));
  });

  app.setErrorHandler(onError);
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(errorBody(404, `no route ${request.method} ${request.url.split('?')[0]?.slice(0, 256) ?? ''}`)),
  );
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    return payload;
  });

  void app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'fulcrum admin API',
        description: 'Health, metrics and operator views of the xDS control plane.',
        version: deps.version ?? '0.0.0',
      },
      tags: [
        { name: 'health', description: 'Liveness and readiness probes' },
        { name: 'proxies', description: 'Connected proxies and their sync state' },
        { name: 'config', description: 'What proxies are being sent' },
        { name: 'telemetry', description: 'Prometheus metrics' },
        { name: 'clusters', description: 'Clusters, their endpoints and policies (desired state, durable). ETag / If-Match: the store revision' },
        { name: 'listeners', description: 'Listeners and their routes (desired state, durable)' },
        { name: 'weights', description: 'The weights the engine publishes, explained' },
        { name: 'signals', description: 'Load reports from agents and backends' },
        { name: 'audit', description: 'Who changed what, when' },
        { name: 'meta', description: 'This document' },
        { name: 'dashboard', description: 'The operator dashboard at / (HTML, open); it calls the /v1 APIs with the token it is given' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description:
              'When tokens are configured: admin tokens may do everything, read tokens GET only, report tokens POST /v1/reports only. ' +
              '/healthz, /readyz, /metrics, /openapi.json, /docs and the dashboard (/ and /dashboard/*) are always open.',
          },
        },
      },
    },
    // OpenAPI 3.0 spells some JSON Schema keywords differently (exclusiveMinimum is a boolean).
    transformObject: (doc) => ('openapiObject' in doc ? toOpenApi30(doc.openapiObject) : doc.swaggerObject),
  });
  void app.register(swaggerUi, { routePrefix: '/docs' });
  void app.register(routes(deps));
  void app.register(resourceRoutes({ store: deps.store, weights: deps.weights, reports: deps.reports, actorOf: (r) => actors.get(r) ?? 'api' }));
  void app.register(dashboardRoutes());
  return app;
}

export type AdminApp = ReturnType<typeof buildAdminApp>;

function routes(deps: AdminDeps): FastifyPluginCallbackTypebox {
  /** A node's streams, newest first. */
  const streamsOf = (nodeId: string): ProxyRecord[] =>
    deps.registry
      .list()
      .filter((r) => r.node.id === nodeId)
      .sort((a, b) => b.connectedAt - a.connectedAt || b.streamId - a.streamId);
  const unknownNode = (nodeId: string) => errorBody(404, `no connected proxy has node id ${JSON.stringify(nodeId)}`);

  return (app, _options, done) => {
    app.get(
      '/healthz',
      {
        schema: {
          tags: ['health'],
          summary: 'Liveness: the process is up and serving HTTP',
          querystring: NoQuery,
          response: { 200: Health, ...ERRORS },
        },
      },
      async () => ({ status: 'ok' as const }),
    );

    app.get(
      '/readyz',
      {
        schema: {
          tags: ['health'],
          summary: 'Readiness: config loaded and the xDS gRPC server serving',
          querystring: NoQuery,
          response: { 200: Ready, 503: NotReady, ...ERRORS },
        },
      },
      async (_request, reply) => {
        const r = deps.ready();
        return reply.code(r.ready ? 200 : 503).send({ ready: r.ready, reasons: [...r.reasons] });
      },
    );

    app.get(
      '/metrics',
      {
        schema: {
          tags: ['telemetry'],
          summary: 'Prometheus metrics (text exposition format)',
          querystring: NoQuery,
          response: {
            200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: Type.String() } } },
            ...ERRORS,
          },
        },
      },
      async (_request, reply) => {
        const text = await deps.metrics.render();
        return reply.code(200).header('content-type', deps.metrics.contentType).send(text);
      },
    );

    app.get(
      '/openapi.json',
      {
        schema: {
          tags: ['meta'],
          summary: 'This API as an OpenAPI 3 document',
          querystring: NoQuery,
          response: { 200: Type.Object({ openapi: Type.String() }, { additionalProperties: true }), ...ERRORS },
        },
      },
      async () => app.swagger() as { openapi: string },
    );

    app.get(
      '/v1/proxies',
      {
        schema: {
          tags: ['proxies'],
          summary: 'Every connected proxy stream, with per-type sync state (SYNCED, STALE, NACKED, NOT_SENT)',
          querystring: NoQuery,
          response: { 200: ProxyList, ...ERRORS },
        },
      },
      async () => {
        const proxies = deps.registry.list().sort(byNode).map(proxyView);
        return { count: proxies.length, proxies };
      },
    );

    app.get(
      '/v1/proxies/:nodeId',
      {
        schema: {
          tags: ['proxies'],
          summary: 'One connected proxy, by node id (404 if no stream has it)',
          params: ProxyParams,
          querystring: NoQuery,
          response: { 200: ProxyDetail, ...ERRORS },
        },
      },
      async (request, reply) => {
        const { nodeId } = request.params;
        const records = streamsOf(nodeId);
        if (records.length === 0) return reply.code(404).send(unknownNode(nodeId));
        return { nodeId, streams: records.map(proxyView) };
      },
    );

    app.get(
      '/v1/config_dump',
      {
        schema: {
          tags: ['config'],
          summary: 'The resources a node is being sent (its node group\'s snapshot), decoded; without node, the default group',
          querystring: ConfigDumpQuery,
          response: { 200: ConfigDump, ...ERRORS },
        },
      },
      async (request, reply) => {
        const { node, type } = request.query;
        const types = type !== undefined ? [URL_OF[type]] : PUSH_ORDER;
        if (node === undefined) return configDumpView(deps.cache.snapshotFor(DEFAULT_GROUP), types);
        const records = streamsOf(node);
        const newest = records[0];
        if (!newest) return reply.code(404).send(unknownNode(node));
        return configDumpView(deps.cache.snapshotFor(newest.node.cluster), types, { records });
      },
    );

    done();
  };
}
