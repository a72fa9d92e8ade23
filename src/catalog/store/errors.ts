import type { Owner, ResourceKind } from './records.js';

/** Base class: every store refusal carries an HTTP status hint and a stable code for the admin API. */
export abstract class StoreError extends Error {
  abstract readonly status: number;
  abstract readonly code: string;
}

/**
 * Optimistic concurrency failure: the caller's If-Match revision is not the resource's current
 * revision (or the resource does not exist / already exists, see `WriteOptions.ifMatch`).
 * Nothing was written.
 */
export class ConflictError extends StoreError {
  readonly status = 409;
  readonly code = 'REVISION_MISMATCH';
  constructor(
    readonly kind: ResourceKind,
    readonly resource: string,
    /** The revision the caller sent (0: "must not exist"). */
    readonly expected: number,
    /** The current revision, undefined when the resource does not exist. */
    readonly actual: number | undefined,
  ) {
    super(
      actual === undefined
        ? `${kind} "${resource}" does not exist (If-Match ${expected})`
        : expected === 0
          ? `${kind} "${resource}" already exists at revision ${actual}`
          : `${kind} "${resource}" is at revision ${actual}, not ${expected}`,
    );
    this.name = 'ConflictError';
  }
}

/** A writer tried to change a resource another source owns (e.g. the API editing a config-file cluster). */
export class OwnershipError extends StoreError {
  readonly status = 409;
  readonly code = 'OWNED_ELSEWHERE';
  constructor(
    readonly kind: ResourceKind,
    readonly resource: string,
    readonly owner: Owner,
    readonly writer: Owner,
  ) {
    super(
      owner === 'file'
        ? `${kind} "${resource}" is defined in the config file and is read-only through the ${writer} source; edit the file instead`
        : `${kind} "${resource}" is owned by the ${owner} source and cannot be changed by the ${writer} source`,
    );
    this.name = 'OwnershipError';
  }
}

export class NotFoundError extends StoreError {
  readonly status = 404;
  readonly code = 'NOT_FOUND';
  constructor(
    readonly kind: ResourceKind,
    readonly resource: string,
  ) {
    super(`${kind} "${resource}" does not exist`);
    this.name = 'NotFoundError';
  }
}

/**
 * The store cannot take writes now (etcd unreachable, no quorum, or this replica's view is behind):
 * nothing was acknowledged. Reads keep being served from the last good state (fail static).
 * After a timeout the write's outcome is unknown: re-read before retrying.
 */
export class StoreUnavailableError extends StoreError {
  readonly status = 503;
  readonly code = 'STORE_UNAVAILABLE';
  constructor(readonly reason: string) {
    super(`the store cannot take writes now: ${reason}`);
    this.name = 'StoreUnavailableError';
  }
}

/**
 * A write committed (and served) whose fsync failed: it is applied, but may not survive a power
 * loss. Not a refusal: retrying it as if it were lost would apply it twice.
 */
export class NotDurableError extends StoreError {
  readonly status = 500;
  readonly code = 'NOT_DURABLE';
  constructor(cause: unknown) {
    super(`the change is applied and served, but the store could not make it durable (fsync of the WAL failed: ${cause instanceof Error ? cause.message : String(cause)}); it may not survive a power loss`, { cause });
    this.name = 'NotDurableError';
  }
}

/** A value larger than the store accepts in one request (etcd: 1.5 MiB by default). Nothing was written. */
export class StoreLimitError extends StoreError {
  readonly status = 413;
  readonly code = 'TOO_LARGE';
  constructor(
    readonly kind: ResourceKind | 'weights',
    readonly resource: string,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(`${kind} "${resource}" is ${bytes} bytes once stored, over the store's limit of ${limit} bytes per write; split it up`);
    this.name = 'StoreLimitError';
  }
}

/** etcd's answer to a write while its NOSPACE alarm is raised (its space quota is full). */
export const ETCD_NO_SPACE = /database space exceeded|etcdserver: no space/;
