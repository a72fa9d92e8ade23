import { Type, type TSchema } from '@sinclair/typebox';
import { ResourceName } from '../api-schemas.js';
import { ErrorResponse } from '../schemas.js';

/**
 * The schema parts the admin routes share, so that each route states only what is special about
 * it (its tag, summary, params, headers, body and success responses):
 * - `openRoute`: probes, metrics, xDS views and documents: no query string, the catch-all 4xx/5xx;
 * - `securedRoute`: the /v1 resources: the same plus the bearer token and its 401/403.
 */

const errorOf = (description: string) => Type.Object(ErrorResponse.properties, { title: 'Error', description });

/** The error responses every route may give. */
export const ERRORS = {
  '4xx': errorOf('Bad input (400, with the path of the offending field), unknown name (404), body too large (413), unsupported media type (415)'),
  '5xx': errorOf('An internal error (logged); input never causes one'),
} as const;

export const AUTH_ERRORS = {
  401: errorOf('Missing or unknown bearer token (WWW-Authenticate: Bearer)'),
  403: errorOf('The token\'s role does not allow this (a read-only token on a write)'),
} as const;

/** Extra documented statuses of write routes (the catch-all 4xx stays). */
export const WRITE_ERRORS = {
  404: errorOf('Unknown cluster, endpoint or listener'),
  409: errorOf('Conflict: owned by another source (code OWNED_ELSEWHERE), still referenced (REFERENCED), or address in use (ADDRESS_IN_USE)'),
  412: errorOf('If-Match / If-None-Match precondition failed (code REVISION_MISMATCH); nothing was written'),
  503: errorOf('The store cannot take writes now (code STORE_UNAVAILABLE: etcd unreachable or without quorum); reads keep working'),
} as const;

/** The documented 404 of a read of one named resource. */
export const NOT_FOUND = { 404: WRITE_ERRORS[404] } as const;

export const NoQuery = Type.Object({}, { additionalProperties: false });
export const NameParams = Type.Object({ name: ResourceName }, { additionalProperties: false });

const ifMatch = Type.Optional(Type.String({ description: 'Write only if the resource\'s ETag is one of these ("*": it exists); else 412' }));
/** Headers of a conditional update or delete. */
export const Conditional = Type.Object({ 'if-match': ifMatch });
/** Headers of a conditional create-or-replace. */
export const ConditionalPut = Type.Object({
  'if-match': ifMatch,
  'if-none-match': Type.Optional(Type.String({ description: '"*": create only; 412 if the resource exists' })),
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

export function openRoute<const P extends RouteParts>(tag: string, summary: string, parts: P) {
  return {
    tags: [tag],
    summary,
    ...parts,
    querystring: (parts.querystring ?? NoQuery) as QueryOf<P>,
    response: { ...parts.response, ...ERRORS },
  };
}

export function securedRoute<const P extends RouteParts>(tag: string, summary: string, parts: P) {
  return { ...openRoute(tag, summary, parts), security: SECURE, response: { ...parts.response, ...AUTH_ERRORS, ...ERRORS } };
}
