import type { Logger } from 'pino';
import type { XdsCache } from './cache.js';
import { isXdsTypeUrl, TYPE, type XdsTypeUrl } from './envoy-api.js';
import type { ProxyRegistry } from './proxy-status.js';

/** What both stream kinds (SotW, Delta) need from the rest of the server. */
export interface StreamDeps {
  readonly cache: XdsCache;
  readonly registry: ProxyRegistry;
  readonly log: Logger;
  readonly maxResourceNames: number;
  readonly controlPlaneId: string;
}

/** The gRPC side of one stream, as the state machines see it. */
export interface StreamIo {
  /** Writes one response, given as parts that are concatenated once, on serialization. */
  send(parts: readonly Uint8Array[]): void;
  /** Ends the stream with a gRPC status code and a message for the client. */
  fail(code: number, message: string): void;
  readonly peer: string;
}

export class StreamError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** gRPC status codes used here (kept local so the state machines do not import grpc-js). */
export const CODE = { INVALID_ARGUMENT: 3, RESOURCE_EXHAUSTED: 8 } as const;

/** LDS and CDS treat an empty first subscription as "everything" (legacy wildcard). */
export const WILDCARD_TYPES: ReadonlySet<XdsTypeUrl> = new Set([TYPE.cluster, TYPE.listener]);

export function checkTypeUrl(typeUrl: string, fixed: XdsTypeUrl | undefined): XdsTypeUrl {
  const effective = typeUrl === '' && fixed ? fixed : typeUrl;
  if (!isXdsTypeUrl(effective)) {
    throw new StreamError(CODE.INVALID_ARGUMENT, effective === '' ? 'request has no type_url' : `unknown type URL "${effective}"`);
  }
  if (fixed && effective !== fixed) {
    throw new StreamError(CODE.INVALID_ARGUMENT, `this service serves ${fixed}, not ${effective}`);
  }
  return effective;
}

export function checkNameCount(count: number, limit: number): void {
  if (count > limit) {
    throw new StreamError(CODE.RESOURCE_EXHAUSTED, `request names ${count} resources; the limit is ${limit}`);
  }
}

let streamSeq = 0;
export const nextStreamId = (): number => ++streamSeq;
