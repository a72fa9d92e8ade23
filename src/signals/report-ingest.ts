import type { SignalStore } from './signal-store.js';
import { clipped, validateBatch, type Rejection, type ValidationOptions } from './report-validation.js';

/**
 * Report ingestion shared by both transports: HTTP `POST /v1/reports` (the admin app calls
 * `ingestReports` with the parsed JSON body) and gRPC `fulcrum.reports.v1.ReportService/Report`
 * (report-grpc.ts calls `ingestSamples`).
 *
 * Sample times are wall-clock (they come from other machines); the store runs on its own clock
 * (the weight engine's, possibly monotonic). A sample is stored at `store.now() − its age`, so
 * ages survive the change of clock.
 */

export interface IngestDeps {
  readonly store: SignalStore;
  /** See ValidationOptions.knows: the catalog's clusters and `address:port` endpoint keys. */
  readonly knows: ValidationOptions['knows'];
  /** Wall clock, ms since the epoch (default Date.now). */
  readonly wallNow?: () => number;
  readonly limits?: Partial<Pick<ValidationOptions, 'maxFutureMs' | 'maxAgeMs' | 'maxBatch'>>;
  /** Called once per batch (logs, metrics). */
  readonly onBatch?: (summary: BatchSummary) => void;
}

export interface BatchSummary {
  readonly transport: 'http' | 'grpc';
  readonly reporter: string;
  readonly received: number;
  readonly accepted: number;
  readonly rejected: number;
  /** The first problem of the first sample not kept: what to fix, for the log. */
  readonly firstRejection?: Pick<Rejection, 'field' | 'reason'>;
}

export interface IngestResult {
  /** Samples kept. */
  accepted: number;
  /** Every problem of every sample not kept (a sample may appear more than once). */
  rejected: Rejection[];
}

/**
 * The whole batch is refused: not a list of samples (400) or too many (413). `statusCode` is what
 * fastify answers with when a route handler throws it; report-grpc.ts maps it to a gRPC status.
 */
export class ReportBatchError extends Error {
  readonly statusCode: 400 | 413;
  constructor(
    readonly code: 'NOT_A_LIST' | 'TOO_LARGE' | 'BAD_BODY',
    message: string,
  ) {
    super(message);
    this.name = 'ReportBatchError';
    this.statusCode = code === 'TOO_LARGE' ? 413 : 400;
  }
}

/**
 * How much of a batch's `reporter` reaches logs: the HTTP body's schema allows 256 characters; a
 * gRPC request's reporter had no bound, and a batch with a rejected sample logged it whole (4 MiB
 * a line, as often as a client sends).
 */
export const REPORTER_MAX = 256;

/** Ingests a list of samples (already decoded to plain objects). Throws ReportBatchError. */
export function ingestSamples(samples: unknown, reporter: string, deps: IngestDeps, transport: 'http' | 'grpc' = 'http'): IngestResult {
  const wallNow = (deps.wallNow ?? Date.now)();
  const checked = validateBatch(samples, { knows: deps.knows, now: wallNow, ...deps.limits });
  if (!checked.ok) throw new ReportBatchError(checked.code, checked.reason);
  const rejected = checked.rejected;
  let accepted = 0;
  const storeNow = deps.store.now();
  for (const s of checked.valid) {
    const at = storeNow - Math.max(0, wallNow - s.time);
    if (deps.store.record(s.cluster, s.key, { at, ...s.fields, source: 'report' })) accepted++;
    else rejected.push({ index: s.index, field: 'sample', reason: 'not stored: older than every sample kept for this endpoint, or the store is full' });
  }
  rejected.sort((a, b) => a.index - b.index);
  const first = rejected[0];
  deps.onBatch?.({
    transport,
    reporter: clipped(reporter, REPORTER_MAX),
    received: (samples as unknown[]).length,
    accepted,
    rejected: new Set(rejected.map((r) => r.index)).size,
    ...(first ? { firstRejection: { field: first.field, reason: first.reason } } : {}),
  });
  return { accepted, rejected };
}

/**
 * The HTTP body `{ reporter?: string, samples: Sample[] }` (see report-schema.ts) → the result to
 * answer with (200 even when some samples are rejected). Throws ReportBatchError for a body that
 * is not such an object or holds too many samples.
 */
export function ingestReports(body: unknown, deps: IngestDeps): IngestResult {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ReportBatchError('BAD_BODY', 'the body must be an object { reporter?, samples: [...] }');
  }
  const { samples, reporter } = body as { samples?: unknown; reporter?: unknown };
  return ingestSamples(samples, typeof reporter === 'string' ? reporter : '', deps, 'http');
}
