import { Type, type Static } from '@sinclair/typebox';
import { VALIDATION_DEFAULTS } from './report-validation.js';

/**
 * TypeBox schemas of `POST /v1/reports` (JSON twin of fulcrum.reports.v1.ReportService/Report).
 *
 * The body schema checks types only. Ranges, NaN, unknown clusters and endpoints, timestamps and
 * the batch size are checked per sample by `ingestReports`, so that one bad sample is rejected
 * with its reason while the rest of the batch is kept; a schema failure (fastify's 400) would
 * throw the whole batch away. For the same reason samples allow extra properties: the validator
 * rejects an unknown field on that sample alone. Kept to the OpenAPI 3.0 subset (no `const`).
 *
 * A full batch (10,000 samples) is about 1.5 MB of JSON: give the route `bodyLimit:
 * REPORT_BODY_LIMIT_BYTES` (fastify's default is 1 MiB).
 */

export const REPORT_BODY_LIMIT_BYTES = 4 * 1024 * 1024;

// No minimum/maximum here: out-of-range values are rejected per sample (see above).
const metric = (description: string) => Type.Optional(Type.Number({ description }));

export const ReportSample = Type.Object(
  {
    cluster: Type.String({ description: 'The cluster, as named in the catalog', maxLength: 256 }),
    endpoint: Type.String({ description: 'The endpoint as "address:port" (IPv6 as "[address]:port")', maxLength: 300 }),
    time: Type.Optional(
      Type.Union([Type.Number({ description: 'ms since the epoch' }), Type.String({ format: 'date-time' })], {
        description:
          'When the sample was taken: ms since the epoch or an ISO 8601 date-time with a zone. At most 5 s in the future and 5 min old; absent, the time of receipt.',
      }),
    ),
    cpu: metric('CPU utilization, 0..1'),
    memory: metric('Memory utilization, 0..1'),
    inflight: metric('Requests in flight at the sampling moment, 0..1e9'),
    latencyMs: metric('Mean request latency over the sampling interval, ms, 0..3600000 (an hour)'),
    rps: metric('Requests per second over the sampling interval, 0..1e9'),
    errors: metric('Failed requests per second over the sampling interval, 0..1e9'),
  },
  {
    additionalProperties: true,
    title: 'ReportSample',
    description: 'One endpoint\'s load at one moment; absent metrics are unknown, not zero. At least one metric. `__proto__` keys are dropped by the JSON parser.',
  },
);
export type ReportSample = Static<typeof ReportSample>;

export const ReportBody = Type.Object(
  {
    reporter: Type.Optional(Type.String({ description: 'Who sends the batch (an agent name), for logs', maxLength: 256 })),
    samples: Type.Array(ReportSample, { description: `At most ${VALIDATION_DEFAULTS.maxBatch} samples (413 beyond)` }),
  },
  { title: 'ReportRequest' },
);
export type ReportBody = Static<typeof ReportBody>;

export const ReportRejection = Type.Object(
  {
    index: Type.Integer({ minimum: 0, description: 'Index of the sample in `samples`' }),
    field: Type.String({ description: 'The offending field, e.g. "cpu"; "sample" for the sample as a whole' }),
    reason: Type.String(),
  },
  { title: 'ReportRejection' },
);

export const ReportResponse = Type.Object(
  {
    accepted: Type.Integer({ minimum: 0, description: 'Samples kept' }),
    rejected: Type.Array(ReportRejection, { description: 'Every problem of every sample not kept' }),
  },
  { title: 'ReportResponse' },
);
export type ReportResponse = Static<typeof ReportResponse>;
