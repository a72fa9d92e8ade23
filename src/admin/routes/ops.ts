import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { nextTurn } from '../../runtime/next-turn.js';
import { StringEnum } from '../schemas.js';
import { openRoute } from './schema-parts.js';

/** The open operational routes: liveness, readiness, Prometheus metrics and the OpenAPI document. */

export interface Readiness {
  readonly ready: boolean;
  readonly reasons: string[];
}

export interface OpsRoutesOptions {
  /** Whether fulcrum can serve (config loaded, gRPC listening); reasons when not. */
  ready(): Readiness;
  /** The Prometheus registry's text exposition, built with a turn of `turn` between its pieces. */
  readonly metrics: { readonly contentType: string; render(turn: () => Promise<void>): Promise<string> };
}

const Health = Type.Object({ status: StringEnum(['ok'] as const) }, { description: 'The process is alive' });

const readinessFields = {
  ready: Type.Boolean(),
  reasons: Type.Array(Type.String(), { description: 'Why not ready (empty when ready)' }),
};
const Ready = Type.Object(readinessFields, { description: 'Config loaded and the xDS server serving' });
const NotReady = Type.Object(readinessFields, { description: 'Not ready; reasons says why' });

const MetricsText = { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: Type.String() } } };
const OpenApiDocument = Type.Object({ openapi: Type.String() }, { additionalProperties: true });

export const opsRoutes: FastifyPluginAsyncTypebox<OpsRoutesOptions> = async (app, { ready, metrics }) => {
  app.get('/healthz', { schema: openRoute('health', 'Liveness: the process is up and serving HTTP', { response: { 200: Health } }) }, async () => ({
    status: 'ok' as const,
  }));

  app.get(
    '/readyz',
    { schema: openRoute('health', 'Readiness: config loaded and the xDS gRPC server serving', { response: { 200: Ready, 503: NotReady } }) },
    async (_request, reply) => {
      const r = ready();
      return reply.code(r.ready ? 200 : 503).send({ ready: r.ready, reasons: [...r.reasons] });
    },
  );

  app.get(
    '/metrics',
    { schema: openRoute('telemetry', 'Prometheus metrics (text exposition format)', { response: { 200: MetricsText } }) },
    async (_request, reply) => {
      // In turns: at 100k endpoints a scrape built in one task stalled every other request for ~50 ms.
      const text = await metrics.render(nextTurn);
      return reply.code(200).header('content-type', metrics.contentType).send(text);
    },
  );

  app.get(
    '/openapi.json',
    { schema: openRoute('meta', 'This API as an OpenAPI 3 document', { response: { 200: OpenApiDocument } }) },
    async () => app.swagger() as { openapi: string },
  );
};
