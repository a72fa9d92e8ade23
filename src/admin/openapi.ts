import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import { withExamples } from './api-examples.js';

/**
 * The admin API's OpenAPI document: @fastify/swagger builds it from every route's schema; this
 * module gives it the title, the tags and the security scheme, the examples (api-examples.ts),
 * and fixes the dialect (below).
 *
 * The document describes the server as it runs: with no token configured nothing is protected,
 * so the routes then declare no `security` and no 401/403 (a client generated from it, or a
 * conformance tester, would otherwise expect refusals that never come).
 */
export function openApiOptions(version: string, { secured }: { secured: boolean }): FastifyDynamicSwaggerOptions {
  return {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'fulcrum admin API',
        description:
          'Health, metrics and operator views of the xDS control plane. Every error is `{ error, message, code, path? }` with a stable `code`. ' +
          'A method a path does not support gets 405 with `Allow` (OPTIONS: 204 with `Allow`); a body that is not `application/json` gets 415; ' +
          'a request not fully received within 30 s gets 408 and the connection is closed.',
        version,
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
    transformObject: (doc) => {
      if (!('openapiObject' in doc)) return doc.swaggerObject;
      const out = withExamples(toOpenApi30(doc.openapiObject));
      return secured ? out : withoutSecurity(out);
    },
  };
}

const AUTH_STATUSES = ['401', '403'];

/** The document of a server without tokens: no operation is protected, none answers 401 or 403. */
export function withoutSecurity<T>(doc: T): T {
  const paths = (doc as { paths?: Record<string, Record<string, { security?: unknown; responses?: Record<string, unknown> }>> }).paths ?? {};
  for (const operations of Object.values(paths)) {
    for (const op of Object.values(operations)) {
      delete op.security;
      for (const status of AUTH_STATUSES) delete op.responses?.[status];
    }
  }
  return doc;
}

/**
 * Rewrites the few JSON Schema (draft 7) keywords that OpenAPI 3.0's schema dialect spells
 * differently, in the generated document only (fastify keeps validating with the originals):
 * `exclusiveMinimum: n` becomes `minimum: n, exclusiveMinimum: true` (likewise for the maximum).
 * @fastify/swagger already turns `const` into `enum` and `type: 'null'` into `nullable`.
 */
export function toOpenApi30<T>(doc: T): T {
  return walk(doc) as T;
}

function walk(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(walk);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = walk(v);
  for (const [exclusive, inclusive] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    const bound = out[exclusive];
    if (typeof bound === 'number') {
      out[inclusive] = bound;
      out[exclusive] = true;
    }
  }
  return out;
}
