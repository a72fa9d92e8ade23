import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ReportsGate } from '../../signals/report-budget.js';
import { ReportBody, ReportResponse, REPORT_BODY_LIMIT_BYTES } from '../../signals/report-schema.js';
import { errorBody } from '../errors.js';
import { errorOf, securedRoute } from './schema-parts.js';

/** POST /v1/reports: batches of per-endpoint load samples from agents and backends. */

export type ReportsIngest = (body: unknown) => { accepted: number; rejected: { index: number; field: string; reason: string }[] };

export interface ReportsRouteOptions {
  readonly ingest: ReportsIngest;
  readonly gate?: ReportsGate;
}

export const reportsRoutes: FastifyPluginAsyncTypebox<ReportsRouteOptions> = async (app, { ingest, gate }) => {
  /** What each admitted request reserved, until its samples are counted. */
  const reserved = new WeakMap<FastifyRequest, number>();
  app.post(
    '/v1/reports',
    {
      bodyLimit: REPORT_BODY_LIMIT_BYTES,
      // Before the body is read: a client over its budget costs a header parse, not a 4 MiB JSON parse.
      ...(gate ? { onRequest: async (request: FastifyRequest, reply: FastifyReply) => admit(gate, reserved, request, reply) } : {}),
      schema: securedRoute('signals', 'Ingest a batch of per-endpoint load samples (200 even when some samples are rejected: see rejected)', {
        body: ReportBody,
        response: { 200: ReportResponse, 429: errorOf('The sender (its IP address) is over its budget of samples per second (code TOO_MANY_REQUESTS; Retry-After: seconds); nothing was read') },
      }),
    },
    async (request) => {
      const held = reserved.get(request);
      if (gate && held !== undefined) gate.settle(addressOf(request), held, samplesIn(request.body));
      return ingest(request.body);
    },
  );
};

function admit(gate: ReportsGate, reserved: WeakMap<FastifyRequest, number>, request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
  const length = Number(request.headers['content-length']);
  const admission = gate.reserve(addressOf(request), Number.isFinite(length) ? length : undefined);
  if (admission.admitted) {
    reserved.set(request, admission.reserved);
    return undefined;
  }
  const seconds = Math.max(1, Math.ceil(admission.retryAfterMs / 1000));
  // Closed, so the body it is sending (up to 4 MiB) is not read and thrown away: it cost a
  // flooding client's refusals as much loop time as its admitted batches.
  return reply
    .code(429)
    .header('retry-after', String(seconds))
    .header('connection', 'close')
    .send(errorBody(429, `over this address's budget of report samples per second (server.xds.limits.reportSamplesPerSecondPerPeer); retry in ${seconds} s`));
}

const addressOf = (request: FastifyRequest): string => request.socket.remoteAddress ?? 'unknown';

/** The samples a body holds (validation counts the same list). */
function samplesIn(body: unknown): number {
  const samples = (body as { samples?: unknown } | null)?.samples;
  return Array.isArray(samples) ? samples.length : 0;
}
