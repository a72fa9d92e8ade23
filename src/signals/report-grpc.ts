import * as grpc from '@grpc/grpc-js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { countEntries, type EntryShape, type Oversized } from '../runtime/protobuf-entries.js';
import type { Admission } from './report-budget.js';
import { ingestSamples, ReportBatchError, type IngestDeps } from './report-ingest.js';
import { VALIDATION_DEFAULTS } from './report-validation.js';

/**
 * `fulcrum.reports.v1.ReportService/Report` (proto/fulcrum/reports/v1/reports.proto), served on
 * the xDS gRPC port: `server.addService(svc.definition, svc.implementation)` with
 * `svc = reportService(deps)`.
 *
 * Invalid samples come back in `rejected` with an OK status; only a batch over the size limit
 * fails the call (RESOURCE_EXHAUSTED). Bytes that do not decode as a ReportRequest fail the call
 * in grpc-js's deserializer (INTERNAL) and cost nothing else.
 */

const here = dirname(fileURLToPath(import.meta.url));
/** ../../proto from src/signals and from dist/signals alike. */
export const REPORTS_PROTO = join(here, '..', '..', 'proto', 'fulcrum', 'reports', 'v1', 'reports.proto');
export const REPORT_METHOD_PATH = '/fulcrum.reports.v1.ReportService/Report';

let root: protobuf.Root | undefined;

/** fulcrum's reports API (google/protobuf/timestamp.proto comes with protobufjs). */
export function reportsRoot(): protobuf.Root {
  if (!root) {
    root = new protobuf.Root();
    root.loadSync(REPORTS_PROTO, { keepCase: true });
    root.resolveAll();
  }
  return root;
}

const requestType = (): protobuf.Type => reportsRoot().lookupType('fulcrum.reports.v1.ReportRequest');
const responseType = (): protobuf.Type => reportsRoot().lookupType('fulcrum.reports.v1.ReportResponse');

interface WireSample {
  cluster?: string;
  endpoint?: string;
  time?: { seconds?: number; nanos?: number };
  cpu?: number;
  memory?: number;
  inflight?: number;
  latency_ms?: number;
  rps?: number;
  errors?: number;
}

export interface WireReportRequest {
  samples?: WireSample[];
  reporter?: string;
}

export interface WireReportResponse {
  accepted: number;
  rejected: { index: number; field: string; reason: string }[];
}

/** ReportRequest's samples (field 1), each an entry (proto/fulcrum/reports/v1/reports.proto). */
const SAMPLES: EntryShape = { 1: undefined };

/**
 * How many samples a ReportRequest's bytes hold, read from their tags and lengths without
 * decoding any: the batch limit is checked before a single sample is built. Throws on bytes that
 * are not protobuf (as decoding would).
 */
export function countSamples(bytes: Uint8Array): number {
  return countEntries(bytes, SAMPLES, Number.POSITIVE_INFINITY);
}

/** A request's bytes and how many samples they hold, not yet decoded: the sender's budget is asked first. */
export interface CountedRequest {
  readonly bytes: Buffer;
  readonly samples: number;
}

/**
 * Counts a request's samples, refusing more than `maxBatch`, and leaves the decoding to the
 * handler. Decoding first let a 4 MiB request of two-byte empty samples become two million
 * objects (~500 MB of RSS, seconds of a blocked loop) before the batch limit refused it; two such
 * calls killed the process.
 */
export function countedRequest(bytes: Buffer, maxBatch: number): CountedRequest | Oversized {
  const samples = countSamples(bytes);
  return samples > maxBatch ? { oversized: samples } : { bytes, samples };
}

export function decodeReportRequest(bytes: Buffer): WireReportRequest {
  const type = requestType();
  return type.toObject(type.decode(bytes), { longs: Number, defaults: false, arrays: true }) as WireReportRequest;
}

export function encodeReportRequest(req: WireReportRequest): Buffer {
  const type = requestType();
  return Buffer.from(type.encode(type.fromObject(req as Record<string, unknown>)).finish());
}

export function encodeReportResponse(res: WireReportResponse): Buffer {
  const type = responseType();
  return Buffer.from(type.encode(type.fromObject(res as unknown as Record<string, unknown>)).finish());
}

export function decodeReportResponse(bytes: Buffer): WireReportResponse {
  const type = responseType();
  return type.toObject(type.decode(bytes), { longs: Number, defaults: true, arrays: true }) as WireReportResponse;
}

/** A wire sample → the plain shape report-validation.ts checks (time in ms; absent fields stay absent). */
export function fromWire(s: WireSample): Record<string, unknown> {
  const out: Record<string, unknown> = { cluster: s.cluster ?? '', endpoint: s.endpoint ?? '' };
  if (s.time) out.time = (s.time.seconds ?? 0) * 1000 + Math.floor((s.time.nanos ?? 0) / 1e6);
  if (s.cpu !== undefined) out.cpu = s.cpu;
  if (s.memory !== undefined) out.memory = s.memory;
  if (s.inflight !== undefined) out.inflight = s.inflight;
  if (s.latency_ms !== undefined) out.latencyMs = s.latency_ms;
  if (s.rps !== undefined) out.rps = s.rps;
  if (s.errors !== undefined) out.errors = s.errors;
  return out;
}

const identity = (b: Buffer): Buffer => b;

export const REPORT_SERVICE_DEFINITION: grpc.ServiceDefinition = {
  Report: {
    path: REPORT_METHOD_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: encodeReportRequest,
    requestDeserialize: decodeReportRequest,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

export interface ReportServiceOptions extends IngestDeps {
  /** Called when the handler itself fails (a bug); the call gets INTERNAL. */
  readonly onError?: (err: unknown) => void;
  /**
   * The sender's budget (report-budget.ts), asked with its address and the request's sample
   * count before the request is decoded; refused: RESOURCE_EXHAUSTED. Default: no budget.
   */
  readonly admit?: (address: string, samples: number) => Admission;
}

export interface GrpcServicePair {
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
}

/** The service's definition, its requests counted, not decoded (the handler decodes those it admits). */
function boundedDefinition(maxBatch: number): grpc.ServiceDefinition {
  const report = REPORT_SERVICE_DEFINITION.Report;
  if (!report) throw new Error('REPORT_SERVICE_DEFINITION has no Report method');
  return { Report: { ...report, requestDeserialize: (bytes: Buffer) => countedRequest(bytes, maxBatch) } };
}

/** Throws TOO_LARGE for a request refused undecoded (the message validation gives a batch too large). */
function refuseOversized(req: CountedRequest | Oversized, maxBatch: number): asserts req is CountedRequest {
  if ('oversized' in req) throw new ReportBatchError('TOO_LARGE', `a batch holds at most ${maxBatch} samples (got ${req.oversized}); split it`);
}

/** A call refused before its samples are decoded: the sender is over its budget. */
class OverBudget extends Error {}

/** Throws OverBudget when the sender (its address, or IPv6 prefix) is over its budget. */
function refuseOverBudget(call: grpc.ServerUnaryCall<unknown, Buffer>, samples: number, admit: ReportServiceOptions['admit']): void {
  if (!admit) return;
  // grpc-js's peer is "address:port" or "[v6 address]:port".
  const admission = admit(call.getPeer().replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1'), samples);
  if (admission.admitted) return;
  const seconds = Math.max(1, Math.ceil(admission.retryAfterMs / 1000));
  throw new OverBudget(`over this address's budget of report samples per second (server.xds.limits.reportSamplesPerSecondPerPeer); retry in ${seconds} s`);
}

/** Decodes an admitted request's bytes; ones that were counted but do not decode are the client's fault. */
function decodeAdmitted(bytes: Buffer): WireReportRequest {
  try {
    return decodeReportRequest(bytes);
  } catch (err) {
    throw new ReportBatchError('BAD_BODY', `the request does not decode as a fulcrum.reports.v1.ReportRequest: ${String((err as Error).message).slice(0, 200)}`);
  }
}

/** A refusal's gRPC status; undefined for a failure of fulcrum's own (a bug). */
function refusal(err: unknown): grpc.StatusObject | undefined {
  const status = (code: grpc.status, details: string): grpc.StatusObject => ({ code, details, metadata: new grpc.Metadata() });
  if (err instanceof OverBudget) return status(grpc.status.RESOURCE_EXHAUSTED, err.message);
  if (err instanceof ReportBatchError) return status(err.code === 'TOO_LARGE' ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INVALID_ARGUMENT, err.message);
  return undefined;
}

export function reportService(deps: ReportServiceOptions): GrpcServicePair {
  const maxBatch = deps.limits?.maxBatch ?? VALIDATION_DEFAULTS.maxBatch;
  const implementation: grpc.UntypedServiceImplementation = {
    Report: (call: grpc.ServerUnaryCall<CountedRequest | Oversized, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      try {
        const counted = call.request;
        refuseOversized(counted, maxBatch);
        refuseOverBudget(call, counted.samples, deps.admit);
        const req = decodeAdmitted(counted.bytes);
        cb(null, encodeReportResponse(ingestSamples((req.samples ?? []).map(fromWire), req.reporter ?? '', deps, 'grpc')));
      } catch (err) {
        const refused = refusal(err);
        if (!refused) deps.onError?.(err);
        cb(refused ?? { code: grpc.status.INTERNAL, details: 'internal error' });
      }
    },
  };
  return { definition: boundedDefinition(maxBatch), implementation };
}
