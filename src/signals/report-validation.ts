import { endpointKey } from '../catalog/endpoint-key.js';
import type { SampleFields } from './signal-store.js';

/**
 * Validation of a batch of reported samples (HTTP body or gRPC ReportRequest, already decoded to
 * plain objects). Pure: the caller passes the wall-clock `now` and a `knows` callback into the
 * catalog. Each invalid sample is rejected with every problem it has, `{ index, field, reason }`;
 * the valid rest of the batch is kept. Only a batch that is not a list, or is too large, is
 * refused as a whole.
 */

export interface Rejection {
  /** Index of the sample in the batch. */
  readonly index: number;
  /** The offending field (`cpu`, `time`, `endpoint`...), or `sample` for the sample as a whole. */
  readonly field: string;
  readonly reason: string;
}

export interface ValidSample {
  readonly index: number;
  readonly cluster: string;
  /** The endpoint as the catalog keys it: `address:port` (IPv6 without brackets, like endpointKey). */
  readonly key: string;
  /** When the sample was taken: ms since the epoch (wall clock). */
  readonly time: number;
  readonly fields: SampleFields;
}

export type BatchValidation =
  | { readonly ok: true; readonly valid: ValidSample[]; readonly rejected: Rejection[] }
  | { readonly ok: false; readonly code: 'NOT_A_LIST' | 'TOO_LARGE'; readonly reason: string };

export interface ValidationOptions {
  /**
   * Whether the catalog has this cluster (`endpoint` undefined) or this endpoint of it (`endpoint`
   * as `address:port`, IPv6 without brackets).
   */
  readonly knows: (cluster: string, endpoint?: string) => boolean;
  /** Wall-clock now, ms since the epoch. */
  readonly now: number;
  /** A sample stamped further in the future than this is rejected (clock skew allowance). Default 5 s. */
  readonly maxFutureMs?: number;
  /** A sample older than this is rejected. Default 5 min. */
  readonly maxAgeMs?: number;
  /** Samples per batch. Default 10,000. */
  readonly maxBatch?: number;
}

export const VALIDATION_DEFAULTS = { maxFutureMs: 5_000, maxAgeMs: 300_000, maxBatch: 10_000 } as const;

/**
 * The metric fields a sample may carry, and their upper bound (inclusive). Utilizations are
 * fractions. The others are far beyond what a backend measures (an hour's mean latency, a billion
 * requests in flight or per second) and bound what a report can make the engine add up: without
 * them a report of 1.8e308 requests per second was accepted, and error windows summing such
 * rates overflow to Infinity and read as no errors at all.
 */
export const METRIC_LIMITS: Readonly<Record<keyof SampleFields, number>> = {
  cpu: 1,
  memory: 1,
  inflight: 1e9,
  latencyMs: 3_600_000,
  rps: 1e9,
  errors: 1e9,
};
/** The utilizations: fractions of a capacity, where the other metrics are amounts. */
export const FRACTION_METRICS: ReadonlySet<keyof SampleFields> = new Set<keyof SampleFields>(['cpu', 'memory']);
const METRIC_NAMES = Object.keys(METRIC_LIMITS) as (keyof SampleFields)[];
const KNOWN_FIELDS = new Set<string>(['cluster', 'endpoint', 'time', ...METRIC_NAMES]);

/**
 * Parses `address:port` or `[ipv6]:port` (a bare IPv6 `::1:8080` is read as address `::1`, port
 * 8080). Returns undefined when there is no valid port or no address.
 */
export function parseEndpoint(s: string): { address: string; port: number } | undefined {
  let address: string;
  let portText: string;
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  if (bracketed) {
    address = bracketed[1] ?? '';
    portText = bracketed[2] ?? '';
  } else {
    const at = s.lastIndexOf(':');
    if (at <= 0) return undefined;
    address = s.slice(0, at);
    portText = s.slice(at + 1);
  }
  if (!/^\d{1,5}$/.test(portText) || address === '' || /\s/.test(address)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65_535) return undefined;
  return { address, port };
}

/** The catalog's endpoint key (src/catalog/endpoint-key.ts) from its two parts. */
export const endpointKeyOf = (address: string, port: number): string => endpointKey({ address, port });

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

function parseTime(v: unknown): { ms: number } | { error: string } {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return { error: 'must be a finite number of milliseconds since the epoch' };
    return { ms: v };
  }
  if (typeof v === 'string') {
    if (!ISO_TIME.test(v)) return { error: 'must be milliseconds since the epoch or an ISO 8601 date-time with a zone, e.g. 2024-05-01T12:00:00Z' };
    const ms = Date.parse(v);
    return Number.isFinite(ms) ? { ms } : { error: 'is not a valid date-time' };
  }
  return { error: 'must be milliseconds since the epoch or an ISO 8601 date-time' };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/** How much of a client-chosen string (a field name, a cluster) a rejection repeats. */
const ECHO_MAX = 300;
/** A client-chosen string as messages and logs repeat it: at most `max` characters. */
export const clipped = (s: string, max: number): string => (s.length > max ? `${s.slice(0, max)}…` : s);
const echo = (s: string): string => clipped(s, ECHO_MAX);

/**
 * One rejection for all of a sample's unknown fields, however many: one each let a 4 MiB body of
 * `"a":0,"b":0,…` keys come back as ~500,000 rejections (a 66 MB answer, ~250 MB of heap), and
 * two such reports killed a process under the shipped 384 MiB heap.
 */
function rejectUnknownFields(raw: Record<string, unknown>, reject: (field: string, reason: string) => void): void {
  let first: string | undefined;
  let count = 0;
  for (const k in raw) {
    if (!Object.hasOwn(raw, k) || KNOWN_FIELDS.has(k)) continue;
    first ??= k;
    count++;
  }
  if (first === undefined) return;
  const more = count > 1 ? ` and ${count - 1} more unknown field${count > 2 ? 's' : ''}` : '';
  reject(echo(first), `unknown field${more} (known: ${[...KNOWN_FIELDS].join(', ')})`);
}

/** Validates one sample; returns the valid sample or its problems (never both). */
export function validateSample(raw: unknown, index: number, opts: ValidationOptions): ValidSample | Rejection[] {
  const problems: Rejection[] = [];
  const reject = (field: string, reason: string): void => {
    problems.push({ index, field, reason });
  };
  if (!isRecord(raw)) {
    reject('sample', 'must be an object');
    return problems;
  }
  rejectUnknownFields(raw, reject);

  // Identity: cluster, then endpoint within it.
  const cluster = raw.cluster;
  let key: string | undefined;
  let clusterOk = false;
  if (typeof cluster !== 'string' || cluster === '') reject('cluster', 'is required (a cluster name)');
  else if (!opts.knows(cluster)) reject('cluster', `unknown cluster "${echo(cluster)}"`);
  else clusterOk = true;
  const endpoint = raw.endpoint;
  if (typeof endpoint !== 'string' || endpoint === '') reject('endpoint', 'is required ("address:port")');
  else {
    const parsed = parseEndpoint(endpoint);
    if (!parsed) reject('endpoint', `"${echo(endpoint)}" is not "address:port" (IPv6 as "[address]:port")`);
    else {
      key = endpointKeyOf(parsed.address, parsed.port);
      if (clusterOk && !opts.knows(cluster as string, key)) reject('endpoint', `unknown endpoint "${echo(endpoint)}" in cluster "${echo(cluster as string)}"`);
    }
  }

  // Time: absent means "now" (the time of receipt).
  let time = opts.now;
  if (raw.time !== undefined && raw.time !== null) {
    const t = parseTime(raw.time);
    if ('error' in t) reject('time', t.error);
    else {
      const maxFuture = opts.maxFutureMs ?? VALIDATION_DEFAULTS.maxFutureMs;
      const maxAge = opts.maxAgeMs ?? VALIDATION_DEFAULTS.maxAgeMs;
      if (t.ms - opts.now > maxFuture) reject('time', `is ${seconds(t.ms - opts.now)} in the future (allowed skew ${seconds(maxFuture)})`);
      else if (opts.now - t.ms > maxAge) {
        const hint = typeof raw.time === 'number' && t.ms < 1e11 ? '; milliseconds since the epoch expected, not seconds' : '';
        reject('time', `is ${seconds(opts.now - t.ms)} old (at most ${seconds(maxAge)})${hint}`);
      } else time = t.ms;
    }
  }

  // Metrics: finite, >= 0, at most their limit (utilizations 0..1); at least one present.
  const fields: { -readonly [K in keyof SampleFields]: number } = {};
  let present = 0;
  for (const name of METRIC_NAMES) {
    const v = raw[name];
    if (v === undefined || v === null) continue;
    present++;
    if (typeof v !== 'number') reject(name, 'must be a number');
    else if (Number.isNaN(v)) reject(name, 'is NaN');
    else if (!Number.isFinite(v)) reject(name, 'is not finite');
    else if (v < 0) reject(name, `is negative (${v})`);
    else if (v <= METRIC_LIMITS[name]) fields[name] = v;
    else if (FRACTION_METRICS.has(name)) reject(name, `is ${v}, outside 0..1 (a fraction, not a percentage)`);
    else reject(name, `is ${v}, above ${METRIC_LIMITS[name]}, the most a report may carry`);
  }
  if (present === 0) reject('sample', `carries no metric (one of ${METRIC_NAMES.join(', ')})`);

  if (problems.length > 0 || key === undefined) return problems;
  return { index, cluster: cluster as string, key, time, fields };
}

/** Validates a batch: every valid sample is kept, every invalid one is listed with its reasons. */
export function validateBatch(samples: unknown, opts: ValidationOptions): BatchValidation {
  if (!Array.isArray(samples)) return { ok: false, code: 'NOT_A_LIST', reason: 'samples must be a list' };
  const max = opts.maxBatch ?? VALIDATION_DEFAULTS.maxBatch;
  if (samples.length > max) {
    return { ok: false, code: 'TOO_LARGE', reason: `a batch holds at most ${max} samples (got ${samples.length}); split it` };
  }
  const valid: ValidSample[] = [];
  const rejected: Rejection[] = [];
  samples.forEach((raw: unknown, index) => {
    const r = validateSample(raw, index, opts);
    // A loop, not push(...r): spreading a long list overflows the call stack.
    if (Array.isArray(r)) for (const x of r) rejected.push(x);
    else valid.push(r);
  });
  return { ok: true, valid, rejected };
}
