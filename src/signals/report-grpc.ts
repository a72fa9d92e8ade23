import * as grpc from '@grpc/grpc-js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { countEntries, type EntryShape, type Oversized } from '../runtime/protobuf-entries.js';
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

/**
 * Decodes a ReportRequest unless it holds more than `maxBatch` samples. Decoding first let a
 * 4 MiB request of two-byte empty samples become two million objects (~500 MB of RSS, seconds
 * of a blocked loop) before the batch limit refused it; two such calls killed the process.
 */
export function decodeBoundedRequest(bytes: Buffer, maxBatch: number): WireReportRequest | Oversized {
  const count = countSamples(bytes);
  return count > maxBatch ? { oversized: count } : decodeReportRequest(bytes);
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
}

export interface GrpcServicePair {
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
}

/** The service's definition, its requests decoded only when they hold at most `maxBatch` samples. */
function boundedDefinition(maxBatch: number): grpc.ServiceDefinition {
  const report = REPORT_SERVICE_DEFINITION.Report;
  if (!report) throw new Error('REPORT_SERVICE_DEFINITION has no Report method');
  return { Report: { ...report, requestDeserialize: (bytes: Buffer) => decodeBoundedRequest(bytes, maxBatch) } };
}

/** Throws TOO_LARGE for a request refused undecoded (the message validation gives a batch too large). */
function refuseOversized(req: WireReportRequest | Oversized, maxBatch: number): asserts req is WireReportRequest {
  if ('oversized' in req) throw new ReportBatchError('TOO_LARGE', `a batch holds at most ${maxBatch} samples (got ${req.oversized}); split it`);
}

export function reportService(deps: ReportServiceOptions): GrpcServicePair {
  const maxBatch = deps.limits?.maxBatch ?? VALIDATION_DEFAULTS.maxBatch;
  const implementation: grpc.UntypedServiceImplementation = {
    Report: (call: grpc.ServerUnaryCall<WireReportRequest | Oversized, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      try {
        const req = call.request;
        refuseOversized(req, maxBatch);
        const result = ingestSamples((req.samples ?? []).map(fromWire), req.reporter ?? '', deps, 'grpc');
        cb(null, encodeReportResponse(result));
      } catch (err) {
        if (err instanceof ReportBatchError) {
          cb({ code: err.code === 'TOO_LARGE' ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INVALID_ARGUMENT, details: err.message });
          return;
        }
        deps.onError?.(err);
        cb({ code: grpc.status.INTERNAL, details: 'internal error' });
      }
    },
  };
  return { definition: boundedDefinition(maxBatch), implementation };
}
