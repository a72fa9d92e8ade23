import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { StoreError } from '../catalog/store/index.js';
import { enumMessage } from './enum-message.js';
import { ApiError } from './resources.js';
import type { ErrorResponse } from './schemas.js';

/**
 * Every admin error answer has one shape, `{ error, message, path?, code? }`. Input never produces
 * a 500: validation failures are 400s naming the field, unknown names 404s, conflicts 409s, failed
 * preconditions 412s; only a bug reaches the 500 path, and that is logged.
 */

export function errorBody(status: number, message: string, path?: string, code?: string): ErrorResponse {
  return { error: STATUS_CODES[status] ?? 'Error', message, ...(path !== undefined ? { path } : {}), ...(code !== undefined ? { code } : {}) };
}

/** fastify's validation error, as `{ error, message, path }`; path is a JSON pointer such as `/querystring/node`. */
function validationPath(err: FastifyError): string {
  const first = err.validation?.[0];
  let path = `/${err.validationContext ?? 'request'}${first?.instancePath ?? ''}`;
  const params = (first?.params ?? {}) as Record<string, unknown>;
  if (typeof params.missingProperty === 'string') path += `/${params.missingProperty}`;
  else if (typeof params.additionalProperty === 'string') path += `/${params.additionalProperty}`;
  return path;
}

export function onError(err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err.validation) return reply.code(400).send(errorBody(400, enumMessage(err) ?? err.message, validationPath(err)));
  if (err instanceof ApiError) return reply.code(err.statusCode).send(errorBody(err.statusCode, err.message, err.path, err.code));
  // The store's refusals: an If-Match the store found stale is a failed precondition (412), not a 409.
  if ((err as unknown) instanceof StoreError) {
    const e = err as unknown as StoreError;
    const status = e.code === 'REVISION_MISMATCH' ? 412 : e.status;
    return reply.code(status).send(errorBody(status, e.message, undefined, e.code));
  }
  const status = err.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    // Codes of our own errors (e.g. a report batch's TOO_LARGE); fastify's FST_* codes are noise.
    const code = typeof err.code === 'string' && !err.code.startsWith('FST_') ? err.code : undefined;
    return reply.code(status).send(errorBody(status, err.message, undefined, code));
  }
  request.log.error({ err, method: request.method, url: request.url.slice(0, 512) }, 'admin request failed');
  return reply.code(500).send(errorBody(500, 'internal error'));
}
