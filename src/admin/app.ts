import { STATUS_CODES } from 'node:http';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyPluginCallbackTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
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

/**
 * The admin HTTP API: health and readiness probes, Prometheus metrics, and read-only operator
 * views of the xDS state (connected proxies, what each is sent). Every route has a TypeBox schema
 * for its input and output; the OpenAPI document is generated from them.
 *
 * Input never produces a 500: validation failures are 400s naming the field, unknown names 404s;
 * only a bug reaches the 500 path, and that is logged.
 *
 * No authentication in this slice: bind it to loopback (the default) or a private interface.
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
}

const URL_OF = Object.fromEntries(Object.entries(SHORT_TYPE).map(([url, short]) => [short, url])) as Record<ShortType, XdsTypeUrl>;
const NoQuery = Type.Object({}, { additionalProperties: false });

function errorBody(status: number, message: string, path?: string): ErrorResponse {
  return { error: STATUS_CODES[status] ?? 'Error', message, ...(path !== undefined ? { path } : {}) };
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
  const status = err.statusCode;
  if (status !== undefined && status >= 400 && status < 500) return reply.code(status).send(errorBody(status, err.message));
  request.log.error({ err, method: request.method, url: request.url.slice(0, 512) }, 'admin request failed');
  return reply.code(500).send(errorBody(500, 'internal error'));
}

export function buildAdminApp(deps: AdminDeps) {
  const app = Fastify({
    ...(deps.log ? { loggerInstance: deps.log.child({ component: 'admin' }) } : { logger: false }),
    bodyLimit: deps.bodyLimit ?? 1024 * 1024,
    // Probes and scrapes every few seconds would drown the log; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    // A slow client cannot hold a request open forever.
    requestTimeout: 30_000,
    // Node ids longer than the schema allows must reach validation (a 400), not miss the route (a 404).
    routerOptions: { maxParamLength: NODE_ID_MAX * 3 + 16 },
  }).withTypeProvider<TypeBoxTypeProvider>();

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
        { name: 'meta', description: 'This document' },
      ],
    },
  });
  void app.register(swaggerUi, { routePrefix: '/docs' });
  void app.register(routes(deps));
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
