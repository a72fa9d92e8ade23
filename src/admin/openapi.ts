import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';

/**
 * The admin API's OpenAPI document: @fastify/swagger builds it from every route's schema; this
 * module gives it the title, the tags and the security scheme, and fixes the dialect (below).
 */
export function openApiOptions(version: string): FastifyDynamicSwaggerOptions {
  return {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'fulcrum admin API',
        description: 'Health, metrics and operator views of the xDS control plane.',
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
    transformObject: (doc) => ('openapiObject' in doc ? toOpenApi30(doc.openapiObject) : doc.swaggerObject),
  };
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
