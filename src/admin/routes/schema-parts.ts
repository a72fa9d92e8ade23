import { Type, type TSchema } from '@sinclair/typebox';
import { ResourceName } from '../api-schemas.js';
import { ErrorResponse } from '../schemas.js';

/**
 * The schema parts the admin routes share, so that each route states only what is special about
 * it (its tag, summary, params, headers, body and success responses), and every status the server
 * can answer it with is documented, each in the one error shape:
 * - `openRoute`: probes, metrics and documents: 400 (a query string; an undecodable URL) and 500;
 *   with path parameters also 404 and 414; with a body also 413 and 415;
 * - `securedRoute`: the same plus the bearer token and its 401/403 (left out of the document
 *   when no token is configured: see openapi.ts);
 * - write routes add `WRITE_ERRORS` (404, 409, 412, 503).
 * 405 (a method the path does not support, with `Allow`) belongs to no operation: the document's
 * description states it.
 */

/** The error shape, described for one status. */
export const errorOf = (description: string) => Type.Object(ErrorResponse.properties, { title: 'Error', description });

/** The errors any route may give. */
export const ERRORS = {
  400: errorOf(
    'Bad input: a field the schema or a rule rejects (code VALIDATION_FAILED or the rule\'s own, path names the field), ' +
      'an undecodable URL (BAD_URL), a malformed body (INVALID_JSON, EMPTY_BODY)',
  ),
  500: errorOf('An internal error (logged; code INTERNAL); input never causes one'),
} as const;

/** The errors of a route with path parameters. */
const PARAM_ERRORS = {
  404: errorOf('Unknown name (code NOT_FOUND)'),
  414: errorOf('A path parameter longer than the router accepts (code URI_TOO_LONG)'),
} as const;

/** The errors of a route that reads a body. */
const BODY_ERRORS = {
  413: errorOf('Body larger than the limit (code BODY_TOO_LARGE, or TOO_LARGE for a report batch with too many samples)'),
  415: errorOf('Body not sent as application/json (code UNSUPPORTED_MEDIA_TYPE)'),
} as const;

export const AUTH_ERRORS = {
  401: errorOf('Missing or unknown bearer token (code UNAUTHENTICATED; WWW-Authenticate: Bearer)'),
  403: errorOf('The token\'s role does not allow this, e.g. a read-only token on a write (code FORBIDDEN)'),
} as const;

/** Extra documented statuses of write routes. */
export const WRITE_ERRORS = {
  404: errorOf('Unknown cluster, endpoint or listener (code NOT_FOUND)'),
  409: errorOf('Conflict: owned by another source (code OWNED_ELSEWHERE; DISCOVERED_READ_ONLY for a Kubernetes-discovered cluster), still referenced (REFERENCED), address in use (ADDRESS_IN_USE), or a PATCH without If-Match that other writers kept overtaking (CONCURRENT_CHANGES; nothing written, send it again)'),
  412: errorOf('If-Match / If-None-Match precondition failed (code REVISION_MISMATCH); nothing was written'),
  503: errorOf('The store cannot take writes now (code STORE_UNAVAILABLE: etcd unreachable or without quorum; SQLite locked by another process, disk full or file unwritable); nothing was written; reads keep working'),
} as const;

/** The documented 404 of a read of one named resource. */
export const NOT_FOUND = { 404: WRITE_ERRORS[404] } as const;

export const NoQuery = Type.Object({}, { additionalProperties: false });
export const NameParams = Type.Object({ name: ResourceName }, { additionalProperties: false });

/**
 * RFC 9110's `"*" / #entity-tag`: a star, or a comma-separated list of (possibly weak) quoted tags,
 * which may be empty (an empty list matches no revision: If-Match then fails with 412).
 */
const ENTITY_TAGS = '^ *(\\*|((W/)?"[!#-~]*")?( *, *((W/)?"[!#-~]*")?)*) *$';
const ifMatch = Type.Optional(
  Type.String({ pattern: ENTITY_TAGS, description: 'Write only if the resource\'s ETag is one of these ("*": it exists); else 412. Weak tags never match' }),
);
/** Headers of a conditional update or delete. */
export const Conditional = Type.Object({ 'if-match': ifMatch });
/** Headers of a conditional create-or-replace. */
export const ConditionalPut = Type.Object({
  'if-match': ifMatch,
  'if-none-match': Type.Optional(Type.String({ pattern: ENTITY_TAGS, description: '"*": create only; 412 if the resource exists (other tags are ignored)' })),
});

export const Deleted = Type.Object(
  {
    deleted: Type.String({ description: 'What was deleted' }),
    revision: Type.Integer({ description: 'The store revision of the deletion' }),
  },
  { title: 'Deleted' },
);

/** What a route states for itself; `response` holds its own statuses (a schema or an OpenAPI response object each). */
export interface RouteParts {
  readonly params?: TSchema;
  readonly querystring?: TSchema;
  readonly headers?: TSchema;
  readonly body?: TSchema;
  readonly response: Readonly<Record<number, unknown>>;
}

type QueryOf<P extends RouteParts> = P extends { querystring: infer Q extends TSchema } ? Q : typeof NoQuery;

const SECURE = [{ bearerAuth: [] }];

/** The errors a route can give for what it reads; its own `response` entries win (a more precise 404). */
function errorsOf(parts: RouteParts) {
  return {
    ...ERRORS,
    ...(parts.params ? PARAM_ERRORS : {}),
    ...(parts.body ? BODY_ERRORS : {}),
  };
}

export function openRoute<const P extends RouteParts>(tag: string, summary: string, parts: P) {
  return {
    tags: [tag],
    summary,
    ...parts,
    querystring: (parts.querystring ?? NoQuery) as QueryOf<P>,
    response: { ...errorsOf(parts), ...parts.response },
  };
}

export function securedRoute<const P extends RouteParts>(tag: string, summary: string, parts: P) {
  return { ...openRoute(tag, summary, parts), security: SECURE, response: { ...errorsOf(parts), ...AUTH_ERRORS, ...parts.response } };
}
