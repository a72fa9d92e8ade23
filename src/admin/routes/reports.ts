import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ReportBody, ReportResponse, REPORT_BODY_LIMIT_BYTES } from '../../signals/report-schema.js';
import { securedRoute } from './schema-parts.js';

/** POST /v1/reports: batches of per-endpoint load samples from agents and backends. */

export type ReportsIngest = (body: unknown) => { accepted: number; rejected: { index: number; field: string; reason: string }[] };

export const reportsRoutes: FastifyPluginAsyncTypebox<{ readonly ingest: ReportsIngest }> = async (app, { ingest }) => {
  app.post(
    '/v1/reports',
    {
      bodyLimit: REPORT_BODY_LIMIT_BYTES,
      schema: securedRoute('signals', 'Ingest a batch of per-endpoint load samples (200 even when some samples are rejected: see rejected)', {
        body: ReportBody,
        response: { 200: ReportResponse },
      }),
    },
    async (request) => ingest(request.body),
  );
};
