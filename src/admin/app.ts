import type { Server } from 'node:net';
import { capPeerConnections } from './peer-connections.js';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { CatalogStore } from '../catalog/store/index.js';
import { Authorizer, type AuthConfig } from './auth.js';
import { clientError, errorBody, errorHandler, frameworkError, VALIDATION_FAILED, type Unrouted } from './errors.js';
import { ApiError } from './resources.js';
import { mayHoldSurrogateEscape, unpairedSurrogateAt, unpairedSurrogateMessage } from '../catalog/unpaired-surrogates.js';
import { lazyDocsRoutes } from './lazy-docs.js';
import { lazySerializers, lazyValidators, Warmer } from './lazy-compilers.js';
import { openApiOptions } from './openapi.js';
import { RouteMethods } from './route-methods.js';
import type { PrebuiltFinder } from './prebuilt-code.js';
import { buildSerializer } from './serializers.js';
import { buildValidator } from './validators.js';
import { auditRoutes } from './routes/audit.js';
import { overrideRoutes } from './routes/overrides.js';
import { clusterRoutes } from './routes/clusters.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { endpointRoutes } from './routes/endpoints.js';
import { listenerRoutes } from './routes/listeners.js';
import { opsRoutes, type OpsRoutesOptions } from './routes/ops.js';
import { policyRoutes } from './routes/policy.js';
import { proxyRoutes, type ProxyRoutesOptions } from './routes/proxies.js';
import { reportsRoutes, type ReportsIngest } from './routes/reports.js';
import type { ReportsGate } from '../signals/report-budget.js';
import type { FileTakeovers, StoreRoutesOptions } from './routes/store-access.js';
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
  /** The config file's definitions that take a cluster's or listener's name when the API deletes it (a cluster's references to it then stay good). */
  readonly fileTakesOver?: FileTakeovers;
  /** The weight engine adapter (AdaptiveWeights): enables /v1/weights, /v1/weights/{cluster} and effective weights. */
  readonly weights?: WeightsSource;
  /** Report ingestion (signals' ingestReports bound to its deps): enables POST /v1/reports. */
  readonly reports?: ReportsIngest;
  /** Each sender's budget of report samples (signals' ReportBudget): over it, POST /v1/reports answers 429 unread. */
  readonly reportsGate?: ReportsGate;
  /** Bearer tokens; absent or all lists empty: no authentication. */
  readonly auth?: AuthConfig;
  /** Serve HTTPS with this PEM certificate chain and private key (contents, not paths); absent: plain HTTP. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** Called once the write routes' schemas are compiled in the background (lazy-compilers.ts' Warmer). */
  readonly onWarmed?: () => void;
  /** Validators and serializers made ahead (prebuilt-code.ts: the build's); what it lacks is compiled here. */
  readonly prebuilt?: PrebuiltFinder;
  /** Open connections the port holds at most (default ADMIN_MAX_CONNECTIONS); one more is closed at accept. */
  readonly maxConnections?: number;
  /** Of those, from one peer (default ADMIN_MAX_CONNECTIONS_PER_PEER): one client cannot take every place, the kubelet's probes' included. */
  readonly maxConnectionsPerPeer?: number;
  /** The peer an address counts under (peer-group.ts; default the address itself). */
  readonly peerOf?: (address: string) => string;
  /** Called for each connection closed at accept because `maxConnections` were open, or the peer's `maxConnectionsPerPeer`. */
  readonly onConnectionRefused?: (limit: AdminConnectionLimit) => void;
}

export type AdminConnectionLimit = 'maxConnections' | 'maxConnectionsPerPeer';

/** Connections one peer may hold on the admin port unless configured (server.admin.maxConnectionsPerPeer). */
export const ADMIN_MAX_CONNECTIONS_PER_PEER = 256;

/** How long a client may take to send a whole request, headers and body; then 408 and the connection closes. */
export const REQUEST_TIMEOUT_MS = 30_000;

/**
 * Connections the admin port holds at once unless configured (server.admin.maxConnections).
 * Without a cap, a client opening thousands of idle keep-alive connections costs a file
 * descriptor and some tens of KiB each; probes, scrapes, operators and agents reporting over
 * HTTP need far fewer. Past it a new connection is closed at accept; open ones keep working.
 */
export const ADMIN_MAX_CONNECTIONS = 1_024;

/**
 * Bounds a slow client. fastify sets Node's `requestTimeout`, but Node only checks it every
 * `connectionsCheckingInterval` (30 s by default), so a 30 s timeout cut a trickling body after
 * 30 to 60 s, and later still on a loaded machine; checking every second makes the configured
 * timeout the cut-off. The headers get the same deadline (Node's default, 60 s, would outlast it).
 * Node reads both when the server starts listening, so setting them on the created server works
 * for HTTP and HTTPS alike (fastify's https overload has no `http` server options).
 */
function boundSlowClients(server: object, requestTimeoutMs: number): void {
  Object.assign(server, { headersTimeout: requestTimeoutMs, connectionsCheckingInterval: Math.min(1000, requestTimeoutMs) });
}

/** The longest a stop waits for the admin port's requests in flight before it cuts their connections. */
export const ADMIN_DRAIN_MS = 3_000;

/**
 * Closes the admin server without waiting on its clients. Node's close() closes only the
 * connections idle at that moment: one with a request in flight (a scrape at SIGTERM) went idle a
 * moment later and kept the stop waiting for the keep-alive timeout (72 s), past a pod's grace
 * period. So idle connections are closed again as requests finish, and whatever is still open
 * after `drainMs` (a client that never finishes its request) is cut.
 */
export async function closeAdminApp(app: Pick<AdminApp, 'close' | 'server'>, drainMs = ADMIN_DRAIN_MS): Promise<void> {
  const idle = setInterval(() => app.server.closeIdleConnections(), 50);
  const cut = setTimeout(() => app.server.closeAllConnections(), drainMs);
  try {
    await app.close();
  } finally {
    clearInterval(idle);
    clearTimeout(cut);
  }
}

/**
 * Node closes a connection past `maxConnections` at accept, before any parsing, and says so with
 * 'drop'; one past its peer's `maxConnectionsPerPeer` is closed as it is accepted. Without the
 * latter one client holding every place (idle keep-alive connections cost it nothing) also shut out
 * the kubelet's probes, which then restarted fulcrum.
 */
function capConnections(server: Server, deps: AdminDeps): void {
  server.maxConnections = deps.maxConnections ?? ADMIN_MAX_CONNECTIONS;
  const refused = deps.onConnectionRefused ?? (() => undefined);
  server.on('drop', () => refused('maxConnections'));
  capPeerConnections(server, deps.maxConnectionsPerPeer ?? ADMIN_MAX_CONNECTIONS_PER_PEER, deps.peerOf ?? ((a) => a), () => refused('maxConnectionsPerPeer'));
}

/** Deferred to first use or the warm-up (lazy-compilers.ts), except for a finder that must see every route at once (the build's). */
function validatorCompiler(prebuilt: PrebuiltFinder | undefined, warmer: Warmer) {
  return prebuilt?.eager ? buildValidator(prebuilt) : lazyValidators(buildValidator(prebuilt), warmer);
}

/** As validatorCompiler(). */
function serializerCompiler(prebuilt: PrebuiltFinder | undefined, warmer: Warmer) {
  return prebuilt?.eager ? buildSerializer(prebuilt) : lazySerializers(warmer, () => buildSerializer(prebuilt));
}

function createServer(deps: AdminDeps, warmer: Warmer) {
  const app = Fastify({
    // null: plain HTTP (fastify's https overload, so the instance type does not depend on the option).
    https: deps.tls ? { cert: deps.tls.cert, key: deps.tls.key } : null,
    ...(deps.log ? { loggerInstance: deps.log.child({ component: 'admin' }) } : { logger: false }),
    bodyLimit: deps.bodyLimit ?? 1024 * 1024,
    // A `__proto__` key (or `constructor.prototype`) anywhere in a JSON body is dropped by the
    // parser, so no later merge can reach a prototype. Dropped, not refused: the body is otherwise
    // valid JSON that the OpenAPI document allows where values are free-form (a report sample's
    // extra fields, an override's policy), and no field of this API is named so; what remains is
    // validated as always (a sample's unknown field, an unknown policy key: still refused).
    onProtoPoisoning: 'remove',
    onConstructorPoisoning: 'remove',
    // Probes and scrapes every few seconds would drown the log; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    // A slow client cannot hold a request open forever (see boundSlowClients()).
    requestTimeout: REQUEST_TIMEOUT_MS,
    // Errors before any route runs come in the API's error shape too.
    frameworkErrors: frameworkError,
    clientErrorHandler: clientError,
    // Node ids longer than the schema allows must reach validation (a 400), not miss the route (a 404).
    routerOptions: { maxParamLength: NODE_ID_MAX * 3 + 16 },
    // Bodies validated without type coercion, unknown fields rejected (see validators.ts); route
    // schemas compile on first use, not at start (see lazy-compilers.ts), unless the build made
    // their code ahead (prebuilt-code.ts).
    schemaController: { compilersFactory: { buildValidator: validatorCompiler(deps.prebuilt, warmer), buildSerializer: serializerCompiler(deps.prebuilt, warmer) } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  parseJsonAsUnicode(app);
  boundSlowClients(app.server, REQUEST_TIMEOUT_MS);
  capConnections(app.server, deps);
  return app;
}

/**
 * JSON bodies as fastify parses them (prototype keys dropped, see above), refused when a string
 * or key holds an unpaired UTF-16 surrogate (an escape such as "\ud800"): such text reaches Envoy as
 * bytes that are not UTF-8, and Envoy refuses the whole response (unpaired-surrogates.ts). Only a
 * body whose text has such an escape is walked.
 */
function parseJsonAsUnicode(app: Pick<FastifyInstance, 'getDefaultJsonParser' | 'removeContentTypeParser' | 'addContentTypeParser'>): void {
  const json = app.getDefaultJsonParser('remove', 'remove');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    json(request, text, (err, value) => {
      if (err) return done(err, undefined);
      const bad = mayHoldSurrogateEscape(text) ? unpairedSurrogateAt(value, '/body') : undefined;
      if (bad) return done(new ApiError(400, `${bad.path} ${unpairedSurrogateMessage(bad.text)}`, bad.path, VALIDATION_FAILED), undefined);
      done(null, value);
    });
  });
}

export function buildAdminApp(deps: AdminDeps) {
  const warmer = new Warmer();
  const app = createServer(deps, warmer);
  // Once listening and ready: the schemas left uncompiled, in the background (lazy-compilers.ts).
  app.addHook('onListen', async () => warmer.start(() => deps.ready().ready));
  app.addHook('onClose', async () => warmer.stop());
  void warmer.done.then(() => deps.onWarmed?.());
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
    return reply.code(decision.status).send(errorBody(decision.status, decision.message, undefined, decision.status === 401 ? 'UNAUTHENTICATED' : 'FORBIDDEN'));
  });
  const unrouted = unroutedHandler(app);
  app.setErrorHandler(errorHandler(unrouted));
  app.setNotFoundHandler(unrouted);
  // Only JSON bodies: fastify would otherwise hand a text/plain body to the schema as a string (a 400), not a 415.
  app.removeContentTypeParser('text/plain');
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    return payload;
  });

  void app.register(swagger, openApiOptions(deps.version ?? '0.0.0', { secured: auth.enabled }));
  // The Swagger UI is built on the first visit to /docs (see lazy-docs.ts).
  void app.register(lazyDocsRoutes);
  void app.register(opsRoutes, { ready: () => deps.ready(), metrics: deps.metrics });
  void app.register(proxyRoutes, { registry: deps.registry, cache: deps.cache, replica: deps.replica ?? 'local', ...(deps.fleet ? { fleet: deps.fleet } : {}) });
  registerResources(app, deps, (r) => actors.get(r) ?? 'api');
  void app.register(dashboardRoutes);
  return app;
}

export type AdminApp = ReturnType<typeof buildAdminApp>;

/**
 * The answer to a request no route matches: 405 with `Allow` when the path exists under other
 * methods (204 with `Allow` for OPTIONS), else 404. Records every route's methods as it is added.
 */
function unroutedHandler(app: ReturnType<typeof createServer>): Unrouted {
  const methods = new RouteMethods();
  app.addHook('onRoute', (route) => methods.add(route.url, route.method));
  return (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const routed = methods.allowed(path);
    const allow = routed.length > 0 ? [...new Set([...routed, 'OPTIONS'])] : routed;
    if (allow.length === 0) return reply.code(404).send(errorBody(404, `no route ${request.method} ${path.slice(0, 256)}`));
    reply.header('allow', allow.join(', '));
    if (request.method === 'OPTIONS') return reply.code(204).send();
    return reply.code(405).send(errorBody(405, `${request.method} is not allowed on ${path.slice(0, 256)} (allowed: ${allow.join(', ')})`));
  };
}

/** Each group of resource routes registers only when its dependency is given. */
function registerResources(app: ReturnType<typeof createServer>, deps: AdminDeps, actorOf: StoreRoutesOptions['actorOf']): void {
  const { store, weights, reports, fileTakesOver } = deps;
  if (store) {
    void app.register(clusterRoutes, { store, actorOf, ...(fileTakesOver ? { fileTakesOver: fileTakesOver.cluster } : {}) });
    void app.register(endpointRoutes, { store, actorOf, ...(weights ? { weights } : {}) });
    void app.register(policyRoutes, { store, actorOf });
    void app.register(listenerRoutes, { store, actorOf, ...(fileTakesOver ? { fileTakesOver: fileTakesOver.listener } : {}) });
    void app.register(auditRoutes, { store });
    void app.register(overrideRoutes, { store, actorOf });
  }
  if (weights) void app.register(weightsRoutes, { weights, ...(store ? { store } : {}) });
  if (reports) void app.register(reportsRoutes, { ingest: reports, ...(deps.reportsGate ? { gate: deps.reportsGate } : {}) });
}
