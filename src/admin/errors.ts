import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { StoreError } from '../catalog/store/index.js';
import { enumMessage } from './enum-message.js';
import { unionMessage } from './union-message.js';
import { ApiError } from './resources.js';
import type { ErrorResponse } from './schemas.js';

/**
 * Every admin error answer has one shape, `{ error, message, code, path? }`, whoever produced it:
 * a route, the auth hook, the router (unknown path, wrong method, undecodable URL), fastify's body
 * parsing (wrong media type, body too large, broken JSON) or schema validation. `code` is a stable
 * machine-readable reason; fastify's own FST_* codes are translated, never leaked, because they
 * name an implementation detail and change between fastify versions.
 *
 * Input never produces a 500: validation failures are 400s naming the field, unknown names 404s,
 * conflicts 409s, failed preconditions 412s; only a bug reaches the 500 path, and that is logged.
 */

/** The code of an error that brings none of its own, by status. */
const CODE_OF_STATUS: Readonly<Record<number, string>> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  408: 'REQUEST_TIMEOUT',
  409: 'CONFLICT',
  412: 'PRECONDITION_FAILED',
  413: 'BODY_TOO_LARGE',
  414: 'URI_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'TOO_MANY_REQUESTS',
  431: 'HEADERS_TOO_LARGE',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

/** fastify's codes → ours (those not listed take the code of their status). */
const FASTIFY_CODES: Readonly<Record<string, string>> = {
  FST_ERR_BAD_URL: 'BAD_URL',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'EMPTY_BODY',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID_CONTENT_LENGTH',
  FST_ERR_ROUTE_MISSING_CONTENT_TYPE: 'MISSING_CONTENT_TYPE',
};

export const VALIDATION_FAILED = 'VALIDATION_FAILED';

export function codeOfStatus(status: number): string {
  return CODE_OF_STATUS[status] ?? (status >= 500 ? 'INTERNAL' : 'BAD_REQUEST');
}

export function errorBody(status: number, message: string, path?: string, code?: string): ErrorResponse {
  return { error: STATUS_CODES[status] ?? 'Error', message, code: code ?? codeOfStatus(status), ...(path !== undefined ? { path } : {}) };
}

/** fastify's validation error's path, a JSON pointer such as `/querystring/node`. */
function validationPath(err: FastifyError): string {
  const first = err.validation?.[0];
  let path = `/${err.validationContext ?? 'request'}${first?.instancePath ?? ''}`;
  const params = (first?.params ?? {}) as Record<string, unknown>;
  if (typeof params.missingProperty === 'string') path += `/${params.missingProperty}`;
  else if (typeof params.additionalProperty === 'string') path += `/${params.additionalProperty}`;
  return path;
}

/**
 * Ajv's message, except for a value that matched none of a few formats (an IP address is IPv4 or
 * IPv6), where Ajv lists each failed branch and then the anyOf: said once instead; likewise a
 * value that matched no branch of another union (unionMessage).
 */
function validationMessage(err: FastifyError): string {
  const errors = err.validation ?? [];
  const last = errors[errors.length - 1];
  const branches = errors.slice(0, -1);
  if (last?.keyword !== 'anyOf' || branches.length === 0 || !branches.every((e) => e.keyword === 'format')) return unionMessage(err) ?? err.message;
  const formats = branches.map((e) => String((e.params as { format?: unknown }).format));
  return `${err.validationContext ?? 'request'}${last.instancePath} must be ${formats.join(' or ')}`;
}

/** A client error's own code when it is ours (e.g. a report batch's TOO_LARGE), a translated fastify code, or the status's. */
function clientCode(err: FastifyError, status: number): string {
  const code = typeof err.code === 'string' ? err.code : undefined;
  if (code === undefined) return err instanceof SyntaxError ? 'INVALID_JSON' : codeOfStatus(status);
  if (!code.startsWith('FST_')) return code;
  return FASTIFY_CODES[code] ?? codeOfStatus(status);
}

/** The router's answer to a path it has no route for: set by app.ts (404, or 405 when other methods have one). */
export type Unrouted = (request: FastifyRequest, reply: FastifyReply) => FastifyReply;

export function errorHandler(unrouted: Unrouted) {
  return function onError(err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
    // An error while reading the body of a request no route matches (QUERY without a content type,
    // a body on TRACE): the answer is still "no such route" or "wrong method", not a body error.
    if (request.is404) return unrouted(request, reply);
    if (err.validation) return reply.code(400).send(errorBody(400, enumMessage(err) ?? validationMessage(err), validationPath(err), VALIDATION_FAILED));
    if (err instanceof ApiError) return reply.code(err.statusCode).send(errorBody(err.statusCode, err.message, err.path, err.code));
    // The store's refusals: an If-Match the store found stale is a failed precondition (412), not a 409.
    if ((err as unknown) instanceof StoreError) {
      const e = err as unknown as StoreError;
      const status = e.code === 'REVISION_MISMATCH' ? 412 : e.status;
      return reply.code(status).send(errorBody(status, e.message, undefined, e.code));
    }
    const status = err.statusCode;
    if (status !== undefined && status >= 400 && status < 500) return reply.code(status).send(errorBody(status, err.message, undefined, clientCode(err, status)));
    request.log.error({ err, method: request.method, url: request.url.slice(0, 512) }, 'admin request failed');
    return reply.code(500).send(errorBody(500, 'internal error'));
  };
}

/** fastify's router errors before any route runs (an undecodable URL, a too long parameter), in the same shape. */
export function frameworkError(err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const status = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 400;
  const message = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a path segment is too long' : err.message;
  void reply.code(status).send(errorBody(status, message, undefined, clientCode(err, status)));
}

/**
 * Errors of the connection itself, before a request exists (a body that does not arrive within the
 * request timeout, oversized headers, bytes that are not HTTP): the same shape, written raw, and
 * the connection closed, as Node does by default.
 */
export function clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  const message = status === 408 ? 'the request did not arrive in time' : status === 431 ? 'the request headers are too large' : 'malformed HTTP request';
  const body = JSON.stringify(errorBody(status, message));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
