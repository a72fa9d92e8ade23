import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply } from 'fastify';
import { ConflictError, OwnershipError, type Owner, type ResourceKind } from '../catalog/store/index.js';
import { ApiError } from './resources.js';

/**
 * HTTP conditional requests over the store's revisions (optimistic concurrency).
 *
 * - A resource's ETag is its store revision in quotes: `"42"` (strong).
 * - `If-Match: "42"` (or a list, or `*`) on PUT / PATCH / DELETE / POST: the write happens only if
 *   the resource is at one of those revisions (`*`: exists). Otherwise 412 Precondition Failed,
 *   nothing written, nothing audited. Weak tags (`W/"42"`) never match (RFC 9110 strong comparison).
 * - `If-None-Match: *` on PUT: create only; 412 if the resource exists.
 * - The check is repeated atomically by the store (its `ifMatch`), so a concurrent writer between
 *   our read and the write still yields 412, never a lost update.
 */

export const etag = (revision: number): string => `"${revision}"`;

/** Sends `body` with the resource's revision as its ETag. */
export function withEtag(reply: FastifyReply, revision: number, status: number, body: unknown): FastifyReply {
  return reply.code(status).header('etag', etag(revision)).send(body);
}

export interface Preconditions {
  /** `*`, or the revisions listed (empty when only unusable tags were sent: never matches). */
  readonly ifMatch?: '*' | readonly number[];
  readonly ifNoneMatchAny: boolean;
}

const header = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join(',') : v);

export function readPreconditions(headers: IncomingHttpHeaders): Preconditions {
  const im = header(headers['if-match']);
  const inm = header(headers['if-none-match']);
  let ifMatch: Preconditions['ifMatch'];
  if (im !== undefined) {
    const tags = im.split(',').map((t) => t.trim());
    if (tags.includes('*')) ifMatch = '*';
    else ifMatch = tags.flatMap((t) => (/^"[0-9]{1,15}"$/.test(t) ? [Number(t.slice(1, -1))] : []));
  }
  return { ...(ifMatch !== undefined ? { ifMatch } : {}), ifNoneMatchAny: inm !== undefined && inm.split(',').some((t) => t.trim() === '*') };
}

export const hasPreconditions = (p: Preconditions): boolean => p.ifMatch !== undefined || p.ifNoneMatchAny;

function failed(what: string, current: number | undefined, message: string): never {
  throw new ApiError(412, `${what}: ${message}${current !== undefined ? ` (current ETag "${current}")` : ''}`, undefined, 'REVISION_MISMATCH');
}

/**
 * Evaluates the preconditions against the resource's current revision (undefined: it does not
 * exist) and returns the `ifMatch` to hand the store, which re-checks it atomically.
 */
export function storeIfMatch(p: Preconditions, current: number | undefined, what: string): number | undefined {
  if (p.ifMatch !== undefined) {
    if (current === undefined) failed(what, current, 'does not exist (If-Match)');
    if (p.ifMatch !== '*' && !p.ifMatch.includes(current)) failed(what, current, `If-Match ${p.ifMatch.map(etag).join(', ') || '(no usable strong ETag)'} does not match`);
    return current;
  }
  if (p.ifNoneMatchAny) {
    if (current !== undefined) failed(what, current, 'already exists (If-None-Match: *)');
    return 0;
  }
  return undefined;
}

/** Reads again after a concurrent writer, when the client sent no precondition of its own. */
export const PATCH_ATTEMPTS = 5;

/**
 * A PATCH is a read-modify-write: `once` reads the resource, merges the patch and writes with the
 * revision it read as the store's `ifMatch`, so a write that lands in between (another replica's,
 * or one that ran while a long body was parsed in slices) is a ConflictError, never a lost update.
 * The client's own If-Match makes that a 412; without one the patch is simply applied again to
 * what is there now, a bounded number of times (then 409 CONCURRENT_CHANGES, nothing written).
 */
export async function patchRetrying<T>(headers: IncomingHttpHeaders, what: string, once: () => Promise<T>): Promise<T> {
  const own = hasPreconditions(readPreconditions(headers));
  for (let attempt = 1; ; attempt++) {
    try {
      return await once();
    } catch (err) {
      if (!(err instanceof ConflictError) || own) throw err;
      if (attempt >= PATCH_ATTEMPTS) throw concurrentChanges(what);
    }
  }
}

function concurrentChanges(what: string): ApiError {
  const message = `${what} was changed by other writers during each of ${PATCH_ATTEMPTS} attempts to apply this patch; nothing was written: send it again`;
  return new ApiError(409, message, undefined, 'CONCURRENT_CHANGES');
}

/** 409 on a write to what a Kubernetes Service owns, saying what can be changed instead. */
export function discoveredReadOnly(kind: ResourceKind, name: string): ApiError {
  return new ApiError(
    409,
    `${kind} "${name}" is discovered from a Kubernetes Service, which owns its spec: change the Service (its fulcrum.io/* annotations) instead. ` +
      'Through this API you can drain, disable and enable its endpoints (POST /v1/clusters/{name}/endpoints/{address}/{port}/drain|disable|enable) ' +
      'and override its balancing policy (PATCH /v1/clusters/{name}/policy); these are stored as overrides (GET /v1/overrides, DELETE to remove one)',
    undefined,
    'DISCOVERED_READ_ONLY',
  );
}

/** Throws the store's own OwnershipError before any precondition, so ownership wins over 412. */
export function assertApiOwned(kind: ResourceKind, name: string, owner: Owner | undefined): void {
  if (owner === 'kubernetes') throw discoveredReadOnly(kind, name);
  if (owner !== undefined && owner !== 'api') throw new OwnershipError(kind, name, owner, 'api');
}
