import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { CatalogStore } from '../catalog/store/index.js';
import { Authorizer, type AuthConfig } from './auth.js';
import { errorBody, onError } from './errors.js';
import { openApiOptions } from './openapi.js';
import { auditRoutes } from './routes/audit.js';
import { clusterRoutes } from './routes/clusters.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { endpointRoutes } from './routes/endpoints.js';
import { listenerRoutes } from './routes/listeners.js';
import { opsRoutes, type OpsRoutesOptions } from './routes/ops.js';
import { policyRoutes } from './routes/policy.js';
import { proxyRoutes, type ProxyRoutesOptions } from './routes/proxies.js';
import { reportsRoutes, type ReportsIngest } from './routes/reports.js';
import type { StoreRoutesOptions } from './routes/store-access.js';
import { weightsRoutes, type WeightsSource } from './routes/weights.js';
import { NODE_ID_MAX } from './schemas.js';

export type { Readiness } from './routes/ops.js';
export type { ReportsIngest } from './routes/reports.js';
export type { WeightsSource } from './routes/weights.js';

/**
 * The admin HTTP API: health and readiness probes, Prometheus metrics, operator views of the xDS
 * state (connected proxies, what each is sent), and, when their dependencies are given, the
 * desired-state resources (clusters, endpoints, policies, listeners), the weight engine's
 * explanations, metric reports and the audit log. Each resource is a fastify plugin in routes/;
 * every route has a TypeBox schema for its input and output, and the OpenAPI document is
 * generated from them. Errors: see errors.ts.
 *
 * Authentication: bearer tokens with roles (see auth.ts); with no token configured, open.
 */

export interface AdminDeps extends ProxyRoutesOptions, OpsRoutesOptions {
  readonly log?: Logger;
  /** Shown in the OpenAPI document. */
  readonly version?: string;
  /** Request body limit in bytes (default 1 MiB). */
  readonly bodyLimit?: number;
  /** The durable store: enables /v1/clusters (endpoints, policy), /v1/listeners, /v1/audit. */
  readonly store?: CatalogStore;
  /** The weight engine adapter (AdaptiveWeights): enables /v1/weights/{cluster} and effective weights. */
  readonly weights?: WeightsSource;
  /** Report ingestion (signals' ingestReports bound to its deps): enables POST /v1/reports. */
  readonly reports?: ReportsIngest;
  /** Bearer tokens; absent or all lists empty: no authentication. */
  readonly auth?: AuthConfig;
  /** Serve HTTPS with this PEM certificate chain and private key (contents, not paths); absent: plain HTTP. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
}

function createServer(deps: AdminDeps) {
  return Fastify({
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
}

export function buildAdminApp(deps: AdminDeps) {
  const app = createServer(deps);
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

  void app.register(swagger, openApiOptions(deps.version ?? '0.0.0'));
  void app.register(swaggerUi, { routePrefix: '/docs' });
  void app.register(opsRoutes, { ready: () => deps.ready(), metrics: deps.metrics });
  void app.register(proxyRoutes, { registry: deps.registry, cache: deps.cache, replica: deps.replica ?? 'local', ...(deps.fleet ? { fleet: deps.fleet } : {}) });
  registerResources(app, deps, (r) => actors.get(r) ?? 'api');
  void app.register(dashboardRoutes);
  return app;
}

export type AdminApp = ReturnType<typeof buildAdminApp>;

/** Each group of resource routes registers only when its dependency is given. */
function registerResources(app: ReturnType<typeof createServer>, deps: AdminDeps, actorOf: StoreRoutesOptions['actorOf']): void {
  const { store, weights, reports } = deps;
  if (store) {
    void app.register(clusterRoutes, { store, actorOf });
    void app.register(endpointRoutes, { store, actorOf, ...(weights ? { weights } : {}) });
    void app.register(policyRoutes, { store, actorOf });
    void app.register(listenerRoutes, { store, actorOf });
    void app.register(auditRoutes, { store });
  }
  if (weights) void app.register(weightsRoutes, { weights, ...(store ? { store } : {}) });
  if (reports) void app.register(reportsRoutes, { ingest: reports });
}
